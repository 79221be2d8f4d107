"""Rebuild every statistics read model from scratch, from the sources of truth.

- the cards service's own events: read from its event store (the notification
  log, in order, in large keyset pages), decoded and translated to contracts
  exactly as the relay does;
- the venues' TicketRegistered/TicketCancelled: read from the venues stream on
  NATS from its first message (an ordered consumer: nothing is acked or kept).

Each contract is folded with the live consumers' own definition
(``statistics_fold``) into rows held in memory (``Accumulator``); then each table
is written once, with COPY, into a separate schema (``stats_rebuild``), with the
same once-only record (``processed_events``) the live consumers keep. So a
rebuild can run beside the live worker and be compared with it. ``replace`` then
swaps the rebuilt tables in (stop the cards worker first, so nothing is applied
during the swap).

Memory: every statistics row is held until the end (about 0.5 kB a row; the
national history is some 0.5 million rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from eventsourcing.persistence import StoredEvent
from pydantic import ValidationError

from kaiku_shared.contracts import IntegrationEvent, contract_for, event_id_for
from kaiku_shared.contracts.base import UnknownContract
from kaiku_shared.eventstore import MetaMapper, events_table
from kaiku_shared.settings import KaikuSettings

from . import statistics
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


class Accumulator:
    """Every statistics row in memory: the fold of the whole history so far.

    Rows are kept as tuples in the table's column order (a third of a dict's
    size); a change to an existing row goes through the fold as a dict."""

    def __init__(self) -> None:
        self.rows: dict[Table, dict[Any, tuple]] = {table: {} for table in TABLES}

    def apply(self, changes: Iterable[Upsert]) -> None:
        for change in changes:
            table = change.table
            rows = self.rows[table]
            key = change.key
            current = rows.get(key)
            if current is None:
                row = change.apply(None)
            else:
                row = change.apply(dict(zip(table.columns, current, strict=True)))
                if row is None:
                    continue
            rows[key] = tuple([row[c] for c in table.columns])

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
    stored = StoredEvent(originator_id=row["originator_id"],
                         originator_version=row["originator_version"],
                         topic=row["topic"], state=bytes(row["state"]))
    domain_event, meta = mapper.decode(stored)
    return translate(domain_event, {
        "event_id": event_id_for("cards", row["notification_id"]),
        "occurred_at": domain_event.timestamp,
        "aggregate_id": domain_event.originator_id,
        "aggregate_version": domain_event.originator_version,
        "correlation_id": meta.get("correlation_id"),
        "causation_id": meta.get("causation_id"),
        "traceparent": meta.get("traceparent"),
    })


async def card_contract_pages(conn: asyncpg.Connection, mapper: MetaMapper,
                              application_name: str, page: int = PAGE
                              ) -> AsyncIterator[tuple[int, list[IntegrationEvent]]]:
    """(stored events read, their contracts as the relay would publish them), a page
    at a time, in notification order."""
    async for rows in _pages(conn, events_table(application_name), page):
        contracts = []
        for row in rows:
            contract = _contract(row, mapper)
            if contract is not None:
                contracts.append(contract)
        yield len(rows), contracts


async def venue_contracts(settings: KaikuSettings) -> AsyncIterator[IntegrationEvent]:
    """Every ticket fact in the venues stream, from its first message."""
    import nats
    from nats.js.api import DeliverPolicy
    from nats.js.errors import NotFoundError

    nc = await nats.connect(settings.nats_servers, name="cards-rebuild",
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
        wanted = set(statistics.USAGE_HANDLERS)
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


async def prepare_shadow(conn: asyncpg.Connection) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {SHADOW} CASCADE")
    await conn.execute(f"CREATE SCHEMA {SHADOW}")
    await conn.execute(f"SET search_path TO {SHADOW}")
    for statement in statistics.SCHEMA:
        await conn.execute(statement)
    await conn.execute(
        "CREATE TABLE processed_events (consumer text NOT NULL, event_id uuid NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id))")


async def write_shadow(conn: asyncpg.Connection, folded: Accumulator,
                       applied: Iterable[Applied] = ()) -> dict[str, int]:
    """Write every folded row and the once-only records into the (empty) shadow
    tables, one COPY a table, in one transaction; the rows written per table."""
    written = {}
    async with conn.transaction():
        for table in TABLES:
            records = folded.records(table)
            written[table.name] = len(records)
            await conn.copy_records_to_table(table.name, schema_name=SHADOW,
                                             columns=table.columns, records=records)
        for record in applied:
            await conn.copy_records_to_table(
                "processed_events", schema_name=SHADOW, columns=("consumer", "event_id"),
                records=((record.consumer, event_id) for event_id in record.ids))
        await conn.execute(f"ANALYZE {', '.join(f'{SHADOW}.{t.name}' for t in TABLES)}")
    return written


class Applied:
    """The once-only record of one consumer: what the live consumer would have
    applied, each event id once (a republished venues message comes twice)."""

    def __init__(self, consumer: str, handled: Iterable[type], *, unique_ids: bool) -> None:
        self.consumer = consumer
        self.handled = set(handled)
        self.unique_ids = unique_ids  # cards: event ids derive from notification ids
        self.ids: list[UUID] = []
        self.seen: set[UUID] = set()

    def first_time(self, event: IntegrationEvent) -> bool:
        if type(event) not in self.handled:
            return False
        if not self.unique_ids:
            if event.event_id in self.seen:
                return False
            self.seen.add(event.event_id)
        self.ids.append(event.event_id)
        return True


async def rebuild(settings: KaikuSettings, mapper: MetaMapper, application_name: str, *,
                  progress: Progress | None = None, include_venues: bool = True,
                  page: int = PAGE) -> RebuildCounts:
    """Rebuild into the shadow schema; the live tables are untouched."""
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    reader = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        counts = RebuildCounts()
        folded = Accumulator()
        cards = Applied(statistics.STATISTICS_CONSUMER, statistics.CARD_HANDLERS,
                        unique_ids=True)
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            async for read, contracts in card_contract_pages(reader, mapper, application_name,
                                                             page):
                counts.stored_events += read
                handled = 0
                for contract in contracts:
                    if cards.first_time(contract):
                        folded.apply(FOLDS[type(contract)](contract))
                        handled += 1
                counts.cards_events += handled
                if progress:
                    progress(cards.consumer, handled)
        usage = Applied(statistics.USAGE_CONSUMER, statistics.USAGE_HANDLERS,
                        unique_ids=False)
        if include_venues:
            handled = 0
            async for contract in venue_contracts(settings):
                if usage.first_time(contract):
                    folded.apply(FOLDS[type(contract)](contract))
                    handled += 1
                    if progress and handled % 1000 == 0:
                        progress(usage.consumer, 1000)
            counts.venues_events = handled
            if progress and handled % 1000:
                progress(usage.consumer, handled % 1000)
        await prepare_shadow(conn)
        counts.rows = await write_shadow(conn, folded, [cards, usage])
        return counts
    finally:
        await conn.close()
        await reader.close()


async def replace_live(settings: KaikuSettings) -> None:
    """Swap the rebuilt tables in. Stop the cards worker first."""
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        async with conn.transaction():
            for table in statistics.READ_MODEL_TABLES:
                await conn.execute(f"DROP TABLE IF EXISTS public.{table}")
                await conn.execute(f"ALTER TABLE {SHADOW}.{table} SET SCHEMA public")
            consumers = [statistics.STATISTICS_CONSUMER, statistics.USAGE_CONSUMER]
            await conn.execute("DELETE FROM public.processed_events "
                               "WHERE consumer = ANY($1::text[])", consumers)
            await conn.execute("INSERT INTO public.processed_events "
                               f"SELECT * FROM {SHADOW}.processed_events")
            await conn.execute(f"DROP SCHEMA {SHADOW} CASCADE")
    finally:
        await conn.close()


async def snapshot(conn: asyncpg.Connection, period: statistics.Period, threshold: int
                   ) -> dict[str, Any]:
    """Every published figure, for comparing the live and the rebuilt read models."""
    result: dict[str, Any] = {"national": (await statistics.figures(conn, period))[None]}
    for dimension in statistics.DIMENSIONS:
        result[dimension] = await statistics.breakdown(conn, period, dimension, region=None,
                                                       threshold=threshold)
    result["age_groups"] = await statistics.age_groups(conn, period, region=None,
                                                       threshold=threshold)
    result["wellbeing"] = await statistics.wellbeing(conn, period, region=None,
                                                     threshold=threshold)
    return result


async def compare(settings: KaikuSettings, period: statistics.Period, threshold: int
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
