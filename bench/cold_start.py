"""Cold start: `kaiku run` (what `make run` runs, from an installed .venv) until
every service answers /readyz — on a fresh data dir (initdb included) and on the
data dir of a previous run. The baseline is the bare interpreter start with the
service's imports (python -c 'import cards.bootstrap ...'), measured in the same run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import Benchmark, describe  # noqa: E402

from kaiku_dev.testing import free_port  # noqa: E402

RUNS = 3


def start_and_wait(data_dir: Path) -> float:
    port_base = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAIKU_NATS_URL", "KAIKU_DATABASE_URL", "KAIKU_NAMESPACE")}
    env["KAIKU_DATA_DIR"] = str(data_dir)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "kaiku_dev.cli", "run", "--no-demo",
                                "--port-base", str(port_base)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        with httpx.Client(timeout=1) as client:
            while True:
                try:
                    if all(client.get(f"http://127.0.0.1:{port_base + i}/readyz").status_code
                           == 200 for i in range(4)):
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > 120:
                    raise TimeoutError("not ready in 120 s")
                time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)


def import_baseline() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cards.bootstrap, venues.bootstrap, "
                    "omakaiku.bootstrap, notifications.bootstrap"], check=True)
    return time.perf_counter() - started


def main() -> None:
    bench = Benchmark("cold_start", "kaiku run from an installed .venv to every /readyz 200")
    bench.add("import every service (one interpreter)", "s", [import_baseline() for _ in
                                                             range(RUNS)])
    fresh, warm = [], []
    for _ in range(RUNS):
        data_dir = Path(tempfile.mkdtemp(prefix="kaiku-cold-"))
        fresh.append(start_and_wait(data_dir))
        warm.append(start_and_wait(data_dir))
    bench.add("ready, fresh data dir (initdb)", "s", fresh,
              baseline="import every service (one interpreter)", note="target ≤ 10 s")
    bench.add("ready, existing data dir", "s", warm,
              baseline="import every service (one interpreter)", note="target ≤ 10 s")
    bench.report()


if __name__ == "__main__":
    describe(__doc__)
    main()
