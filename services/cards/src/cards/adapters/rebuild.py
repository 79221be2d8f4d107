"""Rebuild every statistics read model from scratch, from the sources of truth.

- the cards service's own events: read from its event store (the notification
  log, in order), translated to contracts exactly as the relay does;
- the venues' TicketRegistered/TicketCancelled: read from the venues stream on
  NATS from its first message (an ordered consumer: nothing is acked or kept).

Each contract goes through the same handler the live consumer uses, into a
separate schema (``stats_rebuild``), so a rebuild can run beside the live
worker and be compared with it. ``replace`` then swaps the rebuilt tables in
(stop the cards worker first, so nothing is applied during the swap).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from eventsourcing.persistence import StoredEvent
from pydantic import ValidationError

from kaiku_shared.contracts import IntegrationEvent, contract_for, event_id_for
from kaiku_shared.contracts.base import UnknownContract
from kaiku_shared.eventstore import MetaMapper, events_table
from kaiku_shared.settings import KaikuSettings

from . import statistics
from .translate import translate

SHADOW = "stats_rebuild"
Progress = Callable[[str, int], None]


@dataclass
class RebuildCounts:
    cards_events: int = 0
    venues_events: int = 0


async def card_contracts(conn: asyncpg.Connection, mapper: MetaMapper, application_name: str,
                         batch: int = 2000) -> AsyncIterator[IntegrationEvent]:
    """The cards service's contracts, as the relay would publish them, in order."""
    table = events_table(application_name)
    position = 0
    while True:
        rows = await conn.fetch(
            f'SELECT notification_id, originator_id, originator_version, topic, state '
            f'FROM public."{table}" WHERE notification_id > $1 ORDER BY notification_id '
            f'LIMIT $2', position, batch)
        if not rows:
            return
        for row in rows:
            stored = StoredEvent(originator_id=row["originator_id"],
                                 originator_version=row["originator_version"],
                                 topic=row["topic"], state=bytes(row["state"]))
            domain_event, meta = mapper.decode(stored)
            contract = translate(domain_event, {
                "event_id": event_id_for("cards", row["notification_id"]),
                "occurred_at": domain_event.timestamp,
                "aggregate_id": domain_event.originator_id,
                "aggregate_version": domain_event.originator_version,
                "correlation_id": meta.get("correlation_id"),
                "causation_id": meta.get("causation_id"),
                "traceparent": meta.get("traceparent"),
            })
            if contract is not None:
                yield contract
        position = rows[-1]["notification_id"]


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


async def _apply(conn: asyncpg.Connection, consumer: str, handlers: dict,
                 events: AsyncIterator[IntegrationEvent], progress: Progress | None,
                 batch: int = 1000) -> int:
    count = 0
    pending: list[IntegrationEvent] = []

    async def flush() -> None:
        async with conn.transaction():
            # The same once-only record the live consumer keeps.
            fresh = set(await conn.fetchval(
                "WITH ins AS (INSERT INTO processed_events(consumer, event_id) "
                "SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id) "
                "SELECT coalesce(array_agg(event_id), '{}') FROM ins",
                consumer, [e.event_id for e in pending]))
            for event in pending:
                if event.event_id in fresh:
                    await handlers[type(event)](event, conn)
        if progress:
            progress(consumer, len(pending))
        pending.clear()

    async for event in events:
        if type(event) not in handlers:
            continue
        pending.append(event)
        count += 1
        if len(pending) >= batch:
            await flush()
    if pending:
        await flush()
    return count


async def rebuild(settings: KaikuSettings, mapper: MetaMapper, application_name: str, *,
                  progress: Progress | None = None, include_venues: bool = True
                  ) -> RebuildCounts:
    """Rebuild into the shadow schema; the live tables are untouched."""
    conn = await asyncpg.connect(settings.service_database_url("cards"))
    reader = await asyncpg.connect(settings.service_database_url("cards"))
    try:
        await prepare_shadow(conn)
        counts = RebuildCounts()
        counts.cards_events = await _apply(
            conn, statistics.STATISTICS_CONSUMER, statistics.CARD_HANDLERS,
            card_contracts(reader, mapper, application_name), progress)
        if include_venues:
            counts.venues_events = await _apply(
                conn, statistics.USAGE_CONSUMER, statistics.USAGE_HANDLERS,
                venue_contracts(settings), progress)
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
