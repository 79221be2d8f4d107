"""Event-store write path: group commit against single saves and raw inserts.

At 1, 8, 32 and 128 concurrent clients, on the same Postgres in the same run:
- raw baseline: asyncpg single-row INSERT transactions into an equivalent table;
- eventsourcing single saves (group commit off): one table lock per save;
- eventsourcing with group commit (the project's default).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).parent))
from common import Benchmark, bench_servers, repeat, describe  # noqa: E402

from eventsourcing.domain import Aggregate, event  # noqa: E402

from kaiku_shared.db import ensure_database  # noqa: E402
from kaiku_shared.eventstore import (  # noqa: E402
    KaikuApplication,
    application_env,
    construct_application,
)
from kaiku_shared.settings import KaikuSettings  # noqa: E402

OPS = 2000
RUNS = 3
CONCURRENCY = (1, 8, 32, 128)


class Registration(Aggregate):
    @event("Registered")
    def __init__(self, card_number: str, children: int) -> None:
        self.card_number = card_number
        self.children = children


class Registrations(KaikuApplication):
    name = "benchregs"

    def register(self, n: int) -> None:
        self.save(Registration(card_number=f"KXA-{n % 100000:05d}", children=n % 3))


def saves_per_second(app: Registrations, clients: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(app.register, range(OPS)))
    return OPS / (time.perf_counter() - started)


async def raw_inserts_per_second(url: str, clients: int) -> float:
    pool = await asyncpg.create_pool(url, min_size=clients, max_size=clients)
    state = b'{"card_number": "KXA-12345", "children": 1, "timestamp": "2026-01-01"}'

    async def client(count: int) -> None:
        async with pool.acquire() as conn:
            for _ in range(count):
                await conn.execute(
                    "INSERT INTO raw_events (originator_id, originator_version, topic, state) "
                    "VALUES ($1, 1, 'bench:Registered', $2)", uuid.uuid4(), state)

    started = time.perf_counter()
    await asyncio.gather(*(client(OPS // clients) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return (OPS // clients) * clients / elapsed


async def prepare(settings: KaikuSettings) -> None:
    await ensure_database(settings, "bench")
    conn = await asyncpg.connect(settings.service_database_url("bench"))
    await conn.execute("""
        CREATE TABLE IF NOT EXISTS raw_events (
            notification_id bigserial PRIMARY KEY, originator_id uuid NOT NULL,
            originator_version integer NOT NULL, topic text NOT NULL, state bytea NOT NULL,
            UNIQUE (originator_id, originator_version))""")
    await conn.close()


async def drop(settings: KaikuSettings) -> None:
    conn = await asyncpg.connect(settings.maintenance_database_url())
    await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name("bench")}" WITH (FORCE)')
    await conn.close()


def main() -> None:
    with bench_servers() as (nats_url, database_url):
        settings = KaikuSettings(nats_url=nats_url, database_url=database_url,
                                 namespace=f"bench{uuid.uuid4().hex[:8]}")
        asyncio.run(prepare(settings))
        pool = "POSTGRES_POOL_SIZE"
        env = application_env(settings, "bench", **{pool: "8", "POSTGRES_MAX_OVERFLOW": "130"})
        grouped = construct_application(lambda: Registrations(env))
        single = construct_application(
            lambda: Registrations({**env, "KAIKU_GROUP_COMMIT": "n"}))
        bench = Benchmark("write_path", f"{OPS} new-aggregate saves per run, {RUNS} runs; "
                                        "saves/s at each concurrency")
        try:
            for clients in CONCURRENCY:
                raw = f"raw insert ×{clients}"
                bench.add(raw, "rows/s", repeat(RUNS, lambda: asyncio.run(
                    raw_inserts_per_second(settings.service_database_url("bench"), clients))))
                bench.add(f"single saves ×{clients}", "saves/s",
                          repeat(RUNS, lambda: saves_per_second(single, clients)), baseline=raw)
                bench.add(f"group commit ×{clients}", "saves/s",
                          repeat(RUNS, lambda: saves_per_second(grouped, clients)), baseline=raw,
                          note=f"{grouped.group_committer.saves / max(1, grouped.group_committer.batches):.1f} saves/transaction so far")
        finally:
            grouped.close()
            single.close()
            asyncio.run(drop(settings))
        bench.report()


if __name__ == "__main__":
    describe(__doc__)
    main()
