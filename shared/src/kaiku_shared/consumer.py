"""Idempotent durable pull consumers on JetStream, built with faststream.

Each ``Consumer`` is one durable pull consumer on one producing service's
stream. For every message it:

1. parses the envelope; a body that is not JSON, an event type it handles in an
   unknown schema version, or a body that fails the contract goes to the
   dead-letter subject with the reason, and is acked — it can never succeed;
2. ignores (acks) event types it does not handle;
3. applies the handler and records the ``event_id`` in ``processed_events`` in
   the same transaction, so a redelivery or a replay changes nothing;
4. tells the failures apart: an outage of its own infrastructure (database
   down, connection lost, pool exhausted, serialization conflict) holds the
   message in progress and retries it in place with capped exponential backoff,
   for as long as the outage lasts; an event that is only early
   (``NotYetKnown``) is naked with backoff, without limit; any other error is
   the message's own: naked with a growing delay and, on the last allowed
   delivery, dead-lettered with the error. A dead letter is written before the
   original is acked.

Acks are manual because faststream's default JetStream policy would drop a
failing message after one try, and decoding is raw so that a malformed body
reaches our code instead of stalling in the framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from pydantic import ValidationError

from .contracts import IntegrationEvent, contract_for
from .contracts.base import UnknownContract
from .db import is_database_unavailable
from .kernel.errors import NotYetKnown
from .metrics import CONSUMED, CONSUMER_PAUSED, DEAD_LETTERS
from .settings import KaikuSettings
from .tls import nats_broker_security

log = logging.getLogger("kaiku.consumer")
tracer = trace.get_tracer("kaiku.consumer")


class _FetchRaceFilter(logging.Filter):
    """Not an error: in a rare fetch race nats-py raises asyncio.TimeoutError where
    faststream 0.7 only suppresses nats.errors.TimeoutError; faststream's
    supervisor restarts the fetch loop at once. Logged at debug level."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TimeoutError) and "raised an exception" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return log.isEnabledFor(logging.DEBUG)
        return True


log.addFilter(_FetchRaceFilter())

Handler = Callable[[Any, asyncpg.Connection], Awaitable[None]]


@dataclass
class Consumer:
    """A durable consumer: ``<service>-<purpose>`` on one source stream."""

    name: str
    source: str
    handlers: dict[type[IntegrationEvent], Handler] = field(default_factory=dict)

    def on(self, contract: type[IntegrationEvent]) -> Callable[[Handler], Handler]:
        if contract.PRODUCER != self.source:
            raise ValueError(f"{contract.__name__} is not produced by {self.source}")

        def register(handler: Handler) -> Handler:
            self.handlers[contract] = handler
            return handler

        return register

    def filter_subjects(self, settings: KaikuSettings) -> list[str]:
        """The subjects of the event types this consumer handles, every schema version
        (an unknown version must still arrive, to be dead-lettered)."""
        root = settings.subject_root(self.source)
        return sorted(f"{root}.{event_type}.*" for event_type in self.handled_types)

    @property
    def handled_types(self) -> dict[str, list[int]]:
        types: dict[str, list[int]] = {}
        for contract in self.handlers:
            types.setdefault(contract.EVENT_TYPE, []).append(contract.VERSION)
        return types


class DeadLetter(Exception):
    """The message can never succeed; send it to the dead-letter subject."""


@dataclass
class MessageProcessor:
    """What happens to one delivered message; independent of faststream."""

    consumer: Consumer
    pool: asyncpg.Pool

    def decode(self, body: bytes) -> IntegrationEvent | None:
        """The contract instance, None when ignored, DeadLetter when impossible."""
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError) as error:  # deep nesting too
            raise DeadLetter(f"body is not JSON: {type(error).__name__}: "
                             f"{str(error)[:200]}") from None
        if not isinstance(raw, dict):
            raise DeadLetter("body is not a JSON object")
        event_type = raw.get("event_type")
        if not isinstance(event_type, str):
            raise DeadLetter("event_type is missing or not a string")
        if event_type not in self.consumer.handled_types:
            return None
        version = raw.get("schema_version")
        producer = raw.get("producer", self.consumer.source)
        try:
            contract = contract_for(producer, event_type, int(version))
        except (UnknownContract, TypeError, ValueError):
            known = self.consumer.handled_types[event_type]
            raise DeadLetter(
                f"unknown schema version {version!r} of {event_type}; "
                f"{self.consumer.name} handles versions {known}"
            ) from None
        if contract not in self.consumer.handlers:
            raise DeadLetter(f"{self.consumer.name} has no handler for {contract.__name__}")
        try:
            return contract.model_validate(raw)
        except ValidationError as error:
            raise DeadLetter(f"{contract.__name__} invalid: {error.errors()[:3]}") from None

    async def apply(self, event: IntegrationEvent) -> bool:
        """Apply once; False when this event id was applied before."""
        handler = self.consumer.handlers[type(event)]
        async with self.pool.acquire() as conn, conn.transaction():
            first_time = await conn.fetchval(
                "INSERT INTO processed_events(consumer, event_id) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING RETURNING true",
                self.consumer.name,
                event.event_id,
            )
            if not first_time:
                return False
            await handler(event, conn)
            return True


def build_broker(
    settings: KaikuSettings,
    service: str,
    pool: asyncpg.Pool,
    consumers: list[Consumer],
    *,
    middlewares: tuple[Any, ...] = (),
    filtered: bool = False,
) -> NatsBroker:
    """A faststream broker with one durable pull subscriber per consumer.

    ``filtered`` (nats-server 2.10 or later): each durable is created with the
    subjects of the event types it handles, so the server never delivers it the
    others. Without it, a durable receives its whole source stream and acks what
    it does not handle, about 2 ms of a worker's CPU a message (see
    ``reconcile_durables`` for durables that exist already)."""
    broker = NatsBroker(
        settings.nats_servers,
        middlewares=middlewares,
        max_reconnect_attempts=-1,
        name=f"{service}-worker",
        logger=log,
        # faststream logs every message twice ("Received", "Processed"): at
        # national volume that is most of a worker's log and much of its CPU.
        # Per-message detail is at debug; failures and dead letters stay warnings.
        log_level=logging.DEBUG,
        inbox_prefix=settings.inbox_prefix(service),
        security=nats_broker_security(settings),
    )
    for consumer in consumers:
        _subscribe(broker, settings, service, pool, consumer, filtered)
    return broker


def supports_filter_subjects(nc: Any) -> bool:
    """Several filter subjects on one consumer came with nats-server 2.10."""
    version = nc.connected_server_version
    return (version.major, version.minor) >= (2, 10)


async def reconcile_durables(js: Any, settings: KaikuSettings, consumers: list[Consumer], *,
                             filtered: bool) -> None:
    """Give durables made by an earlier release what their consumer wants now:
    unlimited deliveries (made with a limit, an outage could exhaust them) and,
    where the server can (``filtered``), the subjects the consumer handles.
    Binding to an existing durable keeps its old configuration, so this is done
    explicitly; neither change moves its position in the stream."""
    from nats.js.errors import NotFoundError

    for consumer in consumers:
        stream = settings.stream_name(consumer.source)
        try:
            info = await js.consumer_info(stream, consumer.name)
        except NotFoundError:
            continue  # made as wanted when the worker subscribes
        changes: dict[str, Any] = {}
        if info.config.max_deliver not in (None, -1):
            changes["max_deliver"] = -1
        if filtered:
            wanted = consumer.filter_subjects(settings)
            current = sorted(info.config.filter_subjects or
                             ([info.config.filter_subject] if info.config.filter_subject
                              else []))
            if current != wanted:
                changes.update(filter_subject=None, filter_subjects=wanted)
        if changes:
            await js.add_consumer(stream, config=info.config.evolve(**changes))
            log.info("durable consumer updated",
                     extra={"consumer": consumer.name, "changed": ",".join(sorted(changes))})


async def _raw_body(msg: NatsMessage) -> bytes:
    return msg.body


def backoff_delay(settings: KaikuSettings, delivered: int) -> float:
    steps = settings.consumer_backoff_seconds
    return steps[min(delivered - 1, len(steps) - 1)]


# Failures of the consumer's own infrastructure, not of the message: its database
# unavailable (the same cases an api answers 503 for), or a serialization
# conflict or deadlock. They pass; the message is good.
def is_transient(error: BaseException) -> bool:
    return (is_database_unavailable(error)
            or isinstance(error, asyncpg.exceptions.TransactionRollbackError))


# The consumers of this process now holding a message through an outage (what a
# worker's /readyz reports).
PAUSED: set[str] = set()
HOLD_ACK_EVERY = 10.0  # seconds between in-progress acks while holding (ack_wait is 30)


def outage_delay(settings: KaikuSettings, attempt: int) -> float:
    """Capped exponential backoff while an outage lasts: the first and the last
    of the configured steps are its floor and its ceiling."""
    steps = settings.consumer_backoff_seconds
    return min(steps[-1], steps[0] * 2 ** (attempt - 1))


@dataclass
class _Delivery:
    """What one subscriber needs to settle a delivered message.

    Three kinds of failure, three answers: a message that can never succeed
    (undecodable, an unknown version, a handler's own error repeated) goes to
    the dead letters after a bounded number of tries; an event that is only
    early (``NotYetKnown``) is naked with backoff for as long as that lasts; an
    outage of the consumer's own infrastructure holds the message (in progress)
    and retries it in place, so the subscriber fetches nothing more until the
    database is back and no delivery is spent."""

    broker: NatsBroker
    settings: KaikuSettings
    consumer: Consumer
    processor: MessageProcessor
    dead_letter_subject: str

    async def dead_letter(self, msg: NatsMessage, reason: str) -> None:
        """Written (JetStream's ack) before the original is acked; if it cannot
        be written, the original stays and is tried again."""
        metadata = msg.raw_message.metadata
        headers = {
            "Kaiku-Dead-Letter-Reason": reason[:1000],
            "Kaiku-Original-Subject": msg.raw_message.subject,
            "Kaiku-Original-Stream": metadata.stream,
            "Kaiku-Original-Sequence": str(metadata.sequence.stream),
            "Kaiku-Deliveries": str(metadata.num_delivered),
            # Dedupe a dead letter re-sent after a crash between publish and ack.
            "Nats-Msg-Id": f"dlq:{self.consumer.name}:{metadata.stream}:"
                           f"{metadata.sequence.stream}",
        }
        try:
            await self.broker.publish(msg.body, self.dead_letter_subject, headers=headers,
                                      stream=self.settings.dead_letter_stream)
        except Exception as error:  # noqa: BLE001 - whatever stops it, the original stays
            log.error("dead letter not written; the message stays and is tried again",
                      extra={"consumer": self.consumer.name, "error": repr(error)[:300],
                             "stream_sequence": metadata.sequence.stream})
            await msg.nack(delay=backoff_delay(self.settings, metadata.num_delivered))
            return
        DEAD_LETTERS.labels(self.consumer.name).inc()
        log.warning("dead-lettered", extra={"consumer": self.consumer.name,
                                             "reason": reason[:300],
                                             "stream_sequence": metadata.sequence.stream})
        await msg.ack()

    async def settle(self, msg: NatsMessage, body: bytes) -> None:
        name = self.consumer.name
        try:
            event = self.processor.decode(body)
        except DeadLetter as poison:
            CONSUMED.labels(name, "?", "dead_letter").inc()
            await self.dead_letter(msg, str(poison))
            return
        if event is None:
            await msg.ack()
            return
        try:
            applied = await self.apply(event)
        except Exception as error:  # noqa: BLE001 - sorted into its kind just below
            applied = await self.recover(msg, event, error)
            if applied is None:
                return
        CONSUMED.labels(name, event.event_type, "applied" if applied else "duplicate").inc()
        await msg.ack()

    async def apply(self, event: IntegrationEvent) -> bool:
        with tracer.start_as_current_span(
            f"{self.consumer.name} apply {event.event_type}",
            attributes={"messaging.consumer.group.name": self.consumer.name,
                        "messaging.message.id": str(event.event_id)},
        ):
            return await self.processor.apply(event)

    async def recover(self, msg: NatsMessage, event: IntegrationEvent,
                      error: Exception) -> bool | None:
        """Whether the event was applied after all (then the caller acks it), or
        None when the message was settled otherwise (naked, dead-lettered)."""
        if isinstance(error, NotYetKnown):
            await self.too_early(msg, event, error)
            return None
        if is_transient(error):
            return await self.ride_out(msg, event, error)
        await self.failed(msg, event, error)
        return None

    async def too_early(self, msg: NatsMessage, event: IntegrationEvent,
                        error: NotYetKnown) -> None:
        delivered = msg.raw_message.metadata.num_delivered
        CONSUMED.labels(self.consumer.name, event.event_type, "retry").inc()
        log.info("event arrived early; will retry",
                 extra={"consumer": self.consumer.name, "event_type": event.event_type,
                        "delivered": delivered, "waiting_for": str(error)[:200]})
        await msg.nack(delay=backoff_delay(self.settings, delivered))

    async def ride_out(self, msg: NatsMessage, event: IntegrationEvent,
                       error: Exception) -> bool | None:
        """Hold the message through an outage and retry it in place."""
        name = self.consumer.name
        CONSUMER_PAUSED.labels(name).set(1)
        PAUSED.add(name)
        log.warning("infrastructure unavailable; holding the message until it is back",
                    extra={"consumer": name, "event_type": event.event_type,
                           "error": type(error).__name__})
        attempt = 0
        try:
            while True:
                attempt += 1
                CONSUMED.labels(name, event.event_type, "retry").inc()
                await self.hold(msg, outage_delay(self.settings, attempt))
                try:
                    applied = await self.apply(event)
                except Exception as again:  # noqa: BLE001 - sorted as before
                    if is_transient(again):
                        continue
                    return await self.recover(msg, event, again)
                log.info("infrastructure back; message applied",
                         extra={"consumer": name, "attempts": attempt + 1})
                return applied
        finally:
            CONSUMER_PAUSED.labels(name).set(0)
            PAUSED.discard(name)

    async def hold(self, msg: NatsMessage, seconds: float) -> None:
        """Wait, telling JetStream the message is still in progress (so its ack
        wait does not expire and no delivery is spent); NATS may be down too."""
        remaining = seconds
        while remaining > 0:
            with contextlib.suppress(Exception):
                await msg.raw_message.in_progress()
            step = min(remaining, HOLD_ACK_EVERY)
            await asyncio.sleep(step)
            remaining -= step

    async def failed(self, msg: NatsMessage, event: IntegrationEvent, error: Exception) -> None:
        delivered = msg.raw_message.metadata.num_delivered
        name = self.consumer.name
        if delivered >= self.settings.consumer_max_deliver:
            CONSUMED.labels(name, event.event_type, "dead_letter").inc()
            await self.dead_letter(
                msg, f"failed {delivered} times; last error: {type(error).__name__}: {error}")
            return
        CONSUMED.labels(name, event.event_type, "retry").inc()
        log.warning("handler failed; will retry",
                    extra={"consumer": name, "event_type": event.event_type,
                           "delivered": delivered, "error": type(error).__name__})
        await msg.nack(delay=backoff_delay(self.settings, delivered))


def _subscribe(
    broker: NatsBroker,
    settings: KaikuSettings,
    service: str,
    pool: asyncpg.Pool,
    consumer: Consumer,
    filtered: bool,
) -> None:
    delivery = _Delivery(broker, settings, consumer, MessageProcessor(consumer, pool),
                         settings.dead_letter_subject(service, consumer.name))

    @broker.subscriber(
        "" if filtered else f"{settings.subject_root(consumer.source)}.>",
        stream=JStream(settings.stream_name(consumer.source), declare=False),
        durable=consumer.name,
        pull_sub=PullSub(batch_size=settings.consumer_batch_size, timeout=1.0),
        config=ConsumerConfig(
            durable_name=consumer.name,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            # Unlimited: an outage must never exhaust deliveries (the server would
            # then stop delivering the message, silently). Poison is bounded by
            # our own count of deliveries (``failed``).
            max_deliver=-1,
            ack_wait=30,
            max_ack_pending=1000,
            filter_subjects=consumer.filter_subjects(settings) if filtered else None,
        ),
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_body,
        inbox_prefix=f"{settings.inbox_prefix(service)}.".encode(),
        title=consumer.name,
    )
    async def handle(body: bytes) -> None:
        # The message from the broker's context, not as a `msg: NatsMessage`
        # parameter: fast_depends resolves such a parameter with a synchronous
        # function, in a worker thread, for every message (a tenth of a
        # worker's CPU under load, bench/profiles/registration.md).
        await delivery.settle(broker.context.get_local("message"), body)
