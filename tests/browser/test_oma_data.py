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


async def sign_in(page, web, url: str, address: str) -> None:
    """Sign in on the web at ``url`` with the code e-mailed to ``address``."""
    await page.goto(url + "/oma/signin")
    await page.get_by_label(text("fi", "account.email")).fill(address)
    await page.get_by_role("button", name=text("fi", "signin.send_code")).click()
    code = await web.sign_in_code(address, count=2)  # the welcome e-mail came first
    await page.get_by_label(text("fi", "signin.code")).fill(code)
    await page.get_by_role("button", name=text("fi", "signin.submit_code")).click()


async def test_holder_downloads_one_file_with_both_exports(web, phone_page, ui):
    from playwright.async_api import expect

    card_number, name, address = await holder_with_canary(web)
    page = phone_page
    await sign_in(page, web, web.url, address)
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


@pytest.fixture
async def web_without_notifications(web, tmp_path):
    """A second web process whose notifications URL answers nothing (a closed
    port): omakaiku is up, notifications is 'down'."""
    import sys

    from kaiku_dev.supervisor import ProcessSpec, Supervisor, jwks_urls
    from kaiku_dev.testing import free_port

    system, port = web.system, free_port()
    supervisor = Supervisor(system.supervisor.base_env, tmp_path / "logs")
    supervisor.add(ProcessSpec("web-api-no-notifications", [sys.executable, "-m", "web", "api"], {
        **system.ns.keys.env_for("web"), **jwks_urls(system.ports),
        "KAIKU_HTTP_PORT": str(port),
        "KAIKU_WEB_CARDS_URL": system.url("cards"),
        "KAIKU_WEB_VENUES_URL": system.url("venues"),
        "KAIKU_WEB_OMAKAIKU_URL": web.omakaiku_url,
        "KAIKU_WEB_NOTIFICATIONS_URL": f"http://127.0.0.1:{free_port()}",
    }, port))
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        supervisor.stop_all()


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_a_service_down_gives_a_503_page_and_no_file(web, web_without_notifications,
                                                           staff_page, ui, lang):
    """Signed in on the web whose notifications is down: the link answers a page
    saying which part is missing, and nothing is downloaded."""
    from playwright.async_api import expect

    _, name, address = await holder_with_canary(web)
    page, url = staff_page, web_without_notifications
    await sign_in(page, web, url, address)
    await page.goto(url + "/oma/data")
    if lang != "fi":
        await ui.choose_language(page, lang)
    downloads: list = []
    page.on("download", lambda download: downloads.append(download))
    async with page.expect_response(url + "/oma/data/download") as answered:
        await page.get_by_role("link", name=text(lang, "data.download")).click()
    assert (await answered.value).status == 503
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text(text(lang, "data.unavailable"))
    await expect(alert).to_contain_text(text(lang, "data.part_name_notifications"))
    await expect(alert).not_to_contain_text(text(lang, "data.part_name_omakaiku"))
    assert name not in await page.content()
    await ui.assert_accessible(page, f"holder-my-data-503-{lang}")
    for width, height in ((390, 844), (1280, 900)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=f"{SHOTS}/oma-data-503-{lang}-{width}.png", full_page=True)
    assert downloads == []
