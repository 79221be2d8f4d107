"""Personal data stays in omakaiku: canaries are searched everywhere else.

Unique canary values go into POST /accounts; after a full flow they must not
appear in any NATS message, header or subject of the namespace's streams, in
the cards, venues or notifications databases (plain or hex-encoded, as bytea
event state would show), nor in any process's log. A positive control
finds the card number in omakaiku's database dump, so the search itself works.
"""

from __future__ import annotations

import uuid

import pytest

from kaiku_dev.testing import database_dump, eventually, every_stream_message

pytestmark = pytest.mark.e2e


async def test_personal_data_never_leaves_omakaiku(world):
    system = world.system
    tag = uuid.uuid4().hex[:12]
    canaries = {
        "first_name": f"Kanarialintu{tag}",
        "last_name": f"Sukunimikanaria{tag}",
        "email": f"canary.{tag}@example.org",
        "phone": f"+358 40 {int(tag[:7], 16) % 10_000_000:07d}",
    }
    card = await world.issue_card(children=1)
    account_id = await world.activate_account(card["card_number"], **canaries)
    offering_id = await world.publish_offering()
    response = await world.register_ticket(card["card_number"], offering_id, children=1)
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]
    async with system.client("omakaiku", world.holder_token(account_id)) as client:
        await eventually(lambda: _has_ticket(client, ticket_id), message="ticket in history")
        me = (await client.get("/me")).json()
        requested = await client.post(f"/me/tickets/{ticket_id}/cancellation")
    assert requested.status_code == 202, requested.text
    assert me["email"] == canaries["email"]

    async def cancelled():
        async with system.client("omakaiku", world.holder_token(account_id)) as client:
            rows = (await client.get("/me/history")).json()
        return rows and rows[0]["status"] == "cancelled"

    await eventually(cancelled, message="the holder's cancellation confirmed by venues")

    needles = {}
    for field, value in canaries.items():
        needles[field] = value
        needles[f"{field} (hex)"] = value.encode().hex()

    # Positive control: the search does find what is there. (The canaries themselves
    # are encrypted at rest even in omakaiku; tests/e2e/test_omakaiku_mail.py shows
    # that, and that erasure makes them unrecoverable.)
    omakaiku = await database_dump(system, "omakaiku")
    assert card["card_number"] in omakaiku, "positive control: the dump holds the card"

    haystacks = {f"{s} database": await database_dump(system, s)
                 for s in ("cards", "venues", "notifications")}
    haystacks["NATS messages, headers and subjects"] = await every_stream_message(system)
    haystacks["process logs"] = system.log_text()
    for where, text in haystacks.items():
        assert text, f"{where}: nothing to search — the check would prove nothing"
        for field, needle in needles.items():
            assert needle not in text, f"{field} canary found in {where}"
    print(f"verified: {len(needles)} canaries absent from {', '.join(haystacks)}")


async def _has_ticket(client, ticket_id: str) -> bool:
    rows = (await client.get("/me/history")).json()
    return any(r["ticket_id"] == ticket_id for r in rows)
