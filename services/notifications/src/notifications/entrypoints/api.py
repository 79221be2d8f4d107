"""Notifications HTTP API: in-app notifications, messages, inboxes, bulletins.

Thin: validate, check role and relationship against the read models
(``adapters.queries``), call the use case in a thread; refusals are the shared
kernel's errors, which become problem+json.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from kaiku_shared.auth import Principal
from kaiku_shared.http import require_role
from kaiku_shared.kernel.errors import Forbidden, NotFound, RuleViolation
from kaiku_shared.usecases import derived_id, run_use_case

from ..adapters import queries
from ..adapters.message_keys import MessageKeys
from ..application.app import NotificationsApplication
from ..config import MASTER_KEY_SETTING
from ..domain.model import BODY_MAX, SUBJECT_MAX, Message, Party

router = APIRouter()
EXPORT_SCHEMA = "kaikukortti.notifications.export/1"  # documented in docs/api.md
Holder = Annotated[Principal, Depends(require_role("holder"))]
Staff = Annotated[Principal, Depends(require_role("kaikukeskus", "distributor", "venue",
                                                  "ticket_agent"))]
HELSINKI = ZoneInfo("Europe/Helsinki")
Centre = Annotated[Principal, Depends(require_role("kaikukeskus"))]


async def application(request: Request) -> NotificationsApplication:
    return request.app.state.application


App = Annotated[NotificationsApplication, Depends(application)]


# --- holder: notifications and preferences ----------------------------------------


class NotificationPublic(BaseModel):
    source_id: UUID
    kind: str
    title: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    delivery: Literal["immediate", "daily_digest"]
    handed_over: bool


@router.get("/me/notifications", response_model=list[NotificationPublic], tags=["holder"])
async def my_notifications(request: Request, principal: Holder) -> list[NotificationPublic]:
    rows = await queries.for_account(request.app.state.pool, principal.account_id)
    return [NotificationPublic(**row)
            for row in await opened(request, rows, "source_id", ("title",))]


class ReadState(BaseModel):
    id: UUID
    read_at: datetime


@router.post("/me/notifications/{source_id}/read", response_model=ReadState, tags=["holder"])
async def read_notification(source_id: UUID, request: Request, principal: Holder) -> ReadState:
    read_at = await queries.mark_notification_read(request.app.state.pool,
                                                   principal.account_id, source_id)
    if read_at is None:
        raise NotFound("Notification", f"You have no notification {source_id}.")
    return ReadState(id=source_id, read_at=read_at)


class Preferences(BaseModel):
    delivery: Literal["immediate", "daily_digest"] = Field(
        description="immediate: an e-mail per notification; daily_digest: one e-mail a day")


@router.get("/me/preferences", response_model=Preferences, tags=["holder"])
async def my_preferences(request: Request, principal: Holder) -> Preferences:
    return Preferences(delivery=await queries.delivery_preference(request.app.state.pool,
                                                                  principal.account_id))


@router.put("/me/preferences", response_model=Preferences, tags=["holder"])
async def set_preferences(body: Preferences, request: Request, principal: Holder
                          ) -> Preferences:
    """Applies to notifications made from now on; ones already made keep theirs."""
    await queries.set_delivery_preference(request.app.state.pool, principal.account_id,
                                          body.delivery)
    return body


# --- messages -----------------------------------------------------------------------


class Recipient(BaseModel):
    organisation_id: UUID | None = None
    card_number: str | None = Field(default=None, min_length=3, max_length=40)
    account_id: UUID | None = None
    user_id: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def exactly_one(self) -> Recipient:
        given = [k for k, v in self.model_dump().items() if v is not None]
        if len(given) != 1:
            raise ValueError("name exactly one of organisation_id, card_number, account_id, "
                             "user_id")
        return self


class MessageCreate(BaseModel):
    to: Recipient
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)
    in_reply_to: UUID | None = None


class OrganisationRecipient(BaseModel):
    organisation_id: UUID


class HolderMessageCreate(BaseModel):
    to: OrganisationRecipient
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)
    in_reply_to: UUID | None = None


class MessageCreated(BaseModel):
    message_id: UUID


class ReplyCreate(BaseModel):
    subject: str | None = Field(default=None, max_length=SUBJECT_MAX, description=(
        "by default 'Re: ' and the subject replied to"))
    body: str = Field(min_length=1, max_length=BODY_MAX)
    in_reply_to: UUID | None = Field(default=None, exclude=True)


def staff_party(principal: Principal) -> Party:
    """The sending organisation (and the user, when the token names one)."""
    user = principal.subject if principal.subject not in (
        str(principal.organisation_id), principal.role) else None
    if principal.organisation_id is None:
        return Party("user", user_id=principal.subject)
    return Party("organisation", organisation_id=principal.organisation_id, user_id=user)


async def organisation_knows_holder(pool: queries.Db, principal: Principal,
                                    card_number: str) -> bool:
    organisation_id = principal.organisation_id
    if principal.role == "distributor" and await queries.distributor_issued(
            pool, organisation_id, card_number):
        return True
    if principal.role == "venue" and await queries.venue_sold_to(
            pool, organisation_id, card_number):
        return True
    return await queries.holder_wrote_to(pool, organisation_id, card_number)


async def holder_recipient(pool: queries.Db, principal: Principal, to: Recipient) -> Party:
    """A holder, by card number or account id, that this organisation may write to."""
    if principal.role not in ("venue", "distributor"):
        raise Forbidden("Venues and distributors write to holders; Kaikukeskus reaches "
                        "holders with a bulletin.", rule="wrong-role")
    card_number = to.card_number
    if to.account_id is not None:
        card_number = await queries.card_of(pool, to.account_id)
        if card_number is None:
            raise NotFound("Holder", f"No OmaKaiku account {to.account_id}.")
    elif not await queries.card_known(pool, card_number):
        raise NotFound("Card", f"No card {card_number} is known.")
    if not await organisation_knows_holder(pool, principal, card_number):
        raise Forbidden(
            f"Your organisation has no link to card {card_number}: a venue writes to "
            "holders of its tickets, a distributor to holders of cards it issued, anyone "
            "to a holder who wrote to them first.", rule="no-link-to-holder")
    return Party("holder", account_id=to.account_id,
                 card_number=None if to.account_id else card_number)


@router.post("/messages", status_code=201, response_model=MessageCreated, tags=["messages"])
async def send_message(body: MessageCreate, request: Request, app: App, principal: Staff
                       ) -> MessageCreated:
    """Staff write to an organisation, a single staff user, or a holder.

    A holder (by card number or account id) can be written to by a venue that
    sold them a ticket, the distributor that issued their card, or any
    organisation the holder wrote to first. This service never learns who the
    holder is; omakaiku tells them by e-mail.
    """
    to, pool = body.to, request.app.state.pool
    if to.organisation_id is not None:
        if not await queries.organisation_registered(pool, to.organisation_id):
            raise NotFound("Organisation", f"No organisation {to.organisation_id} is "
                           "registered (a new one may take a moment to appear).")
        recipient = Party("organisation", organisation_id=to.organisation_id)
    elif to.user_id is not None:
        recipient = Party("user", user_id=to.user_id)
    else:
        recipient = await holder_recipient(pool, principal, to)
    return await send(request, app, principal, staff_party(principal), recipient, body)


@router.post("/me/messages", status_code=201, response_model=MessageCreated, tags=["holder"])
async def holder_sends_message(body: HolderMessageCreate, request: Request, app: App,
                               principal: Holder) -> MessageCreated:
    """A holder writes to a venue organisation they hold a ticket with, the
    distributor that issued their card, or an organisation that wrote to them."""
    organisation_id, pool = body.to.organisation_id, request.app.state.pool
    card_number = await queries.card_of(pool, principal.account_id)
    if card_number is None:
        raise RuleViolation("account-not-ready", "Your account is still being set up; "
                            "try again in a moment.")
    if not await queries.holder_linked_to(pool, principal.account_id, card_number,
                                          organisation_id):
        raise Forbidden("You can write to venues where you have a ticket, to the "
                        "distributor of your card, or to whoever wrote to you.",
                        rule="no-link-to-organisation")
    return await send(request, app, principal, Party("holder", account_id=principal.account_id),
                      Party("organisation", organisation_id=organisation_id), body)


def message_keys(request: Request) -> MessageKeys:
    keys = request.app.state.message_keys
    if keys is None:
        raise RuleViolation("message-keys-not-configured",
                            f"{MASTER_KEY_SETTING} is not set: holders' messages cannot be "
                            "sealed or opened. An operator must configure it.", status=503)
    return keys


async def send(request: Request, app: NotificationsApplication, principal: Principal,
               sender: Party, recipient: Party,
               body: MessageCreate | HolderMessageCreate | ReplyCreate) -> MessageCreated:
    """Record the message; between a holder and an organisation, sealed under the
    holder's key (adapters/message_keys.py)."""
    message_id = derived_id(request, principal, "messages")
    holder = Message.holder_key_of(sender, recipient)
    seal = None
    if holder is not None:
        seal = await message_keys(request).sealer(request.app.state.pool, holder, message_id)
    message = await run_use_case(app.send_message, message_id, sender, recipient,
                                 body.subject or "", body.body, body.in_reply_to, seal)
    return MessageCreated(message_id=message.id)


async def opened(request: Request, rows: list[dict[str, Any]], id_field: str,
                 fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows with their holder-sealed text opened; an erased holder's are left out."""
    if not any(row.get("sealed_for") for row in rows):
        return rows
    return await message_keys(request).open_rows(request.app.state.pool, rows, id_field,
                                                 fields)


class MessageView(BaseModel):
    item_id: UUID
    direction: Literal["sent", "received"]
    sender: dict[str, Any]
    recipient: dict[str, Any]
    subject: str
    body: str
    in_reply_to: UUID | None
    created_at: datetime
    read_at: datetime | None


class OrganisationPublic(BaseModel):
    organisation_id: UUID
    kind: str
    name: str


def staff_sender(principal: Principal) -> tuple[str, str]:
    """How the caller's messages name their sender: their organisation, or the user."""
    if principal.organisation_id is None:
        return "user_id", principal.subject
    return "organisation_id", str(principal.organisation_id)


def holder_sender(principal: Principal) -> tuple[str, str]:
    return "account_id", str(principal.account_id)


async def thread_of(request: Request, message_id: UUID, owners: list[str],
                    sender: tuple[str, str]) -> list[dict[str, Any]]:
    rows = await queries.thread(request.app.state.pool, message_id, owners, *sender)
    rows = await opened(request, rows, "item_id", ("subject", "body"))
    if not any(row["item_id"] == message_id for row in rows):
        raise NotFound("Message", f"You have no message {message_id}.")
    return rows


def reply_subject(subject: str) -> str:
    subject = subject if subject.lower().startswith(("re:", "vs:", "sv:")) else f"Re: {subject}"
    return subject[:SUBJECT_MAX]


async def replying(request: Request, message_id: UUID, owners: list[str],
                   sender: tuple[str, str], body: ReplyCreate) -> Party:
    """Whom a reply to ``message_id`` goes to (the other party); fills in the subject."""
    rows = await thread_of(request, message_id, owners, sender)
    original = next(row for row in rows if row["item_id"] == message_id)
    other = original["recipient" if original["direction"] == "sent" else "sender"]
    body.in_reply_to = message_id
    if not (body.subject or "").strip():
        body.subject = reply_subject(original["subject"])
    return Party.from_dict(other)


@router.get("/messages/sent", response_model=list[MessageView], tags=["messages"])
async def staff_sent(request: Request, principal: Staff) -> list[dict[str, Any]]:
    """What the caller's organisation (or the caller, without one) wrote, newest first."""
    rows = await queries.sent(request.app.state.pool, staff_owners(principal),
                              *staff_sender(principal))
    return await opened(request, rows, "item_id", ("subject", "body"))


@router.get("/messages/organisations", response_model=list[OrganisationPublic],
            tags=["messages"])
async def staff_recipients(request: Request, principal: Staff) -> list[dict[str, Any]]:
    """The registered organisations, by name: whom staff may write to."""
    return await queries.organisations(request.app.state.pool)


@router.get("/messages/{message_id}/thread", response_model=list[MessageView],
            tags=["messages"])
async def staff_thread(message_id: UUID, request: Request, principal: Staff
                       ) -> list[dict[str, Any]]:
    """The message's thread, oldest first: what the caller wrote or received in it."""
    return await thread_of(request, message_id, staff_owners(principal),
                           staff_sender(principal))


@router.post("/messages/{message_id}/replies", status_code=201, response_model=MessageCreated,
             tags=["messages"])
async def staff_reply(message_id: UUID, body: ReplyCreate, request: Request, app: App,
                      principal: Staff) -> MessageCreated:
    """A reply to the other party of a message the caller wrote or received."""
    recipient = await replying(request, message_id, staff_owners(principal),
                               staff_sender(principal), body)
    return await send(request, app, principal, staff_party(principal), recipient, body)


class InboxItem(BaseModel):
    item_id: UUID
    kind: str
    sender: dict[str, Any]
    subject: str
    body: str
    payload: dict[str, Any]
    in_reply_to: UUID | None
    created_at: datetime
    read_at: datetime | None


def staff_owners(principal: Principal) -> list[str]:
    return queries.staff_owners(principal.subject, principal.organisation_id)


@router.get("/inbox", response_model=list[InboxItem], tags=["messages"])
async def staff_inbox(request: Request, principal: Staff, unread: bool = False
                      ) -> list[dict[str, Any]]:
    """Messages to the caller's organisation and to the caller, bulletins, and
    holders' ticket-cancellation requests (for venues)."""
    rows = await queries.inbox(request.app.state.pool, staff_owners(principal), unread)
    return await opened(request, rows, "item_id", ("subject", "body"))


@router.post("/inbox/{item_id}/read", response_model=ReadState, tags=["messages"])
async def read_inbox_item(item_id: UUID, request: Request, principal: Staff) -> ReadState:
    read_at = await queries.mark_read(request.app.state.pool, staff_owners(principal),
                                      item_id)
    if read_at is None:
        raise NotFound("Message", f"Your inbox has no item {item_id}.")
    return ReadState(id=item_id, read_at=read_at)


async def holder_owners(request: Request, principal: Principal) -> list[str]:
    card_number = await queries.card_of(request.app.state.pool, principal.account_id)
    return queries.holder_owners(principal.account_id, card_number)


@router.get("/me/messages", response_model=list[InboxItem], tags=["holder"])
async def holder_inbox(request: Request, principal: Holder, unread: bool = False
                       ) -> list[dict[str, Any]]:
    rows = await queries.inbox(request.app.state.pool,
                               await holder_owners(request, principal), unread)
    return await opened(request, rows, "item_id", ("subject", "body"))


@router.post("/me/messages/{item_id}/read", response_model=ReadState, tags=["holder"])
async def holder_reads_message(item_id: UUID, request: Request, principal: Holder
                               ) -> ReadState:
    read_at = await queries.mark_read(request.app.state.pool,
                                      await holder_owners(request, principal), item_id)
    if read_at is None:
        raise NotFound("Message", f"You have no message {item_id}.")
    return ReadState(id=item_id, read_at=read_at)


@router.get("/me/messages/sent", response_model=list[MessageView], tags=["holder"])
async def holder_sent(request: Request, principal: Holder) -> list[dict[str, Any]]:
    rows = await queries.sent(request.app.state.pool, await holder_owners(request, principal),
                              *holder_sender(principal))
    return await opened(request, rows, "item_id", ("subject", "body"))


@router.get("/me/messages/organisations", response_model=list[OrganisationPublic],
            tags=["holder"])
async def holder_recipients(request: Request, principal: Holder) -> list[dict[str, Any]]:
    """Whom the holder may write to: their card's distributor, venues where they have
    a ticket, organisations that wrote to them."""
    pool = request.app.state.pool
    card_number = await queries.card_of(pool, principal.account_id)
    if card_number is None:
        return []
    return await queries.holder_organisations(pool, principal.account_id, card_number)


@router.get("/me/messages/{message_id}/thread", response_model=list[MessageView],
            tags=["holder"])
async def holder_thread(message_id: UUID, request: Request, principal: Holder
                        ) -> list[dict[str, Any]]:
    return await thread_of(request, message_id, await holder_owners(request, principal),
                           holder_sender(principal))


@router.post("/me/messages/{message_id}/replies", status_code=201,
             response_model=MessageCreated, tags=["holder"])
async def holder_reply(message_id: UUID, body: ReplyCreate, request: Request, app: App,
                       principal: Holder) -> MessageCreated:
    """A reply to the organisation of a message the holder wrote or received."""
    recipient = await replying(request, message_id, await holder_owners(request, principal),
                               holder_sender(principal), body)
    if recipient.kind != "organisation":
        raise RuleViolation("holder-writes-to-organisations",
                            "A holder replies to a venue or distributor organisation.",
                            status=422)
    recipient = Party("organisation", organisation_id=recipient.organisation_id)
    return await send(request, app, principal, Party("holder", account_id=principal.account_id),
                      recipient, body)


@router.get("/me/export", tags=["holder"])
async def holder_export(request: Request, principal: Holder) -> JSONResponse:
    """Everything this service holds about the holder, as JSON (GDPR Art. 15 and
    20): messages received and sent, notifications, subscriptions, the delivery
    choice. OmaKaiku's own export holds the rest; the web combines the two."""
    owners = await holder_owners(request, principal)
    data = await queries.holder_export(request.app.state.pool, principal.account_id, owners)
    for part, id_field, fields in (("received", "item_id", ("subject", "body")),
                                   ("sent", "item_id", ("subject", "body")),
                                   ("notifications", "source_id", ("title",))):
        data[part] = [{k: v for k, v in row.items() if k != "sealed_for"}
                      for row in await opened(request, data[part], id_field, fields)]
    body = {"service": "notifications", "schema": EXPORT_SCHEMA,
            "exported_at": datetime.now(UTC).isoformat(),
            "account_id": str(principal.account_id), **data}
    filename = f"kaikukortti-viestit-{datetime.now(UTC).date().isoformat()}.json"
    return JSONResponse(jsonable_encoder(body), headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})


# --- bulletins ---------------------------------------------------------------------


class BulletinCreate(BaseModel):
    title: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)
    valid_until: date | None = Field(default=None, description=(
        "the last day the bulletin is current (default: 30 days on); organisations and "
        "accounts that join until then get it too"))


class BulletinCreated(BaseModel):
    bulletin_id: UUID


@router.post("/bulletins", status_code=201, response_model=BulletinCreated, tags=["bulletins"])
async def publish_bulletin(body: BulletinCreate, request: Request, app: App, principal: Centre
                           ) -> BulletinCreated:
    """Reaches every organisation's inbox and every holder with an OmaKaiku account,
    and, until ``valid_until``, those that join later."""
    if not body.title.strip() or not body.body.strip():
        raise RuleViolation("bulletin-empty", "A bulletin needs a title and a body.",
                            status=422)
    bulletin = await run_use_case(
        app.publish_bulletin, derived_id(request, principal, "bulletins"),
        body.title.strip(), body.body.strip(), principal.organisation_id,
        datetime.now(HELSINKI).date(), body.valid_until)
    return BulletinCreated(bulletin_id=bulletin.id)


# --- operations ----------------------------------------------------------------------


class HandOverPublic(BaseModel):
    handover_id: UUID
    kind: str
    source_kind: str | None
    source_id: UUID | None
    recipients: int
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    issued_at: datetime | None


@router.get("/handovers", response_model=list[HandOverPublic], tags=["operations"])
async def handovers(request: Request, principal: Centre,
                    state: Literal["claimed", "issued", "failed"] | None = None
                    ) -> list[dict[str, Any]]:
    """The hand-over log to omakaiku: attempts, errors, parked failures."""
    return await queries.handovers(request.app.state.pool, state)
