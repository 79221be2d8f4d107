"""Starts and stops the system's processes: `kaiku run` and the end-to-end tests.

Every service runs as three OS processes (api, worker, relay), each in its own
process group so that stopping leaves no orphans. A process that exits on its
own is restarted (with a pause), as an orchestrator would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kaiku_shared.keys import KeyMaterial
from kaiku_shared.settings import DEFAULT_PORTS, SERVICES

ROLES = ("api", "worker", "relay")


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the supervisor dies, even by SIGKILL.

    The children have their own sessions (so a Ctrl-C reaches only the
    supervisor, which stops them in order); without this, a supervisor killed
    outright would leave them running.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's own stop_all is all there is


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None


@dataclass
class Supervisor:
    base_env: dict[str, str]
    log_dir: Path
    restart_crashed: bool = True
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    specs: dict[str, ProcessSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stopping = False
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def add(self, spec: ProcessSpec) -> None:
        self.specs[spec.name] = spec

    def start(self, name: str) -> subprocess.Popen:
        spec = self.specs[name]
        env = {**os.environ, **self.base_env, **spec.env,
               "KAIKU_LOG_FILE": str(self.log_dir / f"{name}.log")}
        out = open(self.log_dir / f"{name}.out", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(spec.argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=_die_with_parent)
        out.close()
        with self._lock:
            self.processes[name] = process
        return process

    def start_all(self) -> None:
        for name in self.specs:
            self.start(name)
        if self.restart_crashed and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping:
            time.sleep(0.5)
            with self._lock:
                crashed = [n for n, p in self.processes.items() if p.poll() is not None]
            for name in crashed:
                if self._stopping:
                    return
                time.sleep(0.5)
                with self._lock:
                    if self.processes[name].poll() is None or self._stopping:
                        continue
                self.start(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a process; the watcher restarts it if restarts are on."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=10)

    def stop_all(self, timeout: float = 8.0) -> None:
        self._stopping = True
        with self._lock:
            running = list(self.processes.values())
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every api answers /readyz with 200; fail with the log tail."""
        deadline = time.monotonic() + timeout
        pending = {n: s for n, s in self.specs.items() if s.port}
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for name, spec in list(pending.items()):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"http://127.0.0.1:{spec.port}/readyz").status_code == 200:
                            del pending[name]
                if not pending:
                    return
                if time.monotonic() > deadline:
                    name = next(iter(pending))
                    raise TimeoutError(f"{name} not ready in {timeout:.0f}s:\n"
                                       + self.log_tail(name))
                time.sleep(0.1)

    def log_tail(self, name: str, lines: int = 30) -> str:
        tails = []
        for suffix in (".out", ".log"):
            path = self.log_dir / f"{name}{suffix}"
            if path.exists():
                tails.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(tails)


def service_specs(ports: dict[str, int] | None = None,
                  services: tuple[str, ...] = SERVICES,
                  python: str = sys.executable, *,
                  keys: KeyMaterial | None = None) -> list[ProcessSpec]:
    """The 3 processes of each service; api ports from ``ports`` or the defaults.
    Each service gets only its own secrets from ``keys``."""
    ports = ports or DEFAULT_PORTS
    specs = []
    for service in services:
        for role in ROLES:
            port = ports[service] if role == "api" else None
            env = {**jwks_urls(ports), **(keys.env_for(service) if keys else {})}
            if port:
                env["KAIKU_HTTP_PORT"] = str(port)
            specs.append(ProcessSpec(f"{service}-{role}", [python, "-m", service, role], env,
                                     port))
    return specs


def jwks_urls(ports: dict[str, int]) -> dict[str, str]:
    """Where the issuers serve their public keys in a run on this machine."""
    return {"KAIKU_STAFF_JWKS_URL": f"http://127.0.0.1:{ports['cards']}/.well-known/jwks.json",
            "KAIKU_HOLDER_JWKS_URL":
                f"http://127.0.0.1:{ports['omakaiku']}/.well-known/jwks.json"}


def mail_sink(mail_dir: Path, port: int, omakaiku_port: int,
              python: str = sys.executable) -> tuple[ProcessSpec, dict[str, str]]:
    """The local SMTP sink (messages land as .eml files in ``mail_dir``) and the
    settings that point omakaiku's e-mail at it. Add the spec before the services."""
    spec = ProcessSpec("omakaiku-smtp-sink", [python, "-m", "omakaiku", "smtp-sink", "--dir",
                                              str(mail_dir), "--port", str(port)], {})
    env = {"KAIKU_OMAKAIKU_SMTP_HOST": "127.0.0.1", "KAIKU_OMAKAIKU_SMTP_PORT": str(port),
           "KAIKU_OMAKAIKU_PUBLIC_URL": f"http://127.0.0.1:{omakaiku_port}"}
    return spec, env


def web_spec(port: int, service_ports: dict[str, int], *, dev_token_signin: bool = False,
             python: str = sys.executable, keys: KeyMaterial | None = None) -> ProcessSpec:
    """The staff and holder web interfaces (services/web), calling the four APIs."""
    env = {"KAIKU_HTTP_PORT": str(port), **jwks_urls(service_ports),
           **(keys.env_for("web") if keys else {}),
           **{f"KAIKU_WEB_{service.upper()}_URL": f"http://127.0.0.1:{service_port}"
              for service, service_port in service_ports.items()}}
    if dev_token_signin:
        env["KAIKU_WEB_DEV_TOKEN_SIGNIN"] = "true"
    return ProcessSpec("web-api", [python, "-m", "web", "api"], env, port)
