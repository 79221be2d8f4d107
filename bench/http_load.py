"""The load generator of ``public_stats.py``: kept-alive HTTP/1.1 GETs, in a process
of its own so that its CPU is counted apart from the server's.

    python bench/http_load.py '{"port": 8101, "path": "/public/stats", "clients": 32}'

Each client is one kept-alive connection, opened (and used once) before the clock
starts, that sends one request at a time and waits for the whole response. The
client is raw asyncio on uvloop with httptools (llhttp, the C parser uvicorn itself
uses): about a tenth of aiohttp's CPU per request and a twentieth of httpx's, so
on two shared cores the generator takes as little as possible from the server.
It reports its own CPU and the server's (``server_pid``) over the measured window,
and how busy the whole machine was, so that a ceiling of the generator (or a
machine shared with other work) shows in the figures instead of being hidden.

Spec (JSON; all but ``port`` optional):
- ``host``, ``port``, ``path``; ``clients`` (32);
- ``warmup`` and ``duration`` in seconds (1 and 5): requests sent during the
  warm-up are not counted;
- ``rate``: requests/s in all, paced evenly over the clients (each client sends
  at its own fixed interval, staggered; one that falls behind sends at once).
  Absent: every client sends its next request as soon as it has the answer (max
  load);
- ``conditional``: send ``If-None-Match`` with the latest ETag the connection was
  given, as a caching client does (a changed document answers 200 and its new
  ETag is used from then on);
- ``server_pid``: the process whose CPU to report.

Prints one JSON line: requests counted, their rate, latency percentiles (from
the request's first byte written to its last byte read), statuses, the distinct
ETags seen, failures, and the CPU figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httptools
import psutil


class Connection(asyncio.Protocol):
    """One kept-alive connection: one request at a time, its answer parsed in C."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.etag = b""
        self.body_bytes = 0

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    async def get(self, request: bytes) -> int:
        """Send ``request`` (a whole GET); the response's status once fully read."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the server closed the connection")
        self.body_bytes = 0
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"etag":
            self.etag = value

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.get_status_code())

    def _fail(self, error: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


def request_bytes(host: str, port: int, path: str, etag: bytes = b"") -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: kaiku-bench",
             "Accept: application/json"]
    head = "\r\n".join(lines).encode() + b"\r\n"
    if etag:
        head += b"If-None-Match: " + etag + b"\r\n"
    return head + b"\r\n"


@dataclass
class Spec:
    port: int
    host: str = "127.0.0.1"
    path: str = "/"
    clients: int = 32
    warmup: float = 1.0
    duration: float = 5.0
    rate: float | None = None
    conditional: bool = False
    server_pid: int | None = None


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    etags: set[bytes] = field(default_factory=set)
    body_bytes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    last_answer: float = 0.0


class CpuWindow:
    """CPU used over the measured window: this process, the server, the machine."""

    def __init__(self, server_pid: int | None) -> None:
        self.server = psutil.Process(server_pid) if server_pid else None
        self.marks: list[tuple[float, float, float, Any]] = []

    def mark(self) -> None:
        own = resource.getrusage(resource.RUSAGE_SELF)
        server = 0.0
        if self.server is not None:
            times = self.server.cpu_times()
            server = times.user + times.system
        self.marks.append((time.perf_counter(), own.ru_utime + own.ru_stime, server,
                           psutil.cpu_times()))

    def report(self, requests: int) -> dict:
        (t0, own0, server0, machine0), (t1, own1, server1, machine1) = self.marks[:2]
        seconds = t1 - t0
        busy = (sum(machine1) - machine1.idle) - (sum(machine0) - machine0.idle)
        every = sum(machine1) - sum(machine0)
        per_request = 1e6 / max(requests, 1)
        return {"generator_cpu": (own1 - own0) / seconds,
                "generator_us_per_request": (own1 - own0) * per_request,
                "server_cpu": (server1 - server0) / seconds if self.server else None,
                "server_us_per_request": (server1 - server0) * per_request
                if self.server else None,
                "machine_busy": busy / every if every else None,
                "cores": psutil.cpu_count()}


async def client_loop(connection: Connection, spec: Spec, tally: Tally, window: tuple,
                      offset: float) -> None:
    starts, counted_from, counted_to = window
    interval = spec.clients / spec.rate if spec.rate else 0.0
    plain = request_bytes(spec.host, spec.port, spec.path)
    conditional: dict[bytes, bytes] = {}
    next_at = starts + offset
    while True:
        if interval:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
        request = plain
        if spec.conditional and connection.etag:
            request = conditional.get(connection.etag) or conditional.setdefault(
                connection.etag, request_bytes(spec.host, spec.port, spec.path,
                                               connection.etag))
        sent = time.perf_counter()
        if sent >= counted_to:
            return
        try:
            status = await connection.get(request)
        except (OSError, httptools.HttpParserError) as error:
            tally.failures.append(f"{type(error).__name__}: {error}")
            return  # this connection is gone; the others go on
        answered = time.perf_counter()
        if sent >= counted_from:
            tally.latencies.append(answered - sent)
            tally.statuses[status] += 1
            tally.etags.add(connection.etag)
            tally.body_bytes[connection.body_bytes] += 1
            tally.last_answer = max(tally.last_answer, answered)


async def generate(spec: Spec) -> dict:
    connections = [await Connection.open(spec.host, spec.port) for _ in range(spec.clients)]
    plain = request_bytes(spec.host, spec.port, spec.path)
    first = await asyncio.gather(*(c.get(plain) for c in connections))  # opened and used
    if any(status not in (200, 304) for status in first):
        raise SystemExit(f"GET {spec.path} answered {sorted(set(first))}")
    tally, cpu = Tally(), CpuWindow(spec.server_pid)
    starts = time.perf_counter() + 0.05
    counted_from = starts + spec.warmup
    counted_to = counted_from + spec.duration

    async def mark_at(moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - time.perf_counter()))
        cpu.mark()

    # The generator's own collections would count as the server's latency: off
    # while the clock runs, as timeit does.
    gc.collect()
    gc.disable()
    try:
        await asyncio.gather(
            mark_at(counted_from), mark_at(counted_to),
            *(client_loop(c, spec, tally, (starts, counted_from, counted_to),
                          i * (spec.clients / spec.rate if spec.rate else 0.0) / spec.clients)
              for i, c in enumerate(connections)))
    finally:
        gc.enable()
        for connection in connections:
            connection.close()
    return summary(spec, tally, counted_from, counted_to, cpu)


def summary(spec: Spec, tally: Tally, counted_from: float, counted_to: float,
            cpu: CpuWindow) -> dict:
    ordered = sorted(tally.latencies)
    count = len(ordered)

    def ms(p: float) -> float | None:
        return ordered[min(count - 1, round(p / 100 * (count - 1)))] * 1000 if count else None

    seconds = max(tally.last_answer, counted_to) - counted_from
    return {"requests": count, "seconds": seconds, "rate": count / seconds,
            "target_rate": spec.rate, "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99),
            "max_ms": ms(100), "statuses": {str(k): v for k, v in tally.statuses.items()},
            "distinct_etags": len(tally.etags - {b""}),
            "body_bytes": {str(k): v for k, v in tally.body_bytes.most_common(3)},
            "failures": len(tally.failures), "first_failure": tally.failures[:1],
            **cpu.report(count)}


def main() -> None:
    spec = Spec(**json.loads(sys.argv[1]))
    try:
        import uvloop
    except ImportError:  # not on Windows
        result = asyncio.run(generate(spec))
    else:
        result = uvloop.run(generate(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
