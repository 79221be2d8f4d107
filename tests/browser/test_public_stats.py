"""`/tilastot`, the public national statistics, in a real browser against the real
system, with no sign-in: after real uses (tickets with children, a swimming visit,
a library fee) the headline shows them, the charts and their tables show last
month, a small cell is marked hidden, the page passes axe in fi, sv and en at
phone and desktop width, and the CSV download, the JSON and a month's URL work.
The staff statistics show the same region chart.

Breakdowns count completed months only, so this module's own cards and uses are
moved to the middle of last month in cards' read models while they are read,
and back at the end (as tests/e2e/test_public_statistics.py does). Screenshots
go to /tmp/shots/tilastot/ for review.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kaiku_dev.testing import eventually

catalogue = pytest.importorskip(
    "web.i18n", reason="kaiku-web is not installed (pip install -e services/web)").catalogue
formatting = pytest.importorskip("web.formatting")

pytestmark = pytest.mark.e2e
SHOTS = Path("/tmp/shots/tilastot")
TODAY = datetime.now(ZoneInfo("Europe/Helsinki")).date()
LAST_MONTH = TODAY.replace(day=1) - timedelta(days=1)
LAST = LAST_MONTH.strftime("%Y-%m")
CARDS = 6  # one ticket each: last month's national and regional uses (≥ 5) are shown
PASSWORD = "kaiku-browser-test-password"


def text(lang: str, key: str, **values) -> str:
    message = catalogue(lang)[key]
    return message.format(**values) if values else message


def as_int(shown: str) -> int:
    return int(re.sub(r"[\s\u202f,]", "", shown))


async def figure(page, label: str) -> int:
    """The headline figure whose name is exactly ``label``."""
    named = page.locator("dl.figures div").filter(
        has=page.locator("dt", has_text=re.compile(f"^{re.escape(label)}$")))
    return as_int(await named.locator("dd").inner_text())


async def public(web, path: str = "/public/stats") -> dict[str, Any]:
    async with web.system.client("cards") as client:  # no token
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def desk_venue(web, kind: str, name: str, limits: dict[str, int]) -> str:
    async with web.system.client("venues", web.venue_token) as client:
        response = await client.post("/venues", json={
            "organisation_id": web.venue_org_id, "name": name, "kind": kind,
            "municipality": "imatra", "limits": limits})
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def make_uses(web) -> tuple[list[str], list[str]]:
    """Six cards, each with a ticket for itself and a child; the first also swims
    and has a library fee covered. Returns the cards and the desk venues."""
    tag = uuid.uuid4().hex[:6]
    numbers = [await web.issue_card(children=1) for _ in range(CARDS)]
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    offering = await web.publish(f"Tilastokonsertti {tag}", starts, capacity=50, card_cap=20)
    hall = await desk_venue(web, "swimming_hall", f"Imatran uimahalli {tag}",
                            {"series_visits_per_year": 30})
    library = await desk_venue(web, "library", f"Imatran kirjasto {tag}",
                               {"library_fee_cap_cents": 5000})
    async with web.system.client("venues", web.venue_token) as client:
        for number in numbers:
            await web.wait_for_card_in_venues(number)
            response = await client.post("/tickets", json={
                "card_number": number, "offering_id": offering, "children": 1})
            assert response.status_code == 201, response.text
        visit = await client.post(f"/venues/{hall}/swimming-visits",
                                  json={"card_number": numbers[0], "children": 1})
        assert visit.status_code == 201, visit.text
        fee = await client.post(f"/venues/{library}/library-fees", json={
            "card_number": numbers[0], "fee_type": "late_fee", "amount_cents": 250})
        assert fee.status_code == 201, fee.text
    return numbers, [hall, library]


async def move_to_last_month(conn, numbers: list[str]):
    """These cards' issue and uses to the middle of last month; returns the undo."""
    cards = await conn.fetch("SELECT card_number, valid_from FROM card_view "
                             "WHERE card_number = ANY($1::text[])", numbers)
    uses = await conn.fetch("SELECT ticket_id, starts_at FROM usage_view "
                            "WHERE card_number = ANY($1::text[])", numbers)
    desk = await conn.fetch("SELECT event_id, used_at FROM desk_use_view "
                            "WHERE card_number = ANY($1::text[])", numbers)
    noon = datetime.combine(LAST_MONTH.replace(day=15), clock(12), UTC)
    changes = (("card_view", "valid_from", "card_number", cards, noon.date()),
               ("usage_view", "starts_at", "ticket_id", uses, noon),
               ("desk_use_view", "used_at", "event_id", desk, noon))
    for table, column, key, rows, value in changes:
        await conn.executemany(f"UPDATE {table} SET {column} = $2 WHERE {key} = $1",
                               [(row[0], value) for row in rows])
    await conn.execute("NOTIFY cards_statistics_changed")  # as the projections do

    async def put_back() -> None:
        for table, column, key, rows, _ in changes:
            await conn.executemany(f"UPDATE {table} SET {column} = $2 WHERE {key} = $1",
                                   [tuple(row) for row in rows])
        await conn.execute("NOTIFY cards_statistics_changed")

    return put_back


@pytest.fixture(scope="module")
async def used(web):
    """Real uses, seen live in the headline, then moved into last month's breakdowns."""
    before = await public(web)
    numbers, _ = await make_uses(web)

    async def headline_moved() -> dict[str, Any] | None:
        now = await public(web)
        grown = (now["uses"] >= before["uses"] + CARDS
                 and now["child_tickets"] >= before["child_tickets"] + CARDS
                 and now["swimming_visits"] >= before["swimming_visits"] + 1
                 and now["library_fees"] >= before["library_fees"] + 1)
        return now if grown else None

    live = await eventually(headline_moved, timeout=30, interval=0.3,
                            message="the public headline to count the uses")
    conn = await web.system.database("cards")
    try:
        count = await conn.fetchval("SELECT count(*) FROM usage_view "
                                    "WHERE card_number = ANY($1::text[])", numbers)
        assert count == CARDS
        put_back = await move_to_last_month(conn, numbers)

        async def in_last_month() -> dict[str, Any] | None:
            document = await public(web)
            month = next((m for m in document["by_month"] if m["month"] == LAST), None)
            return document if month and (month["uses"] or 0) >= CARDS else None

        document = await eventually(in_last_month, timeout=30, interval=0.3,
                                    message="last month's breakdown to count the uses")
        yield {"live": live, "document": document, "numbers": numbers}
        await put_back()
    finally:
        await conn.close()


async def shoot(page, ui, name: str, widths=(390, 1280)) -> None:
    """Screenshots for review (and axe) at each width."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in widths:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        await ui.assert_accessible(page, f"tilastot-{name}-{width}")
        # Nothing but a table's own scrolling region is wider than the phone.
        assert await page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth"), (name, width)


async def test_the_public_page_in_finnish_after_real_uses(web, browser, ui, used):
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)  # to inject axe
    page = await context.new_page()
    try:
        await page.goto(web.url + "/")
        await page.get_by_role("link", name=text("fi", "home.public_stats")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            text("fi", "public.title"))
        assert page.url == web.url + "/tilastot"
        for key in ("uses", "swimming_visits", "library_fees", "child_tickets",
                    "cards_issued"):
            assert await figure(page, text("fi", f"public.{key}")) >= used["live"][key] > 0
        await expect(page.get_by_text(text("fi", "public.months_through", month=(
            formatting.month_name(LAST, "fi"))))).to_be_visible()
        # The month chart and its table: last month's national uses, all shown (the
        # national monthly figures are published whole).
        chart = page.get_by_role("img", name=text("fi", "public.month_chart_title"))
        await expect(chart).to_be_visible()
        months = page.get_by_role("table", name=text("fi", "public.by_month_caption"))
        row = months.get_by_role("row", name=re.compile(formatting.month_name(LAST, "fi")))
        cells = row.get_by_role("cell")
        assert as_int(await cells.nth(0).inner_text()) >= CARDS
        assert as_int(await cells.nth(2).inner_text()) >= 1  # the swimming visit
        # The regions side by side: Etelä-Karjala's uses in the chart and the table.
        await expect(page.get_by_role(
            "img", name=text("fi", "public.region_chart_title"))).to_be_visible()
        regions = page.get_by_role("table", name=text("fi", "public.by_region_caption"))
        south_karelia = regions.get_by_role("row", name=re.compile("Etelä-Karjala"))
        assert as_int(await south_karelia.get_by_role("cell").nth(2).inner_text()) >= CARDS
        # Its one swimming visit is a small cell: hidden, with the mark explained.
        await expect(south_karelia.get_by_role("cell").nth(5)).to_have_text(
            re.compile(text("fi", "public.suppressed_short")))
        await expect(page.get_by_role("table", name=text("fi", "public.by_venue_kind_caption"))
                     ).to_contain_text(text("fi", "venuekind.performing_arts"))
        await expect(page.get_by_role("table", name=text("fi", "public.by_genre_caption"))
                     ).to_contain_text("Musiikki")
        await expect(page.get_by_role("link", name="CC BY 4.0")).to_have_attribute(
            "href", "https://creativecommons.org/licenses/by/4.0/")
        await shoot(page, ui, "fi")

        # The CSV download: cards' figures, one a line.
        async with page.expect_download() as info:
            await page.get_by_role("link", name=text("fi", "public.download_csv")).click()
        download = await info.value
        assert download.suggested_filename == "kaikukortti-tilastot.csv"
        rows = list(csv.DictReader(io.StringIO(
            Path(await download.path()).read_text(encoding="utf-8"))))
        national = {r["figure"]: r["value"] for r in rows if r["dimension"] == "national"}
        assert int(national["uses"]) >= used["live"]["uses"]
        month = {r["figure"]: r["value"] for r in rows
                 if r["dimension"] == "month" and r["key"] == LAST}
        assert int(month["uses"]) >= CARDS and int(month["swimming_visits"]) >= 1
        region = {r["figure"]: r["value"] for r in rows
                  if r["dimension"] == "region" and r["key"] == "etela-karjala"}
        assert int(region["uses"]) >= CARDS and region["swimming_visits"] == ""
        # The JSON, its schema and last month's stable URL, under the web's address.
        whole = await page.request.get(web.url + "/tilastot.json")
        assert whole.ok and (await whole.json())["uses"] >= used["live"]["uses"]
        schema = await page.request.get(web.url + "/tilastot/schema.json")
        assert "PublicStatsV1" in (await schema.json())["$defs"]
        link = page.get_by_role("link", name=f"{formatting.month_name(LAST, 'fi')}, JSON")
        month_json = await page.request.get(web.url + await link.get_attribute("href"))
        assert month_json.ok and (await month_json.json())["month"] == LAST
    finally:
        await context.close()


@pytest.mark.parametrize("lang", ["sv", "en"])
async def test_the_public_page_in_swedish_and_english(web, browser, ui, used, lang):
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 390, "height": 844},
                                        bypass_csp=True)
    page = await context.new_page()
    try:
        await page.goto(web.url + "/")
        await ui.choose_language(page, lang)
        await page.get_by_role("link", name=text(lang, "nav.public_stats"), exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            text(lang, "public.title"))
        assert await figure(page, text(lang, "public.uses")) >= used["live"]["uses"]
        grouped = await page.locator("dl.figures dd").all_inner_texts()
        thousands = [figure for figure in grouped if as_int(figure) >= 1000]
        separator = "," if lang == "en" else "\u202f"
        assert all(separator in figure for figure in thousands), thousands
        region = {"sv": "Södra Karelen", "en": "South Karelia"}[lang]
        regions = page.get_by_role("table", name=text(lang, "public.by_region_caption"))
        await expect(regions.get_by_role("rowheader", name=region, exact=True)).to_be_visible()
        await expect(page.get_by_role("table", name=text(lang, "public.by_month_caption"))
                     ).to_contain_text(formatting.month_name(LAST, lang))
        await shoot(page, ui, lang, widths=(390,) if lang == "sv" else (1280,))
    finally:
        await context.close()


async def test_the_staff_statistics_reuse_the_region_chart(web, staff_page, ui, used):
    from playwright.async_api import expect

    page = staff_page
    await page.goto(web.url + "/staff/login")
    await ui.sign_in_staff(page, web.users["kaikukeskus"], PASSWORD, {
        key: text("fi", f"login.{key}") for key in ("username", "password", "submit")})
    await page.goto(web.url + "/staff/stats")
    await expect(page.get_by_role("img", name=text("fi", "stats.region_chart_title"))
                 ).to_be_visible()
    for key in ("swimming_visits", "library_fees"):
        assert await figure(page, text("fi", f"stats.{key}")) >= 1
    await expect(page.get_by_role("link", name=text("fi", "stats.public_link"))
                 ).to_have_attribute("href", "/tilastot")
    await shoot(page, ui, "staff-stats-fi")
