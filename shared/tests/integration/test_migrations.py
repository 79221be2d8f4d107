"""Ordered migrations on a real Postgres: applied once, in order, by one process
at a time; a database made before migrations existed keeps its rows."""

from __future__ import annotations

import asyncio

import pytest

from kaiku_shared.db import (
    Migration,
    Schema,
    SchemaTooNew,
    baseline,
    create_pool,
    ensure_database,
    migrate,
)
from kaiku_dev.testing import Namespace, unique_namespace

BASELINE = ("CREATE TABLE IF NOT EXISTS shelf (code text PRIMARY KEY)",)
V2 = Migration(2, "shelves have a label",
               ("ALTER TABLE shelf ADD COLUMN label text NOT NULL DEFAULT ''",))


@pytest.fixture
async def pool(servers):
    ns = Namespace(unique_namespace("mg"), servers)
    await ensure_database(ns.settings, "venues")
    pool = await create_pool(ns.settings, "venues", size=6)
    yield pool
    await pool.close()
    await ns.drop()


async def versions(pool, component: str) -> list[int]:
    rows = await pool.fetch("SELECT version FROM schema_migrations WHERE component = $1 "
                            "ORDER BY version", component)
    return [row["version"] for row in rows]


async def test_an_existing_database_adopts_the_baseline_and_keeps_its_rows(pool) -> None:
    # A database of the release before migrations: the table and a row, no versions.
    await pool.execute(BASELINE[0])
    await pool.execute("INSERT INTO shelf (code) VALUES ('kept')")
    applied = await migrate(pool, Schema("shop", (*baseline("shop", BASELINE).migrations, V2)))
    assert applied["shop"] == [1, 2]
    assert await pool.fetch("SELECT code, label FROM shelf") == [("kept", "")]
    assert await versions(pool, "shop") == [1, 2]


async def test_each_migration_runs_once_even_when_replicas_start_together(pool) -> None:
    schema = Schema("shop", (*baseline("shop", BASELINE).migrations, V2))
    results = await asyncio.gather(*(migrate(pool, schema) for _ in range(5)))
    # V2's ALTER would fail on a second run: exactly one process applied it.
    assert sorted(r.get("shop", []) for r in results) == [[], [], [], [], [1, 2]]
    assert await migrate(pool, schema) == {}


async def test_a_database_newer_than_the_code_refuses_to_start(pool) -> None:
    await migrate(pool, Schema("shop", (*baseline("shop", BASELINE).migrations, V2)))
    with pytest.raises(SchemaTooNew, match="version 2, newer than this release knows"):
        await migrate(pool, baseline("shop", BASELINE))


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    with pytest.raises(ValueError, match="numbered 1, 2, 3"):
        Schema("shop", (V2,))
