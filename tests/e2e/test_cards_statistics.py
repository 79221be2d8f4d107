"""Kaikukanta statistics over HTTP: per distributor/region/municipality/venue/month,
cancellations subtracting, age groups, wellbeing issue vs renewal with counts,
small-count suppression with complements, CSV export, whole-month periods, who
may read wellbeing, and the feedback-meeting report with its SVG charts.

Statistics count only whole, completed months, and the write path issues and
uses cards today. So once this module's facts have all reached the read models,
its rows there are moved to the middle of last month (and moved back at the
end, so the read models again equal a rebuild from the events). The cards are
issued in Kainuu (Kajaani, Sotkamo) by distributors made for this module; figures
are read from last month on, so the region's and the distributors' figures are
this module's alone (seed-history's Kainuu cards, if any, are from before 2025-05).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from zoneinfo import ZoneInfo

import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e
# The server's today is Helsinki's.
TODAY = datetime.now(ZoneInfo("Europe/Helsinki")).date()
LAST_MONTH = TODAY.replace(day=1) - timedelta(days=1)
MID_LAST_MONTH = LAST_MONTH.replace(day=15)
RECENT = {"from": LAST_MONTH.strftime("%Y-%m")}


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
    numbers = [c["card_number"] for c in cards] + [community.json()["card_number"]]
    conn = await system.database("cards")
    try:
        await eventually(lambda: _all_in_read_models(conn, org, small), timeout=30,
                         message="this module's facts in the read models")
        moved_back = await _move_to_last_month(conn, org, small)
        yield {"org": org["organisation_id"], "small": small["organisation_id"],
               "cards": cards, "centre": centre, "token": token, "numbers": numbers}
        await moved_back()
    finally:
        await conn.close()


MODULE_CARDS = "SELECT card_number FROM card_view WHERE issuer = ANY($1::uuid[])"


async def _all_in_read_models(conn, org, small) -> bool:
    issuers = [org["organisation_id"], small["organisation_id"]]
    cards = await conn.fetchval(f"SELECT count(*) FROM ({MODULE_CARDS}) c", issuers)
    renewals = await conn.fetchval(
        f"SELECT count(*) FROM wellbeing_view WHERE occasion = 'renewal' "
        f"AND card_number IN ({MODULE_CARDS})", issuers)
    uses = await conn.fetch(
        f"SELECT status FROM usage_view WHERE card_number IN ({MODULE_CARDS})", issuers)
    return (cards, renewals, sorted(u["status"] for u in uses)) == (
        9, 3, ["cancelled", "registered", "registered"])


async def _move_to_last_month(conn, org, small):
    """This module's cards, answers and uses as if they had happened last month;
    returns what puts them back."""
    issuers = [org["organisation_id"], small["organisation_id"]]
    cards = await conn.fetch(f"SELECT card_number, valid_from FROM card_view "
                             f"WHERE card_number IN ({MODULE_CARDS})", issuers)
    answers = await conn.fetch(f"SELECT card_number, version, answered_on FROM wellbeing_view "
                               f"WHERE card_number IN ({MODULE_CARDS})", issuers)
    uses = await conn.fetch(f"SELECT ticket_id, starts_at FROM usage_view "
                            f"WHERE card_number IN ({MODULE_CARDS})", issuers)
    noon = datetime.combine(MID_LAST_MONTH, time(12), UTC)
    await conn.executemany("UPDATE card_view SET valid_from = $2 WHERE card_number = $1",
                           [(c["card_number"], MID_LAST_MONTH) for c in cards])
    await conn.executemany("UPDATE wellbeing_view SET answered_on = $3 "
                           "WHERE card_number = $1 AND version = $2",
                           [(a["card_number"], a["version"], MID_LAST_MONTH) for a in answers])
    await conn.executemany("UPDATE usage_view SET starts_at = $2 WHERE ticket_id = $1",
                           [(u["ticket_id"], noon) for u in uses])

    async def put_back() -> None:
        await conn.executemany("UPDATE card_view SET valid_from = $2 WHERE card_number = $1",
                               [tuple(c) for c in cards])
        await conn.executemany("UPDATE wellbeing_view SET answered_on = $3 "
                               "WHERE card_number = $1 AND version = $2",
                               [tuple(a) for a in answers])
        await conn.executemany("UPDATE usage_view SET starts_at = $2 WHERE ticket_id = $1",
                               [tuple(u) for u in uses])

    return put_back


async def _settled_region(system, kainuu):
    """Kainuu's figures once every fact above has reached the read models."""
    seen = []

    async def settled():
        body = await _json(system, kainuu["centre"], "/stats/regions/kainuu", **RECENT)
        seen[:] = [body]
        ready = (body["cards_issued"], body["community_cards"], body["uses"]) == (9, 1, 2)
        wellbeing = body["wellbeing"]["at_renewal"]["life_satisfaction"]
        answered = wellbeing["answers"] + wellbeing["no_answer"] + wellbeing["left_out"]
        return body if ready and answered == 3 else None

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
    assert [row["month"] for row in body["by_month"]] == [LAST_MONTH.strftime("%Y-%m")]
    assert (body["to"], body["active_on"]) == (LAST_MONTH.isoformat(),) * 2
    assert body["covers_until"] == LAST_MONTH.strftime("%Y-%m")


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
    assert {r["distributor"] for r in rows} == {kainuu["org"], kainuu["small"]}
    mine = next(r for r in rows if r["distributor"] == kainuu["org"])
    assert (mine["name"], mine["uses"], mine["child_tickets"]) == ("Kainuun sote", None, None)
    # 2 uses and 3 child tickets are under the threshold of 5: hidden, and said so
    assert {"uses", "child_tickets", "uses_with_children"} <= set(mine["suppressed"])
    small = next(r for r in rows if r["distributor"] == kainuu["small"])
    assert small["cards_issued"] is None and "cards_issued" in small["suppressed"]
    # the region shows 9 cards: the small one's 2 would be 9 − 7, so 7 is hidden too
    assert mine["cards_issued"] is None and "cards_issued" in mine["suppressed"]
    municipalities = await _json(system, kainuu["centre"], "/stats/by/municipality",
                                 region="kainuu", **RECENT)
    by_code = {r["municipality"]: r for r in municipalities}
    assert (by_code["kajaani"]["cards_issued"], by_code["sotkamo"]["cards_issued"]) == (
        None, None)


async def test_per_venue_and_per_month(system, kainuu, world):
    await _settled_region(system, kainuu)
    venues = await _json(system, kainuu["centre"], "/stats/by/venue", region="kainuu",
                         **RECENT)
    assert [r["venue"] for r in venues] == [world.venue_id]
    assert venues[0]["name"] == "Imatran Teatteri"
    months = await _json(system, kainuu["centre"], "/stats/by/month", region="kainuu",
                         **RECENT)
    assert [r["month"] for r in months] == [LAST_MONTH.strftime("%Y-%m")]
    assert months[0]["cards_issued"] == 9
    assert "active_cards" not in months[0]  # a day's figure, not a month's


async def test_age_groups_from_birth_years(system, kainuu):
    await _settled_region(system, kainuu)
    groups = await _json(system, kainuu["centre"], "/stats/age-groups", region="kainuu",
                         **RECENT)
    by_label = {g["age_group"]: g for g in groups}
    assert [g["age_group"] for g in groups][0] == "16–24"
    # 2 aged 20–22, 2 aged 40–41, 1 aged 70, 1 aged 30, and the small one's 2 (1960):
    # every group is under 5, so each non-empty one is suppressed; none shows a count
    # (roughly: the cards were moved to last month, maybe last year)
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
    assert at_issue["left_out"] == 0
    at_renewal = body["at_renewal"]
    # Kainuu's month has two answers at renewal, under the threshold: the month is
    # left out of the renewal figures (its 2 answers and 1 no-answer counted as such)
    for question in ("life_satisfaction", "wellbeing_impact"):
        assert at_renewal[question] == {"average": None, "answers": 0, "no_answer": 0,
                                        "left_out": 3, "suppressed": True}
    assert body["covers_until"] == LAST_MONTH.strftime("%Y-%m")


async def test_period_filters(system, kainuu):
    await _settled_region(system, kainuu)
    past = await _json(system, kainuu["centre"], "/stats/regions/kainuu",
                       **{"from": "2014-01-01", "to": "2014-12-31"})
    assert (past["cards_issued"], past["uses"]) == (0, 0)
    # whole months either way of writing them; the future is not counted yet
    for period in ({**RECENT, "to": "2100-12"},
                   {"from": LAST_MONTH.replace(day=1).isoformat(), "to": "2100-12-31"}):
        now = await _json(system, kainuu["centre"], "/stats/regions/kainuu", **period)
        assert (now["cards_issued"], now["to"]) == (9, LAST_MONTH.isoformat())
    async with system.client("cards", kainuu["centre"]) as client:
        backwards = await client.get("/stats/national", params={"from": "2025-02-01",
                                                                "to": "2025-01-01"})
        unknown = await client.get("/stats/regions/atlantis")
        bad_dim = await client.get("/stats/by/postal_code")
    assert backwards.status_code == 422
    assert unknown.status_code == 404
    assert bad_dim.status_code == 422


@pytest.mark.parametrize(("route", "params"), [
    ("/stats/national", {"from": "2025-03-02"}),
    ("/stats/regions", {"to": "2025-03-30"}),
    ("/stats/regions/kainuu", {"from": "2025-03-01", "to": "2025-03-15"}),
    ("/stats/regions/kainuu/report", {"from": "2025-03-10"}),
    ("/stats/age-groups", {"from": "2025-3"}),
    ("/stats/wellbeing", {"to": "yesterday"}),
    ("/stats/by/distributor", {"from": "2025-02-30"}),
])
async def test_day_level_periods_are_refused(system, route, params):
    async with system.client("cards", system.token("kaikukeskus")) as client:
        response = await client.get(route, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "whole calendar months" in response.json()["detail"]


async def test_a_card_issued_today_moves_no_figure(system, kainuu):
    """Two queries a day apart see the same figures: today's facts wait until the
    month is over."""
    routes = [("/stats/national", {}), ("/stats/regions/kainuu", {}),
              ("/stats/by/distributor", {"region": "kainuu"}),
              ("/stats/age-groups", {"region": "kainuu"}), ("/stats/wellbeing", {})]
    before = [await _json(system, kainuu["centre"], path, **params) for path, params in routes]
    async with system.client("cards", kainuu["token"]) as client:
        issued = await client.post("/cards", json={
            "birth_year": 1944, "postal_code": "87100", "municipality": "Kajaani",
            "children": 0, "life_satisfaction": 1})
    assert issued.status_code == 201, issued.text
    conn = await system.database("cards")
    try:
        await eventually(lambda: conn.fetchval(
            "SELECT count(*) FROM wellbeing_view WHERE card_number = $1",
            issued.json()["card_number"]), message="today's card in the read models")
    finally:
        await conn.close()
    after = [await _json(system, kainuu["centre"], path, **params) for path, params in routes]
    assert after == before
    assert before[0]["covers_until"] == LAST_MONTH.strftime("%Y-%m")


@pytest.mark.parametrize("role", ["venue", "ticket_agent"])
async def test_wellbeing_is_for_kaikukeskus_and_distributors_only(system, kainuu, world,
                                                                   role):
    token = world.venue_token if role == "venue" else system.token(
        "ticket_agent", organisation_id=kainuu["org"])
    async with system.client("cards", token) as client:
        refused = await client.get("/stats/wellbeing", params=RECENT)
        region = await client.get("/stats/regions/kainuu", params=RECENT)
        report = await client.get("/stats/regions/kainuu/report", params=RECENT)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert region.status_code == 200 and region.json()["wellbeing"] is None
    assert region.json()["cards_issued"] == 9  # the counts are still theirs to see
    assert report.status_code == 200 and "myöntäessä vs. uusiessa" not in report.text
    assert "vain Kaikukeskukselle ja kortinjakajille" in report.text
    distributor = await _json(system, kainuu["token"], "/stats/wellbeing", **RECENT)
    assert distributor["at_issue"]["life_satisfaction"]["answers"] == 5


async def test_csv_export(system, kainuu):
    await _settled_region(system, kainuu)
    async with system.client("cards", kainuu["centre"]) as client:
        response = await client.get("/stats/by/distributor",
                                    params={"region": "kainuu", "format": "csv", **RECENT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    mine = next(r for r in rows if r["distributor"] == kainuu["org"])
    assert (mine["cards_issued"], mine["uses"]) == ("", "")
    assert {"cards_issued", "uses"} <= set(mine["suppressed"].split())
    assert response.headers["kaiku-statistics-covers-until"] == LAST_MONTH.strftime("%Y-%m")


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
    assert "myöntäessä vs. uusiessa" in page  # a distributor sees the wellbeing chart
    assert "kokonaiset, päättyneet kalenterikuukaudet" in page
    assert "Etelä-Karjala" in page  # compared with the other regions
    async with system.client("cards", kainuu["token"]) as client:
        assert (await client.get("/stats/regions/atlantis/report")).status_code == 404
