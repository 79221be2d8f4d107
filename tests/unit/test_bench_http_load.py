"""A quick run of bench/public_stats.py's two helpers, as processes: the load
generator (a raw asyncio HTTP/1.1 client, bench/http_load.py) against the static
baseline server (bench/static_baseline.py). The benchmark's figures are only as
true as the generator's counting: whole bodies read, statuses and ETags seen,
conditional requests answered 304, a paced rate kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kaiku_dev.testing import free_port

BENCH = Path(__file__).resolve().parents[2] / "bench"
BODY = json.dumps({"figures": list(range(20_000))}).encode()  # ~130 kB, several reads


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    path = tmp_path_factory.mktemp("static") / "public-stats.json"
    path.write_bytes(BODY)
    port = free_port()
    process = subprocess.Popen([sys.executable, str(BENCH / "static_baseline.py"), str(path),
                                str(port)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/memory").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def load(port: int, pid: int, path: str, **spec: object) -> dict:
    spec = {"port": port, "path": path, "server_pid": pid, "clients": 4, "warmup": 0.2,
            "duration": 0.5, **spec}
    done = subprocess.run([sys.executable, str(BENCH / "http_load.py"), json.dumps(spec)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["/static/public-stats.json", "/memory"])
def test_max_load_reads_every_whole_body(server: tuple[int, int], path: str) -> None:
    result = load(*server, path)
    assert result["requests"] > 10
    assert result["statuses"] == {"200": result["requests"]}
    assert result["body_bytes"] == {str(len(BODY)): result["requests"]}
    assert result["distinct_etags"] == 1
    assert result["failures"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["server_us_per_request"] > 0 and result["generator_cpu"] > 0


@pytest.mark.parametrize("path", ["/static/public-stats.json", "/memory"])
def test_conditional_requests_get_304_without_a_body(server: tuple[int, int],
                                                     path: str) -> None:
    result = load(*server, path, conditional=True)
    assert result["requests"] > 10
    assert result["statuses"] == {"304": result["requests"]}
    assert result["body_bytes"] == {"0": result["requests"]}


def test_a_paced_run_keeps_its_rate(server: tuple[int, int]) -> None:
    result = load(*server, "/memory", rate=100, duration=1.5)
    assert result["target_rate"] == 100
    assert 80 <= result["rate"] <= 110, result
