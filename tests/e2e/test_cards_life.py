"""The card's whole life over HTTP: issuing rules, community cards, renewal with
"no answer", change, closure, replacement of a lost card — every refusal a clear
422 or 409 naming its rule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e

BASE = {"birth_year": 1975, "postal_code": "55100", "municipality": "Imatra", "children": 1}


async def issue(world, expect=201, **overrides):
    async with world.system.client("cards", world.distributor_token) as client:
        response = await client.post("/cards", json={**BASE, **overrides})
    assert response.status_code == expect, response.text
    return response.json()


async def post_retrying(client, path, **kwargs):
    """POST as a client retries: on 409 idempotency-in-progress, again in a moment.

    (The shared idempotency middleware sends the first answer before it stores it,
    so a retry arriving at once may find the first still 'in progress'.)
    """
    import asyncio

    for _ in range(100):
        response = await client.post(path, **kwargs)
        if response.status_code == 409 and response.json()["type"].endswith(
                "/idempotency-in-progress"):
            await asyncio.sleep(0.05)
            continue
        return response
    raise AssertionError(f"{path} stayed in progress")


def rule(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()["type"].rsplit("/", 1)[-1]


@pytest.mark.parametrize("overrides,status,kind", [
    ({"birth_year": date.today().year - 15}, 422, "holder-too-young"),
    ({"postal_code": "5510"}, 422, "validation"),
    ({"postal_code": "55 1X0"}, 422, "postal-code"),
    ({"postal_code": "５５１００"}, 422, "postal-code"),
    ({"municipality": "Tukholma"}, 422, "municipality-not-in-network"),
    ({"municipality": "Helsinki"}, 422, "municipality-not-in-network"),
    ({"children": -1}, 422, "validation"),
    ({"valid_until": (date.today() + timedelta(days=400)).isoformat()}, 422,
     "validity-over-a-year"),
    ({"valid_until": (date.today() - timedelta(days=1)).isoformat()}, 422, "validity"),
    ({"life_satisfaction": 11}, 422, "validation"),
    ({"community": True, "life_satisfaction": 5}, 422, "community-card-wellbeing"),
])
async def test_issuing_refusals_name_the_rule(world, overrides, status, kind):
    async with world.system.client("cards", world.distributor_token) as client:
        response = await client.post("/cards", json={**BASE, **overrides})
    assert response.status_code == status, response.text
    assert rule(response) == kind
    assert response.json()["detail"]


async def test_issue_defaults_and_readable_numbers(world):
    card = await issue(world, life_satisfaction="no_answer")
    number = card["card_number"]
    assert len(number) == 9 and number[3] == "-" and number[4:].isdigit()
    assert not set(number[:3]) & set("IOQBGSZ")
    valid_from = date.fromisoformat(card["valid_from"])
    assert date.fromisoformat(card["valid_until"]) - valid_from in (
        timedelta(days=364), timedelta(days=365))
    assert (card["municipality"], card["region"], card["status"]) == (
        "imatra", "etela-karjala", "open")
    # any spelling of the number finds it
    async with world.system.client("cards", world.distributor_token) as client:
        found = await client.get(f"/cards/{number.lower().replace('-', '')}")
    assert found.status_code == 200 and found.json()["card_number"] == number


async def test_a_retried_issue_with_the_same_key_gives_the_same_card(world):
    async with world.system.client("cards", world.distributor_token) as client:
        headers = {"Idempotency-Key": "life-retry-1"}
        first = await client.post("/cards", json=BASE, headers=headers)
        again = await post_retrying(client, "/cards", json=BASE, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["card_number"] == again.json()["card_number"]


async def test_community_card_for_staff_on_group_visits(world):
    card = await issue(world, community=True, birth_year=date.today().year - 10, children=8)
    assert card["community"] is True
    async with world.system.client("cards", world.distributor_token) as client:
        refused = await client.post(f"/cards/{card['card_number']}/renewal",
                                    json={"wellbeing_impact": 8})
        renewed = await client.post(f"/cards/{card['card_number']}/renewal", json={})
    assert refused.status_code == 422 and rule(refused) == "community-card-wellbeing"
    assert renewed.status_code == 200


async def test_renewal_change_closure_and_their_refusals(world):
    card = await issue(world, life_satisfaction=6)
    number = card["card_number"]
    async with world.system.client("cards", world.distributor_token) as client:
        renewed = await client.post(f"/cards/{number}/renewal", json={
            "life_satisfaction": "no_answer", "wellbeing_impact": 9})
        assert renewed.status_code == 200, renewed.text
        too_long = await client.post(f"/cards/{number}/renewal", json={
            "valid_until": (date.today() + timedelta(days=500)).isoformat()})
        assert too_long.status_code == 422 and rule(too_long) == "validity-over-a-year"
        bad_score = await client.post(f"/cards/{number}/renewal", json={"wellbeing_impact": 12})
        assert bad_score.status_code == 422
        changed = await client.patch(f"/cards/{number}", json={
            "children": 3, "postal_code": "53100", "municipality": "Lappeenranta"})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["children"], changed.json()["municipality"]) == (
            3, "lappeenranta")
        outside = await client.patch(f"/cards/{number}", json={"municipality": "Oslo"})
        assert outside.status_code == 422 and rule(outside) == "municipality-not-in-network"
        bad_reason = await client.post(f"/cards/{number}/closure", json={"reason": "bored"})
        assert bad_reason.status_code == 422
        closed = await client.post(f"/cards/{number}/closure", json={"reason": "moved"})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        twice = await client.post(f"/cards/{number}/closure", json={"reason": "moved"})
        assert twice.status_code == 409 and rule(twice) == "card-closed"
        renew_closed = await client.post(f"/cards/{number}/renewal", json={})
        assert renew_closed.status_code == 409 and rule(renew_closed) == "card-closed"
        change_closed = await client.patch(f"/cards/{number}", json={"children": 1})
        assert change_closed.status_code == 409
        replace_moved = await client.post(f"/cards/{number}/replacement")
        assert replace_moved.status_code == 409 and rule(replace_moved) == "card-closed"
        unknown = await client.get("/cards/XXX-00000")
        assert unknown.status_code == 404
        malformed = await client.get("/cards/not-a-number")
        assert malformed.status_code == 422 and rule(malformed) == "card-number-format"


async def test_a_lost_card_is_replaced_and_venues_refuse_the_old_number(world):
    card = await issue(world, children=2, valid_until=(date.today() + timedelta(days=200)
                                                       ).isoformat())
    old = card["card_number"]
    async with world.system.client("cards", world.distributor_token) as client:
        response = await client.post(f"/cards/{old}/replacement",
                                     headers={"Idempotency-Key": f"replace-{old}"})
        assert response.status_code == 201, response.text
        new = response.json()
        retried = await post_retrying(client, f"/cards/{old}/replacement",
                                      headers={"Idempotency-Key": f"replace-{old}"})
        assert retried.json()["card_number"] == new["card_number"]
        twice = await client.post(f"/cards/{old}/replacement")
        assert twice.status_code == 409 and rule(twice) == "card-already-replaced"
        old_now = (await client.get(f"/cards/{old}")).json()
    assert new["card_number"] != old
    assert (new["valid_until"], new["children"], new["replaces"]) == (
        card["valid_until"], 2, old)
    assert (old_now["status"], old_now["closure_reason"], old_now["replaced_by"]) == (
        "closed", "lost", new["card_number"])

    # the network follows: the new number works at venues, the old one is refused
    offering_id = await world.publish_offering()
    await world.wait_for_card_in_venues(new["card_number"])
    ok = await world.register_ticket(new["card_number"], offering_id)
    assert ok.status_code == 201, ok.text

    async def old_refused():
        response = await world.register_ticket(old, offering_id)
        return response.status_code == 422

    await eventually(old_refused, message="venues to refuse the replaced card")
