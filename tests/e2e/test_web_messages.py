"""Threads, replies and sent lists both ways between a venue and a holder (the
holder's text still sealed); the pickers of whom to write to; bulletins that
reach organisations and accounts created after them while they are current.

All over HTTP against the running system."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from kaiku_dev.testing import eventually

from .test_message_erasure import canary, readable_anywhere
from .test_notifications_messages import (
    holder_with_ticket,
    inbox,
    new_organisation,
    post,
    scalar,
    wait_in_inbox,
)

pytestmark = pytest.mark.e2e


async def get(system, token: str, path: str) -> object:
    async with system.client("notifications", token) as client:
        return await client.get(path)


async def test_threads_replies_and_sent_lists_both_ways_with_holder_text_sealed(world):
    system = world.system
    card, account_id, _ = await holder_with_ticket(world)
    holder = world.holder_token(account_id)
    question, answer = canary("saako-evaat"), canary("eväät-sallittu")

    # The holder picks the venue from the organisations they may write to.
    picker = await get(system, holder, "/me/messages/organisations")
    assert picker.status_code == 200, picker.text
    assert world.venue_org_id in [o["organisation_id"] for o in picker.json()]
    first = await post(system, holder, "/me/messages", {
        "to": {"organisation_id": world.venue_org_id}, "subject": "Eväät",
        "body": question})
    assert first.status_code == 201, first.text
    first_id = first.json()["message_id"]
    await wait_in_inbox(system, world.venue_token, first_id)

    # The venue replies in the thread: to the holder, subject "Re: …".
    reply = await post(system, world.venue_token, f"/messages/{first_id}/replies",
                       {"body": answer})
    assert reply.status_code == 201, reply.text
    reply_id = reply.json()["message_id"]
    got = await wait_in_inbox(system, holder, reply_id, "/me/messages")
    assert got["subject"] == "Re: Eväät" and got["body"] == answer
    assert got["in_reply_to"] == first_id

    # … and the holder answers that reply: the thread now holds three.
    again = await post(system, holder, f"/me/messages/{reply_id}/replies",
                       {"body": "Kiitos!"})
    assert again.status_code == 201, again.text
    again_id = again.json()["message_id"]
    await wait_in_inbox(system, world.venue_token, again_id)

    for token, path in ((holder, "/me/messages"), (world.venue_token, "/messages")):
        thread = await get(system, token, f"{path}/{first_id}/thread")
        assert thread.status_code == 200, thread.text
        assert [m["item_id"] for m in thread.json()] == [first_id, reply_id, again_id]
        from_reply = await get(system, token, f"{path}/{again_id}/thread")
        assert [m["item_id"] for m in from_reply.json()] == [first_id, reply_id, again_id]
    venue_view = (await get(system, world.venue_token, f"/messages/{first_id}/thread")).json()
    assert [m["direction"] for m in venue_view] == ["received", "sent", "received"]
    assert venue_view[0]["body"] == question

    # Sent lists: each party sees what it wrote, opened.
    holder_sent = (await get(system, holder, "/me/messages/sent")).json()
    assert {m["item_id"] for m in holder_sent} >= {first_id, again_id}
    assert reply_id not in {m["item_id"] for m in holder_sent}
    venue_sent = (await get(system, world.venue_token, "/messages/sent")).json()
    mine = next(m for m in venue_sent if m["item_id"] == reply_id)
    assert mine["body"] == answer and mine["recipient"]["kind"] == "holder"

    # Outsiders see no thread and cannot reply into it.
    other = system.token("venue", organisation_id=str(uuid.uuid4()))
    assert (await get(system, other, f"/messages/{first_id}/thread")).status_code == 404
    refused = await post(system, other, f"/messages/{first_id}/replies", {"body": "x"})
    assert refused.status_code == 404
    assert (await post(system, world.venue_token, f"/messages/{first_id}/replies",
                       {"body": ""})).status_code == 422
    assert (await post(system, world.venue_token, f"/messages/{first_id}/replies",
                       {"body": "x" * 10_001})).status_code == 422

    # The holder's words are in no database row or stream message in the clear.
    assert await readable_anywhere(system, question, answer) == []


async def test_staff_pick_organisations_and_reply_between_organisations(world):
    system = world.system
    listed = await get(system, world.venue_token, "/messages/organisations")
    assert listed.status_code == 200
    assert world.distributor_id in [o["organisation_id"] for o in listed.json()]
    assert (await get(system, world.holder_token(str(uuid.uuid4())),
                      "/messages/organisations")).status_code == 403

    sent = await post(system, world.venue_token, "/messages", {
        "to": {"organisation_id": world.distributor_id}, "subject": "Ryhmä",
        "body": "Tilaa on."})
    message_id = sent.json()["message_id"]
    await wait_in_inbox(system, world.distributor_token, message_id)
    reply = await post(system, world.distributor_token, f"/messages/{message_id}/replies",
                       {"subject": "Varaamme", "body": "Tulemme."})
    assert reply.status_code == 201, reply.text
    got = await wait_in_inbox(system, world.venue_token, reply.json()["message_id"])
    assert got["subject"] == "Varaamme" and got["in_reply_to"] == message_id
    assert got["sender"]["organisation_id"] == world.distributor_id


async def test_a_current_bulletin_reaches_later_organisations_and_accounts(world):
    system = world.system
    too_late = await post(system, world.centre_token, "/bulletins", {
        "title": "t", "body": "b", "valid_until": (date.today() - timedelta(days=2)).isoformat()})
    assert too_late.status_code == 422, too_late.text
    current = await post(system, world.centre_token, "/bulletins", {
        "title": "Kevään tilaisuudet", "body": "Ilmoittaudu.",
        "valid_until": (date.today() + timedelta(days=10)).isoformat()})
    assert current.status_code == 201, current.text
    bulletin_id = current.json()["bulletin_id"]
    await wait_in_inbox(system, world.venue_token, bulletin_id)
    # A bulletin whose time is over reaches no one who joins later.
    expired_id = uuid.uuid4()
    conn = await system.database("notifications")
    try:
        await conn.execute(
            "INSERT INTO bulletin_view (bulletin_id, title, body, published_at, valid_until) "
            "VALUES ($1, 'Vanha', 'Ohi', now() - interval '40 days', now() - interval "
            "'10 days')", expired_id)
    finally:
        await conn.close()

    later_org = await new_organisation(world, "venue", "Myöhempi teatteri")
    item = await wait_in_inbox(system, system.token("venue", organisation_id=later_org),
                               bulletin_id)
    assert item["kind"] == "bulletin" and item["subject"] == "Kevään tilaisuudet"
    later_inbox = await inbox(system, system.token("venue", organisation_id=later_org))
    assert str(expired_id) not in [i["item_id"] for i in later_inbox]

    card = await world.issue_card(children=0)
    account_id = await world.activate_account(card["card_number"])

    async def holder_has_it():
        notes = (await get(system, world.holder_token(account_id), "/me/notifications")).json()
        return [n for n in notes if n["source_id"] == bulletin_id] or None

    (note,) = await eventually(holder_has_it, timeout=30, message="the bulletin for a new account")
    assert note["payload"]["body"] == "Ilmoittaudu."
    assert await scalar(system, "SELECT count(*) FROM notification WHERE account_id = $1 "
                        "AND source_id = $2", uuid.UUID(account_id), expired_id) == 0
