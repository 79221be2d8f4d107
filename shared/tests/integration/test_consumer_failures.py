"""The consumer base on real NATS and Postgres: a handler that always fails.

Its message is retried with backoff up to max_deliver, then dead-lettered with
the error as the reason and acknowledged; nothing of the failed attempts is
recorded as applied, and the consumer goes on with the next message.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime

import asyncpg
import nats
import pytest

from kaiku_shared.consumer import Consumer, build_broker
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
    await ensure_database(settings, "cards")
    pool = await create_pool(settings, "cards", size=4)
    await apply_schema(pool)
    nc = await nats.connect(settings.nats_servers)
    js = nc.jetstream()
    await ensure_stream(js, settings, "cards")
    await ensure_dead_letter_stream(js, settings)

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

    broker = build_broker(settings, "cards", pool, [consumer])
    await broker.start()
    try:
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
    finally:
        await broker.stop()
        await nc.close()
        await pool.close()
