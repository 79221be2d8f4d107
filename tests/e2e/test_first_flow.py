"""The first flow across three services, over HTTP, with real processes.

Kaikukeskus registers organisations; a distributor issues a card and activates
OmaKaiku; the venue publishes an offering and registers a ticket (venues knows
the card only from CardIssued); the holder sees it; the venue cancels it; the
holder sees it cancelled. Unknown and closed cards are refused with a 422.
"""

from __future__ import annotations

import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e


async def test_card_to_ticket_to_history_and_cancellation(world):
    card = await world.issue_card(children=2)
    assert card["region"] == "etela-karjala"
    account_id = await world.activate_account(card["card_number"])
    offering_id = await world.publish_offering(card_cap=10)

    response = await world.register_ticket(card["card_number"], offering_id, children=1)
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]

    async def registered():
        rows = await world.history(account_id)
        return rows if rows and rows[0]["status"] == "registered" else None

    rows = await eventually(registered, message="ticket in the holder's history")
    assert len(rows) == 1
    assert rows[0]["ticket_id"] == ticket_id
    assert rows[0]["offering_title"] == "Kevätkonsertti"
    assert rows[0]["venue_name"] == "Imatran Teatteri"
    assert rows[0]["children"] == 1

    async with world.system.client("venues", world.venue_token) as client:
        cancelled = await client.post(f"/tickets/{ticket_id}/cancellation",
                                      json={"reason": "illness"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    async def shows_cancelled():
        rows = await world.history(account_id)
        return rows and rows[0]["status"] == "cancelled"

    await eventually(shows_cancelled, message="history to show the cancellation")
    assert len(await world.history(account_id)) == 1


async def test_ticket_for_unknown_card_is_refused_with_422(world):
    offering_id = await world.publish_offering()
    response = await world.register_ticket("XXX-00000", offering_id)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("/card-unknown")
    assert "XXX-00000" in problem["detail"]


async def test_ticket_for_closed_card_is_refused_with_422(world):
    card = await world.issue_card()
    offering_id = await world.publish_offering()
    async with world.system.client("cards", world.distributor_token) as client:
        closed = await client.post(f"/cards/{card['card_number']}/closure",
                                   json={"reason": "lost"})
    assert closed.status_code == 200, closed.text

    async def refused():
        response = await world.register_ticket(card["card_number"], offering_id)
        return response if response.status_code == 422 and \
            response.json()["type"].endswith("/card-closed") else None

    response = await eventually(refused, message="venues to refuse the closed card")
    assert "closed" in response.json()["detail"]


async def test_card_cap_counts_children_and_refuses_with_409(world):
    offering_id = await world.publish_offering(card_cap=10, capacity=300)
    first = await world.issue_card(children=5)
    second = await world.issue_card(children=5)
    await world.wait_for_card_in_venues(second["card_number"])
    ok = await world.register_ticket(first["card_number"], offering_id, children=5)
    assert ok.status_code == 201, ok.text
    refused = await world.register_ticket(second["card_number"], offering_id, children=5)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/card-cap-reached")


async def test_guideline_minimum_card_cap_is_enforced(world):
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post(f"/venues/{world.venue_id}/offerings", json={
            "title": "Liian pieni kiintiö", "genres": ["theatre"],
            "starts_at": "2030-01-01T18:00:00+02:00", "capacity": 400, "card_cap": 11})
    assert response.status_code == 422
    assert response.json()["type"].endswith("/card-cap-below-guideline")
    assert "12" in response.json()["detail"]  # 3 % of 400, rounded up


async def test_venues_says_the_guideline_minimum_and_its_rule(world):
    async with world.system.client("venues", world.venue_token) as client:
        share = await client.get("/offerings/card-cap-minimum",
                                 params={"capacity": 700, "kind": "event"})
        mass = await client.get("/offerings/card-cap-minimum", params={"capacity": 5000})
        nonsense = await client.get("/offerings/card-cap-minimum", params={"capacity": 0})
    assert share.status_code == 200, share.text
    assert share.json()["minimum_card_cap"] == 21 and share.json()["rule"] == "share"
    assert (mass.json()["minimum_card_cap"], mass.json()["rule"]) == (20, "mass-event")
    assert nonsense.status_code == 422
    assert nonsense.headers["content-type"].startswith("application/problem+json")


async def test_idempotency_key_returns_the_first_answer(world):
    async with world.system.client("cards", world.distributor_token) as client:
        body = {"birth_year": 1990, "postal_code": "53100", "municipality": "Lappeenranta",
                "children": 0}
        headers = {"Idempotency-Key": "issue-once-123"}
        first = await client.post("/cards", json=body, headers=headers)
        second = await client.post("/cards", json=body, headers=headers)
        different = await client.post("/cards", json={**body, "children": 1}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["card_number"] == second.json()["card_number"]
    assert second.headers.get("idempotent-replayed") == "true"
    assert different.status_code == 422
