"""Rebuild every statistics read model from scratch, from the sources of truth.

- the cards service's own events: read from its event store (the notification
  log, in order, in large keyset pages), decoded and translated to contracts
  exactly as the relay does;
- the venues' TicketRegistered/TicketCancelled, SwimmingVisitRegistered and
  LibraryFeeCovered: read from the venues stream on NATS from its first message
  (an ordered consumer: nothing is acked or kept).

Each contract is folded with the live consumers' own definition
(``statistics_fold``) into rows held in memory (``Accumulator``); then each table
is written once, with COPY, into a separate schema (``stats_rebuild``), with the
same once-only record (``processed_events``) the live consumers keep. So a
rebuild can run beside the live worker and be compared with it. ``replace`` then
swaps the rebuilt tables in (stop the cards worker first, so nothing is applied
during the swap).

Memory: every statistics row is held until the end, as a tuple whose repeating
values (places, days, card numbers) are shared between rows; the national
history is some 0.5 million rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from kaiku_shared.contracts import IntegrationEvent, contract_for
from kaiku_shared.contracts.base import UnknownContract
from kaiku_shared.eventstore import MetaMapper, events_table
from kaiku_shared.relay import contract_of_row
from kaiku_shared.settings import KaikuSettings

from . import projections, public_stats, queries
from . import schema as statistics_schema
from .statistics_fold import FOLDS, TABLES, Table, Upsert
from .translate import translate

SHADOW = "stats_rebuild"
PAGE = 10_000  # stored events per keyset page
Progress = Callable[[str, int], None]


@dataclass
class RebuildCounts:
    cards_events: int = 0  # cards contracts folded
    venues_events: int = 0  # venues contracts folded
    stored_events: int = 0  # rows read from the cards event store
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table
    # seconds spent reading+decoding+folding the cards events, the venues stream,
    # and writing
    seconds: dict[str, float] = field(default_factory=dict)


# Columns whose values repeat from row to row (a municipality, a day, an
# organisation, the card number of every use). The accumulator keeps one object
# per distinct value of these, not one per row: decoding makes a new object for
# every occurrence. Keyed by column name, so each pool holds one type.
SHARED_COLUMNS = frozenset({
    "card_number", "issuer", "valid_from", "valid_until", "municipality", "region",
    "status", "closed_on", "replaces", "venue_id", "offering_id", "venue_municipality",
    "starts_at", "venue_name", "occasion", "answered_on",
})


class Accumulator:
    """Every statistics row in memory: the fold of the whole history so far.

    Rows are kept as tuples in the table's column order (a third of a dict's
    size), their repeating values shared (``SHARED_COLUMNS``); a change to an
    existing row goes through the fold as a dict."""

    def __init__(self) -> None:
        self.rows: dict[Table, dict[Any, tuple]] = {table: {} for table in TABLES}
        self._pools: dict[str, dict[Any, Any]] = {name: {} for name in SHARED_COLUMNS}
        self._shared: dict[Table, tuple[tuple[int, dict[Any, Any]], ...]] = {
            table: tuple((index, self._pools[column])
                         for index, column in enumerate(table.columns)
                         if column in SHARED_COLUMNS)
            for table in TABLES}
        # A one-column key that is also shared (card_view's card number): the dict
        # key and the row hold the same object.
        self._key_pool = {table: self._pools.get(table.key[0]) if len(table.key) == 1
                          else None for table in TABLES}

    def _record(self, table: Table, row: dict[str, Any]) -> tuple:
        values = list(table.record(row))
        for index, pool in self._shared[table]:
            value = values[index]
            if value is not None:
                values[index] = pool.setdefault(value, value)
        return tuple(values)

    def apply(self, changes: Iterable[Upsert]) -> None:
        rows_of = self.rows
        for table, values, on_conflict in changes:
            rows = rows_of[table]
            key = table.key_of(values)
            key_pool = self._key_pool[table]
            if key_pool is not None:
                key = key_pool.setdefault(key, key)
            current = rows.get(key)
            if current is None:
                rows[key] = self._record(table, table.new_row(values))  # Upsert.apply(None)
                continue
            row = on_conflict(dict(zip(table.columns, current, strict=True)), values)
            if row is not None:
                rows[key] = self._record(table, row)

    def records(self, table: Table) -> Iterable[tuple]:
        return self.rows[table].values()

    def as_dicts(self, table: Table) -> dict[Any, dict[str, Any]]:
        """The rows as dicts (tests)."""
        return {key: dict(zip(table.columns, row, strict=True))
                for key, row in self.rows[table].items()}


async def _pages(conn: asyncpg.Connection, table: str, page: int
                 ) -> AsyncIterator[list[asyncpg.Record]]:
    """The event table in notification order, in keyset pages; the next page is
    on its way from the server while the caller decodes this one."""
    query = (f'SELECT notification_id, originator_id, originator_version, topic, state '
             f'FROM public."{table}" WHERE notification_id > $1 ORDER BY notification_id '
             f'LIMIT $2')
    pending = asyncio.ensure_future(conn.fetch(query, 0, page))
    try:
        while True:
            rows = await pending
            if not rows:
                return
            pending = asyncio.ensure_future(conn.fetch(query, rows[-1]["notification_id"],
                                                       page))
            await asyncio.sleep(0)  # let the query go out before decoding
            yield rows
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


def _contract(row: asyncpg.Record, mapper: MetaMapper) -> IntegrationEvent | None:
    return contract_of_row(row, mapper, translate, "cards")[0]


async def card_contract_pages(conn: asyncpg.Connection, mapper: MetaMapper,
                              application_name: str, page: int = PAGE
                              ) -> AsyncIterator[tuple[int, list[IntegrationEvent]]]:
    """(stored events read, their contracts as the relay would publish them), a page
    at a time, in notification order. Close it (``contextlib.aclosing``) when
    leaving early: a page may be on its way."""
    async with contextlib.aclosing(_pages(conn, events_table(application_name), page)) as pages:
        async for rows in pages:
            contracts = []
            for row in rows:
                contract = _contract(row, mapper)
                if contract is not None:
                    contracts.append(contract)
            yield len(rows), contracts


async def venue_contracts(settings: KaikuSettings) -> AsyncIterator[IntegrationEvent]:
    """Every ticket fact in the venues stream, from its first message."""
    from nats.js.api import DeliverPolicy
    from nats.js.errors import NotFoundError

    from kaiku_shared.tls import connect_nats

    nc = await connect_nats(settings, name="cards-rebuild",
                            inbox_prefix=settings.inbox_prefix("cards").encode())
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(settings.stream_name("venues"))
        except NotFoundError:
            return
        last = info.state.last_seq
        if not info.state.messages:
            return
        wanted = set(projections.VENUE_SOURCED_HANDLERS)
        sub = await js.subscribe(f"{settings.subject_root('venues')}.>",
                                 stream=settings.stream_name("venues"), ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.ALL)
        try:
            while True:
                msg = await sub.next_msg(timeout=10)
                event = _decode(msg.data, wanted)
                if event is not None:
                    yield event
                if msg.metadata.sequence.stream >= last:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def _decode(data: bytes, wanted: set) -> IntegrationEvent | None:
    """The contract, or None for what the live consumer ignores or dead-letters
    (not JSON, another type, an unknown version, an invalid body)."""
    try:
        raw = json.loads(data)
        contract = contract_for(raw.get("producer", "venues"), raw.get("event_type", ""),
                                int(raw.get("schema_version", 0)))
        if contract not in wanted:
            return None
        return contract.model_validate(raw)
    except (ValueError, TypeError, AttributeError, UnknownContract, ValidationError):
        return None


async def create_statistics_schema(conn: asyncpg.Connection, schema: str) -> None:
    """``schema`` afresh with every statistics table and the once-only record; the
    connection's search_path is left on it."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path TO {schema}")
    for statement in statistics_schema.statements():
        await conn.execute(statement)
    await conn.execute(
        "CREATE TABLE processed_events (consumer text NOT NULL, event_id uuid NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id))")


class ShadowWriter:
    """Writes the shadow schema, all in one transaction (a failed rebuild leaves
    the previous one as it was): the once-only records while the history is
    still being read (the server stores them while this process decodes), the
    folded rows at the end, one COPY a table.

    The shadow tables' primary keys and indexes (as ``schema.SCHEMA`` makes
    them) are dropped before the first COPY and built again after the last:
    building an index over loaded rows is much cheaper than keeping it up to
    date row by row."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.transaction = conn.transaction()
        self.keys: list[asyncpg.Record] = []
        self.indexes: list[asyncpg.Record] = []
        self.pending: asyncio.Future | None = None

    async def __aenter__(self) -> ShadowWriter:
        await self.transaction.start()
        try:
            await create_statistics_schema(self.conn, SHADOW)
            self.keys = await self.conn.fetch(
                "SELECT conrelid::regclass::text AS tbl, conname, "
                "pg_get_constraintdef(oid) AS def FROM pg_constraint "
                "WHERE connamespace = $1::regnamespace AND contype = 'p'", SHADOW)
            self.indexes = await self.conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
                "AND indexname <> ALL($2::text[])", SHADOW, [k["conname"] for k in self.keys])
            for key in self.keys:
                await self.conn.execute(
                    f'ALTER TABLE {key["tbl"]} DROP CONSTRAINT "{key["conname"]}"')
            for index in self.indexes:
                await self.conn.execute(f'DROP INDEX {SHADOW}."{index["indexname"]}"')
        except BaseException:
            await self.transaction.rollback()
            raise
        return self

    async def __aexit__(self, kind: object, error: object, trace: object) -> None:
        if self.pending is not None:
            if error is None:
                await self.pending
            else:
                self.pending.cancel()
                with contextlib.suppress(BaseException):
                    await self.pending
        if error is None:
            await self.transaction.commit()
        else:
            await self.transaction.rollback()

    async def processed(self, consumer: str, event_ids: list[UUID]) -> None:
        """Start storing these once-only records; returns once the previous ones are."""
        if self.pending is not None:
            await self.pending
        self.pending = None
        if event_ids:
            self.pending = asyncio.ensure_future(self.conn.copy_records_to_table(
                "processed_events", schema_name=SHADOW, columns=("consumer", "event_id"),
                records=[(consumer, event_id) for event_id in event_ids]))

    async def rows(self, folded: Accumulator) -> dict[str, int]:
        """Every folded row, then the keys, the indexes and the planner's statistics;
        the rows written per table."""
        if self.pending is not None:
            await self.pending
            self.pending = None
        written = {}
        for table in TABLES:
            records = folded.records(table)
            written[table.name] = len(records)
            await self.conn.copy_records_to_table(table.name, schema_name=SHADOW,
                                                  columns=table.columns, records=records)
        for key in self.keys:
            await self.conn.execute(
                f'ALTER TABLE {key["tbl"]} ADD CONSTRAINT "{key["conname"]}" {key["def"]}')
        for index in self.indexes:
            await self.conn.execute(index["indexdef"])
        await self.conn.execute(
            f"ANALYZE {', '.join(f'{SHADOW}.{t.name}' for t in TABLES)}")
        return written


class Applied:
    """The once-only record of one consumer: what the live consumer would have
    applied, each event id once (a republished venues message comes twice)."""

    def __init__(self, consumer: str, handled: Iterable[type], *, unique_ids: bool) -> None:
        self.consumer = consumer
        self.handled = set(handled)
        self.unique_ids = unique_ids  # cards: event ids derive from notification ids
        self.seen: set[UUID] = set()

    def first_time(self, event: IntegrationEvent) -> bool:
        if type(event) not in self.handled:
            return False
        if not self.unique_ids:
            if event.event_id in self.seen:
                return False
            self.seen.add(event.event_id)
        return True


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """The fold keeps millions of rows alive and makes no reference cycles, and the
    cyclic collector would walk the growing heap again and again (it doubled the
    decoding time). Reference counting still frees everything that is let go."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def rebuild(settings: KaikuSettings, mapper: MetaMapper, application_name: str, *,
                  progress: Progress | None = None, include_venues: bool = True,
                  page: int = PAGE) -> RebuildCounts:
    """Rebuild into the shadow schema; the live tables are untouched."""
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    reader = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        with _without_cyclic_gc():
            async with ShadowWriter(conn) as shadow:
                return await _rebuild(shadow, reader, settings, mapper, application_name,
                                      progress, include_venues, page)
    finally:
        await conn.close()
        await reader.close()


async def _rebuild(shadow: ShadowWriter, reader: asyncpg.Connection,
                   settings: KaikuSettings, mapper: MetaMapper, application_name: str,
                   progress: Progress | None, include_venues: bool, page: int
                   ) -> RebuildCounts:
    started = time.perf_counter()
    counts = RebuildCounts()
    folded = Accumulator()
    cards = Applied(projections.STATISTICS_CONSUMER, projections.CARD_HANDLERS,
                    unique_ids=True)
    pages = card_contract_pages(reader, mapper, application_name, page)
    async with reader.transaction(isolation="repeatable_read", readonly=True), \
            contextlib.aclosing(pages):
        async for read, contracts in pages:
            counts.stored_events += read
            applied = []
            for contract in contracts:
                if cards.first_time(contract):
                    folded.apply(FOLDS[type(contract)](contract))
                    applied.append(contract.event_id)
            await shadow.processed(cards.consumer, applied)
            counts.cards_events += len(applied)
            if progress:
                progress(cards.consumer, len(applied))
    counts.seconds["cards"] = time.perf_counter() - started
    if include_venues:
        started = time.perf_counter()
        counts.venues_events = await _fold_venues(shadow, folded, settings, progress, page)
        counts.seconds["venues"] = time.perf_counter() - started
    started = time.perf_counter()
    counts.rows = await shadow.rows(folded)
    counts.seconds["write"] = time.perf_counter() - started
    return counts


async def _fold_venues(shadow: ShadowWriter, folded: Accumulator, settings: KaikuSettings,
                       progress: Progress | None, page: int) -> int:
    """The venues stream, once, for every durable that reads it: each fact is
    folded once and recorded as applied by the durable that applies it live."""
    durables = [Applied(durable, projections.handlers_of(durable), unique_ids=False)
                for durable, source in projections.SOURCES.items() if source == "venues"]
    applied: dict[str, list[UUID]] = {durable.consumer: [] for durable in durables}
    total = 0

    async def record(consumer: str) -> None:
        nonlocal total
        await shadow.processed(consumer, applied[consumer])
        total += len(applied[consumer])
        if progress and applied[consumer]:
            progress(consumer, len(applied[consumer]))
        applied[consumer] = []

    async for contract in venue_contracts(settings):
        for durable in durables:
            if durable.first_time(contract):
                folded.apply(FOLDS[type(contract)](contract))
                applied[durable.consumer].append(contract.event_id)
                if len(applied[durable.consumer]) == page:
                    await record(durable.consumer)
    for durable in durables:
        await record(durable.consumer)
    return total


async def replace_live(settings: KaikuSettings, *,
                       region_names: Mapping[str, str] | None = None,
                       threshold: int | None = None) -> None:
    """Swap the rebuilt tables in (stop the cards worker first); then, given the
    network's regions and the threshold, refresh the public document from them."""
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        async with conn.transaction():
            for table in statistics_schema.READ_MODEL_TABLES:
                await conn.execute(f"DROP TABLE IF EXISTS public.{table}")
                await conn.execute(f"ALTER TABLE {SHADOW}.{table} SET SCHEMA public")
            consumers = list(projections.SOURCES)
            await conn.execute("DELETE FROM public.processed_events "
                               "WHERE consumer = ANY($1::text[])", consumers)
            await conn.execute("INSERT INTO public.processed_events "
                               f"SELECT * FROM {SHADOW}.processed_events")
            await conn.execute(f"DROP SCHEMA {SHADOW} CASCADE")
        if region_names is not None and threshold is not None:
            await public_stats.refresh(conn, region_names, threshold, public_stats.today())
    finally:
        await conn.close()


async def snapshot(conn: asyncpg.Connection, period: queries.Period, threshold: int
                   ) -> dict[str, Any]:
    """Every published figure, for comparing the live and the rebuilt read models."""
    result: dict[str, Any] = {"national": (await queries.figures(conn, period))[None]}
    for dimension in queries.DIMENSIONS:
        result[dimension] = await queries.breakdown(conn, period, dimension, region=None,
                                                    threshold=threshold)
    result["age_groups"] = await queries.age_groups(conn, period, region=None,
                                                    threshold=threshold)
    result["wellbeing"] = await queries.wellbeing(conn, period, region=None,
                                                  threshold=threshold)
    # The public statistics' own groupings (the rest of its figures are the above).
    result["venue_kind"] = await queries.venue_kind_figures(conn, period)
    result["genre"] = await queries.genre_figures(conn, period)
    return result


async def compare(settings: KaikuSettings, period: queries.Period, threshold: int
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(live, rebuilt) snapshots."""
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        live = await snapshot(conn, period, threshold)
        await conn.execute(f"SET search_path TO {SHADOW}")
        rebuilt = await snapshot(conn, period, threshold)
        return live, rebuilt
    finally:
        await conn.close()


__all__ = ["compare", "rebuild", "replace_live", "snapshot"]
