"""The worker's public-statistics refresher on a real Postgres: a fact applied by a
projection handler reaches the stored document within seconds (NOTIFY on commit,
nothing before); a round with no changed figure writes nothing (the ETag and
updated_at stay); and the LISTEN connection, when Postgres ends it, is opened
again and the figures keep moving; the rebuild's swap refreshes the document."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

import kaiku_shared.contracts as contracts
from cards.adapters import projections, public_stats
from cards.adapters.public_stats_loops import follow
from cards.adapters.schema import SCHEMA
from kaiku_shared.consumer import MessageProcessor
from kaiku_shared.db import create_pool, ensure_database, migrate
from kaiku_dev.testing import Namespace, eventually, unique_namespace

FIXTURES = Path(contracts.__file__).parent / "fixtures"
NAMES = {"etela-karjala": "Etelä-Karjala", "kainuu": "Kainuu"}


@pytest.fixture
def namespace(servers) -> Iterator[Namespace]:
    own = Namespace(unique_namespace("ps"), servers)
    yield own
    asyncio.run(own.drop())


@pytest.fixture
async def pool(namespace) -> AsyncIterator[asyncpg.Pool]:
    await ensure_database(namespace.settings, "cards")
    pool = await create_pool(namespace.settings, "cards", size=3)
    await migrate(pool, SCHEMA)
    try:
        yield pool
    finally:
        await pool.close()


async def _apply(pool: asyncpg.Pool, name: str, **changes: object) -> None:
    """A golden fixture, decoded and applied as its durable does (one transaction)."""
    body = json.loads((FIXTURES / f"{name}.v1.json").read_text())
    body.update(changes)
    consumer = next(c for c in projections.consumers() if body["event_type"]
                    in c.handled_types)
    event = MessageProcessor(consumer, pool).decode(json.dumps(body).encode())
    async with pool.acquire() as conn, conn.transaction():
        await consumer.handlers[type(event)](event, conn)


async def _stored(pool: asyncpg.Pool) -> public_stats.Stored | None:
    return await public_stats.load(pool)


async def _figure(pool: asyncpg.Pool, field: str) -> int | None:
    stored = await _stored(pool)
    return json.loads(stored.document)[field] if stored else None


async def test_facts_move_the_document_and_the_listener_survives(namespace, pool) -> None:
    stop = asyncio.Event()
    rounds = 0

    async def work() -> None:
        nonlocal rounds
        rounds += 1
        async with pool.acquire() as conn:
            await public_stats.refresh(conn, NAMES, 1, public_stats.today())

    conninfo = namespace.settings.service_database_url("cards")
    refresher = asyncio.create_task(follow("test refresher", conninfo,
                                           projections.STATISTICS_CHANGED, work, stop,
                                           every=600, settle=0.3))
    try:
        await eventually(lambda: _stored(pool), timeout=10, message="the first document")
        first = await _stored(pool)
        assert json.loads(first.document)["cards_issued"] == 0

        started = time.monotonic()
        await _apply(pool, "card_issued")
        await eventually(lambda: _figure_is(pool, "cards_issued", 1), timeout=5,
                         message="the issued card in the document")
        assert time.monotonic() - started < 5
        moved = await _stored(pool)
        assert moved.etag != first.etag and moved.updated_at > first.updated_at

        # Nothing changed: a round writes nothing.
        async with pool.acquire() as conn:
            assert await public_stats.refresh(conn, NAMES, 1, public_stats.today()) is None
        assert (await _stored(pool)).updated_at == moved.updated_at

        # Postgres ends the listening connection (as a restart does).
        async with pool.acquire() as conn:
            ended = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'")
        assert ended == 1
        await eventually(lambda: _listening(pool), timeout=10,
                         message="the refresher to listen again")
        await _apply(pool, "ticket_registered")
        await eventually(lambda: _figure_is(pool, "uses", 1), timeout=5,
                         message="the ticket after the reconnection")
    finally:
        stop.set()
        await asyncio.wait_for(refresher, 10)
    assert rounds >= 3


async def _figure_is(pool: asyncpg.Pool, field: str, value: int) -> bool:
    return await _figure(pool, field) == value


async def _listening(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%'"))


async def test_nothing_is_told_before_the_commit(namespace, pool) -> None:
    """The NOTIFY is sent in the applying transaction: a rolled-back fact tells no one."""
    listener = await asyncpg.connect(namespace.settings.service_database_url("cards"))
    heard: list[str] = []
    await listener.add_listener(projections.STATISTICS_CHANGED,
                                lambda *args: heard.append(args[2]))
    try:
        body = json.loads((FIXTURES / "card_issued.v1.json").read_text())
        consumer = next(c for c in projections.consumers()
                        if body["event_type"] in c.handled_types)
        event = MessageProcessor(consumer, pool).decode(json.dumps(body).encode())
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await consumer.handlers[type(event)](event, conn)
            await transaction.rollback()
        await asyncio.sleep(0.5)
        assert heard == []
        await _apply(pool, "card_issued")
        await eventually(lambda: _heard(heard), timeout=3, message="the NOTIFY on commit")
    finally:
        await listener.close()


async def _heard(heard: list[str]) -> bool:
    return bool(heard)


async def test_the_rebuilds_swap_refreshes_the_document(namespace, pool) -> None:
    """``rebuild-stats --replace``: once the rebuilt tables are in, the stored
    document is theirs (the worker is stopped during a swap, so no one else would)."""
    from cards.adapters import rebuild as rebuilding

    async with pool.acquire() as conn:
        await public_stats.refresh(conn, NAMES, 1, public_stats.today())
        before = await public_stats.load(conn)
        assert json.loads(before.document)["cards_issued"] == 0
        await rebuilding.create_statistics_schema(conn, rebuilding.SHADOW)
        await conn.execute(
            "INSERT INTO card_view (card_number, issuer, birth_year, valid_from, community, "
            "valid_until, children, municipality, region, version) VALUES ('R-1', "
            "'3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14', 1970, '2024-01-02', false, "
            "'2099-01-01', 1, 'kajaani', 'kainuu', 1)")
        await conn.execute("SET search_path TO public")
    await rebuilding.replace_live(namespace.settings, region_names=NAMES, threshold=1)
    after = await public_stats.load(pool)
    document = json.loads(after.document)
    assert (document["cards_issued"], document["active_cards"]) == (1, 1)
    assert after.etag != before.etag
    # issued in 2024: in January 2024's figures, not in last month's breakdowns
    assert {r["month"]: r["cards_issued"] for r in document["by_month"]} == {"2024-01": 1}
    assert {r["region"]: r["active_cards"] for r in document["by_region"]} == {
        "etela-karjala": 0, "kainuu": 1}
