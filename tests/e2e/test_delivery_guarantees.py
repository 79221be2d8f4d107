"""Nothing lost, nothing twice: relay crash, redelivery, poison messages.

Each test works against the real processes, JetStream and Postgres of the
session's namespace, and reads the streams and databases directly to verify.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest

from kaiku_shared.contracts import TicketRegisteredV1
from kaiku_dev.testing import eventually, stream_events, stream_messages

pytestmark = pytest.mark.e2e


async def consumer_drained(system, source: str, durable: str) -> bool:
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        info = await nc.jetstream().consumer_info(system.ns.settings.stream_name(source), durable)
        return info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


async def history_rows(system, ticket_ids) -> list:
    conn = await system.database("omakaiku")
    try:
        return await conn.fetch("SELECT ticket_id, status FROM history_view "
                                "WHERE ticket_id = ANY($1::uuid[])", list(ticket_ids))
    finally:
        await conn.close()


async def test_relay_killed_mid_burst_delivers_every_event_exactly_once(world):
    system = world.system
    offering_id = await world.publish_offering(card_cap=100, capacity=3000)
    cards = await asyncio.gather(*(world.issue_card(children=0) for _ in range(60)))
    for card in cards:
        await world.wait_for_card_in_venues(card["card_number"])

    async def register(card):
        response = await world.register_ticket(card["card_number"], offering_id)
        assert response.status_code == 201, response.text
        return response.json()["ticket_id"]

    first = await asyncio.gather(*(register(c) for c in cards[:20]))
    # SIGKILL the relay while the rest of the burst is being written.
    burst = asyncio.gather(*(register(c) for c in cards[20:]))
    await asyncio.sleep(0.05)
    await asyncio.to_thread(system.supervisor.kill, "venues-relay", signal.SIGKILL)
    print("injected: SIGKILL venues-relay during a burst of 40 registrations")
    rest = await burst
    ticket_ids = {*first, *rest}
    assert len(ticket_ids) == 60

    async def all_in_history():
        rows = await history_rows(system, ticket_ids)
        return rows if len(rows) == len(ticket_ids) else None

    rows = await eventually(all_in_history, timeout=30,
                            message="every ticket in omakaiku history after the relay restart")
    assert {str(r["ticket_id"]) for r in rows} == {str(t) for t in ticket_ids}

    published = await stream_events(system, "venues", "ticket_registered.v1")
    ours = [p["ticket_id"] for p in published
            if p.get("ticket_id") in {str(t) for t in ticket_ids}]
    assert sorted(ours) == sorted(str(t) for t in ticket_ids), "each event exactly once"
    restarts = (system.log_dir / "venues-relay.log").read_text().count('"relay active"')
    assert restarts >= 2, "the relay was restarted and resumed"
    print(f"verified: 60 tickets, 60 TicketRegistered in the stream, 60 history rows, "
          f"relay became active {restarts} times")


async def _registered_event(world) -> tuple[TicketRegisteredV1, bytes]:
    card = await world.issue_card(children=0)
    offering_id = await world.publish_offering()
    response = await world.register_ticket(card["card_number"], offering_id)
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]

    async def published():
        for message in await stream_messages(world.system, "venues", "ticket_registered.v1"):
            try:
                body = json.loads(message.data)
            except ValueError:
                continue  # a poison message another test published on purpose
            if isinstance(body, dict) and body.get("ticket_id") == ticket_id:
                return message.data
        return None

    data = await eventually(published, message="the TicketRegistered in the stream")
    return TicketRegisteredV1.model_validate_json(data), data


async def test_same_ticket_registered_delivered_twice_leaves_one_history_row(world):
    system = world.system
    event, data = await _registered_event(world)
    await eventually(lambda: history_rows(system, [event.ticket_id]),
                     message="first delivery applied")
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        js = nc.jetstream()
        subject = TicketRegisteredV1.subject(system.ns.name)
        # Different Nats-Msg-Ids get past JetStream's dedupe: the consumer must dedupe.
        for attempt in range(2):
            await js.publish(subject, data, headers={"Nats-Msg-Id": f"replay-{attempt}-"
                                                                     f"{event.event_id}"})
    finally:
        await nc.close()
    await eventually(lambda: consumer_drained(system, "venues", "omakaiku-history"),
                     message="omakaiku-history consumed the duplicates")
    assert len(await history_rows(system, [event.ticket_id])) == 1
    conn = await system.database("omakaiku")
    try:
        applied = await conn.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = 'omakaiku-history' "
            "AND event_id = $1", event.event_id)
    finally:
        await conn.close()
    assert applied == 1


async def test_unknown_schema_version_is_dead_lettered_and_the_consumer_goes_on(world):
    system = world.system
    ns = system.ns.name
    template, _ = await _registered_event(world)
    future = json.loads(template.model_dump_json())
    future.update(event_id=str(uuid.uuid4()), schema_version=99, ticket_id=str(uuid.uuid4()))
    follower = json.loads(template.model_dump_json())
    follower_ticket = str(uuid.uuid4())
    follower.update(event_id=str(uuid.uuid4()), ticket_id=follower_ticket,
                    starts_at=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        js = nc.jetstream()
        await js.publish(f"{ns}.venues.ticket_registered.v99", json.dumps(future).encode())
        await js.publish(f"{ns}.venues.ticket_registered.v1", b"{not json")
        await js.publish(TicketRegisteredV1.subject(ns), json.dumps(follower).encode())
    finally:
        await nc.close()

    await eventually(lambda: history_rows(system, [follower_ticket]),
                     message="the valid message after the poison ones is applied")

    async def dead_letters():
        try:
            messages = await stream_messages(system, "dlq", "omakaiku.omakaiku-history")
        except Exception:  # noqa: BLE001 - the stream exists once a worker started
            return None
        return messages if len(messages) >= 2 else None

    letters = await eventually(dead_letters, message="two dead letters for omakaiku-history")
    reasons = [m.headers["Kaiku-Dead-Letter-Reason"] for m in letters]
    assert any("unknown schema version 99" in r for r in reasons), reasons
    assert any("not JSON" in r for r in reasons), reasons
    assert all(m.headers["Kaiku-Original-Stream"] == system.ns.settings.stream_name("venues")
               for m in letters)
    assert not await history_rows(system, [future["ticket_id"]])
