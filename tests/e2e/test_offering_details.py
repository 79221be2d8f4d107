"""Offering details for holders, end to end (issue 21, item 4): anyone reads an
offering on OmaKaiku with the venue's contact, the card places left, each limit
in words (fi/sv/en) and how to get a ticket; places left follow registrations and
cancellations within a second; a venue's changed name and contact reach the
details; the network's places by name; swimming visits and library fees in the
holder's history. Real processes, Postgres and NATS JetStream."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e

CONTACT = {"phone": "+358 5 123 4567", "email": "lipunmyynti@example.org",
           "url": "https://teatteri.example.org", "box_office": "ti–pe 12–18"}


async def details(world, offering_id: str, **params: Any) -> dict[str, Any] | None:
    headers = params.pop("headers", {})
    async with world.system.client("omakaiku") as client:  # no token: anyone
        response = await client.get(f"/offerings/{offering_id}", params=params,
                                    headers=headers)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()


async def places_left_becomes(world, offering_id: str, expected: int, *,
                              within: float) -> float:
    """Seconds until the details show ``expected`` places left (fails after ``within``)."""
    started = time.monotonic()

    async def shown():
        body = await details(world, offering_id)
        return body is not None and body["card_places_left"] == expected

    await eventually(shown, timeout=within, interval=0.02,
                     message=f"{expected} card places left on {offering_id}")
    return time.monotonic() - started


async def venue_with_contact(world, **body: Any) -> str:
    payload = {"organisation_id": world.venue_org_id, "name": "Imatran Kulttuurikeskus",
               "kind": "performing_arts", "municipality": "imatra", "contact": CONTACT,
               "limits": {"one_ticket_per_card": True, "max_open_reservations": 2,
                          "excluded_productions": ["gala"]}, **body}
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post("/venues", json=payload)
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def offering_at(world, venue_id: str, **body: Any) -> str:
    payload = {"title": "Syysooppera", "genres": ["music"], "subgenres": ["classical"],
               "starts_at": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
               "capacity": 300, "card_cap": 10, **body}
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post(f"/venues/{venue_id}/offerings", json=payload)
    assert response.status_code == 201, response.text
    return response.json()["offering_id"]


async def test_places_left_follow_registration_and_cancellation_within_a_second(world):
    issued = await world.issue_card(children=2)
    card_number = issued["card_number"]
    offering_id = await world.publish_offering(card_cap=10)
    await places_left_becomes(world, offering_id, 10, within=15)
    await world.wait_for_card_in_venues(card_number)
    response = await world.register_ticket(card_number, offering_id, children=2)
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]
    # The holder and two children: three places.
    assert await places_left_becomes(world, offering_id, 7, within=1.0) < 1.0
    async with world.system.client("venues", world.venue_token) as client:
        cancelled = await client.post(f"/tickets/{ticket_id}/cancellation", json={})
    assert cancelled.status_code == 200, cancelled.text
    assert await places_left_becomes(world, offering_id, 10, within=1.0) < 1.0


async def test_limits_contact_and_how_to_get_in_three_languages(world):
    venue_id = await venue_with_contact(world)
    offering_id = await offering_at(world, venue_id)
    fi = await eventually(lambda: details(world, offering_id), message="details")
    assert fi["venue"] == {"name": "Imatran Kulttuurikeskus", "municipality": "Imatra",
                           "contact": CONTACT}
    assert fi["municipality"] == "imatra" and fi["municipality_name"] == "Imatra"
    codes = [limit["code"] for limit in fi["limits"]]
    assert {"one_ticket_per_card", "max_open_reservations", "excluded_productions",
            "children"} <= set(codes)
    by_code = {limit["code"]: limit["text"] for limit in fi["limits"]}
    assert "2" in by_code["max_open_reservations"] and "gaalat" in by_code[
        "excluded_productions"]
    assert any("lipunmyynnistä" in step for step in fi["how_to_get"])
    assert any(CONTACT["phone"] in step for step in fi["how_to_get"])
    sv = await details(world, offering_id, headers={"Accept-Language": "sv-FI,sv;q=0.9"})
    en = await details(world, offering_id, lang="en",
                       headers={"Accept-Language": "fi"})  # ?lang wins over the header
    sv_text = {limit["code"]: limit["text"] for limit in sv["limits"]}
    en_text = {limit["code"]: limit["text"] for limit in en["limits"]}
    assert "galor" in sv_text["excluded_productions"]
    assert "galas" in en_text["excluded_productions"]
    assert len({by_code["one_ticket_per_card"], sv_text["one_ticket_per_card"],
                en_text["one_ticket_per_card"]}) == 3
    assert en["genre_labels"] == ["Music"] and sv["genre_labels"] == ["Musik"]
    assert any("box office" in step for step in en["how_to_get"])


async def test_a_venue_change_reaches_the_details(world):
    venue_id = await venue_with_contact(world, name="Vanha nimi")
    offering_id = await offering_at(world, venue_id)
    await eventually(lambda: details(world, offering_id), message="details")
    # The venue's own staff change it through venues (PATCH /venues/{id}); the
    # VenueChanged it publishes reaches omakaiku's details.
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.patch(f"/venues/{venue_id}", json={
            "name": "Uusi nimi",
            "contact": {"phone": "+358 40 765 4321", "url": "https://uusi.example.org"}})
    assert response.status_code == 200, response.text

    async def renamed():
        body = await details(world, offering_id)
        return body if body["venue"]["name"] == "Uusi nimi" else None

    body = await eventually(renamed, message="the venue's new name in the details")
    assert body["venue_name"] == "Uusi nimi"
    assert body["venue"]["contact"] == {"phone": "+358 40 765 4321", "email": None,
                                        "url": "https://uusi.example.org",
                                        "box_office": None}


async def test_bad_requests_and_places_by_name(world):
    async with world.system.client("omakaiku") as client:
        missing = await client.get(f"/offerings/{uuid.uuid4()}")
        not_an_id = await client.get("/offerings/imatra")
        bad_lang = await client.get(f"/offerings/{uuid.uuid4()}", params={"lang": "de"})
        places = await client.get("/places", params={"lang": "sv"})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"), missing.text
    assert not_an_id.status_code == 422 and bad_lang.status_code == 422
    assert places.status_code == 200, places.text
    names = {m["code"]: m["name"] for m in places.json()["municipalities"]}
    assert names.get("imatra") == "Imatra"
    assert places.json()["regions"] and all(r["name"] for r in places.json()["regions"])


async def test_swimming_visits_and_library_fees_in_the_history(world):
    issued = await world.issue_card(children=1)
    card_number = issued["card_number"]
    account_id = await world.activate_account(card_number)
    async with world.system.client("venues", world.venue_token) as client:
        swim = await client.post("/venues", json={
            "organisation_id": world.venue_org_id, "name": "Imatran uimahalli",
            "kind": "swimming_hall", "municipality": "imatra",
            "limits": {"series_visits_per_year": 30}})
        library = await client.post("/venues", json={
            "organisation_id": world.venue_org_id, "name": "Imatran kirjasto",
            "kind": "library", "municipality": "imatra",
            "limits": {"library_fee_cap_cents": 500}})
    await world.wait_for_card_in_venues(card_number)
    async with world.system.client("venues", world.venue_token) as client:
        visit = await client.post(f"/venues/{swim.json()['venue_id']}/swimming-visits",
                                  json={"card_number": card_number, "children": 1})
        fee = await client.post(f"/venues/{library.json()['venue_id']}/library-fees", json={
            "card_number": card_number, "fee_type": "late_fee", "amount_cents": 250})
    assert visit.status_code == 201 and fee.status_code == 201, (visit.text, fee.text)

    async def both():
        rows = await world.history(account_id)
        kinds = {row["kind"]: row for row in rows}
        return kinds if {"swimming_visit", "library_fee"} <= set(kinds) else None

    kinds = await eventually(both, message="swimming visit and library fee in the history")
    swimming, fees = kinds["swimming_visit"], kinds["library_fee"]
    assert (swimming["venue_name"], swimming["children"], swimming["status"]) == (
        "Imatran uimahalli", 1, "used")
    assert swimming["detail"]["visits"] == 2 and swimming["detail"]["visits_per_year"] == 30
    assert fees["venue_name"] == "Imatran kirjasto"
    assert (fees["detail"]["fee_type"], fees["detail"]["amount_cents"]) == ("late_fee", 250)
    # Neither is a ticket: no cancellation, not among the upcoming tickets.
    async with world.system.client("omakaiku", world.holder_token(account_id)) as client:
        upcoming = (await client.get("/me/tickets")).json()
        cancel = await client.post(f"/me/tickets/{swimming['ticket_id']}/cancellation")
    assert upcoming == [] and cancel.status_code == 404
