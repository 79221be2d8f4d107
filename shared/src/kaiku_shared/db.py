"""asyncpg helpers: each service's own database and the infrastructure tables.

The infrastructure tables live beside the service's read models in its own
database: the consumer's applied-event ids (idempotency), the relay's position,
and the HTTP idempotency keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import eventsourcing.persistence as event_store
import psycopg

from .settings import KaikuSettings

# The service's own database unreachable, restarting, out of connections, or a
# connection lost mid-operation: the request or message is fine, the database
# is not, now. An api answers 503 (http.py); a consumer holds its message.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, a unix socket gone, and a pool's TimeoutError
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed"
    # A connection broken mid-operation as the server shuts down ("cannot switch
    # to state …; another operation is in progress").
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    psycopg.OperationalError,
    psycopg.InterfaceError,
    event_store.OperationalError,
    event_store.InterfaceError,
    event_store.ConnectionUnavailableError,
)



def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` is an outage of the database, not a fault of the work.

    psycopg reports a statement that failed inside a pipeline (eventsourcing
    saves in one) as ``PipelineAborted`` — an ``OperationalError`` by class,
    though the connection is fine and the cause is the statement. Which of the
    two errors surfaces depends on timing, so it is told apart here, along the
    chain of causes eventsourcing wraps it in.
    """
    if not isinstance(error, DATABASE_UNAVAILABLE):
        return False
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, psycopg.errors.PipelineAborted):
            return False
        cause = cause.__cause__
    return True


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


@dataclass(frozen=True)
class Migration:
    """One step of a database's schema, applied once, in version order."""

    version: int
    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Schema:
    """A component's tables as ordered migrations (a service's read models, or
    one of the shared infrastructure's). Version 1 is the baseline: it is
    written with IF NOT EXISTS so that a database made before migrations
    existed adopts it in place, keeping its rows."""

    component: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        versions = [m.version for m in self.migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"{self.component}: migrations must be numbered 1, 2, 3…; "
                             f"got {versions}")

    @property
    def latest(self) -> int:
        return len(self.migrations)


INFRASTRUCTURE = Schema("kaiku-infrastructure", (
    Migration(1, "processed events, relay position, idempotency keys",
              (INFRASTRUCTURE_SQL,)),
))

_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component   text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)"""

log = logging.getLogger("kaiku.db")


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


async def migrate(pool: asyncpg.Pool, *schemas: Schema) -> dict[str, list[int]]:
    """Apply what is not applied yet, in one transaction under an advisory lock:
    the first process of a service to start migrates, the others find it done.
    Returns the versions applied now, by component."""
    applied_now: dict[str, list[int]] = {}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kaiku-schema'))")
        await conn.execute(_VERSIONS_TABLE)
        for schema in (INFRASTRUCTURE, *schemas):
            applied_now[schema.component] = await _migrate_one(conn, schema)
    return {component: versions for component, versions in applied_now.items() if versions}


async def _migrate_one(conn: asyncpg.Connection, schema: Schema) -> list[int]:
    done = {row["version"] for row in await conn.fetch(
        "SELECT version FROM schema_migrations WHERE component = $1", schema.component)}
    if done and max(done) > schema.latest:
        raise SchemaTooNew(
            f"The {schema.component} tables are at version {max(done)}, newer than this "
            f"release knows ({schema.latest}); run the newer release, or restore a backup.")
    applied = []
    for migration in schema.migrations:
        if migration.version in done:
            continue
        for statement in migration.statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
            schema.component, migration.version, migration.name)
        applied.append(migration.version)
        log.info("schema migrated", extra={"component": schema.component,
                                            "version": migration.version})
    return applied


def baseline(component: str, statements: Sequence[str]) -> Schema:
    """A component whose only migration so far is its baseline."""
    return Schema(component, (Migration(1, "baseline", tuple(statements)),))


async def apply_schema(pool: asyncpg.Pool, *statements: str | Schema) -> None:
    """Migrate: each ``Schema`` by its versions; bare statements (a component not
    yet written as migrations) idempotently on every start, as before."""
    schemas = [s for s in statements if isinstance(s, Schema)]
    loose = [s for s in statements if not isinstance(s, Schema)]
    await migrate(pool, *schemas)
    if loose:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kaiku-schema'))")
            for statement in loose:
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


class OutageWatch:
    """How a background loop meets its database going away: one warning when it
    goes, one line when it is back, and a capped exponential pause between tries
    — not a stack trace every second for as long as the outage lasts. Any other
    failure is logged in full each time: that is a bug, not an outage."""

    def __init__(self, loop_name: str, *, floor: float = 0.5, ceiling: float = 5.0) -> None:
        self.loop_name = loop_name
        self.floor, self.ceiling = floor, ceiling
        self.failures = 0

    def failed(self, error: BaseException) -> float:
        """Record a failed round; the seconds to wait before the next one."""
        self.failures += 1
        if not is_database_unavailable(error):
            log.error("%s failed; retrying", self.loop_name, exc_info=error,
                      extra={"loop": self.loop_name, "failures": self.failures})
        elif self.failures == 1:
            log.warning("database unavailable; %s waits until it is back", self.loop_name,
                        extra={"loop": self.loop_name, "error": type(error).__name__})
        return min(self.ceiling, self.floor * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        if self.failures:
            log.info("%s resumed after %d failed rounds", self.loop_name, self.failures,
                     extra={"loop": self.loop_name, "failures": self.failures})
            self.failures = 0


async def purge_idempotency(db: asyncpg.Pool | asyncpg.Connection, principal: str) -> None:
    """Erasure: every stored request and answer of this principal goes."""
    await db.execute("DELETE FROM idempotency_keys WHERE principal = $1", principal)


async def expire_idempotency(db: asyncpg.Pool | asyncpg.Connection,
                             older_than_seconds: float) -> int:
    """Forget stored requests and answers older than the retention; how many."""
    status = await db.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        older_than_seconds)
    return int(status.split()[-1])


async def keep_expiring_idempotency(pool: asyncpg.Pool, older_than_seconds: float,
                                    every_seconds: float = 600.0) -> None:
    """An api's housekeeping, until cancelled; several replicas may run it."""
    watch = OutageWatch("idempotency expiry")
    while True:
        wait = min(every_seconds, older_than_seconds / 4)
        try:
            await expire_idempotency(pool, older_than_seconds)
            watch.succeeded()
        except Exception as error:  # noqa: BLE001 - OutageWatch logs it; tried again later
            wait = watch.failed(error)
        await asyncio.sleep(wait)
