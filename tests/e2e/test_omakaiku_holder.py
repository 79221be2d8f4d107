"""OmaKaiku for a holder, end to end: history and my events, cancellation (and a
venue's refusal), feedback, genre subscriptions, offering browsing and the mobile
card — each with its refusals (wrong holder, wrong role, twice, too early,
cancelled). Real processes, Postgres and NATS JetStream."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import nats
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kaiku_shared.contracts import TicketCancellationRequestedV1, TicketRegisteredV1, event_id_for
from kaiku_dev.testing import eventually, stream_events, stream_messages

pytestmark = pytest.mark.e2e


async def holder_with_card(world, **card):
    issued = await world.issue_card(**card)
    account_id = await world.activate_account(issued["card_number"])
    return issued["card_number"], account_id, world.holder_token(account_id)


async def ticket_in_history(world, account_id: str, ticket_id: str,
                            check=lambda row: True) -> dict:
    async def found():
        rows = await world.history(account_id)
        return next((r for r in rows if r["ticket_id"] == ticket_id and check(r)), None)

    return await eventually(found, message=f"ticket {ticket_id} in the holder's history")


async def register(world, card_number: str, offering_id: str, children: int = 0) -> str:
    await world.wait_for_card_in_venues(card_number)
    response = await world.register_ticket(card_number, offering_id, children)
    assert response.status_code == 201, response.text
    return response.json()["ticket_id"]


async def past_ticket(world, card_number: str) -> tuple[str, str]:
    """A ticket for an event that has already begun: registered a moment before."""
    offering_id = await world.publish_offering(starts_in=timedelta(seconds=4),
                                               title=f"Pian alkava {uuid.uuid4().hex[:6]}")
    ticket_id = await register(world, card_number, offering_id)
    starts = datetime.now(UTC) + timedelta(seconds=4)
    await asyncio.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()) + 0.5)
    return offering_id, ticket_id


async def test_history_and_upcoming_tickets(world):
    system = world.system
    card_number, account_id, token = await holder_with_card(world, children=2)
    offering_id = await world.publish_offering()
    ticket_id = await register(world, card_number, offering_id, children=2)
    row = await ticket_in_history(world, account_id, ticket_id)
    assert (row["offering_id"], row["venue_id"], row["children"], row["status"]) == (
        offering_id, world.venue_id, 2, "registered")
    assert row["offering_title"] == "Kevätkonsertti" and row["venue_name"]
    async with system.client("omakaiku", token) as client:
        upcoming = (await client.get("/me/tickets")).json()
    assert [t["ticket_id"] for t in upcoming] == [ticket_id]
    # Another holder sees none of it.
    _, _, other = await holder_with_card(world)
    async with system.client("omakaiku", other) as client:
        assert (await client.get("/me/history")).json() == []
        refused = await client.post(f"/me/tickets/{ticket_id}/cancellation")
    assert refused.status_code == 404, refused.text
    async with system.client("omakaiku", world.venue_token) as client:
        assert (await client.get("/me/history")).status_code == 403
    async with system.client("omakaiku") as client:
        assert (await client.get("/me/history")).status_code == 401


async def test_cancellation_is_confirmed_by_the_venue(world):
    system = world.system
    card_number, account_id, token = await holder_with_card(world)
    ticket_id = await register(world, card_number, await world.publish_offering())
    await ticket_in_history(world, account_id, ticket_id)
    async with system.client("omakaiku", token) as client:
        first = await client.post(f"/me/tickets/{ticket_id}/cancellation")
        again = await client.post(f"/me/tickets/{ticket_id}/cancellation")  # a double tap
    assert first.status_code == 202 and again.status_code == 202, (first.text, again.text)
    row = await ticket_in_history(world, account_id, ticket_id,
                                  lambda r: r["status"] == "cancelled")
    assert row["cancellation_requested"] is True
    async with system.client("omakaiku", token) as client:
        assert (await client.get("/me/tickets")).json() == []
        twice = await client.post(f"/me/tickets/{ticket_id}/cancellation")
    assert twice.status_code == 409 and "already-cancelled" in twice.json()["type"]


async def test_a_started_event_cannot_be_cancelled_and_a_venue_refusal_shows(world):
    system = world.system
    card_number, account_id, token = await holder_with_card(world)
    _, ticket_id = await past_ticket(world, card_number)
    await ticket_in_history(world, account_id, ticket_id)
    async with system.client("omakaiku", token) as client:
        late = await client.post(f"/me/tickets/{ticket_id}/cancellation")
    assert late.status_code == 409 and "event-started" in late.json()["type"]
    # A request that reached venues only after the start (it was sent in time, the
    # network was slow): venues refuses, and the holder sees why.
    settings = system.ns.settings
    request = TicketCancellationRequestedV1.build(
        event_id=event_id_for("omakaiku-test", uuid.uuid4().int % 10**12),
        occurred_at=datetime.now(UTC), aggregate_id=uuid.UUID(account_id), aggregate_version=2,
        account_id=uuid.UUID(account_id), ticket_id=uuid.UUID(ticket_id),
        card_number=card_number)
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().publish(
            TicketCancellationRequestedV1.subject(settings.namespace), request.to_json(),
            headers={"Nats-Msg-Id": str(request.event_id)})
    finally:
        await nc.close()
    row = await ticket_in_history(world, account_id, ticket_id,
                                  lambda r: r["cancellation_refused"])
    assert row["status"] == "registered"
    assert "start" in row["cancellation_refused"].lower()


async def test_feedback_only_for_attended_past_events_once(world):
    system = world.system
    card_number, account_id, token = await holder_with_card(world)
    offering_id, ticket_id = await past_ticket(world, card_number)
    await ticket_in_history(world, account_id, ticket_id)
    scores = {"accessibility": 4, "meaning": 5, "interest": 3}
    async with system.client("omakaiku", token) as client:
        bad = await client.post(f"/me/tickets/{ticket_id}/feedback",
                                json={**scores, "meaning": 6})
        given = await client.post(f"/me/tickets/{ticket_id}/feedback", json=scores)
        twice = await client.post(f"/me/tickets/{ticket_id}/feedback", json=scores)
    assert bad.status_code == 422, bad.text
    assert given.status_code == 201, given.text
    assert given.json() == {"ticket_id": ticket_id, **scores}
    assert twice.status_code == 409 and "feedback-given" in twice.json()["type"]

    # Too early: the event is still to come.
    future_ticket = await register(world, card_number, await world.publish_offering(
        title=f"Tuleva {uuid.uuid4().hex[:6]}"))
    await ticket_in_history(world, account_id, future_ticket)
    async with system.client("omakaiku", token) as client:
        early = await client.post(f"/me/tickets/{future_ticket}/feedback", json=scores)
    assert early.status_code == 422 and "event-not-over" in early.json()["type"]

    # Cancelled: never attended (the cancelled-rule is checked before the date).
    other_card, other_account, other_token = await holder_with_card(world)
    cancelled_ticket = await register(world, other_card, await world.publish_offering(
        title=f"Peruttu {uuid.uuid4().hex[:6]}"))
    async with system.client("venues", world.venue_token) as client:
        response = await client.post(f"/tickets/{cancelled_ticket}/cancellation",
                                     json={"reason": "the holder phoned"})
    assert response.status_code == 200, response.text
    await ticket_in_history(world, other_account, cancelled_ticket,
                            lambda r: r["status"] == "cancelled")
    async with system.client("omakaiku", other_token) as client:
        refused = await client.post(f"/me/tickets/{cancelled_ticket}/feedback", json=scores)
        not_mine = await client.post(f"/me/tickets/{ticket_id}/feedback", json=scores)
    assert refused.status_code == 422 and "ticket-cancelled" in refused.json()["type"]
    assert not_mine.status_code == 404

    # FeedbackGiven went out naming neither the ticket nor the holder: the raw
    # message on NATS, body and headers. (The offering is this test's own.)
    async def published() -> list:
        return [m for m in await stream_messages(system, "omakaiku", "feedback_given.*")
                if offering_id.encode() in m.data]

    (message,) = await eventually(published, message="FeedbackGiven on the omakaiku stream")
    raw = message.data.decode() + repr(message.headers)
    assert message.subject.endswith(".omakaiku.feedback_given.v2")
    feedback_aggregate = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                        f"/kaikukortti/omakaiku/feedback/{ticket_id}"))
    for secret in (ticket_id, card_number, account_id, feedback_aggregate, "ticket_id",
                   "card_number", "account_id"):
        assert secret not in raw, secret
    body = json.loads(message.data)
    assert body["schema_version"] == 2 and body["aggregate_id"] == body["feedback_id"]
    assert uuid.UUID(body["feedback_id"]).version == 4
    assert (body["correlation_id"], body["causation_id"], body["traceparent"]) == (
        None, None, None)
    assert (body["offering_id"], body["accessibility"], body["meaning"],
            body["interest"]) == (offering_id, 4, 5, 3)


async def test_feedback_closes_30_days_after_the_event(world):
    """A ticket for an event 31 days ago (as venues' relay published it then: the
    api registers tickets for coming events only) takes no feedback any more."""
    system = world.system
    card_number, account_id, token = await holder_with_card(world)
    ticket_id, offering_id = uuid.uuid4(), uuid.uuid4()
    registered = TicketRegisteredV1.build(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC) - timedelta(days=40),
        aggregate_id=ticket_id, aggregate_version=1, ticket_id=ticket_id,
        offering_id=offering_id, offering_title="Syyskonsertti", venue_id=world.venue_id,
        venue_name="Imatran Teatteri", municipality="imatra",
        starts_at=datetime.now(UTC) - timedelta(days=31), card_number=card_number,
        children=0, channel="box_office", registered_by=uuid.uuid4())
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        await nc.jetstream().publish(registered.subject(system.ns.name), registered.to_json(),
                                     headers={"Nats-Msg-Id": str(registered.event_id)})
    finally:
        await nc.close()
    await ticket_in_history(world, account_id, str(ticket_id))
    async with system.client("omakaiku", token) as client:
        late = await client.post(f"/me/tickets/{ticket_id}/feedback",
                                 json={"accessibility": 4, "meaning": 5, "interest": 3})
    assert late.status_code == 422 and "feedback-closed" in late.json()["type"], late.text
    assert late.headers["content-type"].startswith("application/problem+json")


async def test_genre_subscriptions(world):
    system = world.system
    _, account_id, token = await holder_with_card(world)
    async with system.client("omakaiku", token) as client:
        assert (await client.get("/me/subscriptions")).json() == {
            "genres": [], "subgenres": [], "only_my_region": False, "region": None}
        unknown = await client.put("/me/subscriptions", json={"genres": ["polka"]})
        orphan = await client.put("/me/subscriptions",
                                  json={"genres": ["theatre"], "subgenres": ["jazz"]})
        chosen = await client.put("/me/subscriptions", json={
            "genres": ["music", "theatre"], "subgenres": ["jazz"], "only_my_region": True})
        shown = (await client.get("/me/subscriptions")).json()
    assert unknown.status_code == 422 and "polka" in unknown.text
    assert orphan.status_code == 422 and "jazz" in orphan.text
    assert chosen.status_code == 200, chosen.text
    assert shown == {"genres": ["music", "theatre"], "subgenres": ["jazz"],
                     "only_my_region": True, "region": "etela-karjala"}

    async def published() -> list[dict]:
        return [m for m in await stream_events(system, "omakaiku")
                if m.get("event_type") == "genre_subscriptions_changed"
                and m["account_id"] == account_id]

    (message,) = await eventually(published, message="GenreSubscriptionsChanged published")
    assert (message["genres"], message["subgenres"], message["region"]) == (
        ["music", "theatre"], ["jazz"], "etela-karjala")
    async with system.client("omakaiku", world.distributor_token) as client:
        assert (await client.put("/me/subscriptions", json={"genres": []})).status_code == 403
    async with system.client("omakaiku", token) as client:  # leave no subscriber behind
        cleared = await client.put("/me/subscriptions", json={"genres": []})
    assert cleared.json()["genres"] == []


async def test_browsing_the_offering(world):
    system = world.system
    _, _, token = await holder_with_card(world)
    tag = uuid.uuid4().hex[:8]
    soon = await world.publish_offering(title=f"Jazzilta {tag}", genres=["music"],
                                        subgenres=["jazz"], starts_in=timedelta(days=20))
    later = await world.publish_offering(title=f"Näytelmä {tag}", genres=["theatre"],
                                         subgenres=["drama"], starts_in=timedelta(days=60))

    async def browse(**params) -> list[str]:
        async with system.client("omakaiku", token) as client:
            response = await client.get("/offerings", params={"q": tag, **params})
        assert response.status_code == 200, response.text
        return [o["offering_id"] for o in response.json()]

    await eventually(lambda: _both(browse, soon, later), message="offering reaches omakaiku")
    assert await browse(genre="music") == [soon]
    assert await browse(genre="music", subgenre="jazz") == [soon]
    assert await browse(subgenre="drama") == [later]
    assert await browse(municipality="Imatra") == [soon, later]
    assert await browse(municipality="Lappeenranta") == []
    assert await browse(region="etela-karjala") == [soon, later]
    assert await browse(region="lappi") == []
    day = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    assert await browse(**{"from": day}) == [later]
    assert await browse(to=day) == [soon]
    async with system.client("omakaiku", token) as client:
        english = (await client.get("/offerings", params={"q": tag, "lang": "en",
                                                          "genre": "music"})).json()
        finnish = (await client.get("/offerings", params={"q": tag, "genre": "music"})).json()
        bad_genre = await client.get("/offerings", params={"genre": "polka"})
        bad_region = await client.get("/offerings", params={"region": "atlantis"})
        bad_range = await client.get("/offerings", params={"from": "2030-01-02",
                                                           "to": "2030-01-01"})
    assert english[0]["genre_labels"] == ["Music"] and finnish[0]["genre_labels"] == ["Musiikki"]
    for response in (bad_genre, bad_region, bad_range):
        assert response.status_code == 422, response.text


async def _both(browse, *ids) -> bool:
    found = await browse()
    return all(i in found for i in ids)


async def test_the_mobile_card_is_signed_and_verifiable_offline(world):
    system = world.system
    card_number, _, token = await holder_with_card(world, children=3)
    async with system.client("omakaiku") as client:
        jwks = (await client.get("/mobile-card/public-key")).json()
        pem = await client.get("/mobile-card/public-key", params={"format": "pem"})
    assert pem.text.startswith("-----BEGIN PUBLIC KEY-----")
    (jwk,) = jwks["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
    public = Ed25519PublicKey.from_public_bytes(jwt.utils.base64url_decode(jwk["x"]))
    async with system.client("omakaiku", token) as client:
        response = await client.get("/me/card")
    assert response.status_code == 200, response.text
    card = response.json()
    claims = jwt.decode(card["token"], public, algorithms=["EdDSA"],
                        audience="kaikukortti-mobile-card")
    assert (claims["card_number"], claims["children"]) == (card_number, 3)
    assert claims["valid_until"] == card["valid_until"]
    assert 0 < claims["exp"] - datetime.now(UTC).timestamp() <= 300
    assert jwt.get_unverified_header(card["token"])["kid"] == jwk["kid"]
    assert card["qr_svg"].lstrip().startswith("<svg")
    # A tampered token does not verify.
    head, body, signature = card["token"].split(".")
    forged_claims = {**claims, "children": 9}
    forged_body = jwt.utils.base64url_encode(json.dumps(forged_claims).encode()).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{forged_body}.{signature}", public, algorithms=["EdDSA"],
                   audience="kaikukortti-mobile-card")
    async with system.client("omakaiku", world.venue_token) as client:
        assert (await client.get("/me/card")).status_code == 403


async def test_a_replaced_card_moves_to_the_same_account(world):
    system = world.system
    card_number, account_id, token = await holder_with_card(world, children=1)
    ticket_id = await register(world, card_number, await world.publish_offering(
        title=f"Ennen korvausta {uuid.uuid4().hex[:6]}"))
    await ticket_in_history(world, account_id, ticket_id)
    async with system.client("cards", world.distributor_token) as client:
        replaced = await client.post(f"/cards/{card_number}/replacement")
    assert replaced.status_code == 201, replaced.text
    new_number = replaced.json()["card_number"]
    assert new_number != card_number

    async def moved():
        async with system.client("omakaiku", token) as client:
            return (await client.get("/me")).json()["card_number"] == new_number

    await eventually(moved, message="the account to move to the replacement card")
    rows = await world.history(account_id)
    assert [r["card_number"] for r in rows if r["ticket_id"] == ticket_id] == [card_number]
    async with system.client("omakaiku", token) as client:
        card = await client.get("/me/card")
    assert card.status_code == 200, card.text
    assert card.json()["card_number"] == new_number and card.json()["children"] == 1
    async with system.client("omakaiku", world.distributor_token) as client:
        second = await client.post("/accounts", json={
            "card_number": new_number, "first_name": "Toinen", "last_name": "Tili",
            "email": "toinen@example.org", "municipality": "Imatra"})
    assert second.status_code == 409 and "account-exists" in second.json()["type"]
