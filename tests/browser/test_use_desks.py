"""The swimming hall and library desks in a real browser, in fi/sv/en: a visit
on the card's yearly series shows the visits left, a covered library fee shows
the cap left, and refusals are explained. axe-core on every page; screenshots at
390 and 1280 px for review."""

from __future__ import annotations

import uuid

import pytest

from .test_messages import shoot, text

pytestmark = pytest.mark.e2e


async def new_venue(web, kind: str, name: str, **limits) -> str:
    async with web.system.client("venues", web.venue_token) as client:
        response = await client.post("/venues", json={
            "organisation_id": web.venue_org_id, "name": name, "kind": kind,
            "municipality": "imatra", "limits": limits})
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def choose_venue(web, page, lang: str, venue_id: str, name: str) -> None:
    await page.goto(web.url + "/staff/venue")
    radio = page.get_by_role("radio", name=name)
    if await radio.count():
        await radio.first.check()
    else:
        await page.get_by_label(text(lang, "venue.id")).fill(venue_id)
    await page.get_by_role("button", name=text(lang, "venue.choose")).click()
    await page.wait_for_load_state()


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_swimming_visits_and_library_fees_at_the_desk(web, staff_page, ui, lang):
    from playwright.async_api import expect

    tag = uuid.uuid4().hex[:6]
    pool_name, library_name = f"Uimahalli {tag}", f"Kirjasto {tag}"
    pool = await new_venue(web, "swimming_hall", pool_name, series_visits_per_year=30)
    library = await new_venue(web, "library", library_name, library_fee_cap_cents=2000)
    card_number = await web.issue_card(children=2)
    await web.wait_for_card_in_venues(card_number)

    page = staff_page
    await page.goto(web.url + "/staff/login")
    if lang != "fi":
        await ui.choose_language(page, lang)
    await ui.sign_in_staff(page, web.users["venue"], "kaiku-browser-test-password", {
        key: text(lang, f"login.{key}") for key in ("username", "password", "submit")})

    # The swimming hall: the holder and two children use three of thirty visits.
    await choose_venue(web, page, lang, pool, pool_name)
    await page.get_by_role("navigation", name=text(lang, "a11y.main_nav")).get_by_role(
        "link", name=text(lang, "usedesk.nav")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "usedesk.title_swimming"))
    await expect(page.get_by_text(text(lang, "usedesk.swimming_intro", visits=30))
                 ).to_be_visible()
    await shoot(page, ui, f"usedesk-swimming-{lang}")
    await page.get_by_label(text(lang, "card.number")).fill(card_number)
    await page.get_by_label(text(lang, "usedesk.children")).fill("2")
    await page.get_by_role("button", name=text(lang, "usedesk.register_visit")).click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text(text(lang, "usedesk.visit_registered",
                                              card=card_number))
    year = await page.evaluate("new Date().getFullYear()")
    await expect(status).to_contain_text(text(lang, "usedesk.visits_left", left=27, total=30,
                                              year=year))
    await shoot(page, ui, f"usedesk-swimming-done-{lang}")
    # Three children is more than the card covers: explained, nothing recorded.
    await page.get_by_label(text(lang, "card.number")).fill(card_number)
    await page.get_by_label(text(lang, "usedesk.children")).fill("3")
    await page.get_by_role("button", name=text(lang, "usedesk.register_visit")).click()
    await expect(page.get_by_role("alert")).to_contain_text(
        text(lang, "usedesk.error_too_many_children"))

    # The library: 7,50 € of a 20 € cap, then more than is left.
    await choose_venue(web, page, lang, library, library_name)
    await page.goto(web.url + "/staff/uses")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "usedesk.title_library"))
    await page.get_by_label(text(lang, "card.number")).fill(card_number)
    await page.get_by_label(text(lang, "usedesk.fee_type")).select_option("late_fee")
    await page.get_by_label(text(lang, "usedesk.amount")).fill("kaksi")
    await page.get_by_role("button", name=text(lang, "usedesk.cover_fee")).click()
    await expect(page.get_by_role("alert")).to_contain_text(text(lang, "usedesk.error_amount"))
    await shoot(page, ui, f"usedesk-library-error-{lang}")
    await page.get_by_label(text(lang, "usedesk.amount")).fill("7,50" if lang != "en"
                                                               else "7.50")
    await page.get_by_role("button", name=text(lang, "usedesk.cover_fee")).click()
    left, cap = ("€12.50", "€20.00") if lang == "en" else ("12,50 €", "20,00 €")
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "usedesk.cap_left", left=left, cap=cap, year=year))
    await shoot(page, ui, f"usedesk-library-done-{lang}")
    await page.get_by_label(text(lang, "card.number")).fill(card_number)
    await page.get_by_label(text(lang, "usedesk.amount")).fill("13")
    await page.get_by_role("button", name=text(lang, "usedesk.cover_fee")).click()
    await expect(page.get_by_role("alert")).to_contain_text(
        text(lang, "usedesk.error_cap_reached"))
