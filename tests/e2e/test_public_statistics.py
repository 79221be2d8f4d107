"""The public statistics (issue 22) against the running system, with no token.

- a ticket, a swimming visit and a library fee each move the national figures of
  GET /public/stats within seconds;
- an anonymous client gets 200 with a strong ETag, then 304 with If-None-Match,
  and a new ETag after a use;
- small cells are hidden, with complements, so that no hidden cell can be worked
  out from the line's total: checked against the read models' true figures; the
  document's breakdowns are last month's, the same as that month's own document;
- the per-month URL is stable, the CSV says what the JSON says, a bad month is a
  problem+json that names the months there are.

Breakdowns count completed months only, so this module's own small region
(cards issued in Keski-Pohjanmaa: one in Halsua, five in Perho, each used once)
is moved to the middle of last month in the read models while it is read, and
back at the end (as tests/e2e/test_cards_statistics.py does).
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from datetime import time as clock
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e
TODAY = datetime.now(ZoneInfo("Europe/Helsinki")).date()
LAST_MONTH = TODAY.replace(day=1) - timedelta(days=1)
LAST = LAST_MONTH.strftime("%Y-%m")
REGION = "keski-pohjanmaa"
THRESHOLD = 5  # KAIKU_CARDS_SUPPRESS_BELOW's default
HEADLINE = ("cards_issued", "active_cards", "uses", "child_tickets", "swimming_visits",
            "library_fees")


async def _public(system, path: str, **headers: str) -> httpx.Response:
    async with system.client("cards") as client:  # no token
        return await client.get(path, headers=headers)


async def _document(system) -> dict[str, Any]:
    response = await _public(system, "/public/stats")
    assert response.status_code == 200, response.text
    return response.json()


async def _moves(system, field: str, before: int, by: int = 1) -> dict[str, Any]:
    """The document once ``field`` has grown by ``by`` (within seconds)."""
    started = time.monotonic()

    async def moved() -> dict[str, Any] | None:
        document = await _document(system)
        return document if document[field] >= before + by else None

    document = await eventually(moved, timeout=20, interval=0.2,
                                message=f"public {field} to move")
    assert time.monotonic() - started < 20
    return document


async def test_the_document_is_open_cached_and_licensed(system):
    response = await _public(system, "/public/stats")
    assert response.status_code == 200, response.text
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "max-age=" in response.headers["cache-control"]
    assert response.headers["last-modified"].endswith("GMT")
    assert 'rel="license"' in response.headers["link"]
    assert "creativecommons.org/licenses/by/4.0" in response.headers["link"]
    body = response.json()
    assert body["licence"]["name"] == "CC BY 4.0"
    assert set(HEADLINE) <= set(body)
    assert body["months_through"] == LAST
    again = await _public(system, "/public/stats", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await _public(system, "/public/stats", **{"If-None-Match": '"not-this-one"'})
    assert other.status_code == 200


async def _desk_venue(system, world, kind: str, name: str, limits: dict) -> str:
    async with system.client("venues", world.venue_token) as client:
        response = await client.post("/venues", json={
            "organisation_id": world.venue_org_id, "name": name, "kind": kind,
            "municipality": "kokkola", "limits": limits})
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def test_a_ticket_a_swim_and_a_library_fee_move_the_national_figures(system, world):
    card = await world.issue_card(municipality="Kokkola", postal_code="67100", children=1)
    number = card["card_number"]
    offering = await world.publish_offering(title="Kokkolan kesäkonsertti")
    hall = await _desk_venue(system, world, "swimming_hall", "Kokkolan uimahalli",
                             {"series_visits_per_year": 30})
    library = await _desk_venue(system, world, "library", "Kokkolan kirjasto",
                                {"library_fee_cap_cents": 5000})
    await world.wait_for_card_in_venues(number)

    before = await _public(system, "/public/stats")
    figures = before.json()
    response = await world.register_ticket(number, offering, 1)
    assert response.status_code == 201, response.text
    after_ticket = await _moves(system, "uses", figures["uses"])
    assert after_ticket["child_tickets"] >= figures["child_tickets"] + 1
    changed = await _public(system, "/public/stats",
                            **{"If-None-Match": before.headers["etag"]})
    assert changed.status_code == 200, "a use must change the ETag"
    assert changed.headers["etag"] != before.headers["etag"]

    async with system.client("venues", world.venue_token) as client:
        visit = await client.post(f"/venues/{hall}/swimming-visits",
                                  json={"card_number": number, "children": 0})
        assert visit.status_code == 201, visit.text
    after_swim = await _moves(system, "swimming_visits", after_ticket["swimming_visits"])
    async with system.client("venues", world.venue_token) as client:
        fee = await client.post(f"/venues/{library}/library-fees", json={
            "card_number": number, "fee_type": "late_fee", "amount_cents": 300})
        assert fee.status_code == 201, fee.text
    after_fee = await _moves(system, "library_fees", after_swim["library_fees"])
    assert after_fee["uses"] == after_swim["uses"]  # desk uses are not tickets


# --- small cells, in last month --------------------------------------------------------


@pytest.fixture(scope="module")
async def small_region(system, world):
    """One card used once in Halsua, five used once each in Perho, in last month."""
    centre = system.token("kaikukeskus")
    async with system.client("cards", centre) as client:
        org = (await client.post("/organisations", json={
            "kind": "distributor", "name": "Keski-Pohjanmaan jakaja",
            "municipality": "Kokkola"})).json()
    token = system.token("distributor", organisation_id=org["organisation_id"])
    numbers = []
    async with system.client("cards", token) as client:
        for municipality, postal_code in [("Halsua", "69510")] + [("Perho", "69950")] * 5:
            response = await client.post("/cards", json={
                "birth_year": 1975, "postal_code": postal_code,
                "municipality": municipality, "children": 0})
            assert response.status_code == 201, response.text
            numbers.append(response.json()["card_number"])
    offering = await world.publish_offering(title="Perhon kesäteatteri", card_cap=20)
    for number in numbers:
        await world.wait_for_card_in_venues(number)
        response = await world.register_ticket(number, offering)
        assert response.status_code == 201, response.text
    conn = await system.database("cards")
    try:
        async def arrived() -> bool:
            return await conn.fetchval(
                "SELECT count(*) FROM usage_view WHERE card_number = ANY($1::text[])",
                numbers) == 6

        await eventually(arrived, timeout=30, message="the small region's uses")
        put_back = await _move_to_last_month(conn, numbers)
        yield {"numbers": numbers, "conn": conn}
        await put_back()
    finally:
        await conn.close()


async def _move_to_last_month(conn, numbers):
    cards = await conn.fetch("SELECT card_number, valid_from FROM card_view "
                             "WHERE card_number = ANY($1::text[])", numbers)
    uses = await conn.fetch("SELECT ticket_id, starts_at FROM usage_view "
                            "WHERE card_number = ANY($1::text[])", numbers)
    noon = datetime.combine(LAST_MONTH.replace(day=15), clock(12), UTC)
    await conn.executemany("UPDATE card_view SET valid_from = $2 WHERE card_number = $1",
                           [(c["card_number"], noon.date()) for c in cards])
    await conn.executemany("UPDATE usage_view SET starts_at = $2 WHERE ticket_id = $1",
                           [(u["ticket_id"], noon) for u in uses])
    await conn.execute("NOTIFY cards_statistics_changed")  # as the projections do

    async def put_back() -> None:
        await conn.executemany("UPDATE card_view SET valid_from = $2 WHERE card_number = $1",
                               [tuple(c) for c in cards])
        await conn.executemany("UPDATE usage_view SET starts_at = $2 WHERE ticket_id = $1",
                               [tuple(u) for u in uses])
        await conn.execute("NOTIFY cards_statistics_changed")

    return put_back


async def _true_uses_by_municipality(conn, month: str) -> dict[str, dict[str, int]]:
    """Registered tickets per region and municipality of the card, from the read
    models (the truth the public cells are checked against)."""
    rows = await conn.fetch(
        """
        SELECT c.region, c.municipality, count(*) AS uses FROM usage_view u
        JOIN card_view c ON c.card_number = u.card_number
        WHERE u.status = 'registered'
          AND to_char(u.starts_at AT TIME ZONE 'Europe/Helsinki', 'YYYY-MM') = $1
        GROUP BY 1, 2
        """, month)
    truth: dict[str, dict[str, int]] = {}
    for row in rows:
        truth.setdefault(row["region"], {})[row["municipality"]] = row["uses"]
    return truth


def _check_line(cells: dict[str, int | None], truth: dict[str, int], where: str) -> None:
    """Shown cells are true; every small one is hidden; the hidden ones are at
    least two and add up to at least the threshold, so the line's total minus
    the shown cells gives no small count."""
    for key, value in cells.items():
        if value is not None:
            assert value == truth.get(key, 0), f"{where}: {key} shown wrong"
        else:
            assert key in truth, f"{where}: {key} hidden with no uses"
    small = [k for k, v in truth.items() if 0 < v < THRESHOLD]
    assert all(cells.get(k) is None for k in small), f"{where}: a small cell is shown"
    hidden = [k for k, v in cells.items() if v is None]
    if hidden:
        assert len(hidden) >= 2, f"{where}: one hidden cell is its total minus the rest"
        assert sum(truth[k] for k in hidden) >= THRESHOLD, f"{where}: recoverable"


async def _settled_month(system) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        response = await _public(system, f"/public/stats/months/{LAST}")
        if response.status_code == 404:  # the document has not counted it yet
            return None
        assert response.status_code == 200, response.text
        body = response.json()
        own = {r["municipality"]: r for r in body["by_municipality"]
               if r["region"] == REGION}
        return body if "perho" in own else None

    return await eventually(settled, timeout=20, interval=0.3,
                            message="last month's document to show the small region")


async def test_small_cells_are_hidden_and_cannot_be_recovered(system, small_region):
    month = await _settled_month(system)
    conn = small_region["conn"]
    own = {r["municipality"]: r for r in month["by_municipality"] if r["region"] == REGION}
    assert own["halsua"]["uses"] is None and "uses" in own["halsua"]["suppressed"]
    assert own["perho"]["uses"] is None, "the complement that protects Halsua"
    truth = await _true_uses_by_municipality(conn, LAST)
    region = {r["region"]: r for r in month["by_region"]}
    for code, row in region.items():
        cells = {r["municipality"]: r["uses"] for r in month["by_municipality"]
                 if r["region"] == code}
        if row["uses"] is not None:
            _check_line(cells, truth.get(code, {}), f"{LAST} {code}")
            assert row["uses"] == sum(truth.get(code, {}).values())
        else:
            assert all(v is None for k, v in cells.items() if truth.get(code, {}).get(k))
    _check_line({code: row["uses"] for code, row in region.items()},
                {code: sum(v.values()) for code, v in truth.items()}, f"{LAST} regions")
    # The whole document's breakdowns are last month's, cell for cell: no
    # sub-national figure is published over more than one month.
    fields = ("by_region", "by_municipality", "by_venue_kind", "by_genre")

    async def same_as_the_month() -> dict[str, Any] | None:
        whole = await _document(system)
        return whole if all(whole[f] == month[f] for f in fields) else None

    whole = await eventually(same_as_the_month, timeout=10, interval=0.3,
                             message="the document's breakdowns to be last month's")
    assert whole["months_through"] == LAST
    national = {row["month"]: row for row in whole["by_month"]}[LAST]
    assert national["uses"] == month["uses"] and national["suppressed"] == []


async def test_the_month_url_is_stable_and_its_csv_matches(system, small_region):
    first = await _settled_month(system)
    again = await _public(system, f"/public/stats/months/{LAST}")
    assert again.json() == first
    assert again.headers["access-control-allow-origin"] == "*"
    assert first["month"] == LAST and first["licence"]["name"] == "CC BY 4.0"
    response = await _public(system, f"/public/stats/months/{LAST}.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert rows and set(rows[0]) == {"dimension", "key", "name", "month", "figure", "value"}
    national = {r["figure"]: r["value"] for r in rows if r["dimension"] == "national"}
    assert int(national["uses"]) == first["uses"]
    for row in first["by_municipality"]:
        cell = next(r for r in rows if r["dimension"] == "municipality"
                    and r["key"] == row["municipality"] and r["figure"] == "uses")
        assert cell["value"] == ("" if row["uses"] is None else str(row["uses"]))


async def test_the_csv_says_what_the_json_says(system):
    document = await _document(system)
    response = await _public(system, "/public/stats.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    if response.headers["etag"] != (await _public(system, "/public/stats")).headers["etag"]:
        pytest.skip("the figures moved between the two reads")  # pragma: no cover
    national = {r["figure"]: int(r["value"]) for r in rows if r["dimension"] == "national"}
    assert national == {field: document[field] for field in HEADLINE}
    months = {(r["key"], r["figure"]): r["value"] for r in rows if r["dimension"] == "month"}
    for row in document["by_month"]:
        for field in ("cards_issued", "uses", "child_tickets", "swimming_visits",
                      "library_fees"):
            expected = "" if row[field] is None else str(row[field])
            assert months[(row["month"], field)] == expected
    regions = {r["key"] for r in rows if r["dimension"] == "region"}
    assert regions == {r["region"] for r in document["by_region"]}


@pytest.mark.parametrize(("month", "status"), [
    ("2026-13", 422), ("kesäkuu", 422), ("1999-01", 404),
    ((TODAY.replace(day=1)).strftime("%Y-%m"), 404)])
async def test_a_bad_month_is_a_problem_naming_the_months_there_are(system, small_region,
                                                                   month, status):
    await _settled_month(system)  # last month is published
    response = await _public(system, f"/public/stats/months/{month}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Months with figures" in response.json()["detail"]
    assert response.headers["access-control-allow-origin"] == "*"  # readable by any page


async def test_the_schema_is_published(system):
    response = await _public(system, "/public/stats/schema.json")
    assert response.status_code == 200
    schema = response.json()
    assert {"PublicStatsV1", "PublicMonthStatsV1"} <= set(schema["$defs"])
    assert "by_genre" in schema["$defs"]["PublicStatsV1"]["properties"]
