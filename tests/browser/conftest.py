"""Browser tests: the web interfaces driven in Debian's Chromium by Playwright.

Fixtures start, on top of the session's ``system`` (all twelve service
processes): an SMTP sink and one more omakaiku api whose mail goes to it (the
welcome e-mail; sign-in codes come from the system's omakaiku worker, into the
system's own sink), and the web process itself,
pointed at the four service APIs. The organisations, a venue and staff users
with passwords are made over HTTP, as Kaikukeskus would.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kaiku_dev.supervisor import ProcessSpec, Supervisor, jwks_urls
from kaiku_dev.testing import System, eventually, free_port

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "kaiku-browser-test-password"


def pytest_collection_modifyitems(config, items):
    # Closing this year's continuation round fixes this year's partner list: no
    # organisation may join after it in the same session's shared system, so
    # such a test runs after every other test of the session.
    closing = [item for item in items if item.get_closest_marker("closes_partner_list")]
    if closing:
        items[:] = [item for item in items if item not in closing] + closing
    reason = None
    if not CHROMIUM.exists():
        reason = "Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            reason = "the playwright Python package is not installed"
    if reason:
        here = Path(__file__).parent
        for item in items:
            if here in Path(str(item.fspath)).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Web:
    url: str
    system: System
    mailbox: Path
    omakaiku_url: str
    distributor_id: str
    venue_org_id: str
    venue_id: str
    users: dict[str, str]

    # --- e-mail ------------------------------------------------------------------

    def messages(self, to: str) -> list[email.message.EmailMessage]:
        """Oldest first, from both sinks: the api's (welcome) and the worker's (codes)."""
        found = []
        paths = [*self.mailbox.glob("*.eml"), *Path(self.system.mail_dir).glob("*.eml")]
        for path in sorted(paths, key=lambda p: p.stat().st_mtime):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == to:
                found.append(message)
        return found

    async def wait_for_mail(self, to: str, count: int = 1) -> list[email.message.EmailMessage]:
        async def arrived():
            found = self.messages(to)
            return found if len(found) >= count else None

        return await eventually(arrived, message=f"{count} e-mail(s) to the holder")

    async def sign_in_code(self, to: str, count: int) -> str:
        message = (await self.wait_for_mail(to, count))[count - 1]
        return re.search(r"\b(\d{6})\b", message.get_content()).group(1)

    # --- set-up over the APIs --------------------------------------------------------

    @property
    def distributor_token(self) -> str:
        return self.system.token("distributor", organisation_id=self.distributor_id)

    @property
    def venue_token(self) -> str:
        return self.system.token("venue", organisation_id=self.venue_org_id)

    async def issue_card(self, children: int = 2) -> str:
        async with self.system.client("cards", self.distributor_token) as client:
            response = await client.post("/cards", json={
                "birth_year": 1975, "postal_code": "55100", "municipality": "Imatra",
                "children": children})
        assert response.status_code == 201, response.text
        return response.json()["card_number"]

    async def activate(self, card_number: str, address: str, language: str) -> str:
        async with httpx.AsyncClient(base_url=self.omakaiku_url, timeout=15, headers={
                "Authorization": f"Bearer {self.distributor_token}"}) as client:
            response = await client.post("/accounts", json={
                "card_number": card_number, "first_name": "Aino", "last_name": "Virtanen",
                "email": address, "municipality": "Imatra", "language": language})
        assert response.status_code == 201, response.text
        return response.json()["account_id"]

    async def publish(self, title: str, starts_at: str, capacity: int = 100,
                      card_cap: int = 5) -> str:
        async with self.system.client("venues", self.venue_token) as client:
            response = await client.post(f"/venues/{self.venue_id}/offerings", json={
                "title": title, "genres": ["music"], "starts_at": starts_at,
                "capacity": capacity, "card_cap": card_cap})
        assert response.status_code == 201, response.text
        return response.json()["offering_id"]

    async def wait_for_card_in_venues(self, card_number: str) -> None:
        async def known() -> bool:
            conn = await self.system.database("venues")
            try:
                return bool(await conn.fetchval(
                    "SELECT 1 FROM card_validity_view WHERE card_number = $1 "
                    "AND valid_from IS NOT NULL", card_number))
            finally:
                await conn.close()

        await eventually(known, message=f"venues to learn of card {card_number}")

    async def register(self, card_number: str, offering_id: str) -> str:
        await self.wait_for_card_in_venues(card_number)
        async with self.system.client("venues", self.venue_token) as client:
            response = await client.post("/tickets", json={
                "card_number": card_number, "offering_id": offering_id, "children": 0})
        assert response.status_code == 201, response.text
        return response.json()["ticket_id"]

    async def history(self, account_id: str) -> list[dict[str, Any]]:
        token = self.system.token("holder", account_id=account_id)
        async with self.system.client("omakaiku", token) as client:
            response = await client.get("/me/history")
        assert response.status_code == 200, response.text
        return response.json()


async def _post(system: System, service: str, token: str, path: str, body: dict) -> dict:
    async with system.client(service, token) as client:
        response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="session")
async def web(system: System, tmp_path_factory) -> Web:
    from omakaiku.smtp_sink import start

    work = tmp_path_factory.mktemp("web")
    sink = start(work / "mailbox")
    omakaiku_port, web_port = free_port(), free_port()
    supervisor = Supervisor(system.supervisor.base_env, work / "logs")
    keys, jwks = system.ns.keys, jwks_urls(system.ports)
    supervisor.add(ProcessSpec("omakaiku-api-smtp", [sys.executable, "-m", "omakaiku", "api"], {
        **keys.env_for("omakaiku"), **jwks,
        "KAIKU_HTTP_PORT": str(omakaiku_port),
        "KAIKU_OMAKAIKU_SMTP_HOST": "127.0.0.1",
        "KAIKU_OMAKAIKU_SMTP_PORT": str(sink.port),
        "KAIKU_OMAKAIKU_PUBLIC_URL": f"http://127.0.0.1:{web_port}/oma",
    }, omakaiku_port))
    supervisor.add(ProcessSpec("web-api", [sys.executable, "-m", "web", "api"], {
        **keys.env_for("web"), **jwks,
        "KAIKU_HTTP_PORT": str(web_port),
        "KAIKU_WEB_CARDS_URL": system.url("cards"),
        "KAIKU_WEB_VENUES_URL": system.url("venues"),
        "KAIKU_WEB_OMAKAIKU_URL": f"http://127.0.0.1:{omakaiku_port}",
        "KAIKU_WEB_NOTIFICATIONS_URL": system.url("notifications"),
    }, web_port))
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=90)
        centre = system.token("kaikukeskus")
        tag = uuid.uuid4().hex[:6]
        distributor = await _post(system, "cards", centre, "/organisations", {
            "kind": "distributor", "name": f"Imatran sosiaalipalvelut {tag}",
            "municipality": "Imatra"})
        venue_org = await _post(system, "cards", centre, "/organisations", {
            "kind": "venue", "name": f"Imatran Teatteri {tag}", "municipality": "Imatra"})
        venue = await _post(system, "venues",
                            system.token("venue", organisation_id=venue_org["organisation_id"]),
                            "/venues", {
                                "organisation_id": venue_org["organisation_id"],
                                "name": "Imatran Teatteri", "kind": "performing_arts",
                                "municipality": "imatra",
                                "limits": {"one_ticket_per_card": True}})
        users = {}
        for role, organisation_id in (("distributor", distributor["organisation_id"]),
                                      ("venue", venue_org["organisation_id"]),
                                      ("kaikukeskus", None)):
            username = f"{role}-{tag}"
            body = {"username": username, "password": PASSWORD}
            if organisation_id:
                body["organisation_id"] = organisation_id
            await _post(system, "cards", centre, "/users", body)
            users[role] = username
        yield Web(f"http://127.0.0.1:{web_port}", system, work / "mailbox",
                  f"http://127.0.0.1:{omakaiku_port}", distributor["organisation_id"],
                  venue_org["organisation_id"], venue["venue_id"], users)
    finally:
        supervisor.stop_all()
        sink.stop()


@pytest.fixture(scope="session")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def staff_page(browser):
    """A desktop-sized page in a fresh context (no cookies)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)  # to inject axe
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture
async def phone_page(browser):
    """A phone-sized page (OmaKaiku is mobile first)."""
    context = await browser.new_context(viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True,
                                        has_touch=True, bypass_csp=True)
    page = await context.new_page()
    yield page
    await context.close()


# --- helpers the tests share ------------------------------------------------------


async def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def axe_violations(page) -> list[dict[str, Any]]:
    """WCAG 2.1 A/AA violations axe-core finds on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    return await page.evaluate("""async () => {
        const result = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")


async def assert_accessible(page, name: str) -> None:
    violations = await axe_violations(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}.axe.json").write_text(json.dumps(violations, indent=1))
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, f"axe on {name}: {json.dumps(serious, indent=1)}"


async def choose_language(page, lang: str) -> None:
    await page.locator(f".languages a[hreflang='{lang}']").click()
    await page.wait_for_load_state()
    assert await page.get_attribute("html", "lang") == lang


async def sign_in_staff(page, username: str, password: str, labels: dict[str, str]) -> None:
    """Sign in on the open login page and wait for the staff home itself.

    Waits on the URL, not on a heading: the login page's title contains the home
    page's ("Kirjaudu Kaikukantaan" / "Kaikukanta"), so a heading match could pass
    before the form was even sent. If the sign-in is refused, the page's own
    message is in the failure."""
    await page.get_by_label(labels["username"]).fill(username)
    await page.get_by_label(labels["password"]).fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name=labels["submit"], exact=True).click()
    if not page.url.rstrip("/").endswith("/staff"):
        alerts = await page.get_by_role("alert").all_inner_texts()
        raise AssertionError(f"sign-in as {username} did not reach /staff: {page.url} "
                             f"says {alerts or await page.title()!r}")


class UI:
    """The helpers above, handed to tests as a fixture (conftest modules are not
    importable under --import-mode=importlib)."""

    screenshot = staticmethod(screenshot)
    axe_violations = staticmethod(axe_violations)
    assert_accessible = staticmethod(assert_accessible)
    choose_language = staticmethod(choose_language)
    sign_in_staff = staticmethod(sign_in_staff)


@pytest.fixture
def ui() -> type[UI]:
    return UI
