"""Benchmark: the national history (seed scale) through Kaikukanta's real write path,
and the statistics rebuild, each next to a raw PostgreSQL baseline in the same run.

    .venv/bin/python bench/cards_seed_history.py            # 88,188 cards, 251,566 uses
    .venv/bin/python bench/cards_seed_history.py --scale 0.1

Uses KAIKU_DATABASE_URL when set, otherwise starts an embedded PostgreSQL (and
NATS, unused here) from the wheels. Everything runs in a fresh namespace that is
dropped at the end. Prints figures; asserts nothing about speed.

- ingest: ``seed_history`` — Card.issue/renew/import_uses on CardsApplication,
  ``app.save(*cards)`` per batch (one transaction each).
  baseline: asyncpg ``COPY`` and batched ``INSERT`` of the same rows (one row per
  card + one per use, JSON payloads) into plain tables.
- rebuild: every statistics read model from the event store (decode, translate,
  the live consumers' handlers) into a fresh schema.
  baseline: a raw ``SELECT`` of the whole event table and ``json.loads`` of each
  event's state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

from cards.adapters import rebuild as rebuilding
from cards.adapters import statistics
from cards.application.seed_history import (
    SEED_CARDS,
    SEED_USES,
    SEED_USES_WITH_CHILDREN,
    Plan,
    draft,
    seed_history,
)
from cards.bootstrap import build_application
from kaiku_shared.db import apply_schema, create_pool, ensure_database
from kaiku_shared.eventstore import events_table
from kaiku_shared.settings import KaikuSettings

console = Console()


def servers() -> tuple[str, str, object | None]:
    import os

    nats_url, database_url = os.environ.get("KAIKU_NATS_URL"), os.environ.get(
        "KAIKU_DATABASE_URL")
    if database_url:
        return nats_url or "nats://127.0.0.1:4222", database_url, None
    from kaiku_shared.embedded import EmbeddedServers

    embedded = EmbeddedServers(Path(tempfile.mkdtemp(prefix="kaiku-bench-")))
    started_nats, started_db = embedded.start()
    return started_nats, started_db, embedded


async def raw_baseline_ingest(settings: KaikuSettings, plan: Plan, app) -> dict[str, float]:
    """The same rows written with plain asyncpg: COPY, then batched INSERTs."""
    _, drafts = draft(app, plan)
    card_rows, use_rows = [], []
    for d in drafts:
        card_rows.append((d.number, json.dumps({
            "issuer": str(d.issuer), "municipality": d.municipality, "region": d.region,
            "issued": d.issued.isoformat(), "birth_year": d.birth_year,
            "postal_code": d.postal_code, "children": d.children,
            "life_satisfaction": d.life_satisfaction})))
        for u in d.uses:
            use_rows.append((u["use_id"], d.number, json.dumps({
                "used_at": u["used_at"].isoformat(), "children": u["children"],
                "venue_municipality": u["venue_municipality"]})))
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        results = {}
        for method in ("copy", "insert"):
            await conn.execute("DROP TABLE IF EXISTS raw_cards, raw_uses")
            await conn.execute("CREATE TABLE raw_cards (card_number text PRIMARY KEY, "
                               "data jsonb NOT NULL)")
            await conn.execute("CREATE TABLE raw_uses (use_id uuid PRIMARY KEY, "
                               "card_number text NOT NULL, data jsonb NOT NULL)")
            started = time.perf_counter()
            if method == "copy":
                await conn.copy_records_to_table("raw_cards", records=card_rows)
                await conn.copy_records_to_table("raw_uses", records=use_rows)
            else:
                for start in range(0, len(card_rows), plan.batch):
                    async with conn.transaction():
                        await conn.executemany(
                            "INSERT INTO raw_cards VALUES ($1, $2)",
                            card_rows[start:start + plan.batch])
                per_batch = max(plan.batch * 3, 1)
                for start in range(0, len(use_rows), per_batch):
                    async with conn.transaction():
                        await conn.executemany(
                            "INSERT INTO raw_uses VALUES ($1, $2, $3)",
                            use_rows[start:start + per_batch])
            results[method] = time.perf_counter() - started
        await conn.execute("DROP TABLE IF EXISTS raw_cards, raw_uses")
        return results
    finally:
        await conn.close()


async def raw_baseline_read(settings: KaikuSettings, application_name: str
                            ) -> tuple[float, int]:
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        started = time.perf_counter()
        count = 0
        position = 0
        table = events_table(application_name)
        while True:
            rows = await conn.fetch(
                f'SELECT notification_id, state FROM "{table}" WHERE notification_id > $1 '
                "ORDER BY notification_id LIMIT 2000", position)
            if not rows:
                break
            for row in rows:
                json.loads(bytes(row["state"]))
                count += 1
            position = rows[-1]["notification_id"]
        return time.perf_counter() - started, count
    finally:
        await conn.close()


async def event_count(settings: KaikuSettings, application_name: str) -> int:
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        return await conn.fetchval(f'SELECT count(*) FROM "{events_table(application_name)}"')
    finally:
        await conn.close()


async def drop(settings: KaikuSettings) -> None:
    conn = await asyncpg.connect(settings.maintenance_database_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name("cards")}" '
                           "WITH (FORCE)")
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the seed")
    parser.add_argument("--batch", type=int, default=100, help="cards per transaction")
    args = parser.parse_args()
    nats_url, database_url, embedded = servers()
    settings = KaikuSettings(nats_url=nats_url, database_url=database_url,
                             namespace=f"bench{uuid.uuid4().hex[:8]}",
                             jwt_secret="bench-only")
    plan = Plan(cards=int(SEED_CARDS * args.scale), uses=int(SEED_USES * args.scale),
                uses_with_children=int(SEED_USES_WITH_CHILDREN * args.scale),
                batch=args.batch, seed="bench")
    try:
        async def prepare():
            await ensure_database(settings, "cards")
            pool = await create_pool(settings, "cards", size=2)
            await apply_schema(pool, *statistics.SCHEMA)
            await pool.close()

        asyncio.run(prepare())
        app = build_application(settings)
        console.print(f"[bold]cards seed-history benchmark[/bold]: {plan.cards:,} cards, "
                      f"{plan.uses:,} uses ({plan.uses_with_children:,} with children), "
                      f"batch {plan.batch}")

        raw = asyncio.run(raw_baseline_ingest(settings, plan, app))
        started = time.perf_counter()
        totals = seed_history(app, plan)
        ingest = time.perf_counter() - started
        events = asyncio.run(event_count(settings, app.name))

        read_seconds, read_events = asyncio.run(raw_baseline_read(settings, app.name))
        started = time.perf_counter()
        counts = asyncio.run(rebuilding.rebuild(settings, app.mapper, app.name,
                                                include_venues=False))
        rebuild_seconds = time.perf_counter() - started

        async def check():
            conn = await asyncpg.connect(settings.service_database_url("cards"))
            try:
                await conn.execute(f"SET search_path TO {rebuilding.SHADOW}")
                return (await statistics.figures(
                    conn, statistics.Period(None, None, __import__("datetime").date.today())
                ))[None]
            finally:
                await conn.close()

        figures = asyncio.run(check())
        table = Table(title="ingest and rebuild next to raw PostgreSQL (same run)")
        for column in ("what", "rows/events", "seconds", "per second"):
            table.add_column(column, justify="right" if column != "what" else "left")
        rows_raw = plan.cards + plan.uses

        def add(what: str, n: int, seconds: float, unit: str) -> None:
            table.add_row(what, f"{n:,} {unit}", f"{seconds:.2f}", f"{n / seconds:,.0f}")

        add("raw COPY (cards + uses rows)", rows_raw, raw["copy"], "rows")
        add(f"raw INSERT, {plan.batch}/txn", rows_raw, raw["insert"], "rows")
        add("seed-history: cards via CardsApplication", totals.cards, ingest, "cards")
        add("seed-history: stored events", events, ingest, "events")
        add("seed-history: uses recorded", totals.uses, ingest, "uses")
        add("raw read + json decode of the event table", read_events, read_seconds, "events")
        add("rebuild statistics read models", counts.cards_events, rebuild_seconds, "events")
        console.print(table)
        console.print(
            f"statistics after rebuild: cards_issued={figures['cards_issued']:,} "
            f"uses={figures['uses']:,} uses_with_children={figures['uses_with_children']:,} "
            f"child_tickets={figures['child_tickets']:,} "
            f"(planned {plan.cards:,} / {plan.uses:,} / {plan.uses_with_children:,})")
        match = (figures["cards_issued"], figures["uses"], figures["uses_with_children"]) == (
            plan.cards, plan.uses, plan.uses_with_children)
        console.print("totals match the plan" if match else "[red]TOTALS DIFFER[/red]")
        return 0 if match else 1
    finally:
        asyncio.run(drop(settings))
        if embedded is not None:
            embedded.stop()
            import shutil

            shutil.rmtree(embedded.data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
