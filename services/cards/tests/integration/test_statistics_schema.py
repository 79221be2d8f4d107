"""The statistics tables' baseline migration on a real Postgres: a database of the
first release and one of the release before migrations adopt it in place (rows
kept, the layout then exactly a fresh database's), a later start applies nothing,
and the handlers apply the golden fixtures to the adopted tables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

import kaiku_shared.contracts as contracts
from cards.adapters import projections
from cards.adapters.schema import BASELINE, COMPONENT, READ_MODEL_TABLES, SCHEMA
from kaiku_shared.consumer import MessageProcessor
from kaiku_shared.db import create_pool, ensure_database, migrate
from kaiku_dev.testing import Namespace, unique_namespace

FIXTURES = Path(contracts.__file__).parent / "fixtures"

# The first release's tables: the baseline's CREATE TABLEs only (no replacement
# or closing day on cards, no venue names on uses, no index of uses by card).
FIRST_RELEASE = tuple(statement for statement in BASELINE if "CREATE TABLE" in statement)


@pytest.fixture
def namespace(servers) -> Iterator[Namespace]:
    own = Namespace(unique_namespace("ss"), servers)
    yield own
    asyncio.run(own.drop())


@pytest.fixture
def fresh(servers) -> Iterator[Namespace]:
    own = Namespace(unique_namespace("sf"), servers)
    yield own
    asyncio.run(own.drop())


async def open_pool(ns: Namespace) -> asyncpg.Pool:
    await ensure_database(ns.settings, "cards")
    return await create_pool(ns.settings, "cards", size=2)


@pytest.fixture
async def pool(namespace) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(namespace)
    try:
        yield pool
    finally:
        await pool.close()


async def layout(pool: asyncpg.Pool) -> dict[str, list[tuple]]:
    """Each read-model table's columns (name, type, nullable, default) and indexes."""
    async with pool.acquire() as conn:
        tables = {}
        for table in READ_MODEL_TABLES:
            columns = await conn.fetch(
                "SELECT column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_name = $1 "
                "ORDER BY column_name", table)
            indexes = await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 "
                "ORDER BY indexname", table)
            tables[table] = [tuple(r) for r in columns] + [tuple(r) for r in indexes]
        return tables


async def run_old(pool: asyncpg.Pool, statements: tuple[str, ...]) -> None:
    async with pool.acquire() as conn:
        for statement in statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO card_view (card_number, issuer, birth_year, valid_from, community, "
            "valid_until, children, municipality, region, version) VALUES ('OLD-1', "
            "'3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14', 1970, '2024-01-02', false, "
            "'2025-01-01', 1, 'imatra', 'etela-karjala', 1)")
        await conn.execute(
            "INSERT INTO usage_view (ticket_id, card_number, children, status, version) "
            "VALUES ('0d9a7c3b-1e52-4b8f-a6d4-73c2e91f5a08', 'OLD-1', 0, 'registered', 1)")


async def kept_rows(pool: asyncpg.Pool) -> tuple:
    async with pool.acquire() as conn:
        card = await conn.fetchrow("SELECT * FROM card_view WHERE card_number = 'OLD-1'")
        uses = await conn.fetchval("SELECT count(*) FROM usage_view WHERE card_number = 'OLD-1'")
        return card["birth_year"], card["replaces"], card["closed_on"], uses


async def fresh_layout(fresh: Namespace) -> dict[str, list[tuple]]:
    pool = await open_pool(fresh)
    try:
        assert await migrate(pool, SCHEMA) == {"kaiku-infrastructure": [1],
                                               COMPONENT: [1, 2, 3]}
        return await layout(pool)
    finally:
        await pool.close()


@pytest.mark.parametrize("release", [FIRST_RELEASE, BASELINE],
                         ids=["first-release", "before-migrations"])
async def test_an_earlier_database_adopts_the_baseline_in_place(pool, fresh, release) -> None:
    await run_old(pool, release)
    assert (await migrate(pool, SCHEMA))[COMPONENT] == [1, 2, 3]
    assert await kept_rows(pool) == (1970, None, None, 1)
    assert await layout(pool) == await fresh_layout(fresh)
    assert await migrate(pool, SCHEMA) == {}  # every later start
    async with pool.acquire() as conn:
        names = await conn.fetch("SELECT version, name FROM schema_migrations "
                                 "WHERE component = $1 ORDER BY version", COMPONENT)
        indexes = {r["indexname"] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'card_view'")}
    assert [tuple(n) for n in names] == [
        (1, "baseline"), (2, "caseload index; swimming visits and library fees"),
        (3, "venue kinds, offering genres; the public statistics document")]
    assert "card_view_issuer" in indexes  # the caseload's: a distributor's cards in order


async def test_the_handlers_apply_the_golden_fixtures_to_an_adopted_database(pool) -> None:
    await run_old(pool, FIRST_RELEASE)
    await migrate(pool, SCHEMA)
    consumers = {event_type: consumer for consumer in projections.consumers()
                 for event_type in consumer.handled_types}
    names = ("organisation_registered", "organisation_status_changed", "card_issued",
             "card_renewed", "card_changed", "card_closed", "card_replaced",
             "card_uses_imported", "ticket_registered", "ticket_cancelled",
             "swimming_visit_registered", "library_fee_covered", "venue_registered",
             "offering_published")
    async with pool.acquire() as conn:
        for name in names:
            body = (FIXTURES / f"{name}.v1.json").read_bytes()
            consumer = consumers[json.loads(body)["event_type"]]
            event = MessageProcessor(consumer, pool).decode(body)
            async with conn.transaction():
                await consumer.handlers[type(event)](event, conn)
        card = await conn.fetchrow("SELECT * FROM card_view WHERE card_number = 'KXA-12345'")
        replacement = await conn.fetchval(
            "SELECT replaces FROM card_view WHERE card_number = 'MTR-40721'")
        uses = await conn.fetch("SELECT status, venue_name FROM usage_view "
                                "WHERE card_number = 'KXA-12345' ORDER BY status")
        answers = await conn.fetchval("SELECT count(*) FROM wellbeing_view")
        organisation = await conn.fetchval("SELECT status FROM organisation_view")
        desk = await conn.fetch("SELECT kind, children, amount_cents FROM desk_use_view "
                                "ORDER BY kind")
        venue = await conn.fetchrow("SELECT kind, name FROM venue_view")
        genres = await conn.fetchval("SELECT genres FROM offering_view")
    assert (card["status"], card["municipality"], card["children"]) == (
        "closed", "lappeenranta", 3)
    assert replacement == "KXA-12345"
    assert [tuple(u) for u in uses] == [("cancelled", "Imatran Kaupunginteatteri"),
                                        ("registered", None), ("registered", None)]
    assert (answers, organisation) == (2, "approved")
    assert [d["kind"] for d in desk] == ["library_fee", "swimming_visit"]
    assert desk[0]["amount_cents"] > 0 and desk[1]["amount_cents"] == 0
    assert tuple(venue) == ("performing_arts", "Imatran Kaupunginteatteri")
    assert genres == ["theatre"]
