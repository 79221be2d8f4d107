"""The OmaKaiku mobile card at a venue, end to end, with real processes, Postgres
and NATS JetStream: omakaiku records its public key once per kid, the relay
publishes MobileCardKeyPublished, venues' worker keeps it in
mobile_card_key_view, and POST /tickets verifies the holder's token offline.

Each refusal is a problem+json naming its rule; the card registry's state wins
over what the token says; the token is never stored, logged or published; a
restart publishes no second key, and a rotated key leaves the old one valid.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kaiku_dev.assertions import refused
from kaiku_dev.testing import (
    database_dump,
    eventually,
    every_stream_message,
    stream_events,
)

pytestmark = pytest.mark.e2e

# Other services' tests share the machine: give eventual consistency room.
SETTLE_SECONDS = 60.0
KEY_TOPIC = "%MobileCardKey.Published"


# --- helpers ------------------------------------------------------------------------------


async def holder(world, **card: Any) -> tuple[str, str]:
    """A card with an OmaKaiku account: (card number, holder token)."""
    issued = await world.issue_card(**card)
    account_id = await world.activate_account(issued["card_number"])
    return issued["card_number"], world.holder_token(account_id)


async def mobile_card(world, holder_token: str) -> str:
    """The token in the holder's QR code, from omakaiku's GET /me/card."""
    async def token() -> str | None:
        async with world.system.client("omakaiku", holder_token) as client:
            response = await client.get("/me/card")
        return response.json()["token"] if response.status_code == 200 else None

    return await eventually(token, timeout=SETTLE_SECONDS, message="the holder's mobile card")


async def current_kid(world) -> str:
    async with world.system.client("omakaiku") as client:
        (jwk,) = (await client.get("/mobile-card/public-key")).json()["keys"]
    return jwk["kid"]


async def key_in_venues(world, kid: str) -> dict[str, Any]:
    """Wait until venues' worker has the key from its event."""
    async def row():
        conn = await world.system.database("venues")
        try:
            found = await conn.fetchrow("SELECT * FROM mobile_card_key_view WHERE kid = $1", kid)
        finally:
            await conn.close()
        return dict(found) if found else None

    return await eventually(row, timeout=SETTLE_SECONDS,
                            message=f"venues to learn mobile-card key {kid}")


async def stored_key_events(world) -> list[str]:
    """The kids of every MobileCardKey.Published in omakaiku's event store, in order."""
    conn = await world.system.database("omakaiku")
    try:
        rows = await conn.fetch("SELECT state FROM omakaiku_events WHERE topic LIKE $1 "
                                "ORDER BY notification_id", KEY_TOPIC)
    finally:
        await conn.close()
    return [json.loads(bytes(r["state"]))["kid"] for r in rows]


async def published_key_messages(world) -> list[str]:
    events = await stream_events(world.system, "omakaiku", "mobile_card_key_published.v1")
    return [event["kid"] for event in events]


async def register(world, offering_id: str, *, children: int = 0, **card: str
                   ) -> httpx.Response:
    async with world.system.client("venues", world.venue_token) as client:
        return await client.post("/tickets", json={"offering_id": offering_id,
                                                   "children": children, **card})


async def ready_to_scan(world, holder_token: str, card_number: str) -> str:
    """The holder's token, once venues knows both the card and omakaiku's key."""
    token = await mobile_card(world, holder_token)
    await world.wait_for_card_in_venues(card_number)
    await key_in_venues(world, jwt.get_unverified_header(token)["kid"])
    return token


def development_signing_seed(world) -> bytes:
    """omakaiku's mobile-card signing key of this test run."""
    from omakaiku.config import OmaKaikuSettings

    keys = world.system.ns.keys.values
    return OmaKaikuSettings(card_signing_key=keys["KAIKU_OMAKAIKU_CARD_SIGNING_KEY"]
                            ).key_bytes("card-signing")


async def restart_omakaiku_api(world) -> None:
    """Stop the api; the supervisor starts it again; wait until it is ready."""
    supervisor = world.system.supervisor
    await asyncio.to_thread(supervisor.kill, "omakaiku-api", signal.SIGTERM)
    await asyncio.to_thread(supervisor.wait_ready, 120)


# --- the happy path -----------------------------------------------------------------------


async def test_a_holders_mobile_card_registers_a_ticket_end_to_end(world):
    card_number, holder_token = await holder(world, children=2)
    token = await ready_to_scan(world, holder_token, card_number)
    kid = jwt.get_unverified_header(token)["kid"]

    # The key travelled by the event: omakaiku's stream carries it, and venues'
    # consumer applied it (no call from venues to omakaiku).
    assert kid in await published_key_messages(world)
    row = await key_in_venues(world, kid)
    assert (row["algorithm"], row["kty"], row["crv"]) == ("EdDSA", "OKP", "Ed25519")

    offering_id = await world.publish_offering()
    response = await register(world, offering_id, children=1, mobile_card_token=token)
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert (ticket["card_number"], ticket["children"]) == (card_number, 1)

    # The ticket records the card number, as a typed number would.
    async def registered() -> list:
        return [e for e in await stream_events(world.system, "venues", "ticket_registered.v1")
                if e.get("ticket_id") == ticket["ticket_id"]]

    (event,) = await eventually(registered, timeout=SETTLE_SECONDS,
                                message="TicketRegistered on the venues stream")
    assert event["card_number"] == card_number

    # The token itself is kept nowhere: not in venues' database (tickets,
    # idempotency keys), not on any stream, not in any log or span.
    body = token.split(".")[1]
    assert body not in await database_dump(world.system, "venues")
    assert body not in await every_stream_message(world.system)
    assert body not in world.system.log_text()
    assert body not in json.dumps(world.system.spans())


async def test_the_card_registry_wins_over_the_tokens_claims(world):
    card_number, holder_token = await holder(world, children=2)
    token = await ready_to_scan(world, holder_token, card_number)
    assert jwt.decode(token, options={"verify_signature": False})["children"] == 2
    async with world.system.client("cards", world.distributor_token) as client:
        changed = await client.patch(f"/cards/{card_number}", json={"children": 0})
    assert changed.status_code == 200, changed.text

    async def children_in_venues():
        conn = await world.system.database("venues")
        try:
            return await conn.fetchval("SELECT children = 0 FROM card_validity_view "
                                       "WHERE card_number = $1", card_number)
        finally:
            await conn.close()

    await eventually(children_in_venues, timeout=SETTLE_SECONDS,
                     message="venues to learn the card covers no children now")
    problem = refused(await register(world, await world.publish_offering(), children=1,
                                     mobile_card_token=token), 422, "too-many-children")
    assert card_number in problem["detail"]


# --- refusals -----------------------------------------------------------------------------


async def test_a_closed_cards_token_is_refused_as_card_closed(world):
    card_number, holder_token = await holder(world)
    token = await ready_to_scan(world, holder_token, card_number)
    async with world.system.client("cards", world.distributor_token) as client:
        closed = await client.post(f"/cards/{card_number}/closure", json={"reason": "lost"})
    assert closed.status_code == 200, closed.text

    async def closed_in_venues():
        conn = await world.system.database("venues")
        try:
            return await conn.fetchval("SELECT status = 'closed' FROM card_validity_view "
                                       "WHERE card_number = $1", card_number)
        finally:
            await conn.close()

    await eventually(closed_in_venues, timeout=SETTLE_SECONDS,
                     message="venues to learn the card is closed")
    # The token is genuine and unexpired; the registry says the card is closed.
    refused(await register(world, await world.publish_offering(), mobile_card_token=token),
            422, "card-closed")


async def test_an_expired_token_is_refused_with_advice_for_the_box_office(world):
    from omakaiku.adapters.mobile_card import CardSigner

    card_number, holder_token = await holder(world)
    await ready_to_scan(world, holder_token, card_number)
    # Signed with omakaiku's own key, ten minutes ago, for five minutes.
    signer = CardSigner(development_signing_seed(world))
    assert signer.kid == await current_kid(world)
    expired, _ = signer.issue(card_number=card_number, valid_until=None, children=0,
                              now=datetime.now(UTC) - timedelta(minutes=10), ttl_seconds=300)
    problem = refused(await register(world, await world.publish_offering(),
                                     mobile_card_token=expired), 422, "mobile-card-expired")
    assert "refresh the card in OmaKaiku" in problem["detail"]
    assert problem["errors"][0]["field"] == "mobile_card_token"
    assert expired not in json.dumps(problem)


async def test_a_token_signed_by_another_key_is_refused(world):
    card_number, holder_token = await holder(world)
    genuine = await ready_to_scan(world, holder_token, card_number)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    kid = jwt.get_unverified_header(genuine)["kid"]
    forger = Ed25519PrivateKey.generate()
    offering_id = await world.publish_offering()
    # Under omakaiku's kid: the signature does not match the published key.
    same_kid = jwt.encode(claims, forger, algorithm="EdDSA", headers={"kid": kid})
    refused(await register(world, offering_id, mobile_card_token=same_kid), 422,
            "mobile-card-invalid")
    # Under a kid of its own: no such key was ever published.
    own_kid = jwt.encode(claims, forger, algorithm="EdDSA", headers={"kid": "forged-key-1"})
    problem = refused(await register(world, offering_id, mobile_card_token=own_kid), 422,
                      "mobile-card-invalid")
    assert "not signed with a key OmaKaiku has published" in problem["detail"]


async def test_a_tampered_token_is_refused(world):
    card_number, holder_token = await holder(world, children=0)
    other_number, _ = await holder(world, children=4)
    genuine = await ready_to_scan(world, holder_token, card_number)
    await world.wait_for_card_in_venues(other_number)
    head, body, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    forged = base64.urlsafe_b64encode(json.dumps(
        {**claims, "card_number": other_number, "children": 4}).encode()).rstrip(b"=").decode()
    offering_id = await world.publish_offering()
    refused(await register(world, offering_id, mobile_card_token=f"{head}.{forged}.{signature}"),
            422, "mobile-card-invalid")
    refused(await register(world, offering_id, mobile_card_token=genuine[:-6] + "AAAAAA"),
            422, "mobile-card-invalid")
    refused(await register(world, offering_id, mobile_card_token="not a token at all"),
            422, "mobile-card-invalid")
    # Nothing was registered for either card.
    async with world.system.client("venues") as client:
        offering = (await client.get(f"/offerings/{offering_id}")).json()
    assert offering["card_places_left"] == offering["card_cap"]


async def test_exactly_one_of_card_number_and_mobile_card_token(world):
    card_number, holder_token = await holder(world)
    token = await ready_to_scan(world, holder_token, card_number)
    offering_id = await world.publish_offering()
    both = refused(await register(world, offering_id, card_number=card_number,
                                  mobile_card_token=token), 422, "card-number-or-mobile-card")
    assert "exactly one" in both["detail"]
    refused(await register(world, offering_id), 422, "card-number-or-mobile-card")
    refused(await register(world, offering_id, card_number=None, mobile_card_token=None), 422,
            "card-number-or-mobile-card")
    # Neither refusal used up the place: the token still registers.
    assert (await register(world, offering_id, mobile_card_token=token)).status_code == 201


# --- the key's life: restarts and rotation ---------------------------------------------------


async def test_restarts_publish_no_second_key_and_a_rotated_key_keeps_the_old_valid(world):
    kid = await current_kid(world)
    await key_in_venues(world, kid)
    assert await stored_key_events(world) == [kid]
    assert (await published_key_messages(world)).count(kid) == 1

    # A restart with the same key records and publishes nothing new.
    await restart_omakaiku_api(world)
    assert await current_kid(world) == kid
    assert await stored_key_events(world) == [kid]
    assert (await published_key_messages(world)).count(kid) == 1

    card_number, holder_token = await holder(world)
    old_token = await ready_to_scan(world, holder_token, card_number)

    # Rotation: omakaiku starts with a new key. Its kid is published once; the
    # old kid stays valid, so a token shown a moment before still works.
    spec = world.system.supervisor.specs["omakaiku-api"]
    first_key = spec.env["KAIKU_OMAKAIKU_CARD_SIGNING_KEY"]
    spec.env["KAIKU_OMAKAIKU_CARD_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode()
    try:
        await restart_omakaiku_api(world)
        new_kid = await current_kid(world)
        assert new_kid != kid
        new_token = await ready_to_scan(world, holder_token, card_number)
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        for token in (old_token, new_token):
            response = await register(world, await world.publish_offering(),
                                      mobile_card_token=token)
            assert response.status_code == 201, response.text
            assert response.json()["card_number"] == card_number
    finally:
        spec.env["KAIKU_OMAKAIKU_CARD_SIGNING_KEY"] = first_key
        await restart_omakaiku_api(world)

    # Back on the first key: known already, so nothing new again.
    assert await current_kid(world) == kid
    assert await stored_key_events(world) == [kid, new_kid]

    async def both_published_once() -> bool:
        published = await published_key_messages(world)
        return published.count(kid) == 1 and published.count(new_kid) == 1

    await eventually(both_published_once, timeout=SETTLE_SECONDS,
                     message="each kid published exactly once")
