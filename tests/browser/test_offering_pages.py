"""OmaKaiku's events in a real browser (issue 21, item 4): the holder filters the
list by subgenre, region, municipality and date with places by name in their
language, sees the venue, its contact, card places left and every limit, opens the
event's page (how to get a ticket, the venue's web page), follows a subgenre, and
finds a swimming visit in the history. axe-core on each page in fi, sv and en;
screenshots at 390 and 1280 px."""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kaiku_dev.testing import eventually

catalogue = pytest.importorskip(
    "web.i18n", reason="kaiku-web is not installed (pip install -e services/web)").catalogue

pytestmark = pytest.mark.e2e
REVIEW = Path("/tmp/shots-offer-details")
LAPPEENRANTA = {"fi": "Lappeenranta", "sv": "Villmanstrand", "en": "Lappeenranta"}
SOUTH_KARELIA = {"fi": "Etelä-Karjala", "sv": "Södra Karelen", "en": "South Karelia"}
JAZZ = "Jazz"


def text(lang: str, key: str, **values) -> str:
    message = catalogue(lang)[key]
    return message.format(**values) if values else message


async def shots(page, ui, name: str) -> None:
    """The page at phone and desktop width, kept for review too."""
    for width, height in ((390, 844), (1280, 900)):
        await page.set_viewport_size({"width": width, "height": height})
        path = await ui.screenshot(page, f"{name}-{width}")
        REVIEW.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, REVIEW / path.name)
    await page.set_viewport_size({"width": 390, "height": 844})


async def venue_in_lappeenranta(web, tag: str) -> str:
    async with web.system.client("venues", web.venue_token) as client:
        response = await client.post("/venues", json={
            "organisation_id": web.venue_org_id, "name": f"Lappeenrannan Jazzklubi {tag}",
            "kind": "performing_arts", "municipality": "lappeenranta",
            "contact": {"phone": "+358 5 616 2000", "email": "liput@example.org",
                        "url": "https://jazzklubi.example.org",
                        "box_office": "ke–la 16–20"},
            "limits": {"one_ticket_per_card": True, "max_open_reservations": 2}})
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def publish_jazz(web, venue_id: str, title: str, starts_at: datetime) -> str:
    async with web.system.client("venues", web.venue_token) as client:
        response = await client.post(f"/venues/{venue_id}/offerings", json={
            "title": title, "genres": ["music"], "subgenres": ["jazz"],
            "starts_at": starts_at.isoformat(), "capacity": 100, "card_cap": 5})
    assert response.status_code == 201, response.text
    return response.json()["offering_id"]


async def signed_in_holder(web, phone_page, lang: str) -> tuple[str, str]:
    card_number = await web.issue_card(children=1)
    address = f"holder.{uuid.uuid4().hex[:10]}@example.org"
    account_id = await web.activate(card_number, address, lang)
    (welcome,) = await web.wait_for_mail(address)
    link = re.search(r"(http://\S+/oma/signin#link_token=\S+)", welcome.get_content()).group(1)
    await phone_page.goto(link)
    await phone_page.wait_for_url(web.url + "/oma")
    return card_number, account_id


async def filter_the_list(web, page, lang: str, day: datetime, offering_id: str) -> None:
    """Choose jazz in South Karelia, Lappeenranta, on the event's day, by their names
    in ``lang``, until the event (published a moment ago) is listed."""
    await page.goto(web.url + "/oma/offerings")
    await page.get_by_label(text(lang, "offer.subgenre"), exact=True).select_option(label=JAZZ)
    await page.get_by_label(text(lang, "offer.region"), exact=True).select_option(
        label=SOUTH_KARELIA[lang])
    await page.get_by_label(text(lang, "card.municipality"), exact=True).select_option(
        label=LAPPEENRANTA[lang])
    day_text = day.date().isoformat()
    await page.get_by_label(text(lang, "offer.from"), exact=True).fill(day_text)
    await page.get_by_label(text(lang, "offer.to"), exact=True).fill(day_text)

    async def listed():
        await page.get_by_role("button", name=text(lang, "browse.filter")).click()
        await page.wait_for_load_state()
        return await page.locator(f"[data-offering-id='{offering_id}']").count() == 1

    await eventually(listed, message="the event in the filtered list")


async def follow_jazz(web, page, ui, lang: str, account_id: str) -> None:
    """Tick jazz alone on the subscriptions page: it is saved with its genre."""
    from playwright.async_api import expect

    await page.goto(web.url + "/oma/subscriptions")
    await page.locator("details", has=page.locator("input[value='music:jazz']")).locator(
        "summary").click()
    await page.locator("input[value='music:jazz']").check()
    await page.get_by_role("button", name=text(lang, "common.save")).click()
    await expect(page.get_by_role("status")).to_contain_text(text(lang, "subscriptions.saved"))
    await expect(page.locator("input[value='music:jazz']")).to_be_checked()
    await ui.assert_accessible(page, f"holder-subscriptions-{lang}")
    await shots(page, ui, f"holder-subscriptions-{lang}")
    token = web.system.token("holder", account_id=account_id)
    async with web.system.client("omakaiku", token) as client:
        chosen = (await client.get("/me/subscriptions")).json()
    assert "jazz" in chosen["subgenres"] and "music" in chosen["genres"]


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_holder_finds_an_event_and_how_to_get_a_ticket(web, phone_page, ui, lang):
    from playwright.async_api import expect

    page = phone_page
    tag = uuid.uuid4().hex[:5]
    venue_id = await venue_in_lappeenranta(web, tag)
    day = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0) + \
        timedelta(days=30)
    title = f"Jazzilta {tag}"
    offering_id = await publish_jazz(web, venue_id, title, day)
    other = await publish_jazz(web, venue_id, f"Myöhemmin {tag}", day + timedelta(days=5))
    card_number, account_id = await signed_in_holder(web, page, lang)
    await expect(page.locator("html")).to_have_attribute("lang", lang)

    # The list, filtered by subgenre, region, municipality and a day: places by name.
    await filter_the_list(web, page, lang, day, offering_id)
    assert await page.locator(f"[data-offering-id='{other}']").count() == 0
    item = page.locator(f"[data-offering-id='{offering_id}']")
    await expect(item).to_contain_text(LAPPEENRANTA[lang])
    await expect(item).to_contain_text(SOUTH_KARELIA[lang])
    await expect(item).to_contain_text(text(lang, "offer.places_left", n=5))
    await expect(item).to_contain_text("+358 5 616 2000")
    assert "lappeenranta" not in (await item.inner_text())  # never the code
    await ui.assert_accessible(page, f"holder-offerings-{lang}")
    await shots(page, ui, f"holder-offerings-{lang}")

    # The event's page: how to get a ticket, each limit, the venue's page.
    await item.get_by_role("link", name=title).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    await expect(page.get_by_role("heading", level=2, name=text(lang, "offer.how_to_get"))
                 ).to_be_visible()
    await expect(page.locator("[data-limit='one_ticket_per_card']")).to_be_visible()
    await expect(page.locator("[data-limit='max_open_reservations']")).to_contain_text("2")
    venue_link = page.get_by_role("link", name=text(
        lang, "offer.venue_page", venue=f"Lappeenrannan Jazzklubi {tag}"))
    await expect(venue_link).to_have_attribute("href", "https://jazzklubi.example.org")
    await ui.assert_accessible(page, f"holder-offering-{lang}")
    await shots(page, ui, f"holder-offering-{lang}")

    # A registration moves the places left on the page.
    await web.wait_for_card_in_venues(card_number)
    async with web.system.client("venues", web.venue_token) as client:
        registered = await client.post("/tickets", json={
            "card_number": card_number, "offering_id": offering_id, "children": 1})
    assert registered.status_code == 201, registered.text

    async def moved():
        await page.reload()
        return text(lang, "offer.places_left", n=3) in await page.inner_text("main")

    await eventually(moved, message="two places fewer on the event's page")

    # Following a subgenre.
    await follow_jazz(web, page, ui, lang, account_id)


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_the_history_shows_swimming_visits_and_library_fees(web, phone_page, ui, lang):
    from playwright.async_api import expect

    page = phone_page
    tag = uuid.uuid4().hex[:5]
    card_number, account_id = await signed_in_holder(web, page, lang)
    async with web.system.client("venues", web.venue_token) as client:
        swim = await client.post("/venues", json={
            "organisation_id": web.venue_org_id, "name": f"Imatran uimahalli {tag}",
            "kind": "swimming_hall", "municipality": "imatra",
            "limits": {"series_visits_per_year": 30}})
        library = await client.post("/venues", json={
            "organisation_id": web.venue_org_id, "name": f"Imatran kirjasto {tag}",
            "kind": "library", "municipality": "imatra",
            "limits": {"library_fee_cap_cents": 500}})
    await web.wait_for_card_in_venues(card_number)
    async with web.system.client("venues", web.venue_token) as client:
        visit = await client.post(f"/venues/{swim.json()['venue_id']}/swimming-visits",
                                  json={"card_number": card_number, "children": 1})
        fee = await client.post(f"/venues/{library.json()['venue_id']}/library-fees", json={
            "card_number": card_number, "fee_type": "late_fee", "amount_cents": 250})
    assert visit.status_code == 201 and fee.status_code == 201, (visit.text, fee.text)

    async def both():
        kinds = {r["kind"] for r in await web.history(account_id)}
        return {"swimming_visit", "library_fee"} <= kinds

    await eventually(both, message="both uses in the holder's history")
    await page.goto(web.url + "/oma/history")
    await expect(page.get_by_role("heading", level=2, name=text(
        lang, "offer.kind_swimming_visit"))).to_be_visible()
    await expect(page.get_by_role("heading", level=2, name=text(
        lang, "offer.kind_library_fee"))).to_be_visible()
    await expect(page.locator("main")).to_contain_text(f"Imatran uimahalli {tag}")
    await expect(page.locator("main")).to_contain_text(text(lang, "offer.fee_late_fee"))
    await expect(page.locator("main")).to_contain_text("2.50 €" if lang == "en" else "2,50 €")
    await ui.assert_accessible(page, f"holder-history-uses-{lang}")
    await shots(page, ui, f"holder-history-uses-{lang}")
