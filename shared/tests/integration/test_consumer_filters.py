"""Server-side filtering on real NATS: a durable receives only the event types its
consumer handles (every schema version of them), and a durable made before
filtering is given its filter without losing its place in the stream.

Needs nats-server 2.10 or later (several filter subjects on one consumer); on an
older server the workers keep the unfiltered durables, and this test skips.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import asyncpg
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from kaiku_shared.consumer import (
    Consumer,
    build_broker,
    reconcile_durables,
    supports_filter_subjects,
)
from kaiku_shared.contracts import CardClosedV1, CardIssuedV1, OrganisationRegisteredV1
from kaiku_shared.db import apply_schema, create_pool, ensure_database
from kaiku_shared.relay import ensure_dead_letter_stream, ensure_stream
from kaiku_dev.testing import Namespace, eventually, unique_namespace


def envelope(contract, **fields) -> bytes:
    return contract.build(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC),
                          aggregate_id=uuid.uuid4(), aggregate_version=1, **fields).to_json()


def card_issued(number: str) -> bytes:
    return envelope(CardIssuedV1, card_number=number, issuer_organisation_id=uuid.uuid4(),
                    valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31), children=0,
                    birth_year=1980, postal_code="00100", municipality="imatra",
                    region="etela-karjala")


def organisation_registered() -> bytes:
    return envelope(OrganisationRegisteredV1, organisation_id=uuid.uuid4(), kind="venue",
                    name="Imatran Teatteri", municipality="imatra")


@pytest.fixture
async def world(servers):
    ns = Namespace(unique_namespace("f"), servers)
    settings = ns.settings
    await ensure_database(settings, "cards")
    pool = await create_pool(settings, "cards", size=4)
    await apply_schema(pool)
    nc = await nats.connect(settings.nats_servers)
    if not supports_filter_subjects(nc):
        await nc.close()
        await pool.close()
        await ns.drop()
        pytest.skip(f"nats-server {nc.connected_server_version} has no filter_subjects")
    js = nc.jetstream()
    await ensure_stream(js, settings, "cards")
    await ensure_dead_letter_stream(js, settings)
    yield settings, pool, js
    await nc.close()
    await pool.close()
    await ns.drop()


def card_consumer(name: str, seen: list[str]) -> Consumer:
    consumer = Consumer(name, "cards")

    @consumer.on(CardIssuedV1)
    async def issued(event, conn: asyncpg.Connection) -> None:
        seen.append(event.card_number)

    @consumer.on(CardClosedV1)
    async def closed(event, conn: asyncpg.Connection) -> None:
        seen.append(f"closed {event.card_number}")

    return consumer


async def test_a_filtered_durable_is_delivered_only_what_it_handles(world):
    settings, pool, js = world
    seen: list[str] = []
    consumer = card_consumer("test-filtered", seen)
    stream = settings.stream_name("cards")
    broker = build_broker(settings, "cards", pool, [consumer], filtered=True)
    await broker.start()
    try:
        info = await js.consumer_info(stream, consumer.name)
        root = settings.subject_root("cards")
        assert sorted(info.config.filter_subjects) == [f"{root}.card_closed.*",
                                                       f"{root}.card_issued.*"]
        for _ in range(5):
            await js.publish(OrganisationRegisteredV1.subject(settings.namespace),
                             organisation_registered())
        await js.publish(CardIssuedV1.subject(settings.namespace), card_issued("FLT-00001"))
        # A version this consumer does not know still reaches it, to be dead-lettered.
        await js.publish(f"{root}.card_closed.v99", b'{"event_type": "card_closed", '
                                                    b'"schema_version": 99}')
        await eventually(lambda: asyncio.sleep(0, result=seen == ["FLT-00001"]),
                         message="the handled event applied")

        async def everything_acked():
            info = await js.consumer_info(stream, consumer.name)
            return info if info.num_pending == 0 and info.num_ack_pending == 0 else None

        info = await eventually(everything_acked, message="nothing left to deliver")
        assert info.delivered.consumer_seq == 2, (
            "the server delivered the two handled messages, not the five others")
        dlq = await js.pull_subscribe(f"{settings.namespace}.dlq.>",
                                      stream=settings.dead_letter_stream)
        letter = (await dlq.fetch(1, timeout=5))[0]
        assert "unknown schema version 99" in letter.headers["Kaiku-Dead-Letter-Reason"]
    finally:
        await broker.stop()


async def test_an_unfiltered_durable_gets_its_filter_and_keeps_its_place(world):
    settings, pool, js = world
    stream = settings.stream_name("cards")
    root = settings.subject_root("cards")
    # A durable as workers made them before filtering: the whole stream.
    await js.add_consumer(stream, ConsumerConfig(
        durable_name="test-old", name="test-old", ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL, filter_subject=f"{root}.>"))
    await js.publish(CardIssuedV1.subject(settings.namespace), card_issued("OLD-00001"))
    old = await js.pull_subscribe_bind("test-old", stream=stream)
    for message in await old.fetch(1, timeout=5):
        await message.ack_sync()  # applied by the old worker
    await js.publish(OrganisationRegisteredV1.subject(settings.namespace),
                     organisation_registered())
    await js.publish(CardIssuedV1.subject(settings.namespace), card_issued("OLD-00002"))

    seen: list[str] = []
    consumer = card_consumer("test-old", seen)
    await reconcile_durables(js, settings, [consumer], filtered=True)
    info = await js.consumer_info(stream, "test-old")
    assert sorted(info.config.filter_subjects) == consumer.filter_subjects(settings)
    assert not info.config.filter_subject
    await reconcile_durables(js, settings, [consumer], filtered=True)  # a second start changes nothing

    broker = build_broker(settings, "cards", pool, [consumer], filtered=True)
    await broker.start()
    try:
        await eventually(lambda: asyncio.sleep(0, result=seen == ["OLD-00002"]),
                         message="the next handled event, and only it")
        await asyncio.sleep(0.5)
        assert seen == ["OLD-00002"], "the card acked before the change is not redelivered"
        info = await js.consumer_info(stream, "test-old")
        assert info.num_pending == 0
    finally:
        await broker.stop()
