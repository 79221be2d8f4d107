"""The outbox relay: the event store's notification log → the service's stream.

The event store *is* the outbox. The relay reads stored events in notification
order after its recorded position, translates each to its integration contract,
publishes it with ``Nats-Msg-Id = event_id`` (JetStream drops a re-publish inside
the duplicate window; consumers dedupe beyond it) and records its new position
only after JetStream acknowledged every message before it. A batch is sent
pipelined (publish_async) and its acks awaited together.

Exactly one relay per service is active: it holds a Postgres advisory lock on a
dedicated connection. A standby waits on the same lock; when the active relay
dies its connection closes, the lock is released and the standby takes over
from the recorded position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from eventsourcing.persistence import StoredEvent
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from .contracts import IntegrationEvent, event_id_for
from .eventstore import MetaMapper, events_table
from .metrics import RELAY_LAG, RELAY_PUBLISHED
from .settings import KaikuSettings
from .tls import connect_nats

log = logging.getLogger("kaiku.relay")
tracer = trace.get_tracer("kaiku.relay")

# What a service gives the relay: a domain event (+ its envelope fields) → contract.
Translator = Callable[[Any, dict[str, Any]], IntegrationEvent | None]

DUPLICATE_WINDOW = timedelta(minutes=10)
# A batch not acknowledged in time ends the relay with an error: its supervisor
# restarts it, and it publishes again from the recorded position (deduplicated).
PUBLISH_TIMEOUT = 30.0


def contract_of_row(row: Any, mapper: MetaMapper, translate: Translator, service: str
                    ) -> tuple[IntegrationEvent | None, dict[str, str]]:
    """A row of the events table (notification_id, originator_id, originator_version,
    topic, state) as the contract the relay publishes for it (None: internal), and
    the command metadata it was recorded with. The statistics rebuild reads the
    history through this too, so it sees exactly what was published."""
    stored = StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )
    domain_event, meta = mapper.decode(stored)
    contract = translate(domain_event, {
        "event_id": event_id_for(service, row["notification_id"]),
        "occurred_at": domain_event.timestamp,
        "aggregate_id": domain_event.originator_id,
        "aggregate_version": domain_event.originator_version,
        "correlation_id": meta.get("correlation_id"),
        "causation_id": meta.get("causation_id"),
        "traceparent": meta.get("traceparent"),
    })
    return contract, meta


async def ensure_stream(js: Any, settings: KaikuSettings, service: str) -> None:
    config = StreamConfig(
        name=settings.stream_name(service),
        subjects=[f"{settings.subject_root(service)}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
        num_replicas=settings.stream_replicas,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


async def ensure_dead_letter_stream(js: Any, settings: KaikuSettings) -> None:
    """Create the dead-letter stream when it is missing; never change one that
    exists. Changing it (update, purge, delete) is for the NATS ``admin`` user
    only (deploy/nats/nats.conf): a service must not be able to shorten or empty
    the record of what it failed to process."""
    try:
        await js.stream_info(settings.dead_letter_stream)
        return
    except NotFoundError:
        pass
    config = StreamConfig(
        name=settings.dead_letter_stream,
        subjects=[f"{settings.namespace}.dlq.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
        num_replicas=settings.stream_replicas,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Another process created it first (with another configuration): keep it.
        await js.stream_info(settings.dead_letter_stream)


LOCK_PROOF_TIMEOUT = 5.0  # seconds a lock session may take to answer before we stop


class RelayFenced(RuntimeError):
    """This relay can no longer prove it holds the lock: another may be publishing."""


@dataclass
class Relay:
    settings: KaikuSettings
    service: str
    application_name: str
    mapper: MetaMapper
    translate: Translator
    batch_size: int = 500

    def __post_init__(self) -> None:
        self.table = events_table(self.application_name)
        self.stream = self.settings.stream_name(self.service)
        self.lock_key = f"kaiku-relay:{self.settings.namespace}:{self.service}"
        self.active = asyncio.Event()
        self.stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self.lag = 0  # stored events not yet published, as last seen (for /readyz)

    async def run(self) -> None:
        """Wait to become the active relay, then publish until stopped.

        NATS is connected first: a relay that cannot reach NATS must not hold
        the lock and keep a healthy standby from publishing.
        """
        db_url = self.settings.service_database_url(self.service)
        nc = await connect_nats(self.settings, name=f"{self.service}-relay",
                                max_reconnect_attempts=-1, connect_timeout=5,
                                inbox_prefix=self.settings.inbox_prefix(self.service).encode())
        try:
            await self._run_connected(db_url, nc)
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()

    async def _run_connected(self, db_url: str, nc: Any) -> None:
        lock_conn = await asyncpg.connect(db_url)
        try:
            while not self.stopping.is_set():
                got = await lock_conn.fetchval(
                    "SELECT pg_try_advisory_lock(hashtext($1))", self.lock_key
                )
                if got:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=0.5)
            if self.stopping.is_set():
                return
            log.info("relay active", extra={"service": self.service})
            self.active.set()
            await self._publish_loop(db_url, nc, lock_conn)
        finally:
            self.active.clear()
            with contextlib.suppress(Exception):
                await lock_conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self._wakeup.set()

    async def _publish_loop(self, db_url: str, nc: Any, lock_conn: asyncpg.Connection) -> None:
        js = nc.jetstream()
        conn = await asyncpg.connect(db_url)
        listen = await asyncpg.connect(db_url)
        try:
            await ensure_stream(js, self.settings, self.service)
            await conn.execute(
                "INSERT INTO relay_position(stream, position) VALUES ($1, 0) "
                "ON CONFLICT (stream) DO NOTHING",
                self.stream,
            )
            # eventsourcing NOTIFYs on this channel after every insert.
            await listen.add_listener(self.table, lambda *_: self._wakeup.set())
            position = await conn.fetchval(
                "SELECT position FROM relay_position WHERE stream = $1", self.stream
            )
            while not self.stopping.is_set():
                await self._prove_lock(lock_conn)
                published_to = await self._publish_batch(js, conn, lock_conn, position)
                if published_to is not None:
                    position = published_to
                    continue
                self.lag = 0
                RELAY_LAG.labels(self.service).set(0)
                self._wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    # The NOTIFY wakes us at once; the timeout covers a lost one.
                    await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
        finally:
            for closable in (listen, conn):
                with contextlib.suppress(Exception):
                    await closable.close()

    async def _prove_lock(self, lock_conn: asyncpg.Connection) -> None:
        """The advisory lock lives as long as its session: a session that still
        answers still holds it. One that does not (killed, cut off) may already
        have a successor, so this relay stops publishing at once."""
        with self._fenced_on_failure():
            await asyncio.wait_for(lock_conn.fetchval("SELECT 1"), timeout=LOCK_PROOF_TIMEOUT)

    @contextlib.contextmanager
    def _fenced_on_failure(self) -> Iterator[None]:
        """A lock session that fails an operation may be gone with its lock."""
        try:
            yield
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            # OSError includes TimeoutError: a session that does not answer in time.
            raise RelayFenced(f"{self.service} relay lost its lock session: {error!r}") from error

    async def _publish_batch(self, js: Any, conn: asyncpg.Connection,
                             lock_conn: asyncpg.Connection, position: int) -> int | None:
        """Publish the next batch after ``position``; the new position, or None
        when there was nothing to publish."""
        rows = await conn.fetch(
            f'SELECT notification_id, originator_id, originator_version, topic, state '
            f'FROM "{self.table}" WHERE notification_id > $1 '
            f"ORDER BY notification_id LIMIT $2",
            position,
            self.batch_size,
        )
        if not rows:
            return None
        # Pipelined: send the whole batch, then wait for every ack.
        acks = [ack for row in rows if (ack := await self._publish(js, row))]
        if acks:
            await asyncio.wait_for(asyncio.gather(*acks), timeout=PUBLISH_TIMEOUT)
        position = rows[-1]["notification_id"]
        # Only now, after every ack of the batch: never ahead of NATS. Written
        # through the lock's own session (a fenced relay cannot write it) and
        # only forwards (a late writer can never move it back).
        with self._fenced_on_failure():
            await lock_conn.execute(
                "UPDATE relay_position SET position = $2, updated_at = now() "
                "WHERE stream = $1 AND position < $2",
                self.stream,
                position,
            )
        latest = await conn.fetchval(f'SELECT max(notification_id) FROM "{self.table}"')
        self.lag = max(0, (latest or 0) - position)
        RELAY_LAG.labels(self.service).set(self.lag)
        return position

    async def _publish(self, js: Any, row: asyncpg.Record) -> asyncio.Future | None:
        """Send one stored event; the future resolves with JetStream's ack."""
        contract, _meta = contract_of_row(row, self.mapper, self.translate, self.service)
        if contract is None:
            return None  # an internal fact with no integration event
        # The contract's trace context, not the command's: the translator may
        # leave it out (FeedbackGivenV2 must not be matched to the holder's
        # request), and then the headers must not carry it either.
        parent = propagate.extract({"traceparent": contract.traceparent}) if (
            contract.traceparent) else None
        subject = contract.subject(self.settings.namespace)
        with tracer.start_as_current_span(
            f"{subject} publish", context=parent, kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.destination.name": subject,
                        "messaging.message.id": str(contract.event_id)},
        ):
            headers = {"Nats-Msg-Id": str(contract.event_id)}
            propagate.inject(headers)
            ack = await js.publish_async(subject, contract.to_json(), stream=self.stream,
                                         headers=headers)
        RELAY_PUBLISHED.labels(self.service, contract.EVENT_TYPE).inc()
        return ack
