"""The box office's desk in a real browser, in Finnish, Swedish and English, with
axe-core on every page and screenshots at 390 px and 1280 px: today's and
upcoming offerings with card places used and left, an offering's ticket list,
cancelling from it after a confirmation, the printable day sheet, and the
venue's profile (name, contact, limits).

The venue and its offering are the test's own, so the shared venue other tests
use keeps its name. The offering is ten days ahead and the day sheet is asked
for by its date: nothing depends on where Helsinki's day boundary falls."""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kaiku_dev.testing import eventually

catalogue = pytest.importorskip(
    "web.i18n", reason="kaiku-web is not installed (pip install -e services/web)").catalogue

pytestmark = pytest.mark.e2e
HELSINKI = ZoneInfo("Europe/Helsinki")
PASSWORD = "kaiku-browser-test-password"
SETTLE = 60.0  # other tests share the machine: give the read models room
VAASA = {"fi": "Vaasa", "sv": "Vasa", "en": "Vaasa"}
# Where the two widths of each page are kept for review, besides the test artefacts.
REVIEW = Path(os.environ.get("KAIKU_DESK_SHOTS", "/tmp/shots-venue-desk"))


def text(lang: str, key: str, **values) -> str:
    message = catalogue(lang)[key]
    return message.format(**values) if values else message


async def check_page(page, ui, name: str) -> None:
    """axe at both widths; screenshots at 1280 px (the artefacts) and 390 px."""
    await ui.screenshot(page, name)
    await ui.assert_accessible(page, name)
    REVIEW.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(REVIEW / f"{name}-1280.png"), full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    try:
        await page.screenshot(path=str(REVIEW / f"{name}-390.png"), full_page=True)
        await ui.assert_accessible(page, f"{name}-390")
    finally:
        await page.set_viewport_size({"width": 1280, "height": 900})


async def api(web, method: str, service: str, path: str, expect: int, **kwargs):
    async with web.system.client(service, web.venue_token) as client:
        response = await client.request(method, path, **kwargs)
    assert response.status_code == expect, (method, path, response.status_code, response.text)
    return response.json()


async def desk_venue_with_tickets(web, tag: str) -> dict:
    venue = await api(web, "POST", "venues", "/venues", 201, json={
        "organisation_id": web.venue_org_id, "name": f"Vaasan kaupunginteatteri {tag}",
        "kind": "performing_arts", "municipality": "vaasa",
        "contact": {"phone": "06 325 1111"}})
    starts = (datetime.now(HELSINKI) + timedelta(days=10)).replace(
        hour=19, minute=0, second=0, microsecond=0)
    title = f"Pohjalaiset {tag}"
    offering = await api(web, "POST", "venues", f"/venues/{venue['venue_id']}/offerings", 201,
                         json={"title": title, "genres": ["music"],
                               "starts_at": starts.isoformat(), "capacity": 300,
                               "card_cap": 10})
    cards = [await web.issue_card(children=2) for _ in range(2)]
    for number, children in zip(cards, (1, 0), strict=True):
        await web.wait_for_card_in_venues(number)
        await api(web, "POST", "venues", "/tickets", 201, json={
            "card_number": number, "offering_id": offering["offering_id"],
            "children": children})
    return {"venue_id": venue["venue_id"], "name": f"Vaasan kaupunginteatteri {tag}",
            "offering_id": offering["offering_id"], "title": title, "day": starts.date(),
            "cards": cards}


async def sign_in_at_the_venue(page, ui, web, lang: str, venue_name: str) -> None:
    await page.goto(web.url + "/staff/login")
    if lang != "fi":
        await ui.choose_language(page, lang)
    await ui.sign_in_staff(page, web.users["venue"], PASSWORD, {
        key: text(lang, f"login.{key}") for key in ("username", "password", "submit")})
    await page.goto(web.url + "/staff/venue")
    radio = page.get_by_role("radio", name=re.compile(re.escape(venue_name)))

    async def listed():
        if await radio.count():
            return True
        await page.reload()
        return False

    await eventually(listed, timeout=SETTLE, message="the new venue in the venue list")
    await radio.check()
    await page.get_by_role("button", name=text(lang, "venue.choose")).click()


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_the_box_office_desk(web, staff_page, ui, lang):
    from playwright.async_api import expect

    page = staff_page
    tag = uuid.uuid4().hex[:6]
    made = await desk_venue_with_tickets(web, tag)
    await sign_in_at_the_venue(page, ui, web, lang, made["name"])

    # The desk: upcoming offerings, places used and left, the place by its name.
    await page.goto(web.url + "/staff/desk")
    await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "desk.title"))
    await expect(page.locator("main")).to_contain_text(f"{made['name']}, {VAASA[lang]}")
    row = page.get_by_role("row").filter(has_text=made["title"])
    await expect(row).to_contain_text(text(lang, "desk.used_of", used=3, cap=10))
    await expect(row.locator("td.desk-places").nth(1)).to_have_text("7")
    await check_page(page, ui, f"venue-desk-{lang}")

    # The offering's ticket list (a read model: both tickets arrive within moments).
    await row.get_by_role("link", name=f"{text(lang, 'desk.tickets')} – {made['title']}").click()
    first, second = made["cards"]

    async def both_listed():
        if await page.get_by_role("row").filter(has_text=second).count():
            return True
        await page.reload()
        return False

    await eventually(both_listed, timeout=SETTLE, message="both tickets in the desk's list")
    await expect(page.get_by_role("row").filter(has_text=first)).to_contain_text(
        text(lang, "status.registered"))
    await check_page(page, ui, f"venue-desk-tickets-{lang}")

    # Cancel the first from the list: asked first, then cancelled.
    await page.get_by_role("link", name=text(lang, "desk.cancel_card", card=first)).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "desk.confirm_title"))
    await check_page(page, ui, f"venue-desk-cancel-{lang}")
    await page.get_by_role("button", name=text(lang, "desk.confirm_cancel")).click()
    await expect(page.get_by_role("status")).to_contain_text(text(lang, "desk.cancelled"))
    ticket = await api(web, "GET", "venues", f"/offerings/{made['offering_id']}", 200)
    assert ticket["card_places_left"] == 9  # the holder and the child's places are free

    async def cancelled_in_list():
        if await page.get_by_role("row").filter(has_text=first).filter(
                has_text=text(lang, "status.cancelled")).count():
            return True
        await page.reload()
        return False

    await eventually(cancelled_in_list, timeout=SETTLE, message="the cancellation listed")

    await the_day_sheet(page, ui, web, lang, made)
    await the_profile(page, ui, web, lang, made, tag)


async def the_day_sheet(page, ui, web, lang: str, made: dict) -> None:
    """The day sheet of the offering's day: the ticket left, ready to print."""
    from playwright.async_api import expect

    first, second = made["cards"]
    await page.goto(f"{web.url}/staff/desk/day?day={made['day'].isoformat()}")
    sheet = page.locator(".desk-sheet")
    await expect(sheet).to_contain_text(second)
    await expect(sheet).not_to_contain_text(first)
    await expect(sheet).to_contain_text(made["title"])
    await check_page(page, ui, f"venue-desk-day-{lang}")
    await page.emulate_media(media="print")
    await expect(page.locator(".site-header")).to_be_hidden()
    await expect(page.get_by_role("button", name=text(lang, "desk.print"))).to_be_hidden()
    await page.screenshot(path=str(REVIEW / f"venue-desk-day-{lang}-print.png"), full_page=True)
    await page.emulate_media(media="screen")


async def the_profile(page, ui, web, lang: str, made: dict, tag: str) -> None:
    """A new name, an e-mail and a limit; the limit counts from now on."""
    from playwright.async_api import expect

    await page.goto(web.url + "/staff/desk/profile")
    await expect(page.get_by_label(text(lang, "desk.phone"))).to_have_value("06 325 1111")
    await check_page(page, ui, f"venue-desk-profile-{lang}")
    renamed = f"Vaasan teatteri {tag}"
    await page.get_by_label(text(lang, "desk.name")).fill(renamed)
    await page.get_by_label(text(lang, "desk.email")).fill("liput@vaasa.example")
    await page.get_by_label(text(lang, "desk.one_ticket_per_card")).check()
    await page.get_by_role("button", name=text(lang, "desk.save")).click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text(text(lang, "desk.saved"))
    await expect(status).to_contain_text(text(lang, "desk.limits_from_now_on"))
    await check_page(page, ui, f"venue-desk-profile-saved-{lang}")
    venue = await api(web, "GET", "venues", f"/venues/{made['venue_id']}", 200)
    assert (venue["name"], venue["contact"]["email"], venue["limits"]["one_ticket_per_card"]) \
        == (renamed, "liput@vaasa.example", True)
