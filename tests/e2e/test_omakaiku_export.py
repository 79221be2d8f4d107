"""A holder's own data, exported: omakaiku's ``GET /me/export`` (profile opened
under the holder's key, card, tickets with their feedback, subscriptions, push
devices, sign-in and e-mail records) and notifications' (messages both ways,
notifications) hold every item and canary the holder has; after erasure
omakaiku answers 410. Real processes, Postgres and NATS JetStream."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import httpx
import pytest

from kaiku_dev.testing import eventually

from .test_notifications_messages import known, post, wait_in_inbox

pytestmark = pytest.mark.e2e


def canary(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


async def past_ticket(world, card_number: str) -> str:
    """A ticket for an event that began a moment ago, so it takes feedback."""
    offering_id = await world.publish_offering(starts_in=timedelta(seconds=4),
                                               title=f"Vientikonsertti {uuid.uuid4().hex[:6]}")
    await world.wait_for_card_in_venues(card_number)
    response = await world.register_ticket(card_number, offering_id)
    assert response.status_code == 201, response.text
    await asyncio.sleep(4.5)
    return response.json()["ticket_id"]


async def in_history(world, account_id: str, ticket_id: str) -> None:
    async def found():
        return any(r["ticket_id"] == ticket_id for r in await world.history(account_id))

    await eventually(found, message=f"ticket {ticket_id} in the holder's history")


async def holder_who_did_everything(world) -> dict:
    """A holder with canaries in the profile and in a message each way, a ticket
    with feedback, a cancellation request and subscriptions."""
    system = world.system
    name, address = canary("Kanarialintu"), f"{canary('vienti')}@example.org"
    card = await world.issue_card(children=1)
    account_id = await world.activate_account(card["card_number"], first_name=name,
                                              email=address, language="sv")
    token = world.holder_token(account_id)
    feedback_ticket = await past_ticket(world, card["card_number"])
    later = await world.publish_offering(title="Syysilta", card_cap=10)
    cancelled = (await world.register_ticket(card["card_number"], later)).json()["ticket_id"]
    for ticket_id in (feedback_ticket, cancelled):
        await in_history(world, account_id, ticket_id)
    scores = {"accessibility": 4, "meaning": 5, "interest": 2}
    async with system.client("omakaiku", token) as client:
        given = await client.post(f"/me/tickets/{feedback_ticket}/feedback", json=scores)
        asked = await client.post(f"/me/tickets/{cancelled}/cancellation")
        subscribed = await client.put("/me/subscriptions", json={
            "genres": ["music", "theatre"], "subgenres": ["jazz"]})
    assert (given.status_code, asked.status_code, subscribed.status_code) == (201, 202, 200), \
        (given.text, asked.text, subscribed.text)

    await known(system, "SELECT 1 FROM ticket_view WHERE ticket_id = $1",
                uuid.UUID(feedback_ticket), what="the ticket")
    to_holder, from_holder = canary("tervetuloa"), canary("minulla-on-allergia")
    sent = await post(system, world.venue_token, "/messages", {
        "to": {"card_number": card["card_number"]}, "subject": to_holder,
        "body": f"Tervetuloa! {to_holder}"})
    assert sent.status_code == 201, sent.text
    await wait_in_inbox(system, token, sent.json()["message_id"], "/me/messages")
    reply = await post(system, token, "/me/messages", {
        "to": {"organisation_id": world.venue_org_id}, "subject": "Kysymys",
        "body": f"Saako mukaan eväät? {from_holder}"})
    assert reply.status_code == 201, reply.text
    await wait_in_inbox(system, world.venue_token, reply.json()["message_id"])
    return {"account_id": account_id, "token": token, "card": card, "name": name,
            "address": address, "scores": scores, "feedback_ticket": feedback_ticket,
            "cancelled": cancelled, "to_holder": to_holder, "from_holder": from_holder}


async def test_each_export_holds_everything_and_omakaiku_refuses_after_erasure(world):
    system = world.system
    holder = await holder_who_did_everything(world)
    async with system.client("omakaiku", holder["token"]) as client:
        mine = await client.get("/me/export")
    async with system.client("notifications", holder["token"]) as client:
        messages = await client.get("/me/export")
    assert mine.status_code == 200 and messages.status_code == 200, (mine.text, messages.text)
    assert mine.headers["content-disposition"].startswith("attachment;")
    assert mine.headers["cache-control"] == "no-store"

    data = mine.json()
    assert (data["service"], data["schema"]) == ("omakaiku", "kaikukortti.omakaiku.export/1")
    assert data["account_id"] == holder["account_id"]
    profile = data["profile"]
    assert (profile["first_name"], profile["last_name"], profile["email"],
            profile["municipality"], profile["language"]) == (
        holder["name"], "Virtanen", holder["address"], "Imatra", "sv")
    assert profile["activated_by"] == world.distributor_id
    card = data["card"]
    assert (card["card_number"], card["status"], card["children"]) == (
        holder["card"]["card_number"], "open", 1)
    tickets = {t["ticket_id"]: t for t in data["tickets"]}
    rated = tickets[holder["feedback_ticket"]]
    assert {k: rated["feedback"][k] for k in holder["scores"]} == holder["scores"]
    assert rated["venue_id"] == world.venue_id and rated["offering_title"].startswith(
        "Vientikonsertti")
    assert tickets[holder["cancelled"]]["cancellation_requested"] is True
    assert tickets[holder["cancelled"]]["feedback"] is None
    assert data["subscriptions"]["genres"] == ["music", "theatre"]
    assert data["subscriptions"]["subgenres"] == ["jazz"]
    assert data["push_devices"] == []
    # The welcome e-mail's one-time link, and the e-mail's outcome.
    assert [c["kind"] for c in data["sign_in"]["codes_and_links"]] == ["link"]
    assert data["emails"][0]["kind"] == "welcome"
    assert "@" not in str(data["emails"])  # outcomes are kept without the address

    received = messages.json()
    assert received["account_id"] == holder["account_id"]
    assert any(m["subject"] == holder["to_holder"] for m in received["received"])
    assert any(holder["from_holder"] in m["body"] for m in received["sent"])
    assert any(n["title"] == holder["to_holder"] for n in received["notifications"])

    # The web's one file holds both, whole: every canary and item.
    download = await web_download(system, holder["token"])
    assert download.status_code == 200, download.text
    assert download.headers["content-disposition"] == \
        'attachment; filename="kaikukortti-omat-tiedot.json"'
    combined = download.json()
    assert combined["schema"] == "kaikukortti.export/1"
    assert (combined["omakaiku"]["profile"], combined["omakaiku"]["tickets"]) == (
        data["profile"], data["tickets"])
    assert combined["notifications"]["sent"] == received["sent"]
    everything = json.dumps(combined)
    for item in (holder["name"], holder["address"], holder["to_holder"], holder["from_holder"],
                 holder["feedback_ticket"], holder["cancelled"], holder["card"]["card_number"]):
        assert item in everything, item

    async with system.client("omakaiku", holder["token"]) as client:
        assert (await client.delete("/me")).status_code == 202
    await asyncio.sleep(0.01)  # a token issued after the erasure passes revocation
    fresh = world.holder_token(holder["account_id"])
    async with system.client("omakaiku", fresh) as client:
        gone = await client.get("/me/export")
    assert gone.status_code == 410, gone.text
    assert gone.headers["content-type"].startswith("application/problem+json")
    assert gone.json()["type"].endswith("/account-erased")
    assert holder["name"] not in gone.text
    page = await web_download(system, fresh)
    assert page.status_code == 410 and "content-disposition" not in page.headers
    assert page.headers["content-type"].startswith("text/html")

    async def refused_or_gone() -> bool:
        async with system.client("omakaiku", holder["token"]) as client:
            return (await client.get("/me/export")).status_code in (401, 410)

    assert await refused_or_gone()


async def web_download(system, token: str) -> httpx.Response:
    """``GET /oma/data/download`` of the web (in this process), signed in as the
    holder, against the running omakaiku and notifications."""
    web_app = pytest.importorskip("web.app", reason="kaiku-web is not installed")
    from kaiku_shared.settings import KaikuSettings
    from web.client import Services
    from web.config import WebSettings
    from web.session import SESSION_COOKIE

    settings = WebSettings(cards_url=system.url("cards"), venues_url=system.url("venues"),
                           omakaiku_url=system.url("omakaiku"),
                           notifications_url=system.url("notifications"),
                           session_secret="e2e-export-session-secret-" + "x" * 32)
    app = web_app.create_app(KaikuSettings(), settings)
    app.state.services = Services(settings)  # what the lifespan would make
    cookie = app.state.sessions.serializer.dumps({"token": token, "role": "holder"})
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://web", timeout=30,
                                     cookies={SESSION_COOKIE: cookie}) as client:
            answer = await client.get("/oma/data/download")
    finally:
        await app.state.services.close()
    return answer


async def test_another_holder_exports_none_of_it(world):
    holder = await holder_who_did_everything(world)
    card = await world.issue_card()
    other = world.holder_token(await world.activate_account(card["card_number"]))
    async with world.system.client("omakaiku", other) as client:
        theirs = await client.get("/me/export")
    assert theirs.status_code == 200, theirs.text
    for secret in (holder["name"], holder["address"], holder["feedback_ticket"],
                   holder["card"]["card_number"]):
        assert secret not in theirs.text
    assert theirs.json()["tickets"] == []
