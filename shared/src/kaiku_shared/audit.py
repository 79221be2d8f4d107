"""Reconcile a service's event store, its stream, and what its consumers applied.

Three checks, each by id, not only by count:

1. outbox → stream: every stored event the relay publishes (up to the relay's
   recorded position) is in the service's stream exactly once, and the stream
   holds nothing the event store does not explain;
2. relay lag: publishable events after the recorded position (not yet sent);
3. stream → each consumer: every message a consumer handles is either applied
   (its event id in ``processed_events``) or in the dead-letter stream, and
   nothing was applied that the stream does not hold.

Run it when the system is quiet (after a fault test, before a report): in-flight
messages show up as "pending" rather than as differences.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import nats
from eventsourcing.persistence import StoredEvent
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from .consumer import Consumer
from .contracts import event_id_for
from .eventstore import events_table
from .settings import KaikuSettings
from .tls import connect_nats


@dataclass
class Check:
    name: str
    expected: int
    actual: int
    differences: list[str] = field(default_factory=list)
    pending: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class AuditReport:
    service: str
    checks: list[Check]

    @property
    def differences(self) -> int:
        return sum(len(c.differences) for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "differences": self.differences,
                "checks": [{"name": c.name, "expected": c.expected, "actual": c.actual,
                            "pending": c.pending, "differences": c.differences[:50]}
                           for c in self.checks]}


async def stream_bodies(js: Any, settings: KaikuSettings, service: str
                        ) -> list[tuple[str, bytes]]:
    """(subject, body) of every message in a stream, oldest first.

    Operator replays of dead letters (header Kaiku-Replayed-From) are left out:
    they repeat an event id on purpose.
    """
    stream = settings.stream_name(service)
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    subject = f"{settings.namespace}.{service}.>"
    sub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, inactive_threshold=60, ack_policy=AckPolicy.NONE))
    out: list[tuple[str, bytes]] = []
    remaining = info.state.messages
    try:
        while remaining > 0:
            try:
                batch = await sub.fetch(min(remaining, 1000), timeout=2)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            out.extend((m.subject, m.data) for m in batch
                       if not (m.headers or {}).get("Kaiku-Replayed-From"))
            remaining -= len(batch)
    finally:
        await sub.unsubscribe()
    return out


def _event_id(body: bytes) -> tuple[str | None, str | None, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    return data.get("event_id"), data.get("event_type"), data.get("schema_version")


async def audit_service(
    settings: KaikuSettings,
    service: str,
    application: Any,
    translate: Callable[[Any, dict[str, Any]], Any],
    consumers: list[Consumer],
) -> AuditReport:
    db_url = settings.service_database_url(service)
    conn = await asyncpg.connect(db_url)
    nc = await connect_nats(settings)
    js = nc.jetstream()
    checks: list[Check] = []
    try:
        position = await conn.fetchval(
            "SELECT position FROM relay_position WHERE stream = $1",
            settings.stream_name(service)) or 0
        rows = await conn.fetch(
            f'SELECT notification_id, originator_id, originator_version, topic, state '
            f'FROM "{events_table(application.name)}" ORDER BY notification_id')
        published: set[str] = set()
        unsent = 0
        for row in rows:
            event, _ = application.mapper.decode(StoredEvent(
                originator_id=row["originator_id"], originator_version=row["originator_version"],
                topic=row["topic"], state=bytes(row["state"])))
            envelope = {"event_id": event_id_for(service, row["notification_id"]),
                        "occurred_at": event.timestamp, "aggregate_id": event.originator_id,
                        "aggregate_version": event.originator_version}
            if translate(event, envelope) is None:
                continue
            if row["notification_id"] > position:
                unsent += 1
            else:
                published.add(str(envelope["event_id"]))

        in_stream = Counter(
            event_id for _, body in await stream_bodies(js, settings, service)
            for event_id, _, _ in [_event_id(body)] if event_id)
        outbox = Check(f"{service} event store → stream {settings.stream_name(service)}",
                       expected=len(published), actual=sum(in_stream.values()), pending=unsent)
        outbox.differences += [f"missing from stream: {i}" for i in sorted(published - set(in_stream))]
        outbox.differences += [f"published {n} times: {i}" for i, n in in_stream.items() if n > 1]
        outbox.differences += [f"in stream but not in the event store: {i}"
                               for i in sorted(set(in_stream) - published)]
        checks.append(outbox)

        dead = await _dead_lettered(js, settings, service)
        for consumer in consumers:
            checks.append(await _audit_consumer(conn, js, settings, consumer, dead))
    finally:
        await conn.close()
        await nc.close()
    return AuditReport(service, checks)


async def _dead_lettered(js: Any, settings: KaikuSettings, service: str
                         ) -> dict[str, set[str]]:
    letters: dict[str, set[str]] = {}
    for subject, body in await stream_bodies(js, settings, "dlq"):
        # <ns>.dlq.<service>.<consumer>
        parts = subject.split(".")
        if len(parts) >= 4 and parts[2] == service:
            event_id, _, _ = _event_id(body)
            letters.setdefault(parts[3], set()).add(event_id or f"undecodable:{len(body)}")
    return letters


async def _audit_consumer(conn: asyncpg.Connection, js: Any, settings: KaikuSettings,
                          consumer: Consumer, dead: dict[str, set[str]]) -> Check:
    handled = consumer.handled_types
    expected: set[str] = set()
    for _, body in await stream_bodies(js, settings, consumer.source):
        event_id, event_type, version = _event_id(body)
        if event_id and event_type in handled and version in handled[event_type]:
            expected.add(event_id)
    applied = {str(r["event_id"]) for r in await conn.fetch(
        "SELECT event_id FROM processed_events WHERE consumer = $1", consumer.name)}
    lettered = dead.get(consumer.name, set())
    check = Check(f"stream {settings.stream_name(consumer.source)} → {consumer.name}",
                  expected=len(expected), actual=len(applied | (lettered & expected)))
    try:
        info = await js.consumer_info(settings.stream_name(consumer.source), consumer.name)
        check.pending = info.num_pending + info.num_ack_pending
    except NotFoundError:
        check.pending = 0
    missing = expected - applied - lettered
    if check.pending == 0:
        check.differences += [f"never applied nor dead-lettered: {i}" for i in sorted(missing)]
    check.differences += [f"applied but not in the stream: {i}"
                          for i in sorted(applied - expected)]
    return check


def uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None
