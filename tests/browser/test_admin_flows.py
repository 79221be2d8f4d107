"""Kaikukanta's admin pages in a real browser, each main flow in two languages,
with axe-core on every page and screenshots for review: the network of regions
and municipalities, organisation approval, staff users, changing an offering,
the ticket agent's venues and desk, region names in the statistics, and the
partner continuation round (opened, answered by partners, closed).

The session shares one system with other tests, so nothing here adds a region
(other tests count them) and a changed region is put back. Closing this year's
round fixes this year's partner list, so that test is moved to the end of the
session (the ``closes_partner_list`` marker, see conftest.py).
"""

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
HELSINKI = ZoneInfo("Europe/Helsinki")
PASSWORD = "kaiku-browser-test-password"
SETTLE = 60.0  # other engineers' tests share the machine: give read models room
LAPPI = {"fi": "Lappi", "sv": "Lappland", "en": "Lapland"}


def text(lang: str, key: str, **values) -> str:
    message = catalogue(lang)[key]
    return message.format(**values) if values else message


def pattern(lang: str, key: str, **values) -> re.Pattern:
    """The message as a regular expression, with its {placeholders} matching anything."""
    parts = re.split(r"(\{[a-z_]+\})", catalogue(lang)[key])
    return re.compile("".join(
        re.escape(values[p[1:-1]]) if p.startswith("{") and p[1:-1] in values
        else ".+?" if p.startswith("{") else re.escape(p) for p in parts))


async def open_in(page, ui, url: str, lang: str) -> None:
    await page.goto(url)
    if lang != "fi":
        await ui.choose_language(page, lang)
    page.lang = lang


async def sign_in_as(page, ui, web, username: str, lang: str,
                     password: str = PASSWORD) -> None:
    await open_in(page, ui, web.url + "/staff/login", lang)
    await ui.sign_in_staff(page, username, password, {
        key: text(lang, f"login.{key}") for key in ("username", "password", "submit")})


def nav(page, lang: str):
    return page.get_by_role("navigation", name=text(lang, "a11y.main_nav"))


async def check_page(page, ui, name: str) -> None:
    await ui.screenshot(page, name)
    await ui.assert_accessible(page, name)


async def api(web, method: str, service: str, path: str, token: str, expect: int = 200,
              **kwargs):
    async with web.system.client(service, token) as client:
        response = await client.request(method, path, **kwargs)
    assert response.status_code == expect, (method, path, response.status_code, response.text)
    return response.json()


async def new_organisation(web, kind: str, name: str, **extra) -> str:
    body = {"kind": kind, "name": name, "municipality": "Imatra", **extra}
    created = await api(web, "POST", "cards", "/organisations", web.system.token("kaikukeskus"),
                        expect=201, json=body)
    return created["organisation_id"]


async def new_user(web, organisation_id: str | None, prefix: str, admin: bool = False) -> str:
    username = f"{prefix}-{uuid.uuid4().hex[:8]}"
    body = {"username": username, "password": PASSWORD, "admin": admin}
    if organisation_id:
        body["organisation_id"] = organisation_id
    await api(web, "POST", "cards", "/users", web.system.token("kaikukeskus"), expect=201,
              json=body)
    return username


# --- the network ---------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["fi", "sv"])
async def test_kaikukeskus_edits_regions_and_municipalities(web, staff_page, ui, lang):
    from playwright.async_api import expect

    page = staff_page
    centre = web.system.token("kaikukeskus")
    await sign_in_as(page, ui, web, web.users["kaikukeskus"], lang)
    await nav(page, lang).get_by_role("link", name=text(lang, "nav.network")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "nav.network"))
    karelia = {"fi": "Etelä-Karjala", "sv": "Södra Karelen"}[lang]
    region = page.get_by_role("region", name=karelia)
    await expect(region.get_by_role("rowheader", name="Imatra")).to_be_visible()
    await check_page(page, ui, f"kaikukeskus-network-{lang}")

    # A new municipality in South Karelia: first a code that cannot be one.
    await region.get_by_role("link", name=text(lang, "network.add_municipality_to",
                                               name=karelia)).click()
    await expect(page.get_by_label(text(lang, "stats.region"))).to_have_value("etela-karjala")
    tag = uuid.uuid4().hex[:6]
    code = f"testikyla-{tag}"
    await page.get_by_label(text(lang, "network.code")).fill("Testikylä 1")
    await page.get_by_label(text(lang, "name_in.fi")).fill(f"Testikylä {tag}")
    await page.get_by_label(text(lang, "name_in.sv")).fill(f"Testby {tag}")
    await page.get_by_label(text(lang, "name_in.en")).fill(f"Test village {tag}")
    await page.get_by_role("radio", name=text(lang, "mstatus.joining_2025_2026")).check()
    await check_page(page, ui, f"kaikukeskus-municipality-new-{lang}")
    await page.get_by_role("button", name=text(lang, "common.save")).click()
    await expect(page.get_by_role("alert")).to_contain_text(text(lang, "network.bad_code"))
    await ui.assert_accessible(page, f"kaikukeskus-municipality-refused-{lang}")
    await page.get_by_label(text(lang, "network.code")).fill(code)
    await page.get_by_role("button", name=text(lang, "common.save")).click()
    shown = {"fi": f"Testikylä {tag}", "sv": f"Testby {tag}"}[lang]
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "network.municipality_saved", name=shown))
    network = await api(web, "GET", "cards", "/network", centre)
    regions = {r["code"]: r for r in network["regions"]}
    added = next(m for m in regions["etela-karjala"]["municipalities"] if m["code"] == code)
    assert added["status"] == "joining_2025_2026"
    assert added["name"] == {"fi": f"Testikylä {tag}", "sv": f"Testby {tag}",
                             "en": f"Test village {tag}"}

    # It leaves the network again: edited from its row.
    await page.get_by_role("link", name=text(lang, "network.edit_municipality_named",
                                             name=shown)).click()
    await expect(page.get_by_label(text(lang, "network.code"))).to_have_value(code)
    await page.get_by_role("radio", name=text(lang, "mstatus.left")).check()
    await page.get_by_role("button", name=text(lang, "common.save")).click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "network.municipality_saved", name=shown))
    network = await api(web, "GET", "cards", "/network", centre)
    left = next(m for r in network["regions"] for m in r["municipalities"] if m["code"] == code)
    assert left["status"] == "left"

    # A region's names: Lapland gets a new English name, then its own back.
    try:
        await page.get_by_role("link", name=text(lang, "network.edit_region_named",
                                                 name=LAPPI[lang])).click()
        await expect(page.get_by_label(text(lang, "name_in.sv"))).to_have_value("Lappland")
        await page.get_by_label(text(lang, "name_in.en")).fill("Lapland wellbeing county")
        await page.get_by_label(text(lang, "network.country")).fill("fi")
        await check_page(page, ui, f"kaikukeskus-region-edit-{lang}")
        await page.get_by_role("button", name=text(lang, "common.save")).click()
        await expect(page.get_by_role("status")).to_contain_text(
            text(lang, "network.region_saved", name=LAPPI[lang]))
        network = await api(web, "GET", "cards", "/network", centre)
        lappi = next(r for r in network["regions"] if r["code"] == "lappi")
        assert lappi["name"] == {**LAPPI, "en": "Lapland wellbeing county"}
        assert lappi["country"] == "FI"
        # The statistics follow the network: English names for an English reader.
        stats = await api(web, "GET", "cards", "/stats/regions", centre)
        assert next(r for r in stats if r["region"] == "lappi")["names"]["en"] == \
            "Lapland wellbeing county"
    finally:
        await api(web, "PUT", "cards", "/network/regions/lappi", centre,
                  json={"name": LAPPI, "country": "FI"})


# --- region names in the statistics --------------------------------------------------


@pytest.mark.parametrize("lang", ["sv", "en"])
async def test_the_statistics_name_regions_in_the_chosen_language(web, staff_page, ui, lang):
    from playwright.async_api import expect

    page = staff_page
    await sign_in_as(page, ui, web, web.users["venue"], lang)
    await nav(page, lang).get_by_role("link", name=text(lang, "nav.stats")).click()
    table = page.get_by_role("table")
    names = {"sv": ("Södra Karelen", "Sverige", "Norra Savolax"),
             "en": ("South Karelia", "Sweden", "North Savo")}[lang]
    for name in names:
        await expect(table.get_by_role("rowheader", name=name, exact=True)).to_be_visible()
    await expect(table.get_by_role("rowheader", name="Etelä-Karjala")).to_have_count(0)
    link = table.get_by_role("link", name=text(lang, "stats.report_for", region=names[0]))
    await expect(link).to_have_attribute("href", "/staff/stats/regions/etela-karjala/report")
    await check_page(page, ui, f"statistics-region-names-{lang}")


# --- organisations: a proposal approved -------------------------------------------------


@pytest.mark.parametrize("lang", ["fi", "en"])
async def test_kaikukeskus_approves_a_proposed_distributor(web, staff_page, ui, lang):
    from playwright.async_api import expect

    page = staff_page
    await sign_in_as(page, ui, web, web.users["kaikukeskus"], lang)
    await nav(page, lang).get_by_role("link", name=text(lang, "nav.organisations")).click()
    name = f"Ruokolahden perhekeskus {uuid.uuid4().hex[:6]}"
    await page.get_by_label(text(lang, "organisation.kind")).select_option("distributor")
    await page.get_by_label(text(lang, "organisation.name")).fill(name)
    await page.get_by_label(text(lang, "card.municipality")).fill("Ruokolahti")
    await page.get_by_label(text(lang, "organisation.pending")).check()
    await page.get_by_role("button", name=text(lang, "organisation.submit")).click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "organisation.proposed"))

    approve = page.get_by_role("button", name=text(lang, "organisation.approve_named",
                                                   name=name))

    async def waiting() -> bool:
        await page.reload()
        return await approve.count() == 1

    await eventually(waiting, timeout=SETTLE, message="the proposal waiting for approval")
    row = page.locator("table tr", has=page.get_by_role("cell", name=name, exact=True))
    await expect(row).to_contain_text(text(lang, "ostatus.pending"))
    await check_page(page, ui, f"kaikukeskus-approval-{lang}")
    await approve.click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "organisation.approved", name=name))
    await expect(row).to_contain_text(text(lang, "ostatus.approved"))
    await expect(approve).to_have_count(0)
    rows = await api(web, "GET", "cards", "/organisations", web.system.token("kaikukeskus"))
    organisation_id = next(r["organisation_id"] for r in rows if r["name"] == name)
    organisation = await api(web, "GET", "cards", f"/organisations/{organisation_id}",
                             web.system.token("kaikukeskus"))
    assert organisation["status"] == "approved"


# --- staff users ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_kaikukeskus_and_an_admin_user_manage_users(web, staff_page, browser, ui, lang):
    from playwright.async_api import expect

    page = staff_page
    tag = uuid.uuid4().hex[:6]
    distributor_name = f"Parikkalan sosiaalipalvelut {tag}"
    distributor = await new_organisation(web, "distributor", distributor_name)
    await sign_in_as(page, ui, web, web.users["kaikukeskus"], lang)
    await nav(page, lang).get_by_role("link", name=text(lang, "nav.users")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "nav.users"))

    # The organisation is in the partner list (a read model) once it arrives.
    choice = page.get_by_label(text(lang, "users.organisation"), exact=True).first

    async def listed() -> bool:
        await page.reload()
        return await choice.locator(f"option[value='{distributor}']").count() == 1

    await eventually(listed, timeout=SETTLE, message="the new distributor to choose")
    await choice.select_option(distributor)
    await page.get_by_role("button", name=text(lang, "users.show")).click()
    await expect(page.get_by_role("table")).to_contain_text(text(lang, "users.none"))

    add = page.get_by_role("region", name=text(lang, "users.add"))
    await expect(add.get_by_label(text(lang, "users.organisation"), exact=True)
                 ).to_have_value(distributor)
    # A username that is a person's name with a space: cards refuses, the page says why.
    await add.get_by_label(text(lang, "login.username")).fill("Aino Virtanen")
    await add.get_by_label(text(lang, "users.first_password")).fill(PASSWORD)
    await add.get_by_role("button", name=text(lang, "users.add_submit")).click()
    await expect(page.get_by_role("alert")).to_contain_text(text(lang, "error.refused"))
    await expect(add.get_by_label(text(lang, "users.first_password"))).to_have_value("")
    admin_name = f"jakaja.admin-{tag}"
    await add.get_by_label(text(lang, "login.username")).fill(admin_name)
    await add.get_by_label(text(lang, "users.first_password")).fill("valiaikainen-salasana")
    await add.get_by_label(text(lang, "users.make_admin")).check()
    await check_page(page, ui, f"kaikukeskus-users-{lang}")
    await add.get_by_role("button", name=text(lang, "users.add_submit")).click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "users.created", username=admin_name))
    row = page.get_by_role("row", name=re.compile(re.escape(admin_name)))
    await expect(row).to_contain_text(text(lang, "common.yes"))

    # Kaikukeskus sets the admin's password: a mismatch is caught first.
    await row.get_by_role("link", name=text(lang, "users.set_password_for",
                                            username=admin_name)).click()
    await page.get_by_label(text(lang, "users.new_password"), exact=True).fill(PASSWORD)
    await page.get_by_label(text(lang, "users.repeat_password")).fill(PASSWORD + "x")
    await page.get_by_role("button", name=text(lang, "users.save_password")).click()
    await expect(page.get_by_role("alert")).to_contain_text(
        text(lang, "users.password_mismatch"))
    await check_page(page, ui, f"kaikukeskus-user-password-{lang}")
    await page.get_by_label(text(lang, "users.new_password"), exact=True).fill(PASSWORD)
    await page.get_by_label(text(lang, "users.repeat_password")).fill(PASSWORD)
    await page.get_by_role("button", name=text(lang, "users.save_password")).click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "users.password_changed", username=admin_name))

    # The distributor's admin signs in: it manages its own organisation's users.
    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)
    try:
        admin = await context.new_page()
        await sign_in_as(admin, ui, web, admin_name, lang)
        await nav(admin, lang).get_by_role("link", name=text(lang, "nav.users")).click()
        await expect(admin.get_by_label(text(lang, "users.organisation"), exact=True)
                     ).to_have_count(0)
        staff_name = f"jakaja.tiski-{tag}"
        await admin.get_by_label(text(lang, "login.username")).fill(staff_name)
        await admin.get_by_label(text(lang, "users.first_password")).fill(PASSWORD)
        await admin.get_by_role("button", name=text(lang, "users.add_submit")).click()
        await expect(admin.get_by_role("status")).to_contain_text(
            text(lang, "users.created", username=staff_name))
        await ui.assert_accessible(admin, f"admin-user-users-{lang}")
        users = await api(web, "GET", "cards", "/users", web.system.token("kaikukeskus"),
                          params={"organisation_id": distributor})
        assert {u["username"] for u in users} == {admin_name, staff_name}
        # ... and deactivates the new user, who then cannot sign in.
        await admin.get_by_role("button", name=text(lang, "users.deactivate_named",
                                                    username=staff_name)).click()
        await expect(admin.get_by_role("status")).to_contain_text(
            text(lang, "users.deactivated", username=staff_name))
        await expect(admin.get_by_role("row", name=re.compile(re.escape(staff_name)))
                     ).to_contain_text(text(lang, "users.inactive"))
        async with web.system.client("cards") as client:
            refused = await client.post("/auth/login", json={"username": staff_name,
                                                             "password": PASSWORD})
        assert refused.status_code == 401
        # Their own password, from the home page.
        await nav(admin, lang).get_by_role("link", name=text(lang, "nav.home")).click()
        await admin.get_by_role("link", name=text(lang, "users.own_password")).click()
        await admin.get_by_label(text(lang, "users.current_password")).fill(PASSWORD)
        await admin.get_by_label(text(lang, "users.new_password"), exact=True).fill(
            PASSWORD + "-2")
        await admin.get_by_label(text(lang, "users.repeat_password")).fill(PASSWORD + "-2")
        await ui.screenshot(admin, f"admin-user-own-password-{lang}")
        await ui.assert_accessible(admin, f"admin-user-own-password-{lang}")
        desktop = admin.viewport_size
        await admin.set_viewport_size({"width": 390, "height": 844})
        await ui.screenshot(admin, f"admin-user-own-password-{lang}-phone")
        await ui.assert_accessible(admin, f"admin-user-own-password-{lang}-phone")
        await admin.set_viewport_size(desktop)
        await admin.get_by_role("button", name=text(lang, "users.save_password")).click()
        await expect(admin.get_by_role("heading", level=1)).to_have_text(
            text(lang, "users.own_password_changed"))
        async with web.system.client("cards") as client:
            signed_in = await client.post("/auth/login", json={
                "username": admin_name, "password": PASSWORD + "-2"})
        assert signed_in.status_code == 200 and signed_in.json()["admin"] is True
        # The change ended every earlier token, yet this session goes on: the web
        # signed in again with the new password.
        await nav(admin, lang).get_by_role("link", name=text(lang, "nav.home")).click()
        await expect(admin.get_by_role("link", name=text(lang, "users.own_password"))
                     ).to_be_visible()
    finally:
        await context.close()


# --- the venue changes an offering --------------------------------------------------------


@pytest.mark.parametrize("lang", ["fi", "en"])
async def test_venue_changes_an_offering_with_the_guideline_hint(web, staff_page, ui, lang):
    from playwright.async_api import expect

    title = f"Joulukonsertti {uuid.uuid4().hex[:6]}"
    starts = (datetime.now(HELSINKI) + timedelta(days=30)).replace(hour=18, minute=0,
                                                                   second=0, microsecond=0)
    offering_id = await web.publish(title, starts.isoformat(), capacity=700, card_cap=21)
    page = staff_page
    await sign_in_as(page, ui, web, web.users["venue"], lang)
    await page.goto(web.url + "/staff/venue")
    radio = page.get_by_role("radio", name=re.compile("^Imatran Teatteri"))

    async def venue_listed() -> bool:
        await page.reload()
        return await radio.count() >= 1

    await eventually(venue_listed, timeout=SETTLE, message="the venue in the venue list")
    await radio.first.check()
    await page.get_by_role("button", name=text(lang, "venue.choose")).click()

    await nav(page, lang).get_by_role("link", name=text(lang, "nav.offerings")).click()
    change = page.get_by_role("link", name=text(lang, "offering.edit_named", title=title))

    async def offering_listed() -> bool:
        await page.reload()
        return await change.count() == 1

    await eventually(offering_listed, timeout=SETTLE, message="the offering in the list")
    await change.click()
    await expect(page.get_by_label(text(lang, "offering.starts_at"))).to_have_value(
        starts.strftime("%Y-%m-%dT%H:%M"))
    hint = page.locator("#guideline")
    await expect(hint).to_contain_text(text(lang, "guideline.minimum", minimum=21,
                                            capacity=700))
    # Over a thousand places: 20 card places are enough; the hint says so as it is typed.
    await page.get_by_label(text(lang, "offering.capacity")).fill("1500")
    await expect(hint).to_contain_text(text(lang, "guideline.mass"))
    card_cap = page.get_by_label(text(lang, "offering.card_cap"))
    await card_cap.fill("10")
    await expect(hint).to_contain_text(text(lang, "guideline.below", minimum=20))
    await check_page(page, ui, f"venue-offering-edit-{lang}")
    # Sent anyway: venues refuses and the page says why, keeping what was typed.
    await page.get_by_role("button", name=text(lang, "offering.save_changes")).click()
    await expect(page.get_by_role("alert")).to_contain_text(text(lang, "error.refused"))
    await expect(card_cap).to_have_value("10")
    await ui.assert_accessible(page, f"venue-offering-edit-refused-{lang}")
    await card_cap.fill("30")
    await page.get_by_label(text(lang, "offering.title")).fill(title + " (lisänäytös)")
    await page.get_by_role("button", name=text(lang, "offering.save_changes")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "offering.changed"))
    async with web.system.client("venues") as client:
        offering = (await client.get(f"/offerings/{offering_id}")).json()
    assert (offering["title"], offering["capacity"], offering["card_cap"]) == (
        title + " (lisänäytös)", 1500, 30)
    assert datetime.fromisoformat(offering["starts_at"]) == starts


# --- the ticket agent -----------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["sv", "en"])
async def test_ticket_agent_registers_a_ticket_for_a_venue_it_acts_for(web, staff_page, ui,
                                                                        lang):
    from playwright.async_api import expect

    tag = uuid.uuid4().hex[:6]
    agent = await new_organisation(web, "ticket_agent", f"Lippupiste Imatra {tag}")
    username = await new_user(web, agent, "lipunvalittaja")
    venue_name = f"Imatran Kulttuuritalo {tag}"
    venue = await api(web, "POST", "venues", "/venues", web.venue_token, expect=201, json={
        "organisation_id": web.venue_org_id, "name": venue_name, "kind": "performing_arts",
        "municipality": "imatra", "limits": {"ticket_agents": [agent]}})
    title = f"Kevätrevyy {tag}"
    starts = (datetime.now(HELSINKI) + timedelta(days=12)).replace(hour=19, minute=0)
    async with web.system.client("venues", web.venue_token) as client:
        published = await client.post(f"/venues/{venue['venue_id']}/offerings", json={
            "title": title, "genres": ["theatre"], "starts_at": starts.isoformat(),
            "capacity": 200, "card_cap": 8})
    assert published.status_code == 201, published.text
    offering_id = published.json()["offering_id"]
    card_number = await web.issue_card(children=1)

    page = staff_page
    await sign_in_as(page, ui, web, username, lang)
    # The desk first asks which venue: the venues that named this agent.
    await nav(page, lang).get_by_role("link", name=text(lang, "nav.register")).click()
    await expect(page).to_have_url(web.url + "/staff/venue")
    choice = page.get_by_role("group", name=text(lang, "venue.which_agent"))

    async def venue_listed() -> bool:
        await page.reload()
        return await choice.get_by_role("radio", name=re.compile(venue_name)).count() == 1

    await eventually(venue_listed, timeout=SETTLE, message="the agent's venue in the list")
    # The fixture's own theatre has not named this agent: it is not offered.
    await expect(choice.get_by_role("radio")).to_have_count(1)
    await check_page(page, ui, f"ticket-agent-venues-{lang}")
    await choice.get_by_role("radio", name=re.compile(venue_name)).check()
    await page.get_by_role("button", name=text(lang, "venue.choose")).click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "nav.register"))
    option = page.locator("#offering_id option", has_text=title)

    async def on_sale() -> bool:
        await page.reload()
        return await option.count() == 1

    await eventually(on_sale, timeout=SETTLE, message="the offering at the ticket desk")
    await web.wait_for_card_in_venues(card_number)
    await page.get_by_label(text(lang, "card.number")).fill(card_number)
    await page.get_by_label(text(lang, "register.performance")).select_option(offering_id)
    await page.get_by_label(text(lang, "register.children")).fill("1")
    await page.get_by_role("button", name=text(lang, "register.submit")).click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "register.done", card=card_number, children=1))
    await check_page(page, ui, f"ticket-agent-desk-{lang}")
    async with web.system.client("venues") as client:
        offering = (await client.get(f"/offerings/{offering_id}")).json()
    assert offering["card_places_left"] == 8 - 2

    # A venue that has not named the agent cannot be chosen by its id either.
    await page.goto(web.url + "/staff/venue")
    form = page.locator("form[action='/staff/venue']")
    await form.evaluate(
        "(f, id) => { f.querySelector('input[name=venue_id]:checked').value = id; "
        "f.submit(); }", web.venue_id)
    await expect(page.get_by_role("alert")).to_contain_text(text(lang, "venue.not_an_agent"))


# --- the partner continuation round (last: it fixes this year's partner list) --------------


@pytest.mark.closes_partner_list
async def test_kaikukeskus_runs_the_partner_round_and_partners_answer(web, browser, ui):
    from playwright.async_api import expect

    year = datetime.now(HELSINKI).year
    tag = uuid.uuid4().hex[:6]
    leaving_name = f"Lähtevä lipunmyynti {tag}"
    leaving = await new_organisation(web, "ticket_agent", leaving_name)
    leaving_user = await new_user(web, leaving, "lahteva")
    centre_token = web.system.token("kaikukeskus")

    async def new_page():
        context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                            bypass_csp=True)
        return context, await context.new_page()

    # Kaikukeskus opens this year's round (in Finnish), unless another test in
    # the session already did: then the page says the round exists.
    context, page = await new_page()
    try:
        await sign_in_as(page, ui, web, web.users["kaikukeskus"], "fi")
        await nav(page, "fi").get_by_role("link", name=text("fi", "nav.rounds")).click()
        await check_page(page, ui, "kaikukeskus-rounds-fi")
        async with web.system.client("cards", centre_token) as client:
            existed = (await client.get(f"/continuation-rounds/{year}")).status_code == 200
        await page.get_by_label(text("fi", "round.year")).select_option(str(year))
        await page.get_by_label(text("fi", "round.deadline")).fill(f"{year}-12-31")
        await page.get_by_role("button", name=text("fi", "round.open_submit")).click()
        if existed:
            await expect(page.get_by_role("alert")).to_contain_text(text("fi", "error.refused"))
        else:
            await expect(page.get_by_role("status")).to_contain_text(
                text("fi", "round.opened", year=year))
        # A deadline in the past (or a round that exists already): refused, said so.
        await page.goto(web.url + "/staff/rounds")
        await page.get_by_label(text("fi", "round.year")).select_option(str(year + 1))
        await page.get_by_label(text("fi", "round.deadline")).fill(f"{year - 1}-01-01")
        await page.get_by_role("button", name=text("fi", "round.open_submit")).click()
        await expect(page.get_by_role("alert")).to_contain_text(text("fi", "error.refused"))
        await ui.assert_accessible(page, "kaikukeskus-rounds-refused-fi")
    finally:
        await context.close()

    # The partners answer: the distributor continues (in Swedish), the ticket
    # agent leaves (in English).
    for username, lang, decision in ((web.users["distributor"], "sv", "continue"),
                                     (leaving_user, "en", "leave")):
        context, page = await new_page()
        try:
            await sign_in_as(page, ui, web, username, lang)
            await nav(page, lang).get_by_role("link", name=text(lang, "nav.continuation")
                                              ).click()
            question = page.get_by_role("group", name=text(lang, "continuation.question",
                                                           year=year))
            await question.get_by_role("radio", name=text(lang, f"answer.{decision}")).check()
            await check_page(page, ui, f"partner-continuation-{lang}")
            await page.get_by_role("button", name=text(lang, "continuation.submit")).click()
            await expect(page.get_by_role("status")).to_contain_text(
                text(lang, "continuation.saved"))
            await expect(page.get_by_role("region", name=text(
                lang, "round.year_heading", year=year))).to_contain_text(text(
                    lang, "continuation.your_answer", decision=text(lang, f"decision.{decision}")))
            await expect(question.get_by_role("radio", name=text(lang, f"answer.{decision}"))
                         ).to_be_checked()
        finally:
            await context.close()

    # Kaikukeskus sees the answers (in Swedish) and closes the round.
    context, page = await new_page()
    try:
        await sign_in_as(page, ui, web, web.users["kaikukeskus"], "sv")
        await nav(page, "sv").get_by_role("link", name=text("sv", "nav.rounds")).click()
        await page.get_by_role("link", name=text("sv", "round.show", year=year)).click()
        answered = page.get_by_role("table", name=pattern("sv", "round.answered"))
        leaving_row = answered.get_by_role("row", name=re.compile(re.escape(leaving_name)))

        async def both_named() -> bool:
            await page.reload()
            return await leaving_row.count() == 1

        await eventually(both_named, timeout=SETTLE, message="the answers with their names")
        await expect(leaving_row).to_contain_text(text("sv", "decision.leave"))
        rows = await api(web, "GET", "cards", f"/continuation-rounds/{year}", centre_token)
        decisions = {str(p["organisation_id"]): p["decision"] for p in rows["answered"]}
        assert decisions[web.distributor_id] == "continue" and decisions[leaving] == "leave"
        await check_page(page, ui, f"kaikukeskus-round-{year}-sv")
        # Closing needs the confirmation.
        await page.get_by_label(text("sv", "round.close_confirm", year=year)).check()
        await page.get_by_role("button", name=text("sv", "round.close_submit")).click()
        await expect(page.get_by_role("status")).to_contain_text(
            text("sv", "round.closed_done", year=year))
        await expect(page.get_by_role("button", name=text("sv", "round.close_submit"))
                     ).to_have_count(0)
        await ui.assert_accessible(page, "kaikukeskus-round-closed-sv")
    finally:
        await context.close()
    organisation = await api(web, "GET", "cards", f"/organisations/{leaving}", centre_token)
    assert organisation["status"] == "left"
    staying = await api(web, "GET", "cards", f"/organisations/{web.distributor_id}",
                        centre_token)
    assert staying["status"] == "approved"
