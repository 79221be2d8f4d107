"""Kaikukanta statistics over HTTP: per distributor/region/municipality/venue/month,
cancellations subtracting, age groups, wellbeing issue vs renewal with counts,
small-count suppression, CSV export, period filters, and the feedback-meeting
report with its SVG charts.

The cards here are issued in Kainuu (Kajaani, Sotkamo) by distributors made for
this module; figures are read from yesterday on, so the region's and the
distributors' figures are this module's alone (seed-history's Kainuu cards, if
any, are from before 2025-05).
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e
RECENT = {"from": (date.today() - timedelta(days=1)).isoformat()}


async def _json(system, token, path, **params):
    async with system.client("cards", token) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
async def kainuu(system, world):
    """Six cards and a community card from one distributor in Kainuu, two cards from
    a small one, three uses (one cancelled)."""
    centre = system.token("kaikukeskus")
    async with system.client("cards", centre) as client:
        org = (await client.post("/organisations", json={
            "kind": "distributor", "name": "Kainuun sote", "municipality": "Kajaani"})).json()
        small = (await client.post("/organisations", json={
            "kind": "distributor", "name": "Pieni jakaja", "municipality": "Sotkamo"})).json()
    token = system.token("distributor", organisation_id=org["organisation_id"])
    small_token = system.token("distributor", organisation_id=small["organisation_id"])
    this_year = date.today().year
    specs = [  # birth year, children, life satisfaction at issue
        (this_year - 20, 2, 4), (this_year - 22, 0, 6), (this_year - 40, 1, 8),
        (this_year - 41, 3, 7), (this_year - 70, 0, "no_answer"), (this_year - 30, 0, 5),
    ]
    cards = []
    async with system.client("cards", token) as client:
        for birth_year, children, score in specs:
            response = await client.post("/cards", json={
                "birth_year": birth_year, "postal_code": "87100", "municipality": "Kajaani",
                "children": children, "life_satisfaction": score})
            assert response.status_code == 201, response.text
            cards.append(response.json())
        # renewals: two answer, one skips both questions
        for card, body in zip(cards[:3], [
            {"life_satisfaction": 9, "wellbeing_impact": 10},
            {"life_satisfaction": 7, "wellbeing_impact": 8},
            {"life_satisfaction": "no_answer", "wellbeing_impact": "no_answer"}], strict=True):
            response = await client.post(f"/cards/{card['card_number']}/renewal", json=body)
            assert response.status_code == 200, response.text
        # a community card: counted apart, not in age groups or wellbeing
        community = await client.post("/cards", json={
            "birth_year": this_year - 45, "postal_code": "87100", "municipality": "Kajaani",
            "children": 6, "community": True})
        assert community.status_code == 201
    async with system.client("cards", small_token) as client:
        for _ in range(2):
            response = await client.post("/cards", json={
                "birth_year": 1960, "postal_code": "88600", "municipality": "Sotkamo",
                "children": 0})
            assert response.status_code == 201

    offering_id = await world.publish_offering(title="Kainuun kesäkonsertti", card_cap=20)
    tickets = []
    for card, children in ((cards[0], 2), (cards[2], 1), (cards[3], 3)):
        await world.wait_for_card_in_venues(card["card_number"])
        response = await world.register_ticket(card["card_number"], offering_id, children)
        assert response.status_code == 201, response.text
        tickets.append(response.json()["ticket_id"])
    async with system.client("venues", world.venue_token) as client:
        cancelled = await client.post(f"/tickets/{tickets[2]}/cancellation",
                                      json={"reason": "illness"})
    assert cancelled.status_code == 200, cancelled.text
    return {"org": org["organisation_id"], "small": small["organisation_id"], "cards": cards,
            "centre": centre, "token": token}


async def _settled_region(system, kainuu):
    """Kainuu's figures once every fact above has reached the read models."""
    seen = []

    async def settled():
        body = await _json(system, kainuu["centre"], "/stats/regions/kainuu", **RECENT)
        seen[:] = [body]
        ready = (body["cards_issued"], body["community_cards"], body["uses"]) == (9, 1, 2)
        wellbeing = body["wellbeing"]["at_renewal"]["life_satisfaction"]
        return body if ready and wellbeing["answers"] + wellbeing["no_answer"] == 3 else None

    try:
        return await eventually(settled, timeout=30, message="Kainuu's statistics")
    except AssertionError:
        raise AssertionError(f"Kainuu's statistics never settled: {seen}") from None


async def test_region_figures_with_cancellations_subtracting(system, kainuu):
    body = await _settled_region(system, kainuu)
    # 6 + 1 community + 2 small = 9 cards, all active; 3 uses − 1 cancelled = 2
    assert (body["cards_issued"], body["active_cards"]) == (9, 9)
    assert (body["uses"], body["child_tickets"], body["uses_with_children"]) == (2, 3, 2)
    assert body["national"]["cards_issued"] >= 9
    assert body["national"]["uses"] >= 2
    month = date.today().strftime("%Y-%m")
    assert month in {row["month"] for row in body["by_month"]}


async def test_every_region_side_by_side(system, kainuu):
    await _settled_region(system, kainuu)
    rows = await _json(system, kainuu["token"], "/stats/regions", **RECENT)
    by_code = {row["region"]: row for row in rows}
    assert by_code["kainuu"]["cards_issued"] == 9 and by_code["kainuu"]["name"] == "Kainuu"
    assert "ruotsi" in by_code  # every region is listed, zeros included
    assert set(by_code["ruotsi"]) >= {"cards_issued", "active_cards", "uses", "child_tickets"}


async def test_per_distributor_and_small_count_suppression(system, kainuu):
    await _settled_region(system, kainuu)
    rows = await _json(system, kainuu["centre"], "/stats/by/distributor", region="kainuu",
                       **RECENT)
    mine = next(r for r in rows if r["distributor"] == kainuu["org"])
    assert (mine["name"], mine["cards_issued"], mine["uses"], mine["child_tickets"]) == (
        "Kainuun sote", 7, None, None)
    # 2 uses and 3 child tickets are under the threshold of 5: hidden, and said so
    assert {"uses", "child_tickets", "uses_with_children"} <= set(mine["suppressed"])
    small = next(r for r in rows if r["distributor"] == kainuu["small"])
    assert small["cards_issued"] is None and "cards_issued" in small["suppressed"]
    municipalities = await _json(system, kainuu["centre"], "/stats/by/municipality",
                                 region="kainuu", **RECENT)
    kajaani = next(r for r in municipalities if r["municipality"] == "kajaani")
    assert kajaani["cards_issued"] == 7


async def test_per_venue_and_per_month(system, kainuu, world):
    await _settled_region(system, kainuu)
    venues = await _json(system, kainuu["centre"], "/stats/by/venue", region="kainuu",
                         **RECENT)
    assert [r["venue"] for r in venues] == [world.venue_id]
    assert venues[0]["name"] == "Imatran Teatteri"
    months = await _json(system, kainuu["centre"], "/stats/by/month", region="kainuu",
                         **RECENT)
    this_month = next(r for r in months if r["month"] == date.today().strftime("%Y-%m"))
    assert this_month["cards_issued"] == 9
    assert "active_cards" not in this_month  # a day's figure, not a month's


async def test_age_groups_from_birth_years(system, kainuu):
    await _settled_region(system, kainuu)
    groups = await _json(system, kainuu["centre"], "/stats/age-groups", region="kainuu",
                         **RECENT)
    by_label = {g["age_group"]: g for g in groups}
    assert [g["age_group"] for g in groups][0] == "16–24"
    # 2 aged 20–22, 2 aged 40–41, 1 aged 70, 1 aged 30, and the small one's 2 (1960):
    # every group is under 5, so each non-empty one is suppressed; none shows a count
    assert by_label["16–24"] == {"age_group": "16–24", "cards": None, "suppressed": True}
    assert by_label["75+"]["suppressed"] is False and by_label["75+"]["cards"] == 0
    assert all(g["cards"] in (None, 0) for g in groups)


async def test_wellbeing_issue_vs_renewal_with_counts(system, kainuu):
    await _settled_region(system, kainuu)
    body = await _json(system, kainuu["centre"], "/stats/wellbeing", region="kainuu",
                       **RECENT)
    at_issue = body["at_issue"]["life_satisfaction"]
    # answered 4, 6, 8, 7, 5 (the 2 small-distributor cards and card 5 gave no answer)
    assert (at_issue["answers"], at_issue["no_answer"]) == (5, 3)
    assert at_issue["average"] == 6.0 and at_issue["suppressed"] is False
    at_renewal = body["at_renewal"]
    assert (at_renewal["life_satisfaction"]["answers"],
            at_renewal["life_satisfaction"]["no_answer"]) == (2, 1)
    # two answers are under the threshold: the average is hidden
    assert at_renewal["life_satisfaction"]["average"] is None
    assert at_renewal["life_satisfaction"]["suppressed"] is True
    assert (at_renewal["wellbeing_impact"]["answers"],
            at_renewal["wellbeing_impact"]["no_answer"]) == (2, 1)


async def test_period_filters(system, kainuu):
    await _settled_region(system, kainuu)
    past = await _json(system, kainuu["centre"], "/stats/regions/kainuu",
                       **{"from": "2014-01-01", "to": "2014-12-31"})
    assert (past["cards_issued"], past["uses"]) == (0, 0)
    today = date.today().isoformat()
    now = await _json(system, kainuu["centre"], "/stats/regions/kainuu",
                      **{"from": today, "to": "2100-01-01"})
    assert now["cards_issued"] == 9
    async with system.client("cards", kainuu["centre"]) as client:
        backwards = await client.get("/stats/national", params={"from": "2025-02-01",
                                                                "to": "2025-01-01"})
        unknown = await client.get("/stats/regions/atlantis")
        bad_dim = await client.get("/stats/by/postal_code")
    assert backwards.status_code == 422
    assert unknown.status_code == 404
    assert bad_dim.status_code == 422


async def test_csv_export(system, kainuu):
    await _settled_region(system, kainuu)
    async with system.client("cards", kainuu["centre"]) as client:
        response = await client.get("/stats/by/distributor",
                                    params={"region": "kainuu", "format": "csv", **RECENT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    mine = next(r for r in rows if r["distributor"] == kainuu["org"])
    assert (mine["cards_issued"], mine["uses"]) == ("7", "")
    assert "uses" in mine["suppressed"].split()


async def test_the_feedback_meeting_report(system, kainuu):
    await _settled_region(system, kainuu)
    async with system.client("cards", kainuu["token"]) as client:
        response = await client.get("/stats/regions/kainuu/report", params=RECENT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") >= 4
    assert "Kainuu" in page and "Hyvinvointi" in page
    assert "Etelä-Karjala" in page  # compared with the other regions
    async with system.client("cards", kainuu["token"]) as client:
        assert (await client.get("/stats/regions/atlantis/report")).status_code == 404
