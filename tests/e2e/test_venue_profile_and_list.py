"""Issue 21, items 1 and 2, over HTTP with the real processes: a venue changes its
name, public contact, limits and ticket agents (PATCH /venues/{id}); the box
office lists an offering's card tickets (GET /offerings/{id}/tickets) and
cancels from the list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kaiku_dev.assertions import refused
from kaiku_dev.testing import eventually, stream_events

pytestmark = pytest.mark.e2e

SETTLE_SECONDS = 60.0  # other services' tests share the machine


async def new_venue(world, **body: Any) -> str:
    payload = {"organisation_id": world.venue_org_id, "name": "Imatran Kulttuuritalo",
               "kind": "performing_arts", "municipality": "imatra", **body}
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post("/venues", json=payload)
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def patch(world, venue_id: str, body: dict, token: str | None = None) -> httpx.Response:
    async with world.system.client("venues", token or world.venue_token) as client:
        return await client.patch(f"/venues/{venue_id}", json=body)


async def new_offering(world, venue_id: str, **body: Any) -> str:
    payload = {"title": "Syyskonsertti", "genres": ["music"], "subgenres": ["classical"],
               "starts_at": (datetime.now(UTC) + timedelta(days=14)).isoformat(),
               "capacity": 300, "card_cap": 20, **body}
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post(f"/venues/{venue_id}/offerings", json=payload)
    assert response.status_code == 201, response.text
    return response.json()["offering_id"]


async def card(world, **overrides: Any) -> str:
    number = (await world.issue_card(**overrides))["card_number"]
    await world.wait_for_card_in_venues(number)
    return number


async def register(world, number: str, offering_id: str, token: str | None = None,
                   **body: Any) -> httpx.Response:
    async with world.system.client("venues", token or world.venue_token) as client:
        return await client.post("/tickets", json={"card_number": number,
                                                   "offering_id": offering_id, **body})


async def ticket_list(world, offering_id: str, token: str | None = None,
                      **params: Any) -> httpx.Response:
    async with world.system.client("venues", token or world.venue_token) as client:
        return await client.get(f"/offerings/{offering_id}/tickets", params=params)


# --- item 1: the venue's profile ----------------------------------------------------------


async def test_name_and_contact_change_and_travel_as_venue_changed(world):
    venue_id = await new_venue(world, contact={"phone": "020 617 1234"})
    response = await patch(world, venue_id, {
        "name": "Imatran Teatteritalo",
        "contact": {"phone": "+358 5 123 4567", "email": "liput@imatra.example",
                    "url": "https://imatra.example/liput", "box_office": "ti–pe 12–18"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["changed"], body["limits_apply_to"]) == (
        "Imatran Teatteritalo", ["profile"], None)
    assert body["contact"]["email"] == "liput@imatra.example"
    async with world.system.client("venues") as client:
        assert (await client.get(f"/venues/{venue_id}")).json()["name"] == \
            "Imatran Teatteritalo"

    async def in_stream():
        events = [e for e in await stream_events(world.system, "venues", "venue_changed.v1")
                  if e.get("venue_id") == venue_id]
        return events or None

    (changed,) = await eventually(in_stream, timeout=SETTLE_SECONDS,
                                  message="VenueChanged in the stream")
    assert (changed["name"], changed["contact"]["box_office"], changed["changed"]) == (
        "Imatran Teatteritalo", "ti–pe 12–18", ["name", "contact"])

    async def listed_with_new_name():
        async with world.system.client("venues", world.venue_token) as client:
            rows = (await client.get("/venues")).json()
        row = next((r for r in rows if r["venue_id"] == venue_id), None)
        return row if row and row["name"] == "Imatran Teatteritalo" else None

    row = await eventually(listed_with_new_name, timeout=SETTLE_SECONDS,
                           message="the venue list to show the new name")
    assert row["contact"]["url"] == "https://imatra.example/liput"


async def test_bad_changes_are_refused_clearly_and_change_nothing(world):
    venue_id = await new_venue(world)
    cases = [
        ({}, "nothing-to-change"),
        ({"name": ""}, "validation"),
        ({"contact": {"email": "not an address"}}, "validation"),
        ({"contact": {"url": "imatra.example"}}, "validation"),
        ({"limits": {"excluded_productions": ["own"]}}, "validation"),
        ({"limits": {"series_visits_per_year": 40}},
         "swimming-series-only-for-swimming-halls"),
        ({"limits": {}}, "nothing-to-change"),
        ({"name": "Uusi", "limits": {"max_open_reservations": 0}}, "validation"),
    ]
    for body, kind in cases:
        refused(await patch(world, venue_id, body), 422, kind)  # each with its detail
    problem = refused(await patch(world, venue_id, {"contact": {
        "phone": "soita meille", "email": "liput", "url": "imatra.example"}}), 422, "validation")
    assert [e["field"] for e in problem["errors"]] == ["contact.phone", "contact.email",
                                                        "contact.url"]
    assert "liput@example.fi" in problem["detail"] and "https://" in problem["detail"]
    async with world.system.client("venues") as client:
        assert (await client.get(f"/venues/{venue_id}")).json()["name"] == \
            "Imatran Kulttuuritalo"
    stranger = world.system.token("venue", organisation_id=str(uuid.uuid4()))
    refused(await patch(world, venue_id, {"name": "Vieras"}, stranger), 403, "not-yours")
    agent = world.system.token("ticket_agent", organisation_id=str(uuid.uuid4()))
    refused(await patch(world, venue_id, {"name": "Agentti"}, agent), 403, "wrong-role")
    centre = await patch(world, venue_id, {"name": "Kaikukeskuksen korjaama"},
                         world.centre_token)
    assert centre.status_code == 200, centre.text


async def test_tightened_limits_apply_to_offerings_published_from_now_on(world):
    venue_id = await new_venue(world)
    earlier = await new_offering(world, venue_id)
    number = await card(world)
    assert (await register(world, number, earlier)).status_code == 201
    response = await patch(world, venue_id, {"limits": {"one_ticket_per_card": True}})
    assert response.status_code == 200, response.text
    assert response.json()["limits_apply_to"] == "offerings-published-from-now-on"
    assert response.json()["limits"]["one_ticket_per_card"] is True
    # The offering published before keeps its terms: a second ticket is fine there.
    assert (await register(world, number, earlier)).status_code == 201
    later = await new_offering(world, venue_id)
    assert (await register(world, number, later)).status_code == 201
    refused(await register(world, number, later), 409, "one-ticket-per-card")


async def test_a_removed_agent_neither_registers_nor_lists_at_once(world):
    agent = str(uuid.uuid4())
    agent_token = world.system.token("ticket_agent", organisation_id=agent)
    venue_id = await new_venue(world, limits={"ticket_agents": [agent]})
    offering_id = await new_offering(world, venue_id)
    assert (await register(world, await card(world), offering_id, agent_token)
            ).status_code == 201
    assert (await patch(world, venue_id, {"ticket_agents": []})).status_code == 200
    refused(await register(world, await card(world), offering_id, agent_token), 403,
            "not-yours")
    refused(await ticket_list(world, offering_id, agent_token), 403, "not-yours")


# --- item 2: the box office's list ----------------------------------------------------------


async def test_the_box_office_lists_the_tickets_and_cancels_from_the_list(world):
    agent = str(uuid.uuid4())
    agent_token = world.system.token("ticket_agent", organisation_id=agent)
    venue_id = await new_venue(world, limits={"ticket_agents": [agent]})
    offering_id = await new_offering(world, venue_id)
    first, second = await card(world), await card(world)
    one = (await register(world, first, offering_id, children=2)).json()
    two = (await register(world, second, offering_id, agent_token)).json()

    async def listed(count: int, token: str | None = None, **params: Any):
        response = await ticket_list(world, offering_id, token, **params)
        assert response.status_code == 200, response.text
        rows = response.json()
        return rows if len(rows) == count else None

    rows = await eventually(lambda: listed(2), timeout=SETTLE_SECONDS,
                            message="both tickets in the list")
    assert [(r["ticket_id"], r["card_number"], r["children"], r["status"]) for r in rows] == [
        (one["ticket_id"], first, 2, "registered"), (two["ticket_id"], second, 0, "registered")]
    assert rows[0]["registered_at"] <= rows[1]["registered_at"]
    assert await listed(2, agent_token)  # its ticket agent sees the same list

    async with world.system.client("venues", world.venue_token) as client:
        cancelled = await client.post(f"/tickets/{one['ticket_id']}/cancellation", json={})
    assert cancelled.status_code == 200, cancelled.text

    async def cancelled_in_list():
        rows = await listed(1, status="cancelled")
        return rows

    (row,) = await eventually(cancelled_in_list, timeout=SETTLE_SECONDS,
                              message="the cancellation in the list")
    assert row["ticket_id"] == one["ticket_id"]
    (still,) = await listed(1, status="registered")
    assert still["ticket_id"] == two["ticket_id"]


async def test_only_that_venue_and_its_agents_see_the_list(world):
    offering_id = await new_offering(world, world.venue_id)
    for role in ("venue", "ticket_agent"):
        token = world.system.token(role, organisation_id=str(uuid.uuid4()))
        refused(await ticket_list(world, offering_id, token), 403, "not-yours")
    refused(await ticket_list(world, offering_id, world.distributor_token), 403,
            "wrong-role")
    refused(await ticket_list(world, offering_id, status="lost"), 422, "validation")
    refused(await ticket_list(world, str(uuid.uuid4())), 404, "offering-not-found")
    async with world.system.client("venues") as client:
        assert (await client.get(f"/offerings/{offering_id}/tickets")).status_code == 401
