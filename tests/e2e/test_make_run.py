"""`kaiku run` (what `make run` calls) on an empty data dir, twice.

It starts its own embedded NATS and PostgreSQL, every service process and the
demo data; every api answers /readyz; SIGINT (Ctrl-C) stops every process it
started; a second run on the same data dir keeps the data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from kaiku_shared.settings import SERVICES
from kaiku_dev.testing import free_port

pytestmark = pytest.mark.e2e


class Output:
    """Everything `kaiku run` prints, read as it comes (it runs until stopped)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.2)
        return False

    def text(self) -> str:
        self._reader.join(timeout=30)
        return "".join(self.lines)


def start_run(data_dir: Path, port_base: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAIKU_NATS_URL", "KAIKU_DATABASE_URL", "KAIKU_JWT_SECRET",
                        "KAIKU_NAMESPACE")}
    env["KAIKU_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "kaiku_dev.cli", "run", "--port-base", str(port_base),
         "--smtp-port", str(free_port()), "--web-port", str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def wait_ready(process: subprocess.Popen, output: Output, port_base: int,
               timeout: float = 120) -> float:
    started = time.monotonic()
    deadline = started + timeout
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, output.text()
            try:
                if all(client.get(f"http://127.0.0.1:{port_base + i}/readyz").status_code
                       == 200 for i in range(len(SERVICES))):
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise AssertionError("not ready in time")


def stop(process: subprocess.Popen, output: Output) -> str:
    """Ctrl-C. Stopping is bounded by design (the supervisor kills a process that
    has not stopped within 8 s; NATS and Postgres get 10 s and 15 s): 60 s
    leaves room for a busy machine, and a failure says who was still there."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        left = [f"{c.pid} {c.name()} {' '.join(c.cmdline()[-2:])}"
                for c in alive(psutil.Process(process.pid).children(recursive=True))]
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"kaiku run still running 60 s after Ctrl-C; children: {left}; "
                             f"it printed:\n{output.text()[-3000:]}") from None
    return output.text()


def demo_card(output: str) -> str:
    line = next(l for l in output.splitlines() if "demo card" in l)
    return line.split()[2]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_kaiku_run_starts_everything_and_stops_cleanly_twice():
    data_dir = Path(tempfile.mkdtemp(prefix="kaiku-run-"))
    port_base = free_port(block=len(SERVICES))
    cards = []
    for attempt in range(2):
        process = start_run(data_dir, port_base)
        printed = Output(process)
        try:
            seconds = wait_ready(process, printed, port_base)
            print(f"run {attempt + 1}: every /readyz answered 200 after {seconds:.1f} s")
            # The demo data loads right after readiness; its summary ends the banner.
            assert printed.wait_for("Ctrl-C stops everything", timeout=90), printed.text()
            children = psutil.Process(process.pid).children(recursive=True)
            # 12 service processes, the web, the SMTP sink, NATS and the postmaster.
            assert len(children) >= 12 + 2 + 1, [c.name() for c in children]
        finally:
            output = stop(process, printed)
        assert process.returncode == 0, output
        assert "Stopped every process." in output, output
        deadline = time.monotonic() + 10
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(children), [p.cmdline() for p in alive(children)]
        cards.append(demo_card(output))
    assert cards[0] == cards[1], "the second run found the first run's demo data"
    print(f"verified: two runs, no orphans, demo card {cards[0]} kept in {data_dir}")

