"""The consumer base on real NATS and Postgres: a handler that always fails.

Its message is retried with backoff up to max_deliver, then dead-lettered with
the error as the reason and acknowledged; nothing of the failed attempts is
recorded as applied, and the consumer goes on with the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, date, datetime

import asyncpg
import nats
import pytest

from kaiku_shared.consumer import PAUSED, Consumer, build_broker
from kaiku_shared.contracts import CardClosedV1, CardIssuedV1
from kaiku_shared.db import apply_schema, create_pool, ensure_database
from kaiku_shared.relay import ensure_dead_letter_stream, ensure_stream
from kaiku_dev.testing import Namespace, eventually, unique_namespace


def envelope(contract, aggregate_id: uuid.UUID, **fields) -> bytes:
    return contract.build(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC),
                          aggregate_id=aggregate_id, aggregate_version=1,
                          **fields).to_json()


@pytest.fixture
async def isolated(servers):
    ns = Namespace(unique_namespace("c"), servers)
    ns.settings = ns.settings.model_copy(update={
        "consumer_max_deliver": 3, "consumer_backoff_seconds": (0.05, 0.1)})
    yield ns
    await ns.drop()


async def test_an_always_failing_handler_is_dead_lettered_and_the_consumer_goes_on(isolated):
    settings = isolated.settings
    attempts: list[str] = []
    applied: list[str] = []
    consumer = Consumer("test-always-fails", "cards")

    @consumer.on(CardClosedV1)
    async def on_card_closed(event, conn: asyncpg.Connection) -> None:
        attempts.append(str(event.event_id))
        raise RuntimeError("the read model is broken")

    @consumer.on(CardIssuedV1)
    async def on_card_issued(event, conn: asyncpg.Connection) -> None:
        applied.append(event.card_number)

    async with running(settings, consumer) as (pool, js):
        failing = envelope(CardClosedV1, uuid.uuid4(), card_number="KXA-10001", reason="lost")
        failing_id = json.loads(failing)["event_id"]
        await js.publish(CardClosedV1.subject(settings.namespace), failing)
        await js.publish(CardIssuedV1.subject(settings.namespace), envelope(
            CardIssuedV1, uuid.uuid4(), card_number="KXA-10002",
            issuer_organisation_id=uuid.uuid4(), valid_from=date(2026, 1, 1),
            valid_until=date(2026, 12, 31), children=0, birth_year=1980,
            postal_code="00100", municipality="imatra", region="etela-karjala"))

        await eventually(lambda: asyncio.sleep(0, result=applied == ["KXA-10002"]),
                         message="the next message handled while the first one fails")
        dlq = await js.pull_subscribe(f"{settings.namespace}.dlq.>",
                                      stream=settings.dead_letter_stream)

        async def dead_letter():
            try:
                return (await dlq.fetch(1, timeout=1))[0]
            except (TimeoutError, nats.errors.TimeoutError):
                return None

        letter = await eventually(dead_letter, timeout=20, message="the dead letter")
        assert json.loads(letter.data)["event_id"] == failing_id
        assert letter.subject == settings.dead_letter_subject("cards", "test-always-fails")
        reason = letter.headers["Kaiku-Dead-Letter-Reason"]
        assert "failed 3 times" in reason and "RuntimeError" in reason, reason
        assert attempts == [failing_id] * 3, "max_deliver attempts, then no more"
        await asyncio.sleep(0.5)
        assert len(attempts) == 3, "acknowledged after dead-lettering: no hot loop"
        async with pool.acquire() as conn:
            recorded = await conn.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = $1",
                uuid.UUID(failing_id))
        assert recorded == 0, "a failed attempt leaves nothing applied"


# --- an outage is not poison ------------------------------------------------------


def card_issued(number: str) -> bytes:
    return envelope(CardIssuedV1, uuid.uuid4(), card_number=number,
                    issuer_organisation_id=uuid.uuid4(), valid_from=date(2026, 1, 1),
                    valid_until=date(2026, 12, 31), children=0, birth_year=1980,
                    postal_code="00100", municipality="imatra", region="etela-karjala")


@contextlib.asynccontextmanager
async def running(settings, consumer, *, dead_letters: bool = True):
    """(pool, jetstream) while one consumer runs on cards' stream."""
    await ensure_database(settings, "cards")
    pool = await create_pool(settings, "cards", size=4)
    await apply_schema(pool)
    nc = await nats.connect(settings.nats_servers)
    js = nc.jetstream()
    await ensure_stream(js, settings, "cards")
    if dead_letters:
        await ensure_dead_letter_stream(js, settings)
    broker = build_broker(settings, "cards", pool, [consumer])
    await broker.start()
    try:
        yield pool, js
    finally:
        await broker.stop()
        await nc.close()
        await pool.close()


async def dead_letters_of(js, settings) -> list:
    try:
        info = await js.stream_info(settings.dead_letter_stream)
    except nats.js.errors.NotFoundError:
        return []
    return [await js.get_msg(settings.dead_letter_stream, seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
            if info.state.messages]


async def test_a_lost_database_connection_is_ridden_out_not_dead_lettered(isolated):
    """Real Postgres errors: the handler's own session is terminated (as a
    restart or failover would) on more attempts than max_deliver allows. The
    message is held and retried in place, then applied once; nothing is
    dead-lettered and no delivery is spent."""
    settings = isolated.settings
    attempts: list[int] = []
    paused_seen: list[bool] = []
    consumer = Consumer("test-outage", "cards")

    @consumer.on(CardIssuedV1)
    async def on_card_issued(event, conn: asyncpg.Connection) -> None:
        attempts.append(1)
        paused_seen.append("test-outage" in PAUSED)  # what the worker's /readyz reports
        if len(attempts) <= settings.consumer_max_deliver + 2:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    async with running(settings, consumer) as (pool, js):
        await js.publish(CardIssuedV1.subject(settings.namespace), card_issued("KXA-20001"))

        async def applied() -> bool:
            async with pool.acquire() as conn:
                return await conn.fetchval(
                    "SELECT count(*) FROM processed_events WHERE consumer = $1",
                    "test-outage") == 1

        await eventually(applied, timeout=30, message="applied once the database answers")
        assert len(attempts) == settings.consumer_max_deliver + 3
        assert paused_seen[0] is False and all(paused_seen[1:]), paused_seen
        assert "test-outage" not in PAUSED, "ready again once the message is applied"
        info = await js.consumer_info(settings.stream_name("cards"), "test-outage")
        assert info.num_redelivered == 0, "held in place: no delivery spent"
        assert info.config.max_deliver == -1
        assert await dead_letters_of(js, settings) == []


async def test_an_early_event_is_retried_past_max_deliver(isolated):
    """``NotYetKnown``: the fact it needs comes from another stream later. It is
    naked with backoff as often as it takes, never dead-lettered."""
    from kaiku_shared.kernel.errors import NotYetKnown

    settings = isolated.settings
    attempts: list[int] = []
    consumer = Consumer("test-early", "cards")

    @consumer.on(CardIssuedV1)
    async def on_card_issued(event, conn: asyncpg.Connection) -> None:
        attempts.append(1)
        if len(attempts) <= settings.consumer_max_deliver + 2:
            raise NotYetKnown("its organisation has not arrived yet")

    async with running(settings, consumer) as (pool, js):
        await js.publish(CardIssuedV1.subject(settings.namespace), card_issued("KXA-20002"))
        await eventually(lambda: asyncio.sleep(0, result=len(attempts) ==
                                               settings.consumer_max_deliver + 3),
                         timeout=30, message="retried until its fact came")
        await eventually(lambda: _settled(js, settings, "test-early"), timeout=10,
                         message="acknowledged once applied")
        assert await dead_letters_of(js, settings) == []


async def test_a_dead_letter_that_cannot_be_written_keeps_the_original(isolated):
    """No dead-letter stream to write to: the poison message is not acked (not
    lost); once the stream exists, the dead letter is written, then acked."""
    settings = isolated.settings
    consumer = Consumer("test-no-dlq", "cards")

    @consumer.on(CardIssuedV1)
    async def on_card_issued(event, conn: asyncpg.Connection) -> None:
        raise RuntimeError("the read model is broken")

    async with running(settings, consumer, dead_letters=False) as (pool, js):
        await js.publish(CardIssuedV1.subject(settings.namespace), card_issued("KXA-20003"))
        await asyncio.sleep(2)  # past max_deliver: every dead-letter attempt failed
        info = await js.consumer_info(settings.stream_name("cards"), "test-no-dlq")
        assert info.num_ack_pending + info.num_pending == 1, "the original is still there"
        await ensure_dead_letter_stream(js, settings)
        letters = await eventually(lambda: _some(dead_letters_of(js, settings)), timeout=20,
                                   message="the dead letter, written once it could be")
        assert len(letters) == 1
        await eventually(lambda: _settled(js, settings, "test-no-dlq"), timeout=10,
                         message="the original acked after its dead letter was written")


async def _settled(js, settings, name: str):
    info = await js.consumer_info(settings.stream_name("cards"), name)
    return info if info.num_ack_pending == 0 and info.num_pending == 0 else None


async def _some(letters_coroutine):
    letters = await letters_coroutine
    return letters or None


async def test_a_durable_made_with_a_delivery_limit_loses_it_at_start(isolated):
    """An earlier release made its durables with max_deliver 6: an outage could
    exhaust that, after which the server would never deliver the message again.
    The worker's start lifts it, keeping the durable's position."""
    from nats.js.api import AckPolicy as JsAck
    from nats.js.api import ConsumerConfig

    from kaiku_shared.consumer import reconcile_durables

    settings = isolated.settings
    nc = await nats.connect(settings.nats_servers)
    js = nc.jetstream()
    try:
        await ensure_stream(js, settings, "cards")
        stream = settings.stream_name("cards")
        await js.add_consumer(stream, ConsumerConfig(
            durable_name="test-old-durable", ack_policy=JsAck.EXPLICIT, max_deliver=6,
            filter_subject=f"{settings.subject_root('cards')}.>"))
        await js.publish(CardIssuedV1.subject(settings.namespace), card_issued("KXA-20004"))
        consumer = Consumer("test-old-durable", "cards")
        consumer.on(CardIssuedV1)(lambda event, conn: None)
        await reconcile_durables(js, settings, [consumer], filtered=False)
        info = await js.consumer_info(stream, "test-old-durable")
        assert info.config.max_deliver == -1
        assert info.num_pending == 1, "its position is kept"
        await reconcile_durables(js, settings, [consumer], filtered=False)  # nothing to do
    finally:
        await nc.close()
