"""Venues over HTTP with real processes: the national guideline's rules when
publishing, every refusal of a ticket registration naming its rule,
cancellations (by the venue, of a whole offering, on the holder's request),
feedback averages, swimming-hall series, library fees and the public listing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest

from kaiku_shared.contracts import (
    FeedbackGivenV1,
    FeedbackGivenV2,
    OfferingPublishedV1,
    TicketCancellationRequestedV1,
)
from kaiku_dev.assertions import refused
from kaiku_dev.testing import eventually, stream_events

pytestmark = pytest.mark.e2e

HELSINKI = ZoneInfo("Europe/Helsinki")
# Other services' tests share the machine: give eventual consistency room.
SETTLE_SECONDS = 60.0


# --- helpers ------------------------------------------------------------------------------


async def settled(check, *, message: str) -> Any:
    return await eventually(check, timeout=SETTLE_SECONDS, message=message)


def starts(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def new_venue(world, **body: Any) -> str:
    payload = {"organisation_id": world.venue_org_id, "name": "Imatran Kulttuuritalo",
               "kind": "performing_arts", "municipality": "imatra", **body}
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post("/venues", json=payload)
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def post_offering(world, venue_id: str, **body: Any) -> httpx.Response:
    payload = {"title": "Kevätkonsertti", "genres": ["music"], "subgenres": ["classical"],
               "starts_at": starts(days=14), "capacity": 300, "card_cap": 10, **body}
    async with world.system.client("venues", world.venue_token) as client:
        return await client.post(f"/venues/{venue_id}/offerings", json=payload)


async def offering(world, venue_id: str, **body: Any) -> str:
    response = await post_offering(world, venue_id, **body)
    assert response.status_code == 201, response.text
    return response.json()["offering_id"]


async def register(world, card_number: str, offering_id: str, *, token: str | None = None,
                   **body: Any) -> httpx.Response:
    async with world.system.client("venues", token or world.venue_token) as client:
        return await client.post("/tickets", json={
            "card_number": card_number, "offering_id": offering_id, **body})


async def cancel(world, ticket_id: str) -> httpx.Response:
    async with world.system.client("venues", world.venue_token) as client:
        return await client.post(f"/tickets/{ticket_id}/cancellation", json={})


async def card(world, **overrides: Any) -> str:
    number = (await world.issue_card(**overrides))["card_number"]
    await world.wait_for_card_in_venues(number)
    return number


async def until_started(starts_at: str) -> None:
    """Wait (not an assertion) until the event's start has passed."""
    delay = (datetime.fromisoformat(starts_at) - datetime.now(UTC)).total_seconds()
    await asyncio.sleep(max(0.0, delay) + 0.2)


async def published(system, event: str, **match: str) -> list[dict]:
    """The venues stream's ``event`` contracts whose fields equal ``match``."""
    return [b for b in await stream_events(system, "venues", f"{event}.v1")
            if all(b.get(k) == v for k, v in match.items())]


async def publish_as_producer(system, event, msg_id: str | None = None) -> None:
    """Put a contract on its producer's stream (omakaiku's, mostly), as the
    producer's relay would; another ``msg_id`` makes JetStream keep a duplicate."""
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        js = nc.jetstream()
        await js.publish(event.subject(system.ns.name), event.to_json(),
                         headers={"Nats-Msg-Id": msg_id or str(event.event_id)})
    finally:
        await nc.close()


def omakaiku_envelope(aggregate_id: str) -> dict[str, Any]:
    return {"event_id": uuid.uuid4(), "occurred_at": datetime.now(UTC),
            "aggregate_id": aggregate_id, "aggregate_version": 1}


# --- venues: kinds, contact and limits, published with the offering -----------------------


async def test_venue_profile_and_limits_are_published_with_the_offering(world):
    venue_id = await new_venue(
        world, kind="museum", name="Imatran Taidemuseo",
        contact={"phone": "020 617 1234", "email": "lipunmyynti@example.org"},
        limits={"one_ticket_per_card": True, "max_open_reservations": 2,
                "excluded_productions": ["gala"]})
    async with world.system.client("venues") as client:
        profile = (await client.get(f"/venues/{venue_id}")).json()
    assert profile["kind"] == "museum"
    assert profile["contact"]["email"] == "lipunmyynti@example.org"
    assert profile["limits"]["max_open_reservations"] == 2
    offering_id = await offering(world, venue_id, genres=["museums"],
                                 subgenres=["art_museum"], kind="exhibition")

    async def listed():
        async with world.system.client("venues") as client:
            rows = (await client.get("/offerings", params={"venue_id": venue_id})).json()
        row = next((r for r in rows if r["offering_id"] == offering_id), None)
        return row if row and row["venue_kind"] else None

    row = await settled(listed, message="the offering listed with its terms")
    assert row["limits"] == {"one_ticket_per_card": True, "max_open_reservations": 2,
                             "weekends_excluded": False, "excluded_productions": ["gala"]}
    assert row["contact"]["phone"] == "020 617 1234"
    assert (row["venue_kind"], row["production"], row["card_tickets_excluded"]) == (
        "museum", "own", None)
    terms = await settled(lambda: published(world.system, "offering_terms_published",
                                               offering_id=offering_id),
                             message="OfferingTermsPublished in the stream")
    assert terms[0]["max_open_reservations"] == 2
    assert "contact" not in json.dumps(terms[0])  # contact data never travels on NATS


async def test_unknown_venue_kind_is_refused(world):
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post("/venues", json={
            "organisation_id": world.venue_org_id, "name": "X", "kind": "casino",
            "municipality": "imatra"})
    refused(response, 422, "validation")


# --- the guideline when publishing (item 2) -----------------------------------------------


async def test_card_cap_below_3_percent_is_refused(world):
    problem = refused(await post_offering(world, world.venue_id, capacity=320, card_cap=9),
                      422, "card-cap-below-guideline")
    assert "at least 10" in problem["detail"]
    assert await offering(world, world.venue_id, capacity=320, card_cap=10)


async def test_events_over_1000_may_cap_at_20(world):
    assert await offering(world, world.venue_id, capacity=5000, card_cap=20, kind="event")
    problem = refused(await post_offering(world, world.venue_id, capacity=5000, card_cap=19,
                                          kind="event"), 422, "card-cap-below-guideline")
    assert "over 1,000" in problem["detail"]


async def test_a_course_offers_at_least_one_place(world):
    body = {"kind": "course", "capacity": 15, "genres": ["courses"], "subgenres": ["languages"]}
    refused(await post_offering(world, world.venue_id, card_cap=0, **body), 422,
            "card-cap-below-guideline")
    assert await offering(world, world.venue_id, card_cap=1, **body)


@pytest.mark.parametrize("card_cap", [1, 11])
async def test_a_visiting_producer_caps_between_2_and_10(world, card_cap):
    problem = refused(await post_offering(world, world.venue_id, production="visiting",
                                          capacity=800, card_cap=card_cap),
                      422, "visiting-producer-cap")
    assert "2–10" in problem["detail"]


async def test_a_visiting_producer_may_cap_at_2(world):
    # 2 is below 3 % of 800 (24), but a visiting producer's own cap applies.
    assert await offering(world, world.venue_id, production="visiting", capacity=800,
                          card_cap=2)


async def test_card_sales_must_open_at_least_7_days_before_the_event(world):
    event = datetime.now(UTC) + timedelta(days=20)
    late = event - timedelta(days=6)
    refused(await post_offering(world, world.venue_id, starts_at=event.isoformat(),
                                sales_opens_at=late.isoformat()),
            422, "sales-opening-too-late")
    early = event - timedelta(days=7, minutes=1)
    assert await offering(world, world.venue_id, starts_at=event.isoformat(),
                          sales_opens_at=early.isoformat())


async def test_registration_before_card_sales_open_is_refused(world):
    number = await card(world)
    event = datetime.now(UTC) + timedelta(days=20)
    offering_id = await offering(world, world.venue_id, starts_at=event.isoformat(),
                                 sales_opens_at=(event - timedelta(days=8)).isoformat())
    refused(await register(world, number, offering_id), 409, "sales-not-open")


async def test_unknown_genre_and_foreign_subgenre_are_refused(world):
    refused(await post_offering(world, world.venue_id, genres=["alchemy"]), 422, "validation")
    refused(await post_offering(world, world.venue_id, genres=["theatre"],
                                subgenres=["jazz"]), 422, "validation")


async def test_excluded_productions_give_no_card_tickets(world):
    venue_id = await new_venue(world, limits={"excluded_productions": ["premiere"]})
    offering_id = await offering(world, venue_id, production="premiere", card_cap=10)
    async with world.system.client("venues") as client:
        detail = (await client.get(f"/offerings/{offering_id}")).json()
    assert (detail["card_cap"], detail["card_tickets_excluded"]) == (0, "production-excluded")
    refused(await register(world, await card(world), offering_id), 409, "production-excluded")


async def test_weekend_exclusion(world):
    venue_id = await new_venue(world, limits={"weekends_excluded": True})
    today = datetime.now(HELSINKI).date()
    saturday = today + timedelta(days=(5 - today.weekday()) % 7 + 14)
    at = datetime.combine(saturday, datetime.min.time(), HELSINKI).replace(hour=19)
    offering_id = await offering(world, venue_id, starts_at=at.isoformat())
    refused(await register(world, await card(world), offering_id), 409, "weekend-excluded")
    weekday = await offering(world, venue_id, starts_at=(at + timedelta(days=2)).isoformat())
    assert (await register(world, await card(world), weekday)).status_code == 201


async def test_only_the_venue_publishes_its_offering(world):
    other = world.system.token("venue", organisation_id=str(uuid.uuid4()))
    async with world.system.client("venues", other) as client:
        response = await client.post(f"/venues/{world.venue_id}/offerings", json={
            "title": "X", "genres": ["music"], "starts_at": starts(days=14),
            "capacity": 100, "card_cap": 3})
    refused(response, 403, "not-yours")


# --- changing and cancelling an offering --------------------------------------------------


async def change(world, offering_id: str, **body: Any) -> httpx.Response:
    async with world.system.client("venues", world.venue_token) as client:
        return await client.patch(f"/offerings/{offering_id}", json=body)


async def test_changing_an_offering_rechecks_the_guideline_and_is_published(world):
    venue_id = await new_venue(world)
    offering_id = await offering(world, venue_id, capacity=300, card_cap=10)
    number = await card(world, children=2)
    assert (await register(world, number, offering_id, children=2)).status_code == 201
    refused(await change(world, offering_id, capacity=1000), 422, "card-cap-below-guideline")
    refused(await change(world, offering_id, card_cap=2, capacity=50), 409,
            "card-cap-below-taken")
    moved = (datetime.now(UTC) + timedelta(days=21)).replace(microsecond=0)
    response = await change(world, offering_id, title="Kevätkonsertti (siirretty)",
                            starts_at=moved.isoformat(), card_cap=12)
    assert response.status_code == 200, response.text
    assert (response.json()["card_cap"], response.json()["card_places_left"]) == (12, 9)
    changed = await settled(lambda: published(world.system, "offering_changed",
                                                 offering_id=offering_id),
                               message="OfferingChanged in the stream")
    assert changed[-1]["title"] == "Kevätkonsertti (siirretty)"
    assert datetime.fromisoformat(changed[-1]["starts_at"]) == moved

    async def relisted():
        async with world.system.client("venues") as client:
            rows = (await client.get("/offerings", params={"venue_id": venue_id})).json()
        row = next((r for r in rows if r["offering_id"] == offering_id), None)
        return row if row and row["card_cap"] == 12 else None

    row = await settled(relisted, message="the listing to show the change")
    assert row["title"] == "Kevätkonsertti (siirretty)"


async def test_cancelling_an_offering_cancels_its_tickets_and_tells_everyone(world):
    venue_id = await new_venue(world)
    offering_id = await offering(world, venue_id)
    tickets = []
    for _ in range(2):
        response = await register(world, await card(world), offering_id)
        assert response.status_code == 201, response.text
        tickets.append(response.json()["ticket_id"])
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post(f"/offerings/{offering_id}/cancellation",
                                     json={"reason": "lead actor ill"})
        assert response.status_code == 200, response.text
        assert response.json() == {"offering_id": offering_id, "status": "cancelled",
                                   "tickets_cancelled": 2}
        for ticket_id in tickets:
            assert (await client.get(f"/tickets/{ticket_id}")).json()["status"] == "cancelled"
        refused(await client.post(f"/offerings/{offering_id}/cancellation", json={}), 409,
                "offering-already-cancelled")
    refused(await register(world, await card(world), offering_id), 409, "offering-cancelled")

    async def all_cancelled():
        found = await published(world.system, "ticket_cancelled", offering_id=offering_id)
        return found if len(found) == 2 else None

    found = await settled(all_cancelled, message="a TicketCancelled per ticket")
    assert {f["ticket_id"] for f in found} == set(tickets)
    cancelled = await settled(lambda: published(world.system, "offering_cancelled",
                                                   offering_id=offering_id),
                                 message="OfferingCancelled in the stream")
    assert (cancelled[0]["tickets_cancelled"], cancelled[0]["reason"]) == (2, "lead actor ill")

    async def delisted():
        async with world.system.client("venues") as client:
            rows = (await client.get("/offerings", params={"venue_id": venue_id})).json()
        return all(r["offering_id"] != offering_id for r in rows)

    await settled(delisted, message="a cancelled offering to leave the listing")


# --- ticket registration: each refusal names its rule (item 3) ----------------------------


async def test_unknown_card_is_refused(world):
    offering_id = await offering(world, world.venue_id)
    refused(await register(world, "QQQ-00001", offering_id), 422, "card-unknown")


async def test_malformed_card_number_is_refused(world):
    offering_id = await offering(world, world.venue_id)
    refused(await register(world, "12345678", offering_id), 422, "card-number-format")


async def test_closed_card_is_refused(world):
    number = await card(world)
    async with world.system.client("cards", world.distributor_token) as client:
        response = await client.post(f"/cards/{number}/closure", json={"reason": "lost"})
    assert response.status_code == 200, response.text

    async def closed_in_venues():
        conn = await world.system.database("venues")
        try:
            return await conn.fetchval("SELECT status = 'closed' FROM card_validity_view "
                                       "WHERE card_number = $1", number)
        finally:
            await conn.close()

    await settled(closed_in_venues, message="venues to learn the card is closed")
    refused(await register(world, number, await offering(world, world.venue_id)), 422,
            "card-closed")


async def test_card_not_valid_on_the_event_date_is_refused(world):
    number = await card(world, valid_until=(date.today() + timedelta(days=10)).isoformat())
    offering_id = await offering(world, world.venue_id, starts_at=starts(days=30))
    problem = refused(await register(world, number, offering_id), 422,
                      "card-not-valid-on-event-date")
    assert number in problem["detail"]


async def test_more_children_than_the_card_covers_is_refused(world):
    number = await card(world, children=1)
    refused(await register(world, number, await offering(world, world.venue_id), children=2),
            422, "too-many-children")


async def test_card_cap_counts_the_holder_and_the_children(world):
    offering_id = await offering(world, world.venue_id, capacity=100, card_cap=3)
    problem = refused(await register(world, await card(world, children=3), offering_id,
                                     children=3), 409, "card-cap-reached")
    assert "4 asked" in problem["detail"]
    assert (await register(world, await card(world, children=1), offering_id,
                           children=1)).status_code == 201
    assert (await register(world, await card(world), offering_id)).status_code == 201
    problem = refused(await register(world, await card(world), offering_id), 409,
                      "card-cap-reached")
    assert "0 card place(s) left" in problem["detail"]


async def test_one_ticket_per_card_per_performance(world):
    number = await card(world)  # the world's venue chose one ticket per card
    offering_id = await offering(world, world.venue_id)
    assert (await register(world, number, offering_id)).status_code == 201
    refused(await register(world, number, offering_id), 409, "one-ticket-per-card")
    other = await offering(world, world.venue_id)
    assert (await register(world, number, other)).status_code == 201


async def test_several_tickets_per_card_when_the_venue_allows_it(world):
    venue_id = await new_venue(world, limits={"one_ticket_per_card": False})
    number = await card(world)
    offering_id = await offering(world, venue_id)
    assert (await register(world, number, offering_id)).status_code == 201
    assert (await register(world, number, offering_id)).status_code == 201


async def test_open_reservation_limit(world):
    venue_id = await new_venue(world, limits={"max_open_reservations": 2})
    number = await card(world)
    offerings = [await offering(world, venue_id) for _ in range(3)]
    first = await register(world, number, offerings[0])
    assert first.status_code == 201
    assert (await register(world, number, offerings[1])).status_code == 201
    problem = refused(await register(world, number, offerings[2]), 409,
                      "open-reservation-limit")
    assert "allows 2" in problem["detail"]
    # Cancelling one frees a reservation; other cards are not affected.
    assert (await register(world, await card(world), offerings[2])).status_code == 201
    assert (await cancel(world, first.json()["ticket_id"])).status_code == 200
    assert (await register(world, number, offerings[2])).status_code == 201


async def test_open_reservation_limit_holds_under_concurrency(world):
    venue_id = await new_venue(world, limits={"max_open_reservations": 1})
    number = await card(world)
    offerings = [await offering(world, venue_id) for _ in range(6)]
    answers = await asyncio.gather(*(register(world, number, o) for o in offerings))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 409, 409, 409, 409, 409], [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            refused(answer, 409, "open-reservation-limit")


async def test_event_started_is_refused(world):
    at = starts(seconds=2)
    offering_id = await offering(world, world.venue_id, starts_at=at)
    number = await card(world)
    await until_started(at)
    refused(await register(world, number, offering_id), 422, "event-started")


async def test_companion_ticket_is_recorded_and_takes_a_place(world):
    offering_id = await offering(world, world.venue_id, capacity=100, card_cap=3)
    number = await card(world, children=1)
    response = await register(world, number, offering_id, children=1, companion="assistant",
                              channel="phone")
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert (ticket["companion"], ticket["children"], ticket["channel"]) == (
        "assistant", 1, "phone")
    async with world.system.client("venues") as client:
        detail = (await client.get(f"/offerings/{offering_id}")).json()
    assert detail["card_places_left"] == 0  # holder + child + assistant
    refused(await register(world, await card(world), offering_id, companion="interpreter"),
            409, "card-cap-reached")
    refused(await register(world, number, offering_id, companion="friend"), 422, "validation")


async def test_channel_is_recorded_and_ticket_agents_act_for_their_venues(world):
    agent = str(uuid.uuid4())
    venue_id = await new_venue(world, limits={"ticket_agents": [agent]})
    offering_id = await offering(world, venue_id)
    agent_token = world.system.token("ticket_agent", organisation_id=agent)
    by_email = await register(world, await card(world), offering_id, channel="email")
    assert by_email.json()["channel"] == "email"
    by_agent = await register(world, await card(world), offering_id, token=agent_token,
                              channel="box_office")
    assert by_agent.status_code == 201, by_agent.text
    assert by_agent.json()["channel"] == "ticket_agent"
    stranger = world.system.token("ticket_agent", organisation_id=str(uuid.uuid4()))
    refused(await register(world, await card(world), offering_id, token=stranger), 403,
            "not-yours")
    registered = await settled(
        lambda: published(world.system, "ticket_registered",
                          ticket_id=by_agent.json()["ticket_id"]),
        message="TicketRegistered in the stream")
    assert (registered[0]["channel"], registered[0]["registered_by"]) == ("ticket_agent", agent)


async def test_a_removed_ticket_agent_is_refused_at_once(world):
    """PATCH /venues/{id} with a new ticket_agents list: the agent left out gets
    403 from its very next registration for that venue, and drops out of the
    venue list it sees; the one kept goes on."""
    kept, removed = str(uuid.uuid4()), str(uuid.uuid4())
    venue_id = await new_venue(world, limits={"ticket_agents": [kept, removed]})
    offering_id = await offering(world, venue_id)
    tokens = {agent: world.system.token("ticket_agent", organisation_id=agent)
              for agent in (kept, removed)}
    before = await register(world, await card(world), offering_id, token=tokens[removed])
    assert before.status_code == 201, before.text
    async with world.system.client("venues", world.venue_token) as client:
        changed = await client.patch(f"/venues/{venue_id}", json={"ticket_agents": [kept]})
        unknown = await client.patch(f"/venues/{venue_id}", json={"nickname": "x"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["limits"]["ticket_agents"] == [kept]
    assert unknown.status_code == 422  # no such part of a venue
    refused(await register(world, await card(world), offering_id, token=tokens[removed]),
            403, "not-yours")
    after = await register(world, await card(world), offering_id, token=tokens[kept])
    assert after.status_code == 201, after.text
    stranger = world.system.token("venue", organisation_id=str(uuid.uuid4()))
    async with world.system.client("venues", stranger) as client:
        assert (await client.patch(f"/venues/{venue_id}",
                                   json={"ticket_agents": []})).status_code == 403

    async def listed_for(agent: str) -> list[str]:
        async with world.system.client("venues", tokens[agent]) as client:
            return [v["venue_id"] for v in (await client.get("/venues")).json()]

    await settled(lambda: _absent(listed_for(removed), venue_id),
                  message="the venue gone from the removed agent's list")
    assert venue_id in await listed_for(kept)


async def _absent(listing, venue_id: str) -> bool:
    return venue_id not in await listing


# --- cancellation (item 4) ----------------------------------------------------------------


async def test_a_cancelled_place_can_be_registered_again(world):
    offering_id = await offering(world, world.venue_id, capacity=100, card_cap=3)
    first = await card(world, children=2)
    ticket = await register(world, first, offering_id, children=2)
    assert ticket.status_code == 201
    waiting = await card(world, children=2)
    refused(await register(world, waiting, offering_id, children=2), 409, "card-cap-reached")
    assert (await cancel(world, ticket.json()["ticket_id"])).status_code == 200
    assert (await register(world, waiting, offering_id, children=2)).status_code == 201
    async with world.system.client("venues") as client:
        assert (await client.get(f"/offerings/{offering_id}")).json()["card_places_left"] == 0


async def test_cancelling_twice_is_a_409(world):
    response = await register(world, await card(world), await offering(world, world.venue_id))
    ticket_id = response.json()["ticket_id"]
    assert (await cancel(world, ticket_id)).status_code == 200
    refused(await cancel(world, ticket_id), 409, "already-cancelled")


async def test_cancelling_after_the_start_is_refused(world):
    at = starts(seconds=3)
    offering_id = await offering(world, world.venue_id, starts_at=at)
    response = await register(world, await card(world), offering_id)
    assert response.status_code == 201, response.text
    await until_started(at)
    refused(await cancel(world, response.json()["ticket_id"]), 409, "event-started")


async def test_holder_cancellation_after_the_start_is_refused_and_published(world):
    at = starts(seconds=3)
    offering_id = await offering(world, world.venue_id, starts_at=at)
    number = await card(world)
    response = await register(world, number, offering_id)
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]
    await until_started(at)
    account_id = str(uuid.uuid4())
    request = TicketCancellationRequestedV1.build(
        **omakaiku_envelope(account_id), account_id=account_id, ticket_id=ticket_id,
        card_number=number)
    await publish_as_producer(world.system, request)
    refusals = await settled(
        lambda: published(world.system, "ticket_cancellation_refused", ticket_id=ticket_id),
        message="TicketCancellationRefused in the stream")
    assert len(refusals) == 1
    assert (refusals[0]["rule"], refusals[0]["account_id"], refusals[0]["request_event_id"]) \
        == ("event-started", account_id, str(request.event_id))
    assert refusals[0]["causation_id"] == str(request.event_id)
    async with world.system.client("venues", world.venue_token) as client:
        assert (await client.get(f"/tickets/{ticket_id}")).json()["status"] == "registered"


async def test_holder_cancellation_before_the_start_cancels_and_frees_the_place(world):
    offering_id = await offering(world, world.venue_id, capacity=100, card_cap=3)
    number = await card(world, children=2)
    ticket_id = (await register(world, number, offering_id, children=2)).json()["ticket_id"]
    account_id = str(uuid.uuid4())
    await publish_as_producer(world.system, TicketCancellationRequestedV1.build(
        **omakaiku_envelope(account_id), account_id=account_id, ticket_id=ticket_id,
        card_number=number))
    found = await settled(
        lambda: published(world.system, "ticket_cancelled", ticket_id=ticket_id),
        message="TicketCancelled after the holder's request")
    assert found[0]["requested_by_holder"] is True
    assert (await register(world, await card(world, children=2), offering_id,
                           children=2)).status_code == 201


# --- feedback averages (item 6) -----------------------------------------------------------


async def venue_feedback(world, venue_id: str) -> dict:
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.get(f"/venues/{venue_id}/feedback")
    assert response.status_code == 200, response.text
    return response.json()


async def feedback_rows(world, offering_id: str) -> list[dict]:
    conn = await world.system.database("venues")
    try:
        return [dict(r) for r in await conn.fetch(
            "SELECT * FROM feedback_view WHERE offering_id = $1", uuid.UUID(offering_id))]
    finally:
        await conn.close()


async def give(world, venue_id: str, offering_id: str, *scores: tuple[int, int, int]) -> None:
    for accessibility, meaning, interest in scores:
        feedback_id = uuid.uuid4()
        await publish_as_producer(world.system, FeedbackGivenV2.build(
            **omakaiku_envelope(str(feedback_id)), feedback_id=feedback_id,
            offering_id=offering_id, venue_id=venue_id, accessibility=accessibility,
            meaning=meaning, interest=interest))


async def old_offering(world, venue_id: str, days_ago: int) -> tuple[str, datetime]:
    """An offering that started ``days_ago`` days ago, as venues' relay published it
    then (the api publishes only future offerings)."""
    offering_id, starts_at = uuid.uuid4(), datetime.now(UTC) - timedelta(days=days_ago)
    await publish_as_producer(world.system, OfferingPublishedV1.build(
        **omakaiku_envelope(str(offering_id)), offering_id=offering_id, venue_id=venue_id,
        venue_name="Imatran Kulttuuritalo", title=f"Syyskonsertti {days_ago}",
        kind="performance", genres=("music",), starts_at=starts_at, municipality="imatra",
        capacity=300, card_cap=10))
    return str(offering_id), starts_at


async def test_feedback_is_withheld_while_the_feedback_window_is_open(world):
    venue_id = await new_venue(world)
    offering_id = await offering(world, venue_id)
    scores = [(5, 4, 3), (3, 4, 5), (4, 1, 2), (0, 5, 5), (2, 2, 2), (4, 4, 4)]
    await give(world, venue_id, offering_id, *scores)

    async def all_counted():
        return len(await feedback_rows(world, offering_id)) == len(scores)

    await settled(all_counted, message="6 feedback answers projected")
    feedback = await venue_feedback(world, venue_id)
    # Six answers, but holders may still answer for 30 days: nothing to read yet.
    assert feedback["offerings"] == []
    assert feedback["overall"] == {"responses": 0, "accessibility": None, "meaning": None,
                                   "interest": None}
    (withheld,) = feedback["withheld"]
    assert (withheld["offering_id"], withheld["reason"]) == (offering_id, "window-open")
    assert "responses" not in withheld
    releases = datetime.fromisoformat(withheld["releases_at"])
    starts_at = datetime.fromisoformat(withheld["starts_at"])
    assert releases - starts_at == timedelta(days=feedback["window_days"] + 1)
    assert (feedback["window_days"], feedback["minimum_responses"]) == (30, 5)


async def test_feedback_averages_released_after_the_window_and_never_by_difference(world):
    venue_id = await new_venue(world)
    (closed, _), (small, _), (recent, _) = [await old_offering(world, venue_id, days)
                                            for days in (45, 40, 20)]
    await give(world, venue_id, closed, (5, 4, 3), (3, 4, 5), (4, 1, 2), (0, 5, 5))
    # One answer of the closed offering as the previous release published it (V1,
    # with its ticket id), delivered twice: counted once, its ticket never stored.
    ticket_id = uuid.uuid4()
    v1 = FeedbackGivenV1.build(**omakaiku_envelope(str(uuid.uuid4())), ticket_id=ticket_id,
                               offering_id=closed, venue_id=venue_id, accessibility=3,
                               meaning=1, interest=0)
    await publish_as_producer(world.system, v1)
    await publish_as_producer(world.system, v1, msg_id=f"again-{v1.event_id}")
    await give(world, venue_id, small, (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1))
    await give(world, venue_id, recent, *[(2, 2, 2)] * 6)

    async def all_counted():
        counts = [len(await feedback_rows(world, o)) for o in (closed, small, recent)]
        return counts == [5, 4, 6]

    await settled(all_counted, message="every answer projected, the V1 one once")
    stored = await feedback_rows(world, closed)
    assert "ticket_id" not in stored[0]
    assert str(ticket_id) not in repr(stored)
    assert v1.upcast().feedback_id in {row["feedback_id"] for row in stored}

    feedback = await venue_feedback(world, venue_id)
    (shown,) = feedback["offerings"]
    assert shown["offering_id"] == closed
    assert (shown["responses"], shown["accessibility"], shown["meaning"],
            shown["interest"]) == (5, 3.0, 3.0, 3.0)
    # Overall is exactly the offerings shown: nothing of the small one to subtract.
    assert feedback["overall"] == {"responses": 5, "accessibility": 3.0, "meaning": 3.0,
                                   "interest": 3.0}
    assert {w["offering_id"]: w["reason"] for w in feedback["withheld"]} == {
        small: "too-few-responses", recent: "window-open"}


async def test_feedback_is_only_for_the_venue_itself(world):
    other = world.system.token("venue", organisation_id=str(uuid.uuid4()))
    async with world.system.client("venues", other) as client:
        response = await client.get(f"/venues/{world.venue_id}/feedback")
    refused(response, 403, "not-yours")


# --- swimming-hall series and library fees (item 5) ---------------------------------------


async def test_swimming_series_needs_30_visits(world):
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post("/venues", json={
            "organisation_id": world.venue_org_id, "name": "Imatran uimahalli",
            "kind": "swimming_hall", "municipality": "imatra",
            "limits": {"series_visits_per_year": 29}})
    refused(response, 422, "swimming-series-below-guideline")


async def test_swimming_series_children_consume_visits(world):
    venue_id = await new_venue(world, kind="swimming_hall", name="Imatran uimahalli",
                               limits={"series_visits_per_year": 30})
    number = await card(world, children=2)
    async with world.system.client("venues", world.venue_token) as client:
        for visit in range(1, 11):
            response = await client.post(f"/venues/{venue_id}/swimming-visits",
                                         json={"card_number": number, "children": 2})
            assert response.status_code == 201, response.text
            assert response.json()["visits_used"] == 3 * visit
        assert response.json()["visits_left"] == 0
        refused(await client.post(f"/venues/{venue_id}/swimming-visits",
                                  json={"card_number": number}),
                409, "swimming-series-used-up")
        refused(await client.post(f"/venues/{venue_id}/swimming-visits",
                                  json={"card_number": number, "children": 3}),
                422, "too-many-children")
    visits = await settled(
        lambda: published(world.system, "swimming_visit_registered", card_number=number),
        message="SwimmingVisitRegistered in the stream")
    assert visits[0]["visits"] == 3


async def test_library_fees_within_the_yearly_cap(world):
    venue_id = await new_venue(world, kind="library", name="Imatran kaupunginkirjasto",
                               limits={"library_fee_cap_cents": 500})
    number = await card(world)
    async with world.system.client("venues", world.venue_token) as client:
        first = await client.post(f"/venues/{venue_id}/library-fees", json={
            "card_number": number, "fee_type": "interlibrary_loan", "amount_cents": 300})
        assert first.status_code == 201, first.text
        assert (first.json()["year_total_cents"], first.json()["left_cents"]) == (300, 200)
        problem = refused(await client.post(f"/venues/{venue_id}/library-fees", json={
            "card_number": number, "fee_type": "late_fee", "amount_cents": 250}),
            409, "library-fee-cap-reached")
        assert "200 cents left" in problem["detail"]
        last = await client.post(f"/venues/{venue_id}/library-fees", json={
            "card_number": number, "fee_type": "copying", "amount_cents": 200})
        assert last.json()["left_cents"] == 0
        refused(await client.post(f"/venues/{world.venue_id}/library-fees", json={
            "card_number": number, "fee_type": "copying", "amount_cents": 100}),
            422, "not-a-library")


# --- the public listing (item 7) ----------------------------------------------------------


async def test_listing_filters_and_paginates_with_totals(world):
    venue_id = await new_venue(world, municipality="Lappeenranta")
    base = datetime.now(UTC) + timedelta(days=40)
    ids = []
    for day in range(5):
        ids.append(await offering(world, venue_id, genres=["dance"], subgenres=["ballet"],
                                  starts_at=(base + timedelta(days=day)).isoformat()))
    await offering(world, venue_id, genres=["theatre"], subgenres=["comedy"],
                   starts_at=base.isoformat())

    async def page(**params) -> httpx.Response:
        async with world.system.client("venues") as client:
            return await client.get("/offerings", params={"venue_id": venue_id, **params})

    async def all_listed():
        response = await page()
        return response if response.headers["x-total-count"] == "6" else None

    await settled(all_listed, message="all six listed")
    first = await page(genre="dance", subgenre="ballet", limit=2)
    assert first.headers["x-total-count"] == "5"
    assert [r["offering_id"] for r in first.json()] == ids[:2]
    assert 'rel="next"' in first.headers["link"]
    last = await page(genre="dance", limit=2, offset=4)
    assert [r["offering_id"] for r in last.json()] == ids[4:]
    assert "link" not in last.headers
    window = await page(**{"genre": "dance",
                           "from": (base + timedelta(days=1)).astimezone(HELSINKI)
                           .date().isoformat(),
                           "to": (base + timedelta(days=2)).astimezone(HELSINKI)
                           .date().isoformat()})
    assert [r["offering_id"] for r in window.json()] == ids[1:3]
    assert (await page(municipality="lappeenranta")).headers["x-total-count"] == "6"
    assert (await page(municipality="imatra")).headers["x-total-count"] == "0"
    refused(await page(genre="alchemy"), 422, "unknown-genre")
