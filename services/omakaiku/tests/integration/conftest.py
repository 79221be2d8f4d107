"""A database of a test module's own on the shared server, dropped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from kaiku_shared.db import INFRASTRUCTURE, apply_schema, create_pool, ensure_database
from omakaiku.adapters.schema import SCHEMA


@pytest.fixture(scope="session")
def own_database(namespace):
    """``own_database(service)``: an async context manager giving its pool."""
    return lambda service: _own_database(namespace, service)


@contextlib.asynccontextmanager
async def _own_database(namespace, service: str) -> AsyncIterator[asyncpg.Pool]:
    """``service``'s database with omakaiku's tables and the shared ones."""
    await ensure_database(namespace.settings, service)
    pool = await create_pool(namespace.settings, service, size=10)
    try:
        await apply_schema(pool, INFRASTRUCTURE, SCHEMA)
        yield pool
    finally:
        await pool.close()
        conn = await asyncpg.connect(namespace.settings.maintenance_database_url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS '
                               f'"{namespace.settings.database_name(service)}" WITH (FORCE)')
        finally:
            await conn.close()
