"""OmaKaiku's "download my data" in a real browser: the page in fi/sv/en passes
axe at phone and desktop widths, and the link gives one JSON file holding both
services' exports — the holder's own canaries included."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

catalogue = pytest.importorskip(
    "web.i18n", reason="kaiku-web is not installed (pip install -e services/web)").catalogue

pytestmark = pytest.mark.e2e
SHOTS = "/tmp/shots-priv-export"


def text(lang: str, key: str) -> str:
    return catalogue(lang)[key]


async def holder_with_canary(web) -> tuple[str, str, str]:
    card_number = await web.issue_card()
    name, address = f"Kanari-{uuid.uuid4().hex[:8]}", f"data.{uuid.uuid4().hex[:10]}@example.org"
    async with httpx.AsyncClient(base_url=web.omakaiku_url, timeout=15, headers={
            "Authorization": f"Bearer {web.distributor_token}"}) as client:
        response = await client.post("/accounts", json={
            "card_number": card_number, "first_name": name, "last_name": "Virtanen",
            "email": address, "municipality": "Imatra", "language": "fi"})
    assert response.status_code == 201, response.text
    return card_number, name, address


async def test_holder_downloads_one_file_with_both_exports(web, phone_page, ui):
    from playwright.async_api import expect

    card_number, name, address = await holder_with_canary(web)
    page = phone_page
    await page.goto(web.url + "/oma/signin")
    await page.get_by_label(text("fi", "account.email")).fill(address)
    await page.get_by_role("button", name=text("fi", "signin.send_code")).click()
    code = await web.sign_in_code(address, count=2)  # the welcome e-mail came first
    await page.get_by_label(text("fi", "signin.code")).fill(code)
    await page.get_by_role("button", name=text("fi", "signin.submit_code")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(text("fi", "nav.my_card"))

    # Linked from My card.
    await page.get_by_role("link", name=text("fi", "nav.my_data")).click()
    await expect(page).to_have_url(web.url + "/oma/data")
    for lang in ("fi", "sv", "en"):
        if lang != "fi":
            await ui.choose_language(page, lang)
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            text(lang, "nav.my_data"))
        await expect(page.get_by_role("link", name=text(lang, "data.download"))).to_be_visible()
        await ui.assert_accessible(page, f"holder-my-data-{lang}")
        for width, height in ((390, 844), (1280, 900)):
            await page.set_viewport_size({"width": width, "height": height})
            await page.screenshot(path=f"{SHOTS}/oma-data-{lang}-{width}.png", full_page=True)
            await ui.assert_accessible(page, f"holder-my-data-{lang}-{width}")

    async with page.expect_download() as arrived:
        await page.get_by_role("link", name=text("en", "data.download")).click()
    download = await arrived.value
    assert download.suggested_filename == "kaikukortti-omat-tiedot.json"
    data = json.loads(open(await download.path(), encoding="utf-8").read())
    assert data["schema"] == "kaikukortti.export/1"
    assert data["parts"] == ["omakaiku", "notifications"]
    assert data["omakaiku"]["schema"] == "kaikukortti.omakaiku.export/1"
    assert data["notifications"]["schema"] == "kaikukortti.notifications.export/1"
    assert data["omakaiku"]["profile"]["first_name"] == name
    assert data["omakaiku"]["profile"]["email"] == address
    assert data["omakaiku"]["card"]["card_number"] == card_number
    assert data["account_id"] == data["omakaiku"]["account_id"] == \
        data["notifications"]["account_id"]
