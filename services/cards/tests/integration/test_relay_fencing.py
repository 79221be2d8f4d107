"""The relay is fenced, on real Postgres and NATS (cards' relay as the example).

When the session that holds the active relay's advisory lock dies (here:
``pg_terminate_backend``, as a failover or a cut connection would), that relay
stops publishing at once (``RelayFenced``, so its supervisor restarts it as a
standby) and the waiting standby takes over within seconds. Nothing is lost or
published twice, and the stored position only ever moves forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import asyncpg
import pytest

from cards.adapters.translate import translate
from cards.application.app import CardsApplication
from cards.bootstrap import build_application
from kaiku_dev.testing import Namespace, eventually, unique_namespace
from kaiku_shared.db import apply_schema, create_pool, ensure_database
from kaiku_shared.eventstore import events_table
from kaiku_shared.relay import Relay, RelayFenced
from kaiku_shared.tls import connect_nats

TAKE_OVER_WITHIN = 5.0  # seconds, the "within a few seconds"


@pytest.fixture
def namespace(servers) -> Iterator[Namespace]:
    own = Namespace(unique_namespace("rf"), servers)
    yield own
    asyncio.run(own.drop())


async def relay_position(conn: asyncpg.Connection, ns: Namespace) -> int | None:
    with contextlib.suppress(asyncpg.UndefinedTableError):
        return await conn.fetchval("SELECT position FROM relay_position WHERE stream = $1",
                                   ns.settings.stream_name("cards"))
    return None


async def last_stored(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        f'SELECT max(notification_id) FROM "{events_table(CardsApplication.name)}"')


async def published_ids(ns: Namespace) -> list[str]:
    """Every message id on cards' stream, in stream order."""
    nc = await connect_nats(ns.settings)
    try:
        js = nc.jetstream()
        info = await js.stream_info(ns.settings.stream_name("cards"))
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(ns.settings.stream_name("cards"), seq)
            ids.append(message.headers["Nats-Msg-Id"])
        return ids
    finally:
        await nc.close()


async def cards_with_its_network(ns: Namespace) -> tuple[CardsApplication, asyncpg.Connection]:
    """A fresh cards database whose network is recorded and announced (so there
    is something to publish); its application and a connection to it."""
    await ensure_database(ns.settings, "cards")
    pool = await create_pool(ns.settings, "cards", size=2)
    await apply_schema(pool)
    await pool.close()
    application = await asyncio.to_thread(build_application, ns.settings)
    await asyncio.to_thread(application.ensure_network)
    return application, await asyncpg.connect(ns.settings.service_database_url("cards"))


def new_relay(ns: Namespace, application: CardsApplication) -> Relay:
    return Relay(ns.settings, "cards", application.name, application.mapper, translate)


async def kill_lock_session(conn: asyncpg.Connection) -> int:
    """Terminate the session holding an advisory lock in this database."""
    pid = await conn.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    assert pid is not None, "no relay holds the lock"
    assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    return pid


async def test_a_relay_that_loses_its_lock_stops_and_the_standby_takes_over(namespace):
    ns = namespace
    application, conn = await cards_with_its_network(ns)
    first, standby = new_relay(ns, application), new_relay(ns, application)
    first_task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.active.wait(), timeout=10)
    standby_task = asyncio.create_task(standby.run())
    try:
        await eventually(lambda: _caught_up(conn, ns), message="the first relay published")
        await asyncio.sleep(1)  # the standby has tried the lock, and waits
        assert first.active.is_set() and not standby.active.is_set()
        before = await relay_position(conn, ns)

        await kill_lock_session(conn)
        killed_at = time.monotonic()
        with pytest.raises(RelayFenced):
            await asyncio.wait_for(first_task, timeout=TAKE_OVER_WITHIN)
        await asyncio.wait_for(standby.active.wait(), timeout=TAKE_OVER_WITHIN)
        took = time.monotonic() - killed_at
        print(f"\nstandby active {took:.2f} s after the lock session was killed")

        # New events after the failover are published by the standby alone.
        await asyncio.to_thread(application.set_region, "fencing-test",
                                names={"fi": "Aitaus", "sv": "Stängsel", "en": "Fencing"},
                                country="fi")
        await eventually(lambda: _caught_up(conn, ns), message="the standby published")
        assert await relay_position(conn, ns) > before
        ids = await published_ids(ns)
        assert len(ids) == len(set(ids)), "an event was published twice"
        assert len(ids) == 2  # the whole network once, then the one region
    finally:
        for relay, task in ((first, first_task), (standby, standby_task)):
            relay.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)
        await conn.close()


async def test_the_stored_position_never_moves_backwards(namespace):
    """A relay that publishes again from an older position (a former active one,
    say) republishes what JetStream then deduplicates, and leaves the stored
    position where it was."""
    ns = namespace
    application, conn = await cards_with_its_network(ns)
    relay = new_relay(ns, application)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _caught_up(conn, ns), message="the relay published")
        ahead = await last_stored(conn) + 1000
        await conn.execute("UPDATE relay_position SET position = $2 WHERE stream = $1",
                           ns.settings.stream_name("cards"), ahead)
        relay.stop()
        await asyncio.wait_for(task, timeout=10)
        # A relay starting from position 0 of its own (as a stale one would).
        stale = new_relay(ns, application)
        lock = await asyncpg.connect(ns.settings.service_database_url("cards"))
        assert await lock.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", stale.lock_key)
        nc = await connect_nats(ns.settings)
        try:
            assert await stale._publish_batch(nc.jetstream(), conn, lock, 0) is not None
        finally:
            await nc.close()
            await lock.close()
        assert await relay_position(conn, ns) == ahead
        ids = await published_ids(ns)
        assert len(ids) == len(set(ids)) == 1  # republished, and deduplicated
    finally:
        relay.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
        await conn.close()


async def _caught_up(conn: asyncpg.Connection, ns: Namespace) -> bool:
    position = await relay_position(conn, ns)
    return position is not None and position == await last_stored(conn)
