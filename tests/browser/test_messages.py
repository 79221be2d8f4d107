"""Messages in a real browser, in fi/sv/en: a holder writes to the venue where
they have a ticket, the venue reads it in its inbox and replies in the thread,
the holder reads the reply and answers; both see what they sent. axe-core checks
every page on the way; screenshots at 390 and 1280 px for review."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kaiku_dev.testing import eventually

catalogue = pytest.importorskip(
    "web.i18n", reason="kaiku-web is not installed (pip install -e services/web)").catalogue

pytestmark = pytest.mark.e2e
SHOTS = Path("/tmp/shots-web-messages")


def text(lang: str, key: str, **values) -> str:
    message = catalogue(lang)[key]
    return message.format(**values) if values else message


async def shoot(page, ui, name: str) -> None:
    """The page at phone and desktop width, kept for review; axe on both."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for width in (390, 1280):
        await page.set_viewport_size({"width": width, "height": 844})
        await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        await ui.assert_accessible(page, f"{name}-{width}")
    await page.set_viewport_size(size)


async def holder_signs_in(web, page, ui, address: str, lang: str) -> None:
    await page.goto(web.url + "/oma/signin")
    if lang != "fi":
        await ui.choose_language(page, lang)
    await page.get_by_label(text(lang, "account.email")).fill(address)
    await page.get_by_role("button", name=text(lang, "signin.send_code")).click()
    code = await web.sign_in_code(address, count=2)  # the welcome e-mail came first
    await page.get_by_label(text(lang, "signin.code")).fill(code)
    await page.get_by_role("button", name=text(lang, "signin.submit_code")).click()
    await page.wait_for_url("**/oma")


async def staff_signs_in(web, page, ui, role: str, lang: str) -> None:
    await page.goto(web.url + "/staff/login")
    if lang != "fi":
        await ui.choose_language(page, lang)
    await ui.sign_in_staff(page, web.users[role], "kaiku-browser-test-password", {
        key: text(lang, f"login.{key}") for key in ("username", "password", "submit")})


async def venue_organisation_name(web) -> str:
    async with web.system.client("notifications", web.venue_token) as client:
        listed = (await client.get("/messages/organisations")).json()
    return next(o["name"] for o in listed if o["organisation_id"] == web.venue_org_id)


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_holder_and_venue_write_and_reply_in_a_thread(web, phone_page, staff_page, ui,
                                                            lang):
    from playwright.async_api import expect

    card_number = await web.issue_card(children=0)
    address = f"writer.{uuid.uuid4().hex[:10]}@example.org"
    account_id = await web.activate(card_number, address, lang)
    later = (datetime.now(UTC) + timedelta(days=15)).isoformat()
    await web.register(card_number, await web.publish(f"Viestikonsertti {lang}", later))
    tag = uuid.uuid4().hex[:6]
    subject, question = f"Eväät {tag}", f"Saako konserttiin tuoda eväät? {tag}"
    holder = phone_page
    await holder_signs_in(web, holder, ui, address, lang)

    # The holder writes to the venue, chosen by name from whom they may write to.
    venue_name = await venue_organisation_name(web)

    async def venue_offered():
        await holder.goto(web.url + "/oma/messages/new")
        return await holder.locator("#organisation_id option", has_text=venue_name).count()

    await eventually(venue_offered, message="the venue among whom the holder may write to")
    await holder.get_by_label(text(lang, "msg.subject")).fill(subject)
    await holder.get_by_role("button", name=text(lang, "msg.send"), exact=True).click()
    await expect(holder.get_by_role("alert")).to_contain_text(text(lang, "msg.error_empty"))
    await expect(holder.get_by_label(text(lang, "msg.subject"))).to_have_value(subject)
    await shoot(holder, ui, f"holder-write-error-{lang}")
    await holder.locator("#organisation_id").select_option(label=f"{venue_name} ("
                                                            f"{text(lang, 'msg.kind_venue')})")
    await holder.get_by_role("textbox", name=text(lang, "msg.body"), exact=True).fill(question)
    await holder.get_by_role("button", name=text(lang, "msg.send"), exact=True).click()
    await expect(holder.get_by_role("heading", level=1)).to_have_text(
        text(lang, "msg.sent_title"))

    # The venue finds it in its inbox, opens the thread and replies.
    staff = staff_page
    await staff_signs_in(web, staff, ui, "venue", lang)

    async def in_inbox():
        await staff.goto(web.url + "/staff/inbox")
        return await staff.get_by_role("link", name=subject, exact=True).count()

    await eventually(in_inbox, message="the holder's message in the venue's inbox")
    await shoot(staff, ui, f"staff-inbox-{lang}")
    await staff.get_by_role("link", name=subject, exact=True).click()
    await expect(staff.get_by_text(question)).to_be_visible()
    await shoot(staff, ui, f"staff-thread-{lang}")
    answer = f"Eväät ovat tervetulleita. {tag}"
    await staff.get_by_role("textbox", name=text(lang, "msg.body"), exact=True).fill(answer)
    await staff.get_by_role("button", name=text(lang, "msg.send_reply")).click()
    await expect(staff.get_by_role("status")).to_contain_text(
        text(lang, "msg.reply_sent_detail"))

    async def in_sent(page, base: str, words: str):
        await page.goto(web.url + base + "/sent")
        return await page.get_by_text(words).count()

    await eventually(lambda: in_sent(staff, "/staff/messages", answer),
                     message="the reply among the venue's sent messages")
    await shoot(staff, ui, f"staff-sent-{lang}")

    # The holder reads the reply in the thread and answers it.
    async def reply_in_inbox():
        await holder.goto(web.url + "/oma/inbox")
        return await holder.get_by_text(answer).count()

    await eventually(reply_in_inbox, message="the venue's reply in the holder's inbox")
    await shoot(holder, ui, f"holder-inbox-{lang}")
    await holder.get_by_role("link", name=f"Re: {subject}", exact=True).click()
    await expect(holder.get_by_text(question)).to_be_visible()
    await expect(holder.get_by_text(answer)).to_be_visible()
    await shoot(holder, ui, f"holder-thread-{lang}")
    await holder.get_by_role("textbox", name=text(lang, "msg.body"), exact=True).fill("Kiitos!")
    await holder.get_by_role("button", name=text(lang, "msg.send_reply")).click()
    await expect(holder.get_by_role("status")).to_contain_text(
        text(lang, "msg.reply_sent_detail"))
    await eventually(lambda: in_sent(holder, "/oma/messages", question),
                     message="the holder's first message among the sent")
    await shoot(holder, ui, f"holder-sent-{lang}")

    # The thread holds all three, for the venue too.
    async def three_in_thread():
        async with web.system.client("notifications", web.venue_token) as client:
            sent = (await client.get("/messages/sent")).json()
        mine = next((m for m in sent if m["body"] == answer), None)
        if mine is None:
            return None
        async with web.system.client("notifications", web.venue_token) as client:
            thread = (await client.get(f"/messages/{mine['item_id']}/thread")).json()
        return len(thread) == 3

    await eventually(three_in_thread, message="the holder's answer in the venue's thread")
    assert account_id


@pytest.mark.parametrize("lang", ["fi", "en"])
async def test_staff_write_to_a_card_holder_and_a_wrong_number_is_explained(
        web, staff_page, ui, lang):
    from playwright.async_api import expect

    card_number = await web.issue_card(children=0)
    page = staff_page
    await staff_signs_in(web, page, ui, "distributor", lang)
    await page.goto(web.url + "/staff/messages/new")
    await shoot(page, ui, f"staff-write-{lang}")
    await page.get_by_label(text(lang, "msg.to_card")).check()
    await page.get_by_label(text(lang, "card.number"), exact=True).fill("XX000000")
    await page.get_by_label(text(lang, "msg.subject")).fill("Kortin uusiminen")
    await page.get_by_role("textbox", name=text(lang, "msg.body"), exact=True).fill(
        "Kortti on uusittavissa.")
    await page.get_by_role("button", name=text(lang, "msg.send"), exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text(text(lang, "msg.error_card_unknown"))
    await shoot(page, ui, f"staff-write-error-{lang}")

    async def card_known():
        async with web.system.client("notifications", web.distributor_token) as client:
            response = await client.post("/messages", json={
                "to": {"card_number": "XX000000"}, "subject": "s", "body": "b"})
        return response.status_code == 404 and card_number

    await eventually(card_known, message="notifications answering for unknown cards")
    await page.get_by_label(text(lang, "card.number"), exact=True).fill(card_number)

    async def sent_once_known():
        await page.get_by_role("button", name=text(lang, "msg.send"), exact=True).click()
        await page.wait_for_load_state()
        return await page.get_by_role("heading", level=1, name=text(
            lang, "msg.sent_title")).count()

    await eventually(sent_once_known, timeout=30,
                     message="the distributor's message to its own card holder")
