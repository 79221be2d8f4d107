"""Ticket registration through HTTP → committed → visible in omakaiku history.

Starts the whole system (12 processes) in a fresh namespace on real servers,
issues cards and offerings, then:
- max load: concurrent POST /tickets (a mix with ~5 % refusals: a card asking
  twice for the same performance) → sustained registrations/s, HTTP p50/p99.
  Each of the 64 simulated box offices has its own kept-alive connection (one
  aiohttp session each, the lightest client at hand), opened before the clock
  starts;
- half load: the same at half the measured rate, about ten seconds a run → HTTP
  p50/p99 and propagation lag p50/p99 (event time → the history row applied by
  omakaiku's worker);
- baseline, same server, same run: raw asyncpg single-row-transaction inserts
  at the same concurrency;
- peak RSS of every process during the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from common import Benchmark, bench_servers, console, percentile, describe  # noqa: E402

from kaiku_shared.service import run_loop  # noqa: E402
from kaiku_dev.supervisor import Supervisor, service_specs  # noqa: E402
from kaiku_dev.testing import Namespace, Servers, free_port, unique_namespace  # noqa: E402

CARDS = int(os.environ.get("BENCH_CARDS", "2000"))
OFFERINGS = 40
CLIENTS = 64
MAX_LOAD_REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
RUNS = 3


class Memory:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.peak: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    async def sample_forever(self) -> None:
        while True:
            for name, process in self.supervisor.processes.items():
                try:
                    rss = psutil.Process(process.pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak.get(name, 0.0), rss)
            await asyncio.sleep(0.2)

    def __enter__(self):
        self._task = asyncio.get_running_loop().create_task(self.sample_forever())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


def cpu_seconds(supervisor: Supervisor) -> dict[str, float]:
    """CPU time used so far by each service process, and by the servers'
    processes (every postgres backend, nats-server) — where the cores go."""
    used: dict[str, float] = {}
    for name, process in supervisor.processes.items():
        try:
            times = psutil.Process(process.pid).cpu_times()
        except psutil.Error:
            continue
        used[name] = times.user + times.system
    # The load generator shares the two cores with the system: count it too.
    mine = psutil.Process().cpu_times()
    used["load generator (this benchmark's HTTP clients)"] = mine.user + mine.system
    for process in psutil.process_iter(["name", "cpu_times", "username"]):
        label = process.info["name"] or ""
        if label.startswith("postgres") or label == "nats-server":
            times = process.info["cpu_times"]
            if times is not None:
                # Embedded servers run as their own user: tell them from the machine's.
                key = f"{'postgres' if label.startswith('postgres') else label} " \
                      f"({process.info['username']})"
                used[key] = used.get(key, 0.0) + times.user + times.system
    return used


async def post(client: httpx.AsyncClient, url: str, token: str, body: dict) -> dict:
    # A kept-alive connection the server closes as it is reused (idle for its
    # keep-alive timeout) fails the request: sent again under the same
    # Idempotency-Key, as a careful client does, it cannot be created twice.
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(3):
        try:
            response = await client.post(url, json=body, headers=headers)
            break
        except httpx.TransportError:
            if attempt == 2:
                raise
    response.raise_for_status()
    return response.json()


async def setup(ns: Namespace, urls: dict[str, str], card_count: int = CARDS,
                offering_count: int = OFFERINGS) -> tuple[str, list[str], list[str]]:
    """A distributor, a venue with its offerings and cards issued in Oulu:
    (the venue's token, the card numbers, the offering ids)."""
    centre = ns.token("kaikukeskus")
    async with httpx.AsyncClient(timeout=30) as client:
        dist = await post(client, f"{urls['cards']}/organisations", centre,
                          {"kind": "distributor", "name": "Bench jakaja", "municipality": "Oulu"})
        venue_org = await post(client, f"{urls['cards']}/organisations", centre,
                               {"kind": "venue", "name": "Bench talo", "municipality": "Oulu"})
        venue_token = ns.token("venue", organisation_id=venue_org["organisation_id"])
        venue = await post(client, f"{urls['venues']}/venues", venue_token, {
            "organisation_id": venue_org["organisation_id"], "name": "Bench talo",
            "kind": "performing_arts", "municipality": "oulu",
            "limits": {"one_ticket_per_card": True}})
        starts = datetime.now(UTC) + timedelta(days=30)
        offerings = []
        for n in range(offering_count):
            offerings.append((await post(
                client, f"{urls['venues']}/venues/{venue['venue_id']}/offerings", venue_token,
                {"title": f"Esitys {n}", "genres": ["music"], "capacity": 100_000,
                 "card_cap": 5_000, "starts_at": (starts + timedelta(hours=n)).isoformat()}
            ))["offering_id"])
        distributor = ns.token("distributor", organisation_id=dist["organisation_id"])
        semaphore = asyncio.Semaphore(32)

        async def issue(_: int) -> str:
            async with semaphore:
                card = await post(client, f"{urls['cards']}/cards", distributor, {
                    "birth_year": 1970 + _ % 40, "postal_code": "90100",
                    "municipality": "Oulu", "children": _ % 3})
                return card["card_number"]

        started = time.perf_counter()
        cards = await asyncio.gather(*(issue(i) for i in range(card_count)))
        console.print(f"issued {card_count} cards in {time.perf_counter() - started:.1f} s")
    return venue_token, cards, offerings


async def wait_for_cards(ns: Namespace, count: int) -> None:
    conn = await asyncpg.connect(ns.settings.service_database_url("venues"))
    try:
        while await conn.fetchval("SELECT count(*) FROM card_validity_view "
                                  "WHERE valid_from IS NOT NULL") < count:
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def load(url: str, token: str, pairs: list[tuple[str, str]], clients: int,
               rate: float | None) -> tuple[float, list[float], list[str], int]:
    """Send every pair; returns (elapsed, latencies of 2xx, ticket ids, refusals)."""
    latencies: list[float] = []
    tickets: list[str] = []
    refused = 0
    errors: list[str] = []  # connections the server dropped: reported, not hidden
    queue: asyncio.Queue = asyncio.Queue()
    for pair in pairs:
        queue.put_nowait(pair)
    interval = clients / rate if rate else 0.0
    headers = {"Authorization": f"Bearer {token}"}

    async def client_loop(client: aiohttp.ClientSession, offset: float) -> None:
        nonlocal refused
        next_at = time.perf_counter() + offset
        while not queue.empty():
            card, offering = queue.get_nowait()
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
            t0 = time.perf_counter()
            try:
                async with client.post(f"{url}/tickets", json={
                        "card_number": card, "offering_id": offering, "children": 0},
                        headers=headers) as response:
                    answer = await response.json(content_type=None)  # problem+json too
            except aiohttp.ClientConnectionError:
                errors.append("transport")
                continue
            if response.status == 201:
                latencies.append(time.perf_counter() - t0)
                tickets.append(answer["ticket_id"])
            elif response.status in (409, 422):
                refused += 1
            else:
                raise RuntimeError(f"{response.status}: {answer}")

    # One session (one kept-alive connection) per simulated box office, opened
    # before the clock starts, as a box office's browser already has it. The
    # client is aiohttp: httpx costs about 2 ms of CPU a request here against
    # aiohttp's 0.5, CPU that the system under test would lack on the same cores.
    async with contextlib.AsyncExitStack() as stack:
        box_offices = [await stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=60)))
            for _ in range(clients)]

        async def connect(client: aiohttp.ClientSession) -> None:
            async with client.get(f"{url}/healthz") as response:
                await response.read()

        await asyncio.gather(*(connect(client) for client in box_offices))
        # The load generator's own garbage collections (up to 250 ms here) would
        # count as the system's latency: off while the clock runs, as timeit does.
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            await asyncio.gather(*(client_loop(client, i * interval / clients)
                                   for i, client in enumerate(box_offices)))
        finally:
            gc.enable()
    if errors:
        console.print(f"[yellow]{len(errors)} request(s) got no answer (connection dropped)"
                      "[/yellow]")
    return time.perf_counter() - started, latencies, tickets, refused


def make_pairs(cards: list[str], offerings: list[str], count: int, used: set) -> list:
    pairs = []
    while len(pairs) < count:
        pair = (random.choice(cards), random.choice(offerings))
        if pair in used and random.random() > 0.05:
            continue  # ~5 % of requests repeat a pair: a realistic 409
        used.add(pair)
        pairs.append(pair)
    return pairs


async def propagation_lags(ns: Namespace, tickets: list[str]) -> list[float]:
    """Event time (TicketRegistered.occurred_at) → omakaiku's worker applying it."""
    import json

    import nats

    from kaiku_shared.audit import stream_bodies

    wanted = set(tickets)
    conn = await asyncpg.connect(ns.settings.service_database_url("omakaiku"))
    nc = await nats.connect(ns.settings.nats_url)
    try:
        while await conn.fetchval("SELECT count(*) FROM history_view WHERE ticket_id = "
                                  "ANY($1::uuid[])", tickets) < len(tickets):
            await asyncio.sleep(0.2)
        occurred = {}
        for subject, body in await stream_bodies(nc.jetstream(), ns.settings, "venues"):
            if subject.endswith(".ticket_registered.v1"):
                event = json.loads(body)
                if event["ticket_id"] in wanted:
                    occurred[uuid.UUID(event["event_id"])] = datetime.fromisoformat(
                        event["occurred_at"])
        rows = await conn.fetch(
            "SELECT event_id, applied_at FROM processed_events "
            "WHERE consumer = 'omakaiku-history' AND event_id = ANY($1::uuid[])",
            list(occurred))
    finally:
        await conn.close()
        await nc.close()
    return [(r["applied_at"] - occurred[r["event_id"]]).total_seconds() for r in rows]


async def raw_baseline(ns: Namespace, clients: int, total: int) -> float:
    url = ns.settings.service_database_url("venues")
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE IF NOT EXISTS raw_tickets (ticket_id uuid PRIMARY KEY, "
                       "card_number text, offering_id uuid, children int, at timestamptz)")
    await conn.close()
    pool = await asyncpg.create_pool(url, min_size=clients, max_size=clients)

    async def client(count: int) -> None:
        async with pool.acquire() as c:
            for _ in range(count):
                await c.execute("INSERT INTO raw_tickets VALUES ($1, 'KXA-12345', $2, 0, now())",
                                uuid.uuid4(), uuid.uuid4())

    started = time.perf_counter()
    await asyncio.gather(*(client(total // clients) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return (total // clients) * clients / elapsed


async def run(ns: Namespace, supervisor: Supervisor, urls: dict[str, str]) -> Benchmark:
    bench = Benchmark("registration", f"POST /tickets → committed → omakaiku history; "
                                      f"{CLIENTS} clients, {MAX_LOAD_REQUESTS} requests a run")
    venue_token, cards, offerings = await setup(ns, urls)
    await wait_for_cards(ns, len(cards))
    used: set = set()
    with Memory(supervisor) as memory:
        raw, rates, p50s, p99s = [], [], [], []
        cpu_per_registration: dict[str, list[float]] = {}
        for _ in range(RUNS):
            raw.append(await raw_baseline(ns, CLIENTS, MAX_LOAD_REQUESTS))
            cpu_before = cpu_seconds(supervisor)
            elapsed, latencies, tickets, refused = await load(
                urls["venues"], venue_token, make_pairs(cards, offerings, MAX_LOAD_REQUESTS, used),
                CLIENTS, None)
            await propagation_lags(ns, tickets)  # the consumers' work counts too
            cpu_after = cpu_seconds(supervisor)
            for name, seconds in cpu_after.items():
                spent = seconds - cpu_before.get(name, 0.0)
                cpu_per_registration.setdefault(name, []).append(
                    spent * 1000 / max(1, len(tickets)))
            rates.append(len(tickets) / elapsed)
            p50s.append(percentile(latencies, 50) * 1000)
            p99s.append(percentile(latencies, 99) * 1000)
            console.print(f"max load: {len(tickets)} registered, {refused} refused, "
                          f"{elapsed:.1f} s")
        bench.add("raw single-row insert transactions", "rows/s", raw)
        bench.add("registrations at max load", "regs/s", rates,
                  baseline="raw single-row insert transactions")
        bench.add("HTTP p50 at max load", "ms", p50s)
        bench.add("HTTP p99 at max load", "ms", p99s)
        for name, runs in sorted(cpu_per_registration.items(), key=lambda kv: -max(kv[1])):
            bench.add(f"CPU per registration: {name}", "ms", runs,
                      note="max load, until omakaiku's history has it")
        half = statistics_median(rates) / 2
        hp50, hp99, lag50, lag99, half_rates = [], [], [], [], []
        for _ in range(RUNS):
            count = max(400, int(half * 10))  # about ten seconds of steady half load
            elapsed, latencies, tickets, refused = await load(
                urls["venues"], venue_token, make_pairs(cards, offerings, count, used),
                CLIENTS, half)
            half_rates.append(len(tickets) / elapsed)
            hp50.append(percentile(latencies, 50) * 1000)
            hp99.append(percentile(latencies, 99) * 1000)
            lags = await propagation_lags(ns, tickets)
            lag50.append(percentile(lags, 50) * 1000)
            lag99.append(percentile(lags, 99) * 1000)
        bench.add("registrations at half load", "regs/s", half_rates)
        bench.add("HTTP p50 at half load", "ms", hp50)
        bench.add("HTTP p99 at half load", "ms", hp99, note="target ≤ 50 ms")
        bench.add("propagation lag p50 at half load", "ms", lag50)
        bench.add("propagation lag p99 at half load", "ms", lag99, note="target ≤ 50 ms")
    for name, peak in sorted(memory.peak.items()):
        bench.add(f"peak RSS {name}", "MB", [peak], note="target ≤ 300 MB")
    return bench


def statistics_median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


@contextlib.contextmanager
def running_system(prefix: str = "bench"):
    """The whole system (12 processes) in a fresh namespace on the bench servers:
    yields (namespace, supervisor, the apis' URLs); stops it and drops its data."""
    with bench_servers() as (nats_url, database_url):
        ns = Namespace(unique_namespace(prefix), Servers(nats_url, database_url))
        ports = {s: free_port() for s in ("cards", "venues", "omakaiku", "notifications")}
        work = Path(os.environ.get("TMPDIR", "/tmp")) / f"kaiku-{ns.name}"
        supervisor = Supervisor(ns.env(), work / "logs", restart_crashed=False)
        for spec in service_specs(ports, keys=ns.keys):
            supervisor.add(spec)
        started = time.perf_counter()
        supervisor.start_all()
        try:
            supervisor.wait_ready(timeout=120)
            console.print(f"system ready in {time.perf_counter() - started:.1f} s")
            yield ns, supervisor, {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
        finally:
            supervisor.stop_all()
            asyncio.run(ns.drop())


def main() -> None:
    with running_system() as (ns, supervisor, urls):
        bench = run_loop(run(ns, supervisor, urls))
    bench.report()


if __name__ == "__main__":
    describe(__doc__)
    main()
