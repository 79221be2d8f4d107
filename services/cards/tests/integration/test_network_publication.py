"""Cards publishes its network on real Postgres and NATS, through the real relay.

- a fresh cards publishes the whole network once; a region set later is
  published alone; a restart publishes nothing; a relay publishing again from
  the start is deduplicated by JetStream (the ids are the relay's usual ones);
- a store from before the publication (seeded, edited, passed by the relay
  without a message) publishes the whole network at its next start, and not at
  the start after that; the audit then finds the stream as the store explains it.

"Start" is the cards api's own start (its lifespan, with ``api_setup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cards.adapters import projections
from cards.adapters.reference import load_network
from cards.adapters.translate import translate
from cards.application.app import CardsApplication
from cards.bootstrap import PARTS, build_application
from cards.domain.network import NetworkRegistry
from kaiku_shared.audit import audit_service
from kaiku_shared.contracts import NetworkChangedV1, event_id_for
from kaiku_shared.db import ensure_database
from kaiku_shared.eventstore import events_table
from kaiku_shared.service import run_relay
from kaiku_shared.service_main import build_api
from kaiku_dev.testing import Namespace, eventually, unique_namespace
from kaiku_shared.tls import connect_nats

REFERENCE = load_network()


@pytest.fixture
def namespace(servers) -> Iterator[Namespace]:
    own = Namespace(unique_namespace("np"), servers)
    yield own
    asyncio.run(own.drop())


async def start_cards(ns: Namespace) -> CardsApplication:
    """Start the cards api (and stop it again); its application."""
    await ensure_database(ns.settings, "cards")
    api = build_api(PARTS, ns.settings)
    async with api.router.lifespan_context(api):
        return api.state.application


@contextlib.asynccontextmanager
async def relay(ns: Namespace) -> AsyncIterator[None]:
    """The cards relay, running until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_relay(ns.settings, "cards",
                                         lambda: build_application(ns.settings), translate,
                                         stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def relayed_everything(ns: Namespace) -> None:
    """Wait until the relay's recorded position is the last stored event."""
    conn = await asyncpg.connect(ns.settings.service_database_url("cards"))
    table = events_table(CardsApplication.name)

    async def caught_up() -> bool:
        last = await conn.fetchval(f'SELECT max(notification_id) FROM "{table}"')
        try:
            position = await conn.fetchval(
                "SELECT position FROM relay_position WHERE stream = $1",
                ns.settings.stream_name("cards"))
        except asyncpg.UndefinedTableError:  # the relay is still starting
            return False
        return position is not None and position == last

    try:
        await eventually(caught_up, message="the relay has not passed every stored event")
    finally:
        await conn.close()


async def network_messages(ns: Namespace) -> list[tuple[str, dict[str, Any]]]:
    """(Nats-Msg-Id, body) of every network_changed message in cards' stream."""
    settings = ns.settings
    nc = await connect_nats(settings)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            NetworkChangedV1.subject(settings.namespace), stream=settings.stream_name("cards"),
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL,
                                  ack_policy=AckPolicy.NONE, inactive_threshold=30))
        pending = (await sub.consumer_info()).num_pending
        messages = await sub.fetch(pending, timeout=5) if pending else []
        await sub.unsubscribe()
        return [(m.headers["Nats-Msg-Id"], json.loads(m.data)) for m in messages]
    finally:
        await nc.close()


async def stored_positions(ns: Namespace, topic_suffix: str) -> list[int]:
    conn = await asyncpg.connect(ns.settings.service_database_url("cards"))
    try:
        return [row[0] for row in await conn.fetch(
            f'SELECT notification_id FROM "{events_table(CardsApplication.name)}" '
            "WHERE topic LIKE $1 ORDER BY notification_id", f"%{topic_suffix}")]
    finally:
        await conn.close()


def assert_whole_network(body: dict[str, Any]) -> None:
    NetworkChangedV1.model_validate(body)
    assert {r["code"] for r in body["regions"]} == set(REFERENCE.regions)
    assert {m["code"] for m in body["municipalities"]} == set(REFERENCE.municipalities)


async def test_a_fresh_cards_publishes_the_network_once_then_each_change(namespace) -> None:
    async with relay(namespace):
        application = await start_cards(namespace)
        await relayed_everything(namespace)
        [(message_id, whole)] = await network_messages(namespace)
        assert_whole_network(whole)
        [announced] = await stored_positions(namespace, "NetworkRegistry.Announced")
        assert message_id == whole["event_id"] == str(event_id_for("cards", announced))

        await asyncio.to_thread(application.set_region, "testialue",
                                names={"fi": "Testialue", "sv": "Testområde"}, country="FI")
        await relayed_everything(namespace)
        [_, (_, region)] = await network_messages(namespace)
        assert region["municipalities"] == []
        assert region["regions"] == [{"code": "testialue", "country": "FI",
                                      "name": {"fi": "Testialue", "sv": "Testområde"}}]

        await start_cards(namespace)  # a restart
        await relayed_everything(namespace)
        assert len(await network_messages(namespace)) == 2
    assert await stored_positions(namespace, "NetworkRegistry.Announced") == [announced]

    # A relay that publishes everything again (its position lost) is deduplicated.
    conn = await asyncpg.connect(namespace.settings.service_database_url("cards"))
    try:
        await conn.execute("UPDATE relay_position SET position = 0")
    finally:
        await conn.close()
    async with relay(namespace):
        await relayed_everything(namespace)
    assert [body for _, body in await network_messages(namespace)] == [whole, region]


async def test_a_store_from_before_the_publication_is_announced_at_the_next_start(
        namespace) -> None:
    await ensure_database(namespace.settings, "cards")
    application = await asyncio.to_thread(build_application, namespace.settings)
    # As the earlier version left it: seeded, edited, nothing announced.
    data = REFERENCE.to_dict()
    old = NetworkRegistry(regions=data["regions"], municipalities=data["municipalities"])
    old.set_municipality("imatra", names=None, region=None, status="left", country=None)
    await asyncio.to_thread(application.save, old)
    async with relay(namespace):
        await relayed_everything(namespace)  # passed long ago, without a message
        assert await network_messages(namespace) == []

        await start_cards(namespace)
        await relayed_everything(namespace)
        [(_, whole)] = await network_messages(namespace)
        assert_whole_network(whole)
        imatra = next(m for m in whole["municipalities"] if m["code"] == "imatra")
        assert imatra["status"] == "left"

        await start_cards(namespace)  # and the start after that
        await relayed_everything(namespace)
        assert len(await network_messages(namespace)) == 1
    assert len(await stored_positions(namespace, "NetworkRegistry.Announced")) == 1
    # The audit expects in the stream exactly what was published: the edit made
    # before the announcement is not missing from it.
    report = await audit_service(namespace.settings, "cards", application, translate,
                                 projections.consumers())
    assert report.differences == 0, report.as_dict()
