"""The supervisor's children never outlive it, even when it is SIGKILLed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SUPERVISE_A_SLEEPER = """
import sys, time
from pathlib import Path
from kaiku_dev.supervisor import ProcessSpec, Supervisor
supervisor = Supervisor({}, Path(sys.argv[1]), restart_crashed=False)
supervisor.add(ProcessSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}))
supervisor.start_all()
print(supervisor.processes["sleeper"].pid, flush=True)
time.sleep(60)
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its reaping is pending


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs Linux /proc")
def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISE_A_SLEEPER, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
    child = int(supervisor.stdout.readline())
    assert running(child)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait()
    deadline = time.monotonic() + 5
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(child), "the child outlived its SIGKILLed supervisor"
