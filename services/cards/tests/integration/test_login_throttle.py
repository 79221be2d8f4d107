"""The sign-in throttle on a real Postgres: parallel reservations of one user and
address never pass the limit, a success starts the pair afresh, other addresses
are untouched, and the table appears on a database made before it existed."""

from __future__ import annotations

import asyncio

import pytest

from cards.adapters.login_throttle import (
    LoginThrottle,
    ThrottlePolicy,
    TooManyAttempts,
    username_hash,
)
from cards.adapters.schema import LOGIN_THROTTLE
from kaiku_dev.testing import Namespace, unique_namespace
from kaiku_shared.db import apply_schema, create_pool, ensure_database, migrate

POLICY = ThrottlePolicy(limit=5, lock_seconds=60, max_lock_seconds=3600, forget_seconds=86400)
# The table as the api created it before the throttle moved to its adapter.
OLD_SCHEMA = ("""CREATE TABLE IF NOT EXISTS login_failures (
                   username_hash text NOT NULL,
                   failed_at timestamptz NOT NULL DEFAULT now())""",)


@pytest.fixture(scope="module")
def namespace(servers):
    own = Namespace(unique_namespace("lt"), servers)
    yield own
    asyncio.run(own.drop())


@pytest.fixture
async def pool(namespace):
    await ensure_database(namespace.settings, "cards")
    pool = await create_pool(namespace.settings, "cards", size=10)
    await apply_schema(pool, *OLD_SCHEMA)  # an existing database of the old kind
    await migrate(pool, LOGIN_THROTTLE)
    await migrate(pool, LOGIN_THROTTLE)  # and every later start
    try:
        yield pool
    finally:
        await pool.close()


async def outcomes(throttle: LoginThrottle, username: str, address: str, n: int) -> list:
    async def one():
        try:
            await throttle.reserve(username, address)
            return "reserved"
        except TooManyAttempts as error:
            return error.retry_after

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_twenty_parallel_reservations_let_exactly_the_limit_through(pool) -> None:
    throttle = LoginThrottle(pool, POLICY)
    results = await outcomes(throttle, "rinnakkain.1", "192.0.2.10", 20)
    assert results.count("reserved") == 5
    assert all(r in (59, 60) for r in results if r != "reserved"), results
    # another address of the same user, and another user from the same address
    assert await outcomes(throttle, "rinnakkain.1", "192.0.2.11", 1) == ["reserved"]
    assert await outcomes(throttle, "rinnakkain.2", "192.0.2.10", 1) == ["reserved"]


async def test_a_success_starts_the_pair_afresh_and_only_that_pair(pool) -> None:
    throttle = LoginThrottle(pool, POLICY)
    await outcomes(throttle, "onnistuja", "192.0.2.20", 4)
    await outcomes(throttle, "onnistuja", "192.0.2.21", 5)
    await throttle.reset("Onnistuja ", "192.0.2.20")
    afresh = await outcomes(throttle, "onnistuja", "192.0.2.20", 6)
    assert afresh.count("reserved") == 5  # in whichever order they got the row
    assert [r for r in afresh if r != "reserved"][0] in (59, 60)
    locked = await outcomes(throttle, "onnistuja", "192.0.2.21", 1)
    assert locked != ["reserved"]


async def test_only_hashes_are_stored(pool) -> None:
    throttle = LoginThrottle(pool, POLICY)
    await throttle.reserve("tunnistettava.nimi", "198.51.100.77")
    async with pool.acquire() as conn:
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM login_throttle t")
        columns = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'login_throttle'")
    assert "tunnistettava" not in dump and "198.51.100.77" not in dump
    assert {c["column_name"]: c["data_type"] for c in columns}["username_hash"] == "bytea"


async def test_long_quiet_pairs_are_dropped_when_someone_signs_in(pool) -> None:
    throttle = LoginThrottle(pool, POLICY)
    await throttle.reserve("unohdettava", "192.0.2.30")
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE login_throttle SET last_attempt_at = now() - interval '2 days' "
            "WHERE username_hash = $1", username_hash("unohdettava"))
    await throttle.reset("joku.muu", "192.0.2.31")
    async with pool.acquire() as conn:
        left = await conn.fetchval("SELECT count(*) FROM login_throttle WHERE username_hash = $1",
                                   username_hash("unohdettava"))
    assert left == 0


async def test_the_old_table_may_stay(pool) -> None:
    async with pool.acquire() as conn:
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"login_throttle", "login_failures"} <= tables
