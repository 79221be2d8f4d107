"""No overbooking: 200 box offices at once, two venues api processes, a cap of 10.

The session's ``system`` runs one venues api; this test starts a second one on
the same database and NATS, spreads 200 concurrent registrations (200
different valid cards) over both, and checks the answers, the event store and
the JetStream stream: exactly 10 tickets, 190 refusals naming the rule, exactly
10 TicketRegistered.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import httpx
import pytest

from kaiku_shared.eventstore import events_table
from kaiku_dev.supervisor import ProcessSpec, Supervisor
from kaiku_dev.testing import eventually, free_port, stream_events

pytestmark = pytest.mark.e2e

CARDS = 200
CARD_CAP = 10


async def issue_cards(world, count: int) -> list[str]:
    gate = asyncio.Semaphore(20)

    async def one() -> str:
        async with gate:
            return (await world.issue_card(children=0))["card_number"]

    return await asyncio.gather(*(one() for _ in range(count)))


async def cards_known_in_venues(system, numbers: list[str]) -> bool:
    conn = await system.database("venues")
    try:
        known = await conn.fetchval(
            "SELECT count(*) FROM card_validity_view WHERE card_number = ANY($1::text[]) "
            "AND valid_from IS NOT NULL AND status = 'open'", numbers)
    finally:
        await conn.close()
    return known == len(numbers)


async def stored_registrations(system, offering_id: str) -> int:
    """Ticket.Registered events for the offering in venues' own event store."""
    conn = await system.database("venues")
    try:
        return await conn.fetchval(
            f'SELECT count(*) FROM "{events_table("venues")}" '
            "WHERE topic LIKE '%Ticket.Registered' "
            "AND convert_from(state, 'UTF8') LIKE '%' || $1 || '%'",
            uuid.UUID(offering_id).hex)  # UUIDs are stored as hex
    finally:
        await conn.close()


async def relay_caught_up(system) -> bool:
    conn = await system.database("venues")
    try:
        latest = await conn.fetchval(
            f'SELECT max(notification_id) FROM "{events_table("venues")}"')
        position = await conn.fetchval("SELECT max(position) FROM relay_position")
    finally:
        await conn.close()
    return position is not None and position >= latest


async def published_registrations(system, offering_id: str) -> list[dict]:
    return [e for e in await stream_events(system, "venues", "ticket_registered.v1")
            if e.get("offering_id") == offering_id]


@pytest.fixture
def second_venues_api(world):
    """Another venues api process on the session's database and NATS."""
    system = world.system
    port = free_port()
    supervisor = Supervisor(
        # No span file: two processes appending to one file could tear its lines.
        {**system.supervisor.base_env, "KAIKU_OTEL_EXPORTER": "none"},
        system.log_dir, restart_crashed=False)
    supervisor.add(ProcessSpec("venues-api-2", [sys.executable, "-m", "venues", "api"],
                               {"KAIKU_HTTP_PORT": str(port)}, port))
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        supervisor.stop_all()


async def test_200_concurrent_registrations_over_two_apis_never_overbook(
        world, second_venues_api):
    system = world.system
    offering_id = await world.publish_offering(card_cap=CARD_CAP, capacity=300)
    numbers = await issue_cards(world, CARDS)
    assert len(set(numbers)) == CARDS
    await eventually(lambda: cards_known_in_venues(system, numbers), timeout=180,
                     message=f"venues to know all {CARDS} cards")

    bases = [system.url("venues"), second_venues_api]
    headers = {"Authorization": f"Bearer {world.venue_token}"}
    limits = httpx.Limits(max_connections=CARDS, max_keepalive_connections=CARDS)
    clients = [httpx.AsyncClient(base_url=b, headers=headers, timeout=120, limits=limits)
               for b in bases]
    start = asyncio.Event()

    async def register(index: int, number: str) -> tuple[int, httpx.Response]:
        await start.wait()
        which = index % 2
        response = await clients[which].post(
            "/tickets", json={"card_number": number, "offering_id": offering_id})
        return which, response

    try:
        tasks = [asyncio.create_task(register(i, n)) for i, n in enumerate(numbers)]
        await asyncio.sleep(0)
        start.set()  # all 200 go out together
        results = await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()

    statuses = [r.status_code for _, r in results]
    unexpected = [(r.status_code, r.text) for _, r in results if r.status_code not in (201, 409)]
    assert not unexpected, unexpected[:3]
    created = [r.json() for _, r in results if r.status_code == 201]
    refused = [r.json() for _, r in results if r.status_code == 409]
    assert len(created) == CARD_CAP, statuses
    assert len(refused) == CARDS - CARD_CAP
    assert all(p["type"].endswith("/card-cap-reached") for p in refused), refused[:3]
    assert len({t["ticket_id"] for t in created}) == CARD_CAP
    assert {which for which, _ in results} == {0, 1}, "both api processes took requests"
    per_process = [sum(1 for w, r in results if w == k and r.status_code == 201) for k in (0, 1)]
    print(f"answers: {statuses.count(201)} × 201, {statuses.count(409)} × 409; "
          f"201s per process: {per_process}")

    async with system.client("venues") as client:
        detail = (await client.get(f"/offerings/{offering_id}")).json()
    assert detail["card_places_left"] == 0

    # The write side holds exactly 10 registrations ...
    assert await stored_registrations(system, offering_id) == CARD_CAP
    # ... and once the relay has published everything, the stream carries exactly 10.
    await eventually(lambda: relay_caught_up(system), timeout=90,
                     message="the venues relay to publish every stored event")
    published = await eventually(
        lambda: published_registrations(system, offering_id), timeout=90,
        message="TicketRegistered in the stream")
    assert len(published) == CARD_CAP, len(published)
    assert {p["ticket_id"] for p in published} == {t["ticket_id"] for t in created}
    print(f"stream: {len(published)} TicketRegistered for the offering")
