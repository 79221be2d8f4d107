"""Benchmark: the national history in Kaikukanta and the statistics rebuild from it,
each next to a raw PostgreSQL baseline measured in the same run.

    .venv/bin/python bench/cards_seed_history.py              # 1×: 88,188 cards, 251,566 uses
    .venv/bin/python bench/cards_seed_history.py --scale 10   # 10×, loaded in bulk
    .venv/bin/python bench/cards_seed_history.py --scale 0.1 --no-save

Uses KAIKU_DATABASE_URL / KAIKU_NATS_URL when both are set, otherwise starts an
embedded PostgreSQL (and NATS, unused here). Everything runs in a fresh namespace
that is dropped at the end. Asserts nothing about speed; ``--save`` (the default)
merges the figures into bench/results.json and bench/results.md.

Loading the history (``--load``):

- ``real`` (the default up to 1×): ``seed_history`` — Card.issue/renew/import_uses
  on CardsApplication, ``app.save(*cards)`` per batch of 100 (one transaction
  each). **Ingest figures come only from this path**, next to a raw baseline:
  asyncpg ``COPY`` and batched ``INSERT`` of the same rows (one row per card, one
  per use, JSON payloads) into plain tables.
- ``bulk`` (the default above 1×; the real path would take some 20 minutes at
  10×): ``seed_history.stored_history`` builds the very same aggregates (the same
  plan, the same domain code, the same random choices), turns each one's new
  events into stored events with the application's own mapper, and this COPYs
  them into the application's events table in the order ``seed_history`` saves
  them. So the table holds what the application would have written, in
  notification-id order; only the event timestamps differ, as between two real
  runs (a unit test compares the two paths event by event). **No ingest figure is
  reported for a bulk load.**

The rebuild, against the same event table, each measurement in a fresh child
process (so the peak RSS is the measurement's own) with Python's cyclic garbage
collector off (as the rebuild runs), alternating ``--runs`` times:

- **baseline**: raw read and decode: ``SELECT`` of every stored event in keyset
  pages of 10,000 (the rebuild's page) and ``json.loads`` of each state;
- breakdown (``--breakdown``, on by default): the same read decoded to domain
  events by the application's mapper (eventsourcing's transcoder), and then also
  translated to contracts as the relay does;
- **rebuild**: ``rebuild.rebuild`` (every statistics read model into the schema
  ``stats_rebuild``: read, decode, translate, fold in memory, COPY), cards only.
  Its events/s count every stored event read, like the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import asyncpg
from eventsourcing.persistence import StoredEvent

sys.path.insert(0, str(Path(__file__).parent))

from common import Benchmark, bench_servers, console  # noqa: E402

from cards.adapters import rebuild as rebuilding  # noqa: E402
from cards.adapters import queries  # noqa: E402
from cards.adapters.schema import SCHEMA  # noqa: E402
from cards.application.seed_history import (  # noqa: E402
    SEED_CARDS,
    SEED_USES,
    SEED_USES_WITH_CHILDREN,
    Plan,
    Totals,
    draft,
    seed_history,
    stored_history,
)
from cards.bootstrap import build_application  # noqa: E402
from kaiku_shared.db import apply_schema, create_pool, ensure_database  # noqa: E402
from kaiku_shared.eventstore import events_table  # noqa: E402
from kaiku_shared.settings import KaikuSettings  # noqa: E402

MEASUREMENTS = ("raw", "mapper", "translate", "rebuild")


def settings_from_env() -> KaikuSettings:
    return KaikuSettings(nats_url=os.environ["KAIKU_NATS_URL"],
                         database_url=os.environ["KAIKU_DATABASE_URL"],
                         namespace=os.environ["KAIKU_NAMESPACE"])


def fresh_settings(nats_url: str, database_url: str, prefix: str = "bench") -> KaikuSettings:
    """A namespace of its own on the bench servers (``drop`` removes its database)."""
    return KaikuSettings(nats_url=nats_url, database_url=database_url,
                         namespace=f"{prefix}{uuid.uuid4().hex[:8]}")


def plan_at(scale: float, batch: int = 100) -> Plan:
    return Plan(cards=round(SEED_CARDS * scale), uses=round(SEED_USES * scale),
                uses_with_children=round(SEED_USES_WITH_CHILDREN * scale),
                batch=batch, seed="bench")


async def prepare_database(settings: KaikuSettings) -> None:
    """The cards database with its statistics tables, empty."""
    await ensure_database(settings, "cards")
    pool = await create_pool(settings, "cards", size=2)
    await apply_schema(pool, SCHEMA)
    await pool.close()


def child(kind: str, settings: KaikuSettings) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of one measurement in a process of its own."""
    env = {**os.environ, "KAIKU_NATS_URL": settings.nats_url,
           "KAIKU_DATABASE_URL": settings.database_url, "KAIKU_NAMESPACE": settings.namespace}
    return [sys.executable, __file__, "--child", kind], env


# --- loading the history ---------------------------------------------------------------

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


async def bulk_load(settings: KaikuSettings, app, plan: Plan) -> Totals:
    """The history's stored events, exactly as the application would record them
    (``seed_history.stored_history``), COPY'd into its events table in
    seed_history's saving order, so the notification ids follow it too."""
    totals = Totals()

    async def chunks():
        rows: list[tuple] = []
        for batch in stored_history(app, plan, totals):
            rows += [(s.originator_id, s.originator_version, s.topic, s.state) for s in batch]
            if len(rows) >= 50_000:
                yield rows
                rows = []
        if rows:
            yield rows

    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        table = events_table(app.name)
        async for rows in chunks():
            await conn.copy_records_to_table(
                table, columns=("originator_id", "originator_version", "topic", "state"),
                records=rows)
        await conn.execute(f'ANALYZE "{table}"')
    finally:
        await conn.close()
    return totals


# --- the measurements, each in a child process -----------------------------------------

async def measure(kind: str, settings: KaikuSettings) -> dict:
    """One measurement: seconds and stored events read."""
    app = build_application(settings)
    table = events_table(app.name)
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        started = time.perf_counter()
        if kind == "rebuild":
            counts = await rebuilding.rebuild(settings, app.mapper, app.name,
                                              include_venues=False)
            events, extra = counts.stored_events, {"contracts": counts.cards_events,
                                                   "rows": counts.rows,
                                                   "phases": counts.seconds}
        else:
            events, extra = 0, {}
            pages = rebuilding._pages(conn, table, rebuilding.PAGE)
            async with conn.transaction(isolation="repeatable_read", readonly=True), \
                    contextlib.aclosing(pages):
                async for rows in pages:
                    events += len(rows)
                    if kind == "raw":
                        for row in rows:
                            json.loads(bytes(row["state"]))
                    elif kind == "mapper":
                        for row in rows:
                            app.mapper.decode(StoredEvent(
                                originator_id=row["originator_id"],
                                originator_version=row["originator_version"],
                                topic=row["topic"], state=bytes(row["state"])))
                    else:
                        for row in rows:
                            rebuilding._contract(row, app.mapper)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
        app.close()
    return {"kind": kind, "seconds": seconds, "events": events, "peak_rss_mb": peak_rss_mb(),
            **extra}


def peak_rss_mb() -> float:
    """This process's peak resident set. VmHWM belongs to the process's own memory,
    while ru_maxrss may keep the high-water mark of the parent it was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(kind: str, settings: KaikuSettings) -> dict:
    command, env = child(kind, settings)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{kind} measurement failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def rebuilt_figures(settings: KaikuSettings) -> dict:
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        await conn.execute(f"SET search_path TO {rebuilding.SHADOW}")
        return (await queries.figures(conn, queries.Period(None, None, date.today())))[
            None]
    finally:
        await conn.close()


async def drop(settings: KaikuSettings) -> None:
    conn = await asyncpg.connect(settings.maintenance_database_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name("cards")}" '
                           "WITH (FORCE)")
    finally:
        await conn.close()


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiple of the seed")
    parser.add_argument("--load", choices=("real", "bulk"), default=None,
                        help="real write path (default up to 1×) or bulk COPY (above)")
    parser.add_argument("--batch", type=int, default=100, help="cards per transaction")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure decode and translate alone")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                        help="merge the figures into bench/results.json and .md")
    parser.add_argument("--child", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        gc.disable()  # as the rebuild itself runs: the same conditions for every figure
        print(json.dumps(asyncio.run(measure(args.child, settings_from_env())), default=str))
        return 0
    load = args.load or ("real" if args.scale <= 1 else "bulk")
    plan = plan_at(args.scale, args.batch)
    with bench_servers() as (nats_url, database_url):
        settings = fresh_settings(nats_url, database_url)
        try:
            return run(settings, plan, load, args)
        finally:
            asyncio.run(drop(settings))


def run(settings: KaikuSettings, plan: Plan, load: str, args: argparse.Namespace) -> int:
    asyncio.run(prepare_database(settings))
    app = build_application(settings)
    scale = f"{args.scale:g}×"
    console.print(f"[bold]cards history benchmark[/bold] at {scale}: {plan.cards:,} cards, "
                  f"{plan.uses:,} uses ({plan.uses_with_children:,} with children), "
                  f"loaded {'through the write path' if load == 'real' else 'in bulk'}; "
                  f"load average {load_average()}")
    bench = Benchmark(
        f"cards_history_{scale.replace('×', 'x')}",
        f"the national history at {scale} ({plan.cards:,} cards, {plan.uses:,} uses), "
        + ("written through CardsApplication" if load == "real" else
           "bulk-loaded (the application's own stored events, COPY'd; no ingest figure)")
        + f"; statistics rebuild from its event store, {args.runs} runs; "
        + "each rebuild figure in its own process")
    started = time.perf_counter()
    if load == "real":
        raw = asyncio.run(raw_baseline_ingest(settings, plan, app))
        started = time.perf_counter()
        totals = seed_history(app, plan)
        ingest = time.perf_counter() - started
    else:
        totals = asyncio.run(bulk_load(settings, app, plan))
        console.print(f"bulk-loaded in {time.perf_counter() - started:,.0f} s "
                      "(not an ingest figure)")
    events = app.recorder.max_notification_id()
    app.close()
    if load == "real":
        rows_raw = plan.cards + plan.uses
        bench.add("raw COPY (cards + uses rows)", "rows/s", [rows_raw / raw["copy"]])
        bench.add(f"raw INSERT, {plan.batch}/txn", "rows/s", [rows_raw / raw["insert"]])
        bench.add("seed-history: cards via CardsApplication", "cards/s",
                  [totals.cards / ingest], baseline="raw COPY (cards + uses rows)")
        bench.add("seed-history: stored events", "events/s", [events / ingest])

    kinds = ["raw", *(["mapper", "translate"] if args.breakdown else []), "rebuild"]
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for n in range(args.runs):
        for kind in kinds:
            result = run_child(kind, settings)
            results[kind].append(result)
            console.print(f"run {n + 1} {kind:9} {result['events']:,} events in "
                          f"{result['seconds']:.2f} s = "
                          f"{result['events'] / result['seconds']:,.0f}/s, peak RSS "
                          f"{result['peak_rss_mb']:,.0f} MB; load {load_average()}"
                          + (f"; phases {json.dumps(result['phases'])}"
                             if "phases" in result else ""))
    raw_name = "raw read + json.loads of every stored event"
    bench.add(raw_name, "events/s", [r["events"] / r["seconds"] for r in results["raw"]],
              note=f"{events:,} stored events, pages of {rebuilding.PAGE:,}")
    if args.breakdown:
        bench.add("read + decode to domain events (mapper)", "events/s",
                  [r["events"] / r["seconds"] for r in results["mapper"]], baseline=raw_name)
        bench.add("read + decode + translate to contracts", "events/s",
                  [r["events"] / r["seconds"] for r in results["translate"]],
                  baseline=raw_name)
    rebuilt = results["rebuild"]
    bench.add("rebuild every statistics read model", "events/s",
              [r["events"] / r["seconds"] for r in rebuilt], baseline=raw_name,
              note="target ≥ 0.5× the raw read")
    bench.add("rebuild time", "s", [r["seconds"] for r in rebuilt],
              note=", ".join(f"{k} {v:,}" for k, v in rebuilt[0]["rows"].items()) + " rows")
    bench.add("rebuild peak RSS", "MB", [r["peak_rss_mb"] for r in rebuilt],
              note="the whole rebuild process")
    if not args.save:
        bench.save = lambda: None  # report without touching the results files
    bench.report()
    figures = asyncio.run(rebuilt_figures(settings))
    console.print(
        f"statistics after rebuild: cards_issued={figures['cards_issued']:,} "
        f"uses={figures['uses']:,} uses_with_children={figures['uses_with_children']:,} "
        f"child_tickets={figures['child_tickets']:,} (planned {plan.cards:,} / "
        f"{plan.uses:,} / {plan.uses_with_children:,}; child tickets written "
        f"{totals.child_tickets:,}); load average {load_average()}")
    match = (figures["cards_issued"], figures["uses"], figures["uses_with_children"],
             figures["child_tickets"]) == (plan.cards, plan.uses, plan.uses_with_children,
                                           totals.child_tickets)
    console.print("totals match the plan" if match else "[red]TOTALS DIFFER[/red]")
    return 0 if match else 1


if __name__ == "__main__":
    sys.exit(main())
