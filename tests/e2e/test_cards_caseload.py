"""The distributor's caseload (GET /cards) and the desks' uses in the statistics,
against the running system.

- Two distributors in Lapland: each lists only the cards it issued, a page at a
  time with an opaque cursor, filtered by status and by an expiry date; the other
  distributor's cards are absent from its lists and refused on direct reads and
  renewal; Kaikukeskus sees every card. Bad filters and cursors are 422.
- A swimming hall and a library register uses of those cards: they reach the
  statistics counted apart from tickets, by region, month and venue.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import uuid4

import pytest
from zoneinfo import ZoneInfo

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e
TODAY = datetime.now(ZoneInfo("Europe/Helsinki")).date()
LAST_MONTH = TODAY.replace(day=1) - timedelta(days=1)
MONTH = LAST_MONTH.strftime("%Y-%m")


async def _get(system, token: str, path: str, **params: Any):
    async with system.client("cards", token) as client:
        return await client.get(path, params={k: v for k, v in params.items()
                                              if v is not None})


async def _every_page(system, token: str, limit: int, **params: Any) -> list[dict]:
    """Every item of a list, following next_cursor page by page."""
    items, cursor, pages = [], None, 0
    while True:
        response = await _get(system, token, "/cards", limit=limit, cursor=cursor, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert pages < 200


@pytest.fixture(scope="module")
async def lapland(system):
    """Distributor A (five cards: two expiring within a month) and B (two cards)."""
    centre = system.token("kaikukeskus")
    async with system.client("cards", centre) as client:
        a = (await client.post("/organisations", json={
            "kind": "distributor", "name": "Tornion sosiaalipalvelut",
            "municipality": "Tornio"})).json()
        b = (await client.post("/organisations", json={
            "kind": "distributor", "name": "Kemin diakonia", "municipality": "Kemi"})).json()
    token_a = system.token("distributor", organisation_id=a["organisation_id"])
    token_b = system.token("distributor", organisation_id=b["organisation_id"])
    ends = [TODAY + timedelta(days=10), TODAY + timedelta(days=20), None, None, None]
    cards_a, cards_b = [], []
    async with system.client("cards", token_a) as client:
        for valid_until in ends:
            body = {"birth_year": 1975, "postal_code": "95400", "municipality": "Tornio",
                    "children": 1}
            if valid_until:
                body["valid_until"] = valid_until.isoformat()
            response = await client.post("/cards", json=body)
            assert response.status_code == 201, response.text
            cards_a.append(response.json()["card_number"])
    async with system.client("cards", token_b) as client:
        for _ in range(2):
            response = await client.post("/cards", json={
                "birth_year": 1960, "postal_code": "94100", "municipality": "Kemi",
                "children": 0})
            assert response.status_code == 201, response.text
            cards_b.append(response.json()["card_number"])

    async def listed() -> bool:
        seen_a = {c["card_number"] for c in await _every_page(system, token_a, 50)}
        seen_b = {c["card_number"] for c in await _every_page(system, token_b, 50)}
        return seen_a == set(cards_a) and seen_b == set(cards_b)

    await eventually(listed, timeout=30, message="the new cards in the caseload")
    return {"centre": centre, "a": token_a, "b": token_b, "cards_a": cards_a,
            "cards_b": cards_b, "expiring": cards_a[:2]}


async def test_a_distributor_pages_through_its_own_cards_only(system, lapland):
    items = await _every_page(system, lapland["a"], 2)
    numbers = [item["card_number"] for item in items]
    assert numbers == sorted(lapland["cards_a"])  # card-number order, each once, 3 pages
    first = items[0]
    assert set(first) >= {"card_number", "valid_from", "valid_until", "status", "children",
                          "municipality"}
    assert (first["municipality"], first["municipality_names"]["sv"], first["status"],
            first["active"]) == ("tornio", "Torneå", "open", True)
    other = [item["card_number"] for item in await _every_page(system, lapland["b"], 1)]
    assert other == sorted(lapland["cards_b"])


async def test_expiring_within_a_month_and_renewal_from_the_list(system, lapland):
    soon = (TODAY + timedelta(days=31)).isoformat()
    expiring = await _every_page(system, lapland["a"], 10, expiring_before=soon)
    assert [c["card_number"] for c in expiring] == sorted(lapland["expiring"])
    assert await _every_page(system, lapland["b"], 10, expiring_before=soon) == []
    # the other distributor can neither read nor renew them
    renewed = lapland["expiring"][1]
    refused = await _get(system, lapland["b"], f"/cards/{renewed}")
    assert refused.status_code == 403
    async with system.client("cards", lapland["b"]) as client:
        response = await client.post(f"/cards/{renewed}/renewal", json={})
    assert response.status_code == 403
    async with system.client("cards", lapland["a"]) as client:
        response = await client.post(f"/cards/{renewed}/renewal", json={
            "life_satisfaction": 7, "wellbeing_impact": 8})
    assert response.status_code == 200, response.text

    async def renewed_left_the_list() -> bool:
        left = await _every_page(system, lapland["a"], 10, expiring_before=soon)
        return [c["card_number"] for c in left] == [lapland["expiring"][0]]

    await eventually(renewed_left_the_list, timeout=15, message="the renewal in the list")


async def test_status_filters_and_kaikukeskus_sees_every_card(system, lapland):
    closed_number = lapland["cards_a"][4]
    async with system.client("cards", lapland["a"]) as client:
        response = await client.post(f"/cards/{closed_number}/closure", json={"reason": "moved"})
    assert response.status_code == 200, response.text

    async def closed_listed() -> bool:
        closed = await _every_page(system, lapland["a"], 10, status="closed")
        return [c["card_number"] for c in closed] == [closed_number]

    await eventually(closed_listed, timeout=15, message="the closure in the list")
    active = {c["card_number"] for c in await _every_page(system, lapland["a"], 10,
                                                          status="active")}
    assert active == set(lapland["cards_a"]) - {closed_number}
    assert await _every_page(system, lapland["a"], 10, status="expired") == []
    everyone = {c["card_number"] for c in await _every_page(system, lapland["centre"], 200)}
    assert set(lapland["cards_a"]) | set(lapland["cards_b"]) <= everyone
    # venues have no caseload
    venue = system.token("venue", organisation_id=str(uuid4()))
    assert (await _get(system, venue, "/cards")).status_code == 403


@pytest.mark.parametrize("params", [
    {"status": "lost"}, {"expiring_before": "2026-13-01"}, {"expiring_before": "soon"},
    {"limit": 0}, {"limit": 1000}, {"cursor": "not-a-cursor"}, {"cursor": "eyJ2IjoxfQ"},
])
async def test_bad_filters_are_422_with_a_reason(system, lapland, params):
    response = await _get(system, lapland["a"], "/cards", **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]


async def test_a_cursor_serves_only_its_own_query_and_caller(system, lapland):
    first = (await _get(system, lapland["a"], "/cards", limit=1)).json()
    cursor = first["next_cursor"]
    assert cursor
    again = await _get(system, lapland["a"], "/cards", limit=1, cursor=cursor)
    assert again.status_code == 200
    assert again.json()["items"][0]["card_number"] > first["items"][0]["card_number"]
    for token, params in ((lapland["a"], {"status": "active"}), (lapland["b"], {})):
        response = await _get(system, token, "/cards", limit=1, cursor=cursor, **params)
        assert response.status_code == 422, response.text
        assert "start again" in response.json()["detail"]


async def _venue(system, world, kind: str, name: str, limits: dict) -> str:
    async with system.client("venues", world.venue_token) as client:
        response = await client.post("/venues", json={
            "organisation_id": world.venue_org_id, "name": name, "kind": kind,
            "municipality": "tornio", "limits": limits})
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def test_swimming_visits_and_library_fees_reach_the_statistics(system, world, lapland):
    hall = await _venue(system, world, "swimming_hall", "Tornion uimahalli",
                        {"series_visits_per_year": 30})
    library = await _venue(system, world, "library", "Tornion kirjasto",
                           {"library_fee_cap_cents": 5000})
    cards = lapland["cards_a"][:4]
    for number in cards:
        await world.wait_for_card_in_venues(number)
    async with system.client("venues", world.venue_token) as client:
        for i, number in enumerate([*cards, cards[0]]):  # five visits, two children
            response = await client.post(f"/venues/{hall}/swimming-visits", json={
                "card_number": number, "children": 1 if i < 2 else 0})
            assert response.status_code == 201, response.text
        for number, cents in ((cards[0], 250), (cards[1], 400)):
            response = await client.post(f"/venues/{library}/library-fees", json={
                "card_number": number, "fee_type": "late_fee", "amount_cents": cents})
            assert response.status_code == 201, response.text
    conn = await system.database("cards")
    try:
        async def arrived() -> bool:
            return await conn.fetchval(
                "SELECT count(*) FROM desk_use_view WHERE venue_id = ANY($1::uuid[])",
                [hall, library]) == 7

        await eventually(arrived, timeout=30, message="the desk uses in the statistics")
        # Statistics cover completed months: these uses are moved to last month
        # while they are read, and back after.
        moved = await conn.fetch("SELECT event_id, used_at FROM desk_use_view "
                                 "WHERE venue_id = ANY($1::uuid[])", [hall, library])
        noon = datetime.combine(LAST_MONTH.replace(day=15), time(12), UTC)
        await conn.executemany("UPDATE desk_use_view SET used_at = $2 WHERE event_id = $1",
                               [(m["event_id"], noon) for m in moved])
        try:
            await _figures_of_last_month(system, lapland["centre"], hall)
        finally:
            await conn.executemany("UPDATE desk_use_view SET used_at = $2 "
                                   "WHERE event_id = $1", [tuple(m) for m in moved])
    finally:
        await conn.close()


async def _figures_of_last_month(system, centre: str, hall: str) -> None:
    region = (await _get(system, centre, "/stats/regions/lappi", **{
        "from": MONTH, "to": MONTH})).json()
    assert {k: region[k] for k in ("swimming_visits", "swimming_children", "library_fees",
                                   "library_fees_cents", "uses")} == {
        "swimming_visits": 5, "swimming_children": 2, "library_fees": 2,
        "library_fees_cents": 650, "uses": 0}  # counted apart from tickets
    assert region["national"]["swimming_visits"] >= 5
    month = {row["month"]: row for row in region["by_month"]}[MONTH]
    assert month["swimming_visits"] == 5
    national = (await _get(system, centre, "/stats/national", **{"from": MONTH})).json()
    assert national["swimming_visits"] >= 5 and national["library_fees"] >= 2
    venues = {row["venue"]: row for row in (await _get(
        system, centre, "/stats/by/venue", **{"from": MONTH, "to": MONTH})).json()}
    assert venues[hall]["swimming_visits"] == 5
    assert venues[hall]["uses"] == 0
