"""The web interfaces in a real browser: each main flow in two languages, with
axe-core checking every page on the way and screenshots for review."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kaiku_dev.testing import eventually

catalogue = pytest.importorskip(
    "web.i18n", reason="kaiku-web is not installed (pip install -e services/web)").catalogue

pytestmark = pytest.mark.e2e
HELSINKI = ZoneInfo("Europe/Helsinki")


def text(lang: str, key: str, **values) -> str:
    message = catalogue(lang)[key]
    return message.format(**values) if values else message


async def sign_in_staff(page, ui, web, role: str) -> None:
    await ui.sign_in_staff(page, web.users[role], "kaiku-browser-test-password", {
        key: text(page.lang, f"login.{key}") for key in ("username", "password", "submit")})


async def open_in(page, ui, url: str, lang: str) -> None:
    await page.goto(url)
    if lang != "fi":
        await ui.choose_language(page, lang)
    page.lang = lang


# --- Kaikukanta: the distributor ------------------------------------------------


@pytest.mark.parametrize("lang", ["fi", "sv"])
async def test_distributor_issues_a_card_and_activates_omakaiku(web, staff_page, ui, lang):
    from playwright.async_api import expect

    page = staff_page
    await open_in(page, ui, web.url + "/staff/login", lang)
    await ui.screenshot(page, f"staff-login-{lang}")
    await ui.assert_accessible(page, f"staff-login-{lang}")
    await sign_in_staff(page, ui, web, "distributor")

    await page.get_by_role("navigation", name=text(lang, "a11y.main_nav")).get_by_role(
        "link", name=text(lang, "nav.issue_card")).click()
    await page.get_by_label(text(lang, "card.birth_year")).fill("1980")
    await page.get_by_label(text(lang, "card.postal_code")).fill("55100")
    await page.get_by_label(text(lang, "card.municipality")).fill("Imatra")
    await page.get_by_label(text(lang, "card.children"), exact=True).fill("2")
    question = page.get_by_role("group", name=text(lang, "wellbeing.life_satisfaction"))
    await question.get_by_role("radio", name="7", exact=True).check()
    await ui.screenshot(page, f"distributor-issue-card-{lang}")
    await ui.assert_accessible(page, f"distributor-issue-card-{lang}")
    await page.get_by_role("button", name=text(lang, "card.issue")).click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "card.issued_title"))
    card_number = (await page.locator("#issued-card-number").inner_text()).strip()
    assert len(card_number) == 9 and card_number[3] == "-", card_number
    await ui.assert_accessible(page, f"distributor-card-issued-{lang}")
    # The card is really in Kaikukanta, with what was typed in.
    async with web.system.client("cards", web.distributor_token) as client:
        card = (await client.get(f"/cards/{card_number}")).json()
    assert (card["children"], card["municipality"].lower(), card["birth_year"]) == (2, "imatra", 1980)

    await page.get_by_role("link", name=text(lang, "card.activate_now")).click()
    await expect(page.get_by_label(text(lang, "card.number"))).to_have_value(card_number)
    address = f"holder.{uuid.uuid4().hex[:10]}@example.org"
    await page.get_by_label(text(lang, "account.first_name")).fill("Aino")
    await page.get_by_label(text(lang, "account.last_name")).fill("Virtanen")
    await page.get_by_label(text(lang, "account.email")).fill(address)
    await page.get_by_label(text(lang, "card.municipality")).fill("Imatra")
    await expect(page.get_by_label(text(lang, "account.language"))).to_have_value(lang)
    await ui.screenshot(page, f"distributor-activate-omakaiku-{lang}")
    await ui.assert_accessible(page, f"distributor-activate-omakaiku-{lang}")
    await page.get_by_role("button", name=text(lang, "account.submit")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "account.activated"))
    await expect(page.get_by_role("status")).to_contain_text(address)
    # The holder really got the welcome e-mail, in the chosen language.
    (welcome,) = await web.wait_for_mail(address)
    assert welcome["Subject"] == {"fi": "Tervetuloa OmaKaikuun",
                                  "sv": "Välkommen till OmaKaiku"}[lang]
    # The holder follows the e-mail's one-time link and is signed in to OmaKaiku.
    link = re.search(r"(http://\S+/oma/signin#link_token=\S+)", welcome.get_content()).group(1)
    holder = await page.context.browser.new_context(viewport={"width": 390, "height": 844})
    try:
        phone = await holder.new_page()
        await phone.goto(link)
        await expect(phone).to_have_url(web.url + "/oma")
        await expect(phone.locator("html")).to_have_attribute("lang", lang)
        await expect(phone.locator(".mobile-card .card-number")).to_have_text(card_number)
    finally:
        await holder.close()


# --- Kaikukanta: the venue -----------------------------------------------------------


@pytest.mark.parametrize("lang", ["fi", "en"])
async def test_venue_publishes_an_offering_and_registers_a_ticket(web, staff_page, ui, lang):
    from playwright.async_api import expect

    card_number = await web.issue_card(children=2)
    page = staff_page
    await open_in(page, ui, web.url + "/staff/login", lang)
    await sign_in_staff(page, ui, web, "venue")

    # Which venue the desk works for (a list, or the venue id while venues has none).
    await page.goto(web.url + "/staff/venue")
    radio = page.get_by_role("radio", name="Imatran Teatteri")
    if await radio.count():
        await radio.first.check()
    else:
        await page.get_by_label(text(lang, "venue.id")).fill(web.venue_id)
    await page.get_by_role("button", name=text(lang, "venue.choose")).click()

    await page.get_by_role("navigation", name=text(lang, "a11y.main_nav")).get_by_role(
        "link", name=text(lang, "nav.offerings")).click()
    await page.get_by_role("link", name=text(lang, "nav.publish")).click()
    title = f"Syyskonsertti {uuid.uuid4().hex[:6]}"
    await page.get_by_label(text(lang, "offering.title")).fill(title)
    await page.get_by_label(text(lang, "offering.genre")).select_option("music")
    starts = (datetime.now(HELSINKI) + timedelta(days=10)).replace(hour=19, minute=0)
    await page.get_by_label(text(lang, "offering.starts_at")).fill(
        starts.strftime("%Y-%m-%dT%H:%M"))
    # The guideline minimum appears as the capacity is typed: 3 % of 700 is 21.
    await page.get_by_label(text(lang, "offering.capacity")).fill("700")
    hint = page.locator("#guideline")
    await expect(hint).to_contain_text(text(lang, "guideline.minimum", minimum=21,
                                            capacity=700))
    card_cap = page.get_by_label(text(lang, "offering.card_cap"))
    await card_cap.fill("10")
    await expect(hint).to_contain_text(text(lang, "guideline.below", minimum=21))
    await ui.screenshot(page, f"venue-publish-offering-{lang}")
    await ui.assert_accessible(page, f"venue-publish-offering-{lang}")
    await card_cap.fill("25")
    await expect(hint.locator(".warning")).to_have_count(0)
    await page.get_by_role("button", name=text(lang, "offering.publish")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "offering.published"))

    # The ticket desk, keyboard only: the card number field has the focus.
    await page.get_by_role("link", name=text(lang, "nav.register")).first.click()
    card_field = page.get_by_label(text(lang, "card.number"))
    await expect(card_field).to_be_focused()
    option = page.locator("#offering_id option", has_text=title)
    await expect(option).to_have_count(1)
    await web.wait_for_card_in_venues(card_number)
    await page.keyboard.type(card_number.replace("-", "").lower())
    await page.keyboard.press("Tab")
    performance = page.get_by_label(text(lang, "register.performance"))
    await expect(performance).to_be_focused()
    await performance.select_option(await option.get_attribute("value"))
    await page.keyboard.press("Tab")
    await expect(page.get_by_label(text(lang, "register.children"))).to_be_focused()
    await page.keyboard.type("1")  # the field's 0 is selected on focus, so this replaces it
    await expect(page.get_by_label(text(lang, "register.children"))).to_have_value("1")
    await page.keyboard.press("Enter")
    result = page.get_by_role("status")
    await expect(result).to_contain_text(text(lang, "register.done", card=card_number,
                                              children=1))
    # Ready for the next customer: the field is empty and focused again.
    await expect(card_field).to_be_focused()
    await expect(card_field).to_have_value("")
    await ui.screenshot(page, f"venue-ticket-desk-{lang}")
    await ui.assert_accessible(page, f"venue-ticket-desk-{lang}")

    # The same card again: the refusal is announced, the number kept for correction.
    await page.keyboard.type(card_number)
    await page.keyboard.press("Enter")
    await expect(result).to_contain_text(text(lang, "register.refused", card=card_number))
    await expect(card_field).to_be_focused()

    if lang == "en":
        # A scanned OmaKaiku mobile card: the scanner types the QR code's token.
        scanned = await web.issue_card(children=0)
        account_id = await web.activate(scanned, f"scan.{uuid.uuid4().hex[:8]}@example.org", "en")
        holder = web.system.token("holder", account_id=account_id)

        async def mobile_card():
            async with web.system.client("omakaiku", holder) as client:
                response = await client.get("/me/card")
            return response.json()["token"] if response.status_code == 200 else None

        qr_token = await eventually(mobile_card, message="the holder's mobile card")
        await web.wait_for_card_in_venues(scanned)
        # Venues verifies the token and names the rule; the desk says what to do.
        await card_field.fill(qr_token[:-4] + ("AAAA" if not qr_token.endswith("AAAA") else "BBBB"))
        await page.keyboard.press("Enter")
        await expect(result).to_contain_text(text(lang, "register.qr_invalid"))
        await card_field.fill(expired_mobile_card(web, scanned))
        await page.keyboard.press("Enter")
        await expect(result).to_contain_text(text(lang, "register.qr_expired"))
        await card_field.fill(qr_token)
        await page.keyboard.press("Enter")
        await expect(result).to_contain_text(text(lang, "register.done", card=scanned,
                                                  children=0))

    # The tickets are real: venues has them on the offering.
    async with web.system.client("venues") as client:
        offering = (await client.get(
            f"/offerings/{await option.get_attribute('value')}")).json()
    # The holder and one child, and the scanned card's holder in the English run.
    assert offering["card_places_left"] == 25 - 2 - (1 if lang == "en" else 0)


def expired_mobile_card(web, card_number: str) -> str:
    """A mobile card omakaiku signed ten minutes ago (its development key of this run)."""
    from omakaiku.adapters.mobile_card import CardSigner
    from omakaiku.config import OmaKaikuSettings

    keys = web.system.ns.keys.values
    seed = OmaKaikuSettings(card_signing_key=keys["KAIKU_OMAKAIKU_CARD_SIGNING_KEY"]
                            ).key_bytes("card-signing")
    token, _ = CardSigner(seed).issue(card_number=card_number, valid_until=None, children=0,
                                      now=datetime.now(UTC) - timedelta(minutes=10),
                                      ttl_seconds=300)
    return token


# --- OmaKaiku: the holder -------------------------------------------------------------


@pytest.mark.parametrize("lang", ["sv", "en"])
async def test_holder_signs_in_sees_tickets_cancels_one_and_gives_feedback(
        web, phone_page, ui, lang):
    from playwright.async_api import expect

    # Swedish is the holder's own language (remembered from the account); the
    # English run chooses it with the switcher instead.
    card_number = await web.issue_card()
    address = f"holder.{uuid.uuid4().hex[:10]}@example.org"
    account_id = await web.activate(card_number, address, "sv" if lang == "sv" else "fi")
    tag = uuid.uuid4().hex[:5]
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    past_id = await web.publish(f"Kevätkonsertti {tag}", soon)
    past_ticket = await web.register(card_number, past_id)
    later = (datetime.now(UTC) + timedelta(days=20)).isoformat()
    keep_ticket = await web.register(card_number, await web.publish(f"Jazzilta {tag}", later))
    cancel_ticket = await web.register(card_number, await web.publish(f"Tanssi {tag}", later))

    async def all_in_history():
        rows = {r["ticket_id"] for r in await web.history(account_id)}
        return {past_ticket, keep_ticket, cancel_ticket} <= rows

    await eventually(all_in_history, message="the three tickets in the holder's history")

    page = phone_page
    await page.goto(web.url + "/oma/signin")
    page.lang = "fi"
    if lang == "en":
        await open_in(page, ui, web.url + "/oma/signin", "en")
    await page.get_by_label(text(page.lang, "account.email")).fill(address)
    await page.get_by_role("button", name=text(page.lang, "signin.send_code")).click()
    code = await web.sign_in_code(address, count=2)  # the welcome e-mail came first
    await page.get_by_label(text(page.lang, "signin.code")).fill(code)
    await ui.screenshot(page, f"holder-sign-in-code-{lang}")
    await ui.assert_accessible(page, f"holder-sign-in-code-{lang}")
    await page.get_by_role("button", name=text(page.lang, "signin.submit_code")).click()

    # My card, in the holder's language, with its QR code.
    await expect(page.locator("html")).to_have_attribute("lang", lang)
    await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "nav.my_card"))
    await expect(page.get_by_role("img", name=text(lang, "card.qr_alt",
                                                   number=card_number))).to_be_visible()
    await ui.screenshot(page, f"holder-my-card-{lang}")
    await ui.assert_accessible(page, f"holder-my-card-{lang}")

    # My events: both upcoming tickets; cancel one.
    await page.goto(web.url + "/oma/events")
    await expect(page.get_by_role("heading", level=2, name=f"Jazzilta {tag}")).to_be_visible()
    await expect(page.get_by_role("heading", level=2, name=f"Tanssi {tag}")).to_be_visible()
    await ui.assert_accessible(page, f"holder-my-events-{lang}")
    await page.get_by_role("button", name=text(lang, "events.cancel_named",
                                               title=f"Tanssi {tag}")).click()
    await expect(page.get_by_role("status")).to_contain_text(
        text(lang, "events.cancel_requested"))
    await expect(page.get_by_role("button", name=text(
        lang, "events.cancel_named", title=f"Tanssi {tag}"))).to_have_count(0)
    await expect(page.get_by_role("button", name=text(
        lang, "events.cancel_named", title=f"Jazzilta {tag}"))).to_have_count(1)
    await ui.screenshot(page, f"holder-my-events-{lang}")

    async def cancelled():
        rows = {r["ticket_id"]: r["status"] for r in await web.history(account_id)}
        return rows.get(cancel_ticket) == "cancelled" and rows.get(keep_ticket) == "registered"

    await eventually(cancelled, message="the venue to confirm the holder's cancellation")

    # History: feedback with stars for the event that is over.
    await asyncio.sleep(max(0.0, (datetime.fromisoformat(soon) - datetime.now(UTC)
                                  ).total_seconds()) + 0.2)
    await page.goto(web.url + "/oma/history")
    item = page.locator(f"li[data-ticket-id='{past_ticket}']")
    await item.get_by_text(text(lang, "feedback.give")).click()
    for category, stars in (("accessibility", 4), ("meaning", 5), ("interest", 3)):
        group = item.get_by_role("group", name=text(lang, f"feedback.{category}_question"))
        await group.get_by_role("radio", name=text(lang, "feedback.stars", n=stars)).check()
    await ui.assert_accessible(page, f"holder-feedback-{lang}")
    await ui.screenshot(page, f"holder-feedback-{lang}")
    await item.get_by_role("button", name=text(lang, "feedback.send")).click()
    await expect(page.get_by_role("status").first).to_contain_text(
        text(lang, "feedback.thanks"))
    # Given once: the form is gone for that ticket, and omakaiku refuses a second.
    await expect(page.locator(f"li[data-ticket-id='{past_ticket}'] form")).to_have_count(0)
    token = web.system.token("holder", account_id=account_id)
    async with web.system.client("omakaiku", token) as client:
        again = await client.post(f"/me/tickets/{past_ticket}/feedback",
                                  json={"accessibility": 1, "meaning": 1, "interest": 1})
    assert again.status_code == 409, again.text

    # Subscriptions: tell me about new music.
    await page.get_by_role("navigation", name=text(lang, "a11y.main_nav")).get_by_role(
        "link", name=text(lang, "nav.subscriptions")).click()
    music = page.get_by_role("checkbox", name={
        "sv": "Musik", "en": "Music"}[lang], exact=True)
    await music.check()
    await page.get_by_role("button", name=text(lang, "common.save")).click()
    await expect(page.get_by_role("status")).to_contain_text(text(lang, "subscriptions.saved"))
    await expect(music).to_be_checked()
    await ui.assert_accessible(page, f"holder-subscriptions-{lang}")
    async with web.system.client("omakaiku", token) as client:
        assert (await client.get("/me/subscriptions")).json()["genres"] == ["music"]

    if lang == "en":
        # Erase my data: confirmed with a checkbox, then signed out and gone.
        await page.goto(web.url + "/oma/erase")
        await ui.assert_accessible(page, "holder-erase-en")
        await page.get_by_label(text(lang, "erase.confirm")).check()
        await page.get_by_role("button", name=text(lang, "erase.submit")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "erase.done"))
        async with web.system.client("omakaiku", token) as client:
            # Gone (404), and soon the account's every token is refused (401).
            assert (await client.get("/me")).status_code in (401, 404)
        await page.goto(web.url + "/oma")
        await expect(page).to_have_url(web.url + "/oma/signin")


def session_token(web, cookies: list[dict]) -> str:
    """The bearer token inside the browser's signed session cookie."""
    from itsdangerous import URLSafeTimedSerializer

    from web.session import SESSION_COOKIE

    secret = web.system.ns.keys.values["KAIKU_WEB_SESSION_SECRET"]
    raw = next(c["value"] for c in cookies if c["name"] == SESSION_COOKIE)
    return URLSafeTimedSerializer(secret, salt="kaiku-web-session").loads(raw)["token"]


async def test_signing_out_in_the_web_ends_the_token_in_every_service(
        web, staff_page, ui):
    """The sign-out button does not just drop the cookie: the token inside it
    is refused by the services from then on (a copied cookie is worth nothing)."""
    from playwright.async_api import expect

    from kaiku_dev.testing import STAFF_PROBES, seconds_until_refused_everywhere

    page = staff_page
    await open_in(page, ui, web.url + "/staff/login", "fi")
    await sign_in_staff(page, ui, web, "distributor")
    token = session_token(web, await page.context.cookies())
    async with web.system.client("cards", token) as client:
        assert (await client.get("/auth/me")).status_code == 200
    await page.get_by_role("button", name=text("fi", "nav.sign_out")).click()
    since = time.monotonic()
    await expect(page).to_have_url(re.compile(r"/staff/login$"))
    delay = await seconds_until_refused_everywhere(web.system, token, STAFF_PROBES, since)
    print(f"\nweb sign-out: the token refused by every service after {delay * 1000:.0f} ms")
    assert delay <= 2.0
    await page.goto(web.url + "/staff")
    await expect(page).to_have_url(re.compile(r"/staff/login"))


# --- Kaikukanta: Kaikukeskus ---------------------------------------------------------


@pytest.mark.parametrize("lang", ["fi", "sv"])
async def test_kaikukeskus_adds_an_organisation_and_reads_the_statistics(
        web, staff_page, ui, lang):
    from playwright.async_api import expect

    page = staff_page
    await open_in(page, ui, web.url + "/staff/login", lang)
    await sign_in_staff(page, ui, web, "kaikukeskus")
    nav = page.get_by_role("navigation", name=text(lang, "a11y.main_nav"))
    await nav.get_by_role("link", name=text(lang, "nav.organisations")).click()
    name = f"Lappeenrannan kirjasto {uuid.uuid4().hex[:6]}"
    await page.get_by_label(text(lang, "organisation.kind")).select_option("venue")
    await page.get_by_label(text(lang, "organisation.name")).fill(name)
    await page.get_by_label(text(lang, "card.municipality")).fill("Lappeenranta")
    await page.get_by_role("button", name=text(lang, "organisation.submit")).click()
    await expect(page.get_by_role("status")).to_contain_text(text(lang, "organisation.added"))
    await ui.screenshot(page, f"kaikukeskus-organisations-{lang}")
    await ui.assert_accessible(page, f"kaikukeskus-organisations-{lang}")

    async def listed():
        await page.reload()
        return await page.get_by_role("cell", name=name).count() == 1

    await eventually(listed, message="the new organisation in the list")

    await web.issue_card()

    async def national():
        async with web.system.client("cards", web.system.token("kaikukeskus")) as client:
            figures = (await client.get("/stats/national")).json()
        return figures  # today's card waits for the month to end (whole months only)

    before = (await eventually(national, message="the statistics"))["cards_issued"]
    await nav.get_by_role("link", name=text(lang, "nav.stats")).click()
    figure = page.locator("dl.figures div", has_text=text(lang, "stats.cards_issued"))
    # Thousands grouped with a narrow no-break space (fi, sv).
    await expect(figure.locator("dd")).to_have_text(re.compile(r"^\s*\d[\d\u202f]*\s*$"))
    shown = int((await figure.locator("dd").inner_text()).strip().replace("\u202f", ""))
    after = (await national())["cards_issued"]
    # Other tests issue cards meanwhile: the page shows what the API said at its moment.
    assert before <= shown <= after, (before, shown, after)
    await expect(page.get_by_role("table")).to_contain_text(text(lang, "stats.region"))
    await ui.screenshot(page, f"kaikukeskus-statistics-{lang}")
    await ui.assert_accessible(page, f"kaikukeskus-statistics-{lang}")

    # A bulletin: written here, it reaches the organisations' inboxes.
    await nav.get_by_role("link", name=text(lang, "nav.bulletins")).click()
    title = f"Kevään kumppanipäivä {uuid.uuid4().hex[:6]}"
    await page.get_by_label(text(lang, "bulletin.title")).fill(title)
    await page.get_by_label(text(lang, "bulletin.body")).fill("Tervetuloa 12.3. Imatralle.")
    await page.get_by_role("button", name=text(lang, "bulletin.send")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "bulletin.sent"))

    async def in_inbox():
        await page.goto(web.url + "/staff/inbox")
        return await page.get_by_role("heading", level=2, name=title).count() == 1

    await eventually(in_inbox, message="the bulletin in Kaikukeskus's own inbox")
    await ui.assert_accessible(page, f"kaikukeskus-inbox-{lang}")
