"""asyncpg helpers: each service's own database and the infrastructure tables.

The infrastructure tables live beside the service's read models in its own
database: the consumer's applied-event ids (idempotency), the relay's position,
and the HTTP idempotency keys.
"""

from __future__ import annotations

import asyncio

import asyncpg

from .settings import KaikuSettings

INFRASTRUCTURE_SQL = """
CREATE TABLE IF NOT EXISTS processed_events (
    consumer    text        NOT NULL,
    event_id    uuid        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE IF NOT EXISTS relay_position (
    stream      text   PRIMARY KEY,
    position    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal     text        NOT NULL,
    key           text        NOT NULL,
    method        text        NOT NULL,
    path          text        NOT NULL,
    request_hash  text        NOT NULL,
    status_code   integer,
    response_body bytea,
    content_type  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
"""


async def ensure_database(settings: KaikuSettings, service: str) -> None:
    """Create ``service``'s database on the server if it is not there yet."""
    name = settings.database_name(service)
    conn = await _connect_with_retry(settings.maintenance_database_url())
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # another process of the service created it first
    finally:
        await conn.close()


async def create_pool(settings: KaikuSettings, service: str, *, size: int = 8) -> asyncpg.Pool:
    await _connect_with_retry(settings.service_database_url(service), close=True)
    pool = await asyncpg.create_pool(
        settings.service_database_url(service), min_size=1, max_size=size
    )
    assert pool is not None
    return pool


async def apply_schema(pool: asyncpg.Pool, *statements: str) -> None:
    """Create tables idempotently; an advisory lock keeps replicas from racing."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kaiku-schema'))")
        await conn.execute(INFRASTRUCTURE_SQL)
        for statement in statements:
            await conn.execute(statement)


async def _connect_with_retry(
    url: str, *, attempts: int = 50, close: bool = False
) -> asyncpg.Connection:
    # The server may still be starting (make run, compose, a restart).
    for attempt in range(attempts):
        try:
            conn = await asyncpg.connect(url, timeout=5)
            if close:
                await conn.close()
            return conn
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")
