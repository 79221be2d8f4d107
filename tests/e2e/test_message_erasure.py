"""What a holder writes and receives is sealed under the holder's key in
notifications, readable to the parties while the account exists, exported on
request, and unreadable everywhere once the account is erased — database dumps
and streams included, and messages recorded before sealing too."""

from __future__ import annotations

import json
import uuid

import pytest

from kaiku_dev.testing import database_dump, eventually, every_stream_message
from kaiku_shared.settings import SERVICES

from .test_notifications_messages import holder_with_ticket, inbox, post, scalar, wait_in_inbox

pytestmark = pytest.mark.e2e


def canary(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


async def readable_anywhere(system, *canaries: str) -> list[str]:
    """Where a canary can be read: any row of any service's database (bytea as
    hex, so the event stores' JSON counts), any stream message."""
    found = []
    texts = {service: await database_dump(system, service) for service in SERVICES}
    texts["streams"] = await every_stream_message(system)
    for where, text in texts.items():
        for value in canaries:
            if value in text or value.encode().hex() in text:
                found.append(f"{value} in {where}")
    return found


async def test_a_holders_messages_are_sealed_exported_and_gone_after_erasure(world):
    system = world.system
    card, account_id, _ = await holder_with_ticket(world)
    holder = world.holder_token(account_id)
    to_holder, from_holder = canary("ovet-avataan"), canary("minulla-on-allergia")

    sent = await post(system, world.venue_token, "/messages", {
        "to": {"card_number": card["card_number"]}, "subject": to_holder,
        "body": f"Tervetuloa! {to_holder}"})
    assert sent.status_code == 201, sent.text
    reply = await post(system, holder, "/me/messages", {
        "to": {"organisation_id": world.venue_org_id}, "subject": "Kysymys",
        "body": f"Saako mukaan eväät? {from_holder}"}, **{"Idempotency-Key": "reply-1"})
    assert reply.status_code == 201, reply.text
    reply_id = reply.json()["message_id"]

    # The parties read them while the account exists …
    received = await wait_in_inbox(system, holder, sent.json()["message_id"], "/me/messages")
    assert received["subject"] == to_holder
    got = await wait_in_inbox(system, world.venue_token, reply_id)
    assert from_holder in got["body"]
    async with system.client("notifications", holder) as client:
        notes = (await client.get("/me/notifications")).json()
        export = await client.get("/me/export")
    assert any(n["title"] == to_holder for n in notes)
    # … but no database row and no stream message holds them in the clear.
    assert await readable_anywhere(system, to_holder, from_holder) == []

    # The holder's export holds both directions.
    assert export.status_code == 200, export.text
    assert export.headers["content-disposition"].startswith("attachment;")
    data = export.json()
    assert data["schema"].startswith("kaikukortti.notifications.export/")
    assert any(m["subject"] == to_holder for m in data["received"])
    assert any(from_holder in m["body"] for m in data["sent"])
    assert any(n["title"] == to_holder for n in data["notifications"])

    # A message recorded before sealing existed: plain text, no sealed_for.
    legacy = canary("vanha-viesti")
    await make_legacy(system, reply_id, legacy)
    assert await readable_anywhere(system, legacy)

    async with system.client("omakaiku", holder) as client:
        assert (await client.delete("/me")).status_code == 202

    async def erased() -> bool:
        keys = await scalar(system, "SELECT count(*) FROM message_key WHERE holder = ANY"
                                    "($1::text[])",
                            [f"account:{account_id}", f"card:{card['card_number']}"])
        rows = await scalar(system, "SELECT count(*) FROM notification WHERE account_id = $1",
                            uuid.UUID(account_id))
        return keys == 0 and rows == 0

    await eventually(erased, timeout=30, message="notifications to shred the holder's keys")
    assert await readable_anywhere(system, to_holder, from_holder, legacy) == []
    assert await scalar(system, "SELECT count(*) FROM idempotency_keys WHERE principal = $1",
                        f"holder:{account_id}") == 0
    assert not [i for i in await inbox(system, world.venue_token) if i["item_id"] == reply_id]


async def make_legacy(system, message_id: str, text: str) -> None:
    """Rewrite one message as the previous release recorded it: plain subject and
    body in the event, no ``sealed_for``, and a plain copy in the inbox."""
    conn = await system.database("notifications")
    try:
        row = await conn.fetchrow("SELECT notification_id, state FROM notifications_events "
                                  "WHERE originator_id = $1", uuid.UUID(message_id))
        state = json.loads(bytes(row["state"]))
        state.pop("sealed_for")
        state.update(subject=text, body=text)
        await conn.execute("UPDATE notifications_events SET state = $2 "
                           "WHERE notification_id = $1", row["notification_id"],
                           json.dumps(state).encode())
        await conn.execute("UPDATE inbox_item SET subject = $2, body = $2, sealed_for = NULL "
                           "WHERE item_id = $1", uuid.UUID(message_id), text)
    finally:
        await conn.close()
