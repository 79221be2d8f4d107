"""OmaKaiku HTTP API: account activation by a distributor, the holder's own views."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from kaiku_shared.auth import Principal
from kaiku_shared.http import Problem, conflict, idempotency_key, not_found, require_role, \
    unprocessable

from ..adapters import read_models
from ..application.app import NotFound, OmaKaikuApplication, RuleViolation

CARD_ARRIVAL_GRACE_SECONDS = 3.0

router = APIRouter()


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AccountCreate(Schema):
    card_number: str = Field(min_length=8, max_length=12)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    email: EmailStr
    phone: str | None = Field(default=None, min_length=5, max_length=20,
                              pattern=r"^\+?[0-9 ()-]{5,20}$")
    municipality: str = Field(min_length=1, max_length=100)
    language: Literal["fi", "sv", "en"] = "fi"


class AccountCreated(BaseModel):
    account_id: UUID


class Profile(BaseModel):
    account_id: UUID
    card_number: str
    first_name: str
    last_name: str
    email: str
    phone: str | None
    municipality: str
    language: str


class HistoryEntry(BaseModel):
    ticket_id: UUID
    offering_id: UUID
    offering_title: str | None
    venue_id: UUID
    venue_name: str | None
    starts_at: datetime | None
    children: int
    status: Literal["registered", "cancelled"]
    cancellation_requested: bool = False


class CancellationAccepted(BaseModel):
    ticket_id: UUID
    status: str = "cancellation_requested"
    detail: str = "The venue confirms the cancellation; the ticket then shows as cancelled."


def application(request: Request) -> OmaKaikuApplication:
    return request.app.state.application


App = Annotated[OmaKaikuApplication, Depends(application)]
Distributor = Annotated[Principal, Depends(require_role("distributor"))]
Holder = Annotated[Principal, Depends(require_role("holder"))]


async def run(func, *args, **kwargs):
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except RuleViolation as error:
        if error.status == 409:
            raise conflict(error.rule, str(error)) from None
        raise unprocessable(error.rule, str(error), error.field) from None
    except NotFound as error:
        raise not_found("Account", str(error)) from None


def normalise_card_number(raw: str) -> str:
    compact = raw.replace(" ", "").replace("-", "").upper()
    if len(compact) != 8 or not (compact[:3].isalpha() and compact[3:].isdigit()):
        raise unprocessable("card-number-format",
                            "A card number is three letters and five digits, e.g. KXA-12345.",
                            "card_number")
    return f"{compact[:3]}-{compact[3:]}"


@router.post("/accounts", status_code=201, response_model=AccountCreated, tags=["accounts"])
async def activate_account(body: AccountCreate, request: Request, app: App,
                           principal: Distributor) -> AccountCreated:
    card_number = normalise_card_number(body.card_number)
    card = await _known_card(request, card_number)
    if card["status"] != "open":
        raise unprocessable("card-closed", f"Card {card_number} is closed.", "card_number")
    if card["issuer"] != principal.organisation_id:
        raise Problem(403, "Forbidden",
                      "OmaKaiku is activated by the distributor that issued the card.",
                      kind="not-yours")
    key = idempotency_key(request)
    account_id = (uuid5(NAMESPACE_URL, f"/accounts/{principal.key}/{key}") if key else uuid4())
    account = await run(
        app.activate_account, account_id=account_id, card_number=card_number,
        first_name=body.first_name, last_name=body.last_name, email=str(body.email),
        phone=body.phone, municipality=body.municipality, language=body.language,
        activated_by=principal.organisation_id,
    )
    return AccountCreated(account_id=account.id)


@router.get("/me", response_model=Profile, tags=["holder"])
async def me(app: App, principal: Holder) -> Profile:
    account = await run(app.get_account, principal.account_id)
    return Profile(account_id=account.id, card_number=account.card_number,
                   first_name=account.first_name, last_name=account.last_name,
                   email=account.email, phone=account.phone,
                   municipality=account.municipality, language=account.language)


@router.get("/me/history", response_model=list[HistoryEntry], tags=["holder"])
async def my_history(request: Request, app: App, principal: Holder) -> list[HistoryEntry]:
    account = await run(app.get_account, principal.account_id)
    rows = await read_models.history(request.app.state.pool, account.card_number)
    return [_entry(row, account) for row in rows]


@router.get("/me/tickets", response_model=list[HistoryEntry], tags=["holder"])
async def my_tickets(request: Request, app: App, principal: Holder) -> list[HistoryEntry]:
    account = await run(app.get_account, principal.account_id)
    rows = await read_models.history(request.app.state.pool, account.card_number,
                                     upcoming_after=datetime.now(UTC))
    return [_entry(row, account) for row in rows]


@router.post("/me/tickets/{ticket_id}/cancellation", status_code=202,
             response_model=CancellationAccepted, tags=["holder"])
async def cancel_my_ticket(ticket_id: UUID, request: Request, app: App,
                           principal: Holder) -> CancellationAccepted:
    account = await run(app.get_account, principal.account_id)
    ticket = await read_models.ticket(request.app.state.pool, ticket_id)
    if ticket is None or ticket["card_number"] != account.card_number:
        raise not_found("Ticket", f"You have no ticket {ticket_id}.")
    if ticket["status"] == "cancelled":
        raise conflict("already-cancelled", "This ticket is already cancelled.")
    if ticket["starts_at"] and ticket["starts_at"] <= datetime.now(UTC):
        raise conflict("event-started", "The event has started; it can no longer be cancelled.")
    await run(app.request_cancellation, account.id, ticket_id)
    return CancellationAccepted(ticket_id=ticket_id)


def _entry(row, account) -> HistoryEntry:
    return HistoryEntry(
        ticket_id=row["ticket_id"], offering_id=row["offering_id"],
        offering_title=row["offering_title"], venue_id=row["venue_id"],
        venue_name=row["venue_name"], starts_at=row["starts_at"], children=row["children"],
        status=row["status"],
        cancellation_requested=str(row["ticket_id"]) in account.cancellation_requests,
    )


async def _known_card(request: Request, card_number: str):
    pool = request.app.state.pool
    deadline = asyncio.get_running_loop().time() + CARD_ARRIVAL_GRACE_SECONDS
    while True:
        card = await read_models.card(pool, card_number)
        if card is not None or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    if card is None:
        raise unprocessable("card-unknown",
                            f"Card {card_number} is not in Kaikukanta. Check the number.",
                            "card_number")
    return card
