"""Genre fan-out at national scale: 100,000 subscribed holders, one offering.

Starts notifications' own processes (worker + relay; later a second worker) in a
fresh namespace on real NATS and Postgres (embedded unless KAIKU_NATS_URL /
KAIKU_DATABASE_URL are set), then per run:

- **fan-out, 1 worker**: publish one matching OfferingPublishedV1 on venues'
  stream; time until all 100,000 in-app notifications are stored (the count is
  checked to be exactly 100,000);
- **hand-over**: time until those 100,000 are handed to omakaiku as
  NotificationBatch events (100 batches of 1,000) in the event store;
- **fan-out, 2 workers**: the same with a second worker process competing on the
  same durable consumer;
- **baselines, same servers, same run**: JetStream publish of 100,000 messages
  (acked, 256 in flight) and a Postgres bulk insert of the same 100,000 rows
  (INSERT … SELECT into a copy of the notification table);
- **Web Push** (push_fanout.py): PUSH_DEVICES of the subscribed holders (10,000
  by default) each with one device on a local push endpoint (push_sink.py, a
  process of its own): time from queueing the pushes (omakaiku's
  ``enqueue_pushes``, 1,000 holders a transaction) until the sink has every one
  from omakaiku's ``PushSender``, and pushes/s; beside plain HTTP POSTs of the
  same number to the same sink. PUSH_DEVICES=0 skips it.

Holders are subscribed by writing ``subscription_view`` rows directly (COPY):
publishing 100,000 GenreSubscriptionsChanged would measure the subscription
consumer, not the fan-out. Offerings are published as the contract, directly on
the venues stream: venues' own processes are not needed.

Not part of ``make test``. Run: ``.venv/bin/python bench/notifications_fanout.py``
(HOLDERS=… to change the size, PUSH_DEVICES=… the devices pushed to, up to HOLDERS).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats

sys.path.insert(0, str(Path(__file__).parent))
from common import Benchmark, bench_servers, console, describe  # noqa: E402
from push_fanout import PushLeg, start_sink  # noqa: E402

from kaiku_shared.contracts import OfferingPublishedV1  # noqa: E402
from kaiku_shared.relay import ensure_stream  # noqa: E402
from kaiku_dev.supervisor import ProcessSpec, Supervisor  # noqa: E402
from kaiku_dev.testing import Namespace, Servers, unique_namespace  # noqa: E402

HOLDERS = int(os.environ.get("HOLDERS", "100000"))
RUNS = int(os.environ.get("RUNS", "3"))
PUSH_DEVICES = min(HOLDERS, int(os.environ.get("PUSH_DEVICES", "10000")))
PUSH_SINK_PORT = int(os.environ.get("PUSH_SINK_PORT", "18930"))
GENRE = "music"


def worker_spec(name: str) -> ProcessSpec:
    return ProcessSpec(name, [sys.executable, "-m", "notifications", "worker"], {})


async def wait_until(check, timeout: float = 600.0, interval: float = 0.01) -> float:
    """Seconds until ``check()`` is truthy (polling)."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(interval)
    return time.perf_counter() - started


def offering(ns: Namespace) -> OfferingPublishedV1:
    offering_id = uuid.uuid4()
    return OfferingPublishedV1.build(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), aggregate_id=offering_id,
        aggregate_version=1, offering_id=offering_id, venue_id=uuid.uuid4(),
        venue_name="Bench-talo", title="Suurkonsertti", kind="performance", genres=(GENRE,),
        starts_at=datetime.now(UTC) + timedelta(days=30), municipality="oulu",
        capacity=10000, card_cap=300)


async def subscribe(pool: asyncpg.Pool) -> list[uuid.UUID]:
    """The subscribed holders' account ids."""
    holders = [uuid.uuid4() for _ in range(HOLDERS)]
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE subscription_view")
        await conn.copy_records_to_table(
            "subscription_view", columns=["account_id", "genre", "version", "region"],
            records=[(holder, GENRE, 1, None) for holder in holders])
        await conn.execute("ANALYZE subscription_view")
    return holders


async def fan_out_once(ns: Namespace, js, pool: asyncpg.Pool) -> tuple[float, float]:
    """(seconds until all stored, seconds until all handed over), from the publish."""
    event = offering(ns)
    started = time.perf_counter()
    await js.publish(event.subject(ns.name), event.to_json(),
                     headers={"Nats-Msg-Id": str(event.event_id)})

    async def stored() -> bool:
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM notification WHERE source_id = $1",
                                       event.offering_id) > 0

    await wait_until(stored)
    stored_after = time.perf_counter() - started
    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM notification WHERE source_id = $1",
                                    event.offering_id)
    assert count == HOLDERS, f"{count} notifications, expected exactly {HOLDERS}"

    async def handed_over() -> bool:
        async with pool.acquire() as conn:
            return not await conn.fetchval(
                "SELECT count(*) FROM notification WHERE source_id = $1 AND (batch_id IS NULL "
                "OR batch_id IN (SELECT handover_id FROM handover WHERE state <> 'issued'))",
                event.offering_id)

    await wait_until(handed_over, interval=0.05)
    handed_after = time.perf_counter() - started
    async with pool.acquire() as conn:
        batches = await conn.fetchval(
            "SELECT count(*) FROM handover WHERE source_id = $1 "
            "AND state = 'issued'", event.offering_id)
        await conn.execute("DELETE FROM notification WHERE source_id = $1", event.offering_id)
        await conn.execute("VACUUM ANALYZE notification")
    console.print(f"  fan-out: {count:,} stored in {stored_after:.2f}s, {batches} batches "
                  f"issued after {handed_after:.2f}s")
    return stored_after, handed_after


async def jetstream_baseline(ns: Namespace, js) -> float:
    stream, subject = f"{ns.name}_BENCH".upper(), f"{ns.name}.bench.raw"
    await js.add_stream(name=stream, subjects=[subject])
    payload = b"x" * 256
    started = time.perf_counter()
    window = 256
    for start in range(0, HOLDERS, window):
        await asyncio.gather(*(js.publish(subject, payload, stream=stream)
                               for _ in range(min(window, HOLDERS - start))))
    elapsed = time.perf_counter() - started
    await js.delete_stream(stream)
    return elapsed


async def postgres_baseline(pool: asyncpg.Pool) -> float:
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS notification_baseline")
        await conn.execute("CREATE TABLE notification_baseline (LIKE notification INCLUDING ALL)")
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO notification_baseline (account_id, source_id, kind, title, payload) "
            "SELECT account_id, $1, 'new_offering', 'Suurkonsertti', '{}'::jsonb "
            "FROM subscription_view WHERE genre = $2", uuid.uuid4(), GENRE)
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE notification_baseline")
    return elapsed


def report(results: dict[str, list[float]], push_setup: float | None) -> None:
    results = {k: [v * 1000 for v in runs] for k, runs in results.items()}
    bench = Benchmark(
        "notifications_fanout",
        f"one OfferingPublished → {HOLDERS:,} subscribed holders' in-app "
        "notifications (exactly that many), their hand-over to omakaiku"
        + (f", and Web Push to {PUSH_DEVICES:,} of them" if push_setup is not None else ""))
    n = f"{HOLDERS // 1000}k"
    bench.add(f"baseline: JetStream publish {n} msgs", "ms", results["js"],
              note="acked, 256 in flight, 256 B")
    bench.add(f"baseline: Postgres INSERT…SELECT {n} rows", "ms", results["pg"],
              note="same rows, copy of the notification table")
    bench.add("fan-out, 1 worker: publish → all stored", "ms", results["one"],
              baseline=f"baseline: Postgres INSERT…SELECT {n} rows")
    bench.add("fan-out, 2 workers: publish → all stored", "ms", results["two"],
              baseline=f"baseline: Postgres INSERT…SELECT {n} rows",
              note="one event is one transaction: a 2nd replica adds no speed-up")
    bench.add("hand-over, 1 worker: publish → all batches issued", "ms",
              results["one_handover"],
              baseline="fan-out, 1 worker: publish → all stored",
              note=f"{HOLDERS // 1000} NotificationBatch events")
    bench.add("hand-over, 2 workers: publish → all batches issued", "ms",
              results["two_handover"],
              baseline="fan-out, 1 worker: publish → all stored")
    if push_setup is not None:
        add_push_figures(bench, results, push_setup)
    bench.report()


def add_push_figures(bench: Benchmark, results: dict[str, list[float]],
                     push_setup: float) -> None:
    """``results`` in ms: the pushes' times, and their rates per second."""
    d = f"{PUSH_DEVICES:,}"
    http = f"baseline: plain HTTP POST × {d} to the push sink"
    bench.add(http, "ms", results["push_http"],
              note="httpx, 32 in flight, 120 B, no crypto, no outbox")
    bench.add(f"Web Push × {d} devices: queued → all at the sink", "ms", results["push"],
              baseline=http, note="omakaiku's enqueue_pushes + PushSender (32 in flight, "
              "≤ 24 to one push service): seal open, VAPID, aes128gcm, outbox")
    bench.add("baseline: plain HTTP POSTs/s", "/s",
              [PUSH_DEVICES / (ms / 1000) for ms in results["push_http"]])
    bench.add("Web Push: pushes/s", "/s", [PUSH_DEVICES / (ms / 1000) for ms in results["push"]],
              baseline="baseline: plain HTTP POSTs/s",
              note=f"{HOLDERS:,} devices at this rate: "
              f"{HOLDERS / (PUSH_DEVICES / (statistics.median(results['push']) / 1000)):,.0f} s")
    bench.add(f"setup: key + device (PushDevices.subscribe) × {d}", "ms", [push_setup * 1000],
              note="once, before the runs; 4 at a time")


async def fan_out_runs(ns: Namespace, js, pool: asyncpg.Pool, supervisor: Supervisor,
                       push: PushLeg | None) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {k: [] for k in (
        "js", "pg", "one", "one_handover", "two", "two_handover", "push_http", "push")}
    # One and two workers alternate within each run, so that both meet the
    # same table state and the same background load of the machine.
    supervisor.add(worker_spec("notifications-worker-2"))
    for run in range(RUNS):
        console.print(f"run {run + 1}/{RUNS}")
        results["js"].append(await jetstream_baseline(ns, js))
        results["pg"].append(await postgres_baseline(pool))
        stored, handed = await fan_out_once(ns, js, pool)
        results["one"].append(stored)
        results["one_handover"].append(handed)
        supervisor.start("notifications-worker-2")
        await asyncio.sleep(5)  # the second worker connects and starts pulling
        stored, handed = await fan_out_once(ns, js, pool)
        results["two"].append(stored)
        results["two_handover"].append(handed)
        supervisor.kill("notifications-worker-2", signal.SIGTERM)
        if push is not None:
            results["push_http"].append(await push.http_baseline(PUSH_DEVICES))
            seconds, count = await push.push_once()
            results["push"].append(seconds)
            console.print(f"  web push: {count:,} at the sink after {seconds:.2f}s "
                          f"(plain HTTP {results['push_http'][-1]:.2f}s)")
    return results


async def main() -> None:
    with bench_servers() as (nats_url, database_url):
        ns = Namespace(unique_namespace("bn"), Servers(nats_url, database_url))
        env = {**ns.env(), "KAIKU_OTEL_EXPORTER": "none", "KAIKU_LOG_LEVEL": "WARNING"}
        supervisor = Supervisor(env, Path(f"/tmp/kaiku-bench-{ns.name}"), restart_crashed=False)
        supervisor.add(worker_spec("notifications-worker"))
        supervisor.add(ProcessSpec("notifications-relay",
                                   [sys.executable, "-m", "notifications", "relay"], {}))
        supervisor.start_all()
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        pool = push = sink = None
        try:
            await ensure_stream(js, ns.settings, "venues")

            async def consumer_ready() -> bool:
                try:
                    await js.consumer_info(ns.settings.stream_name("venues"),
                                           "notifications-offering-fanout")
                    return True
                except Exception:  # noqa: BLE001 - not created yet
                    return False

            await wait_until(consumer_ready, timeout=120, interval=0.2)
            pool = await asyncpg.create_pool(ns.settings.service_database_url("notifications"),
                                             min_size=1, max_size=4)
            holders = await subscribe(pool)
            console.print(f"namespace {ns.name}: {HOLDERS:,} holders subscribed to '{GENRE}'")
            push_setup = None
            if PUSH_DEVICES:
                sink = start_sink(PUSH_SINK_PORT)
                push = PushLeg(ns.settings, PUSH_SINK_PORT)
                push_setup = await push.setup(holders[:PUSH_DEVICES])
                console.print(f"{PUSH_DEVICES:,} of them with a push device "
                              f"({push_setup:.1f}s)")
            report(await fan_out_runs(ns, js, pool, supervisor, push), push_setup)
        finally:
            if push is not None:
                await push.close()
            if sink is not None:
                sink.terminate()
            if pool is not None:
                await pool.close()
            await nc.close()
            supervisor.stop_all()
            await ns.drop()


if __name__ == "__main__":
    describe(__doc__)
    asyncio.run(main())
