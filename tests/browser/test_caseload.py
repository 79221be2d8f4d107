"""The distributor's caseload in a real browser, in fi, sv and en, with axe-core on
every page and screenshots at 1280 and 390 px: "my cards" a page at a time (the
other distributor's cards never shown), "expiring within 30 days", and renewal
from that list with a confirmation. Places are shown by name in the reader's
language (Tornio is Torneå in Swedish)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kaiku_dev.testing import eventually

catalogue = pytest.importorskip(
    "web.i18n", reason="kaiku-web is not installed (pip install -e services/web)").catalogue

pytestmark = pytest.mark.e2e
PASSWORD = "kaiku-browser-test-password"
TODAY = datetime.now(ZoneInfo("Europe/Helsinki")).date()
TORNIO = {"fi": "Tornio", "sv": "Torneå", "en": "Tornio"}
PAGE_SIZE = 25  # web.routes.distributor.CASELOAD_PAGE


def text(lang: str, key: str, **values) -> str:
    message = catalogue(lang)[key]
    return message.format(**values) if values else message


async def api(web, method: str, path: str, token: str, expect: int, **kwargs):
    async with web.system.client("cards", token) as client:
        response = await client.request(method, path, **kwargs)
    assert response.status_code == expect, (method, path, response.text)
    return response.json()


async def distributor_with_cards(web, name: str, cards: int, expiring: int
                                 ) -> tuple[str, list[str], list[str]]:
    """A distributor with a user and ``cards`` cards, the first ``expiring`` of them
    valid for ten more days; (username, every card, the expiring ones)."""
    centre = web.system.token("kaikukeskus")
    org = (await api(web, "POST", "/organisations", centre, 201, json={
        "kind": "distributor", "name": f"{name} {uuid.uuid4().hex[:6]}",
        "municipality": "Tornio"}))["organisation_id"]
    username = f"caseload-{uuid.uuid4().hex[:8]}"
    await api(web, "POST", "/users", centre, 201, json={
        "username": username, "password": PASSWORD, "organisation_id": org})
    token = web.system.token("distributor", organisation_id=org)
    numbers = []
    for i in range(cards):
        body = {"birth_year": 1970, "postal_code": "95400", "municipality": "Tornio",
                "children": i % 3}
        if i < expiring:
            body["valid_until"] = (TODAY + timedelta(days=10)).isoformat()
        numbers.append((await api(web, "POST", "/cards", token, 201, json=body))["card_number"])

    async def listed() -> bool:
        seen, cursor = [], None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            body = await api(web, "GET", "/cards", token, 200, params=params)
            seen += [c["card_number"] for c in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                return sorted(seen) == sorted(numbers)

    await eventually(listed, timeout=60, message="the cards in the caseload")
    return username, numbers, numbers[:expiring]


async def sign_in(page, ui, web, username: str, lang: str) -> None:
    await page.goto(web.url + "/staff/login")
    if lang != "fi":
        await ui.choose_language(page, lang)
    await ui.sign_in_staff(page, username, PASSWORD, {
        key: text(lang, f"login.{key}") for key in ("username", "password", "submit")})


async def listed_numbers(page) -> list[str]:
    return await page.locator("[data-card]").evaluate_all(
        "items => items.map(i => i.dataset.card)")


async def check(page, ui, name: str) -> None:
    await ui.screenshot(page, name)
    await ui.assert_accessible(page, name)


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_my_cards_expiring_soon_and_renewal_from_the_list(web, staff_page, browser, ui,
                                                                lang):
    from playwright.async_api import expect

    username, numbers, expiring = await distributor_with_cards(
        web, "Tornion sosiaalipalvelut", PAGE_SIZE + 2, 2)
    _, others, _ = await distributor_with_cards(web, "Kemin diakonia", 1, 1)
    page = staff_page
    await sign_in(page, ui, web, username, lang)

    # from the find page to "my cards": the first page, then the next
    await page.goto(web.url + "/staff/cards")
    await page.locator("#main").get_by_role("link", name=text(lang, "caseload.title"),
                                             exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "caseload.title"))
    first = await listed_numbers(page)
    assert first == sorted(numbers)[:PAGE_SIZE]
    await expect(page.locator("[data-card]").first).to_contain_text(TORNIO[lang])
    await check(page, ui, f"caseload-my-cards-{lang}")
    await page.get_by_role("link", name=text(lang, "caseload.next_page")).click()
    second = await listed_numbers(page)
    assert second == sorted(numbers)[PAGE_SIZE:]
    assert not set(others) & set(first + second)  # another distributor's: never shown

    # expiring within 30 days: exactly the two, each with its renewal
    await page.get_by_role("link", name=text(lang, "caseload.expiring_title")).first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "caseload.expiring_title"))
    assert await listed_numbers(page) == sorted(expiring)
    await check(page, ui, f"caseload-expiring-{lang}")
    renewed = sorted(expiring)[0]
    await page.get_by_role("button", name=text(lang, "caseload.renew_named", number=renewed)
                           ).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "caseload.confirm_title", number=renewed))
    await check(page, ui, f"caseload-confirm-{lang}")
    await page.get_by_label("7", exact=True).first.check()
    await page.get_by_role("button", name=text(lang, "caseload.confirm")).click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "caseload.renewed", number=renewed))
    assert re.search(r"/staff/caseload/expiring", page.url)

    async def gone() -> bool:
        await page.goto(web.url + "/staff/caseload/expiring")
        return await listed_numbers(page) == [sorted(expiring)[1]]

    await eventually(gone, timeout=20, message="the renewed card off the expiring list")

    # the same pages on a phone
    phone = await browser.new_context(viewport={"width": 390, "height": 844},
                                      device_scale_factor=2, is_mobile=True, has_touch=True,
                                      bypass_csp=True)
    try:
        small = await phone.new_page()
        await sign_in(small, ui, web, username, lang)
        for path, name in (("/staff/caseload", "my-cards"),
                           ("/staff/caseload/expiring", "expiring"),
                           (f"/staff/caseload/{sorted(expiring)[1]}/renewal", "confirm")):
            await small.goto(web.url + path)
            await check(small, ui, f"caseload-{name}-{lang}-phone")
    finally:
        await phone.close()
