"""Messages between venues, distributors, holders and single staff users; read state;
a holder's ticket cancellation in the venue's inbox; bulletins to everyone.

All over HTTP against the running system; notifications learns of cards,
accounts, venues and tickets only from the other services' events.
"""

from __future__ import annotations

import json
import uuid

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e


async def scalar(system, sql: str, *args):
    conn = await system.database("notifications")
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def known(system, sql: str, *args, what: str) -> None:
    async def check():
        return await scalar(system, sql, *args)

    await eventually(check, timeout=30, message=f"notifications to learn of {what}")


async def holder_with_ticket(world) -> tuple[dict, str, str]:
    """A card with an OmaKaiku account and a ticket at the world's venue."""
    system = world.system
    card = await world.issue_card(children=0)
    account_id = await world.activate_account(card["card_number"])
    offering_id = await world.publish_offering(title="Viestikonsertti")
    await world.wait_for_card_in_venues(card["card_number"])
    response = await world.register_ticket(card["card_number"], offering_id)
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]
    await known(system, "SELECT 1 FROM account_view WHERE account_id = $1",
                uuid.UUID(account_id), what="the account")
    await known(system, "SELECT 1 FROM ticket_view WHERE ticket_id = $1",
                uuid.UUID(ticket_id), what="the ticket")
    await known(system, "SELECT 1 FROM card_view WHERE card_number = $1",
                card["card_number"], what="the card")
    return card, account_id, ticket_id


async def inbox(system, token: str, path: str = "/inbox", **params) -> list[dict]:
    async with system.client("notifications", token) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_in_inbox(system, token: str, item_id: str, path: str = "/inbox") -> dict:
    async def find():
        return next((i for i in await inbox(system, token, path) if i["item_id"] == item_id),
                    None)

    return await eventually(find, timeout=30, message=f"{item_id} in {path}")


async def post(system, token: str, path: str, body: dict, **headers) -> object:
    async with system.client("notifications", token) as client:
        return await client.post(path, json=body, headers=headers)


async def new_organisation(world, kind: str, name: str) -> str:
    async with world.system.client("cards", world.centre_token) as client:
        response = await client.post("/organisations", json={
            "kind": kind, "name": name, "municipality": "Lappeenranta"})
    assert response.status_code == 201, response.text
    organisation_id = response.json()["organisation_id"]
    await known(world.system, "SELECT 1 FROM organisation_view WHERE organisation_id = $1",
                uuid.UUID(organisation_id), what=f"organisation {name}")
    return organisation_id


async def test_venue_and_holder_write_to_each_other_and_read_state_is_kept(world):
    system = world.system
    stranger = await world.issue_card(children=0)
    await known(system, "SELECT 1 FROM card_view WHERE card_number = $1",
                stranger["card_number"], what="the stranger's card")
    refused = await post(system, world.venue_token, "/messages", {
        "to": {"card_number": stranger["card_number"]}, "subject": "Hei", "body": "Tervetuloa"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/no-link-to-holder")

    card, account_id, _ = await holder_with_ticket(world)
    holder = world.holder_token(account_id)
    sent = await post(system, world.venue_token, "/messages", {
        "to": {"card_number": card["card_number"]}, "subject": "Ovet avataan 18.30",
        "body": "Tervetuloa konserttiin! Lipun saa kassalta."})
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["message_id"]

    item = await wait_in_inbox(system, holder, message_id, "/me/messages")
    assert item["subject"] == "Ovet avataan 18.30"
    assert item["sender"]["organisation_id"] == world.venue_org_id
    async with system.client("notifications", holder) as client:
        notes = (await client.get("/me/notifications")).json()
    assert any(n["source_id"] == message_id and n["kind"] == "message" for n in notes)

    reply = await post(system, holder, "/me/messages", {
        "to": {"organisation_id": world.venue_org_id}, "subject": "Kiitos",
        "body": "Tulemme ajoissa.", "in_reply_to": message_id})
    assert reply.status_code == 201, reply.text
    reply_id = reply.json()["message_id"]
    got = await wait_in_inbox(system, world.venue_token, reply_id)
    assert got["sender"] == {"kind": "holder", "account_id": account_id,
                             "organisation_id": None, "card_number": None, "user_id": None}
    assert got["in_reply_to"] == message_id and got["read_at"] is None

    unread = await inbox(system, world.venue_token, unread="true")
    assert reply_id in [i["item_id"] for i in unread]
    async with system.client("notifications", world.venue_token) as client:
        first = await client.post(f"/inbox/{reply_id}/read")
        again = await client.post(f"/inbox/{reply_id}/read")
    assert first.status_code == again.status_code == 200
    assert first.json()["read_at"] == again.json()["read_at"]
    assert reply_id not in [i["item_id"] for i in
                            await inbox(system, world.venue_token, unread="true")]

    # Another organisation cannot read or mark it.
    other = system.token("venue", organisation_id=str(uuid.uuid4()))
    async with system.client("notifications", other) as client:
        assert (await client.post(f"/inbox/{reply_id}/read")).status_code == 404
    assert reply_id not in [i["item_id"] for i in await inbox(system, other)]

    # Holder marks the venue's message read.
    async with system.client("notifications", holder) as client:
        marked = await client.post(f"/me/messages/{message_id}/read")
        assert marked.status_code == 200
        noted = await client.post(f"/me/notifications/{message_id}/read")
        assert noted.status_code == 200
    # The holder cannot write to an organisation they have no link to.
    elsewhere = await post(system, holder, "/me/messages", {
        "to": {"organisation_id": str(uuid.uuid4())}, "subject": "s", "body": "b"})
    assert elsewhere.status_code == 403
    assert elsewhere.json()["type"].endswith("/no-link-to-organisation")


async def test_distributor_venue_holder_and_single_user_channels(world):
    system = world.system
    card, account_id, _ = await holder_with_ticket(world)

    # venue <-> distributor, by organisation
    to_distributor = await post(system, world.venue_token, "/messages", {
        "to": {"organisation_id": world.distributor_id}, "subject": "Ryhmävierailu",
        "body": "Meillä on tilaa 10 hengen ryhmälle."})
    assert to_distributor.status_code == 201, to_distributor.text
    got = await wait_in_inbox(system, world.distributor_token,
                              to_distributor.json()["message_id"])
    assert got["sender"]["organisation_id"] == world.venue_org_id
    back = await post(system, world.distributor_token, "/messages", {
        "to": {"organisation_id": world.venue_org_id}, "subject": "Kiitos",
        "body": "Tulemme torstaina.", "in_reply_to": got["item_id"]})
    assert back.status_code == 201, back.text
    await wait_in_inbox(system, world.venue_token, back.json()["message_id"])

    # distributor -> holder of a card it issued, by account id
    to_holder = await post(system, world.distributor_token, "/messages", {
        "to": {"account_id": account_id}, "subject": "Korttisi uusiminen",
        "body": "Kortti on uusittavissa ensi kuussa."})
    assert to_holder.status_code == 201, to_holder.text
    await wait_in_inbox(system, world.holder_token(account_id),
                        to_holder.json()["message_id"], "/me/messages")

    # staff user -> a single staff user; the user's colleagues do not see it
    sender = system.token("venue", organisation_id=world.venue_org_id,
                          subject=f"user-{uuid.uuid4()}")
    user = f"user-{uuid.uuid4()}"
    recipient = system.token("distributor", organisation_id=world.distributor_id, subject=user)
    colleague = system.token("distributor", organisation_id=world.distributor_id,
                             subject=f"user-{uuid.uuid4()}")
    direct = await post(system, sender, "/messages", {
        "to": {"user_id": user}, "subject": "Henkilökohtainen", "body": "Soitatko minulle?"})
    assert direct.status_code == 201, direct.text
    item = await wait_in_inbox(system, recipient, direct.json()["message_id"])
    assert item["sender"]["organisation_id"] == world.venue_org_id
    assert direct.json()["message_id"] not in [i["item_id"] for i in
                                               await inbox(system, colleague)]

    # refusals: a ticket agent does not write to holders; unknown organisation;
    # two recipients at once
    agent = system.token("ticket_agent", organisation_id=str(uuid.uuid4()))
    refused = await post(system, agent, "/messages", {
        "to": {"card_number": card["card_number"]}, "subject": "s", "body": "b"})
    assert refused.status_code == 403
    unknown = await post(system, world.venue_token, "/messages", {
        "to": {"organisation_id": str(uuid.uuid4())}, "subject": "s", "body": "b"})
    assert unknown.status_code == 404
    both = await post(system, world.venue_token, "/messages", {
        "to": {"organisation_id": world.distributor_id, "user_id": user},
        "subject": "s", "body": "b"})
    assert both.status_code == 422
    holder_posts_staff_route = await post(system, world.holder_token(account_id), "/messages", {
        "to": {"organisation_id": world.venue_org_id}, "subject": "s", "body": "b"})
    assert holder_posts_staff_route.status_code == 403

    # Idempotency-Key: a retried send is one message
    body = {"to": {"organisation_id": world.distributor_id}, "subject": "Kerran",
            "body": "Vain kerran."}
    first = await post(system, world.venue_token, "/messages", body,
                       **{"Idempotency-Key": f"msg-{uuid.uuid4()}"})
    key = first.request.headers["Idempotency-Key"]
    second = await post(system, world.venue_token, "/messages", body,
                        **{"Idempotency-Key": key})
    assert first.json() == second.json()
    await wait_in_inbox(system, world.distributor_token, first.json()["message_id"])
    assert await scalar(system, "SELECT count(*) FROM inbox_item WHERE item_id = $1",
                        uuid.UUID(first.json()["message_id"])) == 1


async def test_holder_cancellation_reaches_the_venue_inbox_and_the_holder_hears_back(world):
    system = world.system
    card, account_id, ticket_id = await holder_with_ticket(world)
    holder = world.holder_token(account_id)

    async def in_history():
        return any(r["ticket_id"] == ticket_id for r in await world.history(account_id))

    await eventually(in_history, timeout=30, message="the ticket in OmaKaiku")
    async with system.client("omakaiku", holder) as client:
        response = await client.post(f"/me/tickets/{ticket_id}/cancellation")
    assert response.status_code == 202, response.text

    async def request_in_inbox():
        return next((i for i in await inbox(system, world.venue_token)
                     if i["kind"] == "ticket_cancellation_request"
                     and i["payload"]["ticket_id"] == ticket_id), None)

    item = await eventually(request_in_inbox, timeout=30,
                            message="the cancellation request in the venue's inbox")
    assert item["payload"]["card_number"] == card["card_number"]
    assert item["sender"] == {"kind": "holder", "card_number": card["card_number"]}

    # The venue confirms (unless venues already did on its own): the holder hears of it.
    async with system.client("venues", world.venue_token) as client:
        await client.post(f"/tickets/{ticket_id}/cancellation", json={"reason": "holder"})

    async def holder_told():
        async with system.client("notifications", holder) as client:
            notes = (await client.get("/me/notifications")).json()
        return [n for n in notes if n["kind"] == "ticket_cancelled"
                and n["payload"]["ticket_id"] == ticket_id]

    told = await eventually(holder_told, timeout=30, message="the holder told of the cancel")
    assert len(told) == 1 and told[0]["title"] == "Ticket cancelled: Viestikonsertti"


async def test_bulletin_reaches_every_organisation_and_every_holder(world):
    system = world.system
    card = await world.issue_card(children=0)
    account_id = await world.activate_account(card["card_number"])
    await known(system, "SELECT 1 FROM account_view WHERE account_id = $1",
                uuid.UUID(account_id), what="the account")
    ticket_agent = await new_organisation(world, "ticket_agent", "Lippupalvelu Oy")

    refused = await post(system, world.venue_token, "/bulletins", {"title": "t", "body": "b"})
    assert refused.status_code == 403
    empty = await post(system, world.centre_token, "/bulletins", {"title": " ", "body": "b"})
    assert empty.status_code == 422
    published = await post(system, world.centre_token, "/bulletins", {
        "title": "Palautetilaisuudet 2026", "body": "Alueelliset tilaisuudet huhtikuussa."})
    assert published.status_code == 201, published.text
    bulletin_id = published.json()["bulletin_id"]

    for organisation_token in (world.venue_token, world.distributor_token,
                               system.token("ticket_agent", organisation_id=ticket_agent)):
        item = await wait_in_inbox(system, organisation_token, bulletin_id)
        assert item["kind"] == "bulletin" and item["subject"] == "Palautetilaisuudet 2026"
    organisations = await scalar(system, "SELECT count(*) FROM organisation_view")
    assert await scalar(system, "SELECT count(*) FROM inbox_item WHERE item_id = $1",
                        uuid.UUID(bulletin_id)) == organisations

    async def holder_has_it():
        async with system.client("notifications", world.holder_token(account_id)) as client:
            notes = (await client.get("/me/notifications")).json()
        return [n for n in notes if n["source_id"] == bulletin_id]

    (note,) = await eventually(holder_has_it, timeout=30, message="the bulletin for the holder")
    assert note["kind"] == "bulletin" and note["payload"]["body"].startswith("Alueelliset")
    accounts = await scalar(system, "SELECT count(*) FROM account_view")
    assert await scalar(system, "SELECT count(*) FROM notification WHERE source_id = $1",
                        uuid.UUID(bulletin_id)) == accounts

    async def handed_over():
        nc = await nats.connect(system.ns.settings.nats_url)
        try:
            js = nc.jetstream()
            settings = system.ns.settings
            sub = await js.pull_subscribe(
                f"{settings.subject_root('notifications')}.notification_batch_issued.v1",
                stream=settings.stream_name("notifications"),
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30,
                                  ack_policy=AckPolicy.NONE))
            try:
                batch = await sub.fetch(500, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                return None
            finally:
                await sub.unsubscribe()
        finally:
            await nc.close()
        bodies = [json.loads(m.data) for m in batch]
        return [b for b in bodies if b["source_id"] == bulletin_id
                and account_id in b["account_ids"]] or None

    (batch,) = await eventually(handed_over, timeout=30, message="bulletin handed over")
    assert batch["template_key"] == "notification.bulletin"


async def test_offering_change_and_cancellation_reach_its_ticket_holders(world):
    system = world.system
    card, account_id, ticket_id = await holder_with_ticket(world)
    holder = world.holder_token(account_id)
    offering_id = str(await scalar(system, "SELECT offering_id FROM ticket_view "
                                           "WHERE ticket_id = $1", uuid.UUID(ticket_id)))
    async with system.client("venues", world.venue_token) as client:
        changed = await client.patch(f"/offerings/{offering_id}",
                                     json={"title": "Viestikonsertti (uusi aika)"})
        assert changed.status_code == 200, changed.text

    async def notes_of(kind: str):
        async with system.client("notifications", holder) as client:
            notes = (await client.get("/me/notifications")).json()
        return [n for n in notes if n["kind"] == kind] or None

    (change,) = await eventually(lambda: notes_of("offering_changed"), timeout=30,
                                 message="the ticket holder told of the change")
    assert change["payload"]["offering_id"] == offering_id
    assert change["title"] == "Changed: Viestikonsertti (uusi aika)"

    async with system.client("venues", world.venue_token) as client:
        cancelled = await client.post(f"/offerings/{offering_id}/cancellation",
                                      json={"reason": "sairastuminen"})
        assert cancelled.status_code == 200, cancelled.text
    (cancel,) = await eventually(lambda: notes_of("ticket_cancelled"), timeout=30,
                                 message="the ticket holder told of the cancellation")
    assert cancel["payload"]["ticket_id"] == ticket_id
    assert cancel["payload"]["reason"] == "sairastuminen"
