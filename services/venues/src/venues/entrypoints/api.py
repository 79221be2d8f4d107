"""Venues HTTP API: venues, offering, ticket registration and cancellation."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Literal
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from kaiku_shared import taxonomy
from kaiku_shared.auth import Principal
from kaiku_shared.http import Problem, conflict, idempotency_key, not_found, require_role, \
    unprocessable

from ..adapters import read_models
from ..application.app import Forbidden, NotFound, RuleViolation, VenuesApplication
from ..domain.model import CHANNELS, OFFERING_KINDS, VENUE_KINDS

HELSINKI = ZoneInfo("Europe/Helsinki")
# A card issued a moment ago may not have reached venues yet: wait this long.
CARD_ARRIVAL_GRACE_SECONDS = 1.5

router = APIRouter()


def now() -> datetime:
    return datetime.now(UTC)


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Limits(Schema):
    one_ticket_per_card: bool = False
    max_open_reservations: int | None = Field(default=None, ge=1, le=100)
    ticket_agents: list[UUID] = Field(default_factory=list, max_length=50)


class VenueCreate(Schema):
    organisation_id: UUID
    name: str = Field(min_length=1, max_length=200)
    kind: Literal[VENUE_KINDS]  # type: ignore[valid-type]
    municipality: str = Field(min_length=1, max_length=100)
    limits: Limits = Field(default_factory=Limits)


class VenueCreated(BaseModel):
    venue_id: UUID


class OfferingCreate(Schema):
    title: str = Field(min_length=1, max_length=300)
    genres: list[str] = Field(min_length=1, max_length=5)
    subgenres: list[str] = Field(default_factory=list, max_length=10)
    starts_at: AwareDatetime
    capacity: int = Field(ge=1, le=1_000_000)
    card_cap: int = Field(ge=0, le=1_000_000)
    kind: Literal[OFFERING_KINDS] = "performance"  # type: ignore[valid-type]

    @field_validator("genres")
    @classmethod
    def _known_genres(cls, genres: list[str]) -> list[str]:
        unknown = [g for g in genres if not taxonomy.is_valid_genre(g)]
        if unknown:
            raise ValueError(f"unknown genre(s) {unknown}; use codes from the national "
                             f"taxonomy, e.g. {', '.join(taxonomy.GENRE_CODES[:5])}")
        return genres


class OfferingCreated(BaseModel):
    offering_id: UUID


class OfferingPublic(BaseModel):
    offering_id: UUID
    venue_id: UUID
    venue_name: str
    title: str
    kind: str
    genres: list[str]
    subgenres: list[str]
    starts_at: datetime
    municipality: str
    capacity: int
    card_cap: int


class TicketCreate(Schema):
    card_number: str = Field(min_length=8, max_length=12)
    offering_id: UUID
    children: int = Field(default=0, ge=0, le=30)
    channel: Literal[CHANNELS] = "box_office"  # type: ignore[valid-type]


class TicketPublic(BaseModel):
    ticket_id: UUID
    offering_id: UUID
    card_number: str
    children: int
    status: str
    starts_at: datetime
    channel: str


class TicketCancellation(Schema):
    reason: str | None = Field(default=None, max_length=500)


def application(request: Request) -> VenuesApplication:
    return request.app.state.application


App = Annotated[VenuesApplication, Depends(application)]
VenueStaff = Annotated[Principal, Depends(require_role("venue", "kaikukeskus"))]
Registrar = Annotated[Principal, Depends(require_role("venue", "ticket_agent"))]


async def run(func, *args, **kwargs):
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except RuleViolation as error:
        if error.status == 409:
            raise conflict(error.rule, str(error)) from None
        raise unprocessable(error.rule, str(error), error.field) from None
    except NotFound as error:
        raise not_found(error.what.capitalize(), str(error)) from None
    except Forbidden as error:
        raise Problem(403, "Forbidden", str(error), kind="not-yours") from None


def derived_id(request: Request, principal: Principal, kind: str) -> UUID:
    """New ids from the Idempotency-Key make a retried create find its first result."""
    key = idempotency_key(request)
    return uuid5(NAMESPACE_URL, f"/{kind}/{principal.key}/{key}") if key else uuid4()


@router.post("/venues", status_code=201, response_model=VenueCreated, tags=["venues"])
async def register_venue(body: VenueCreate, request: Request, app: App,
                         principal: VenueStaff) -> VenueCreated:
    if principal.role == "venue" and principal.organisation_id != body.organisation_id:
        raise Problem(403, "Forbidden", "A venue organisation registers only its own venues.",
                      kind="not-yours")
    venue = await run(
        app.register_venue, venue_id=derived_id(request, principal, "venues"),
        organisation_id=body.organisation_id, name=body.name, kind=body.kind,
        municipality=body.municipality, one_ticket_per_card=body.limits.one_ticket_per_card,
        max_open_reservations=body.limits.max_open_reservations,
        ticket_agents=body.limits.ticket_agents,
    )
    return VenueCreated(venue_id=venue.id)


@router.post("/venues/{venue_id}/offerings", status_code=201, response_model=OfferingCreated,
             tags=["offering"])
async def publish_offering(venue_id: UUID, body: OfferingCreate, request: Request, app: App,
                           principal: VenueStaff) -> OfferingCreated:
    offering = await run(
        app.publish_offering, offering_id=derived_id(request, principal, "offerings"),
        venue_id=venue_id, organisation_id=principal.organisation_id, role=principal.role,
        title=body.title, kind=body.kind, genres=body.genres, subgenres=body.subgenres,
        starts_at=body.starts_at, capacity=body.capacity, card_cap=body.card_cap,
    )
    return OfferingCreated(offering_id=offering.id)


@router.get("/offerings", response_model=list[OfferingPublic], tags=["offering"])
async def list_offerings(
    request: Request,
    genre: str | None = None,
    subgenre: str | None = None,
    municipality: str | None = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[OfferingPublic]:
    starts_from = (datetime.combine(from_, datetime.min.time(), HELSINKI) if from_ else None)
    rows = await read_models.list_offerings(
        request.app.state.pool, genre=genre, subgenre=subgenre, municipality=municipality,
        starts_from=starts_from, limit=limit, offset=offset,
    )
    return [OfferingPublic(**{k: row[k] for k in OfferingPublic.model_fields}) for row in rows]


@router.post("/tickets", status_code=201, response_model=TicketPublic, tags=["tickets"])
async def register_ticket(body: TicketCreate, request: Request, app: App,
                          principal: Registrar) -> TicketPublic:
    card_number = normalise_card_number(body.card_number)
    offering = await run(app.get_offering, body.offering_id)
    card = await known_card(request, card_number)
    event_day = offering.starts_at.astimezone(HELSINKI).date()
    if card["status"] == "closed":
        raise unprocessable("card-closed", f"Card {card_number} is closed.", "card_number")
    if not card["valid_from"] <= event_day <= card["valid_until"]:
        raise unprocessable(
            "card-not-valid-on-event-date",
            f"Card {card_number} is valid {card['valid_from']} – {card['valid_until']}, "
            f"not on the event date {event_day}.", "card_number")
    if body.children > card["children"]:
        raise unprocessable(
            "too-many-children",
            f"Card {card_number} covers at most {card['children']} children.", "children")
    ticket = await run(
        app.register_ticket, ticket_id=derived_id(request, principal, "tickets"),
        offering_id=body.offering_id, card_number=card_number, children=body.children,
        channel="ticket_agent" if principal.role == "ticket_agent" else body.channel,
        organisation_id=principal.organisation_id, role=principal.role, now=now(),
    )
    return ticket_public(ticket)


@router.get("/tickets/{ticket_id}", response_model=TicketPublic, tags=["tickets"])
async def get_ticket(ticket_id: UUID, app: App, principal: Registrar) -> TicketPublic:
    ticket = await run(app.get_ticket, ticket_id)
    venue = await run(app.get_venue, ticket.venue_id)
    if not venue.may_register_for(principal.organisation_id, principal.role):
        raise Problem(403, "Forbidden", "This ticket belongs to another venue.",
                      kind="not-yours")
    return ticket_public(ticket)


@router.post("/tickets/{ticket_id}/cancellation", response_model=TicketPublic,
             tags=["tickets"])
async def cancel_ticket(ticket_id: UUID, app: App, principal: Registrar,
                        body: TicketCancellation | None = None) -> TicketPublic:
    ticket = await run(app.cancel_ticket, ticket_id=ticket_id,
                       reason=body.reason if body else None, now=now(),
                       organisation_id=principal.organisation_id, role=principal.role)
    return ticket_public(ticket)


def ticket_public(ticket) -> TicketPublic:
    return TicketPublic(ticket_id=ticket.id, offering_id=ticket.offering_id,
                        card_number=ticket.card_number, children=ticket.children,
                        status=ticket.status, starts_at=ticket.starts_at,
                        channel=ticket.channel)


def normalise_card_number(raw: str) -> str:
    compact = raw.replace(" ", "").replace("-", "").upper()
    if len(compact) != 8 or not (compact[:3].isalpha() and compact[3:].isdigit()):
        raise unprocessable("card-number-format",
                            "A card number is three letters and five digits, e.g. KXA-12345.",
                            "card_number")
    return f"{compact[:3]}-{compact[3:]}"


async def known_card(request: Request, card_number: str):
    """The card as venues knows it from Kaikukanta's events; 422 if unknown."""
    pool = request.app.state.pool
    deadline = asyncio.get_running_loop().time() + CARD_ARRIVAL_GRACE_SECONDS
    while True:
        card = await read_models.card_validity(pool, card_number)
        if card is not None or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    if card is None:
        raise unprocessable("card-unknown",
                            f"Card {card_number} is not in Kaikukanta. Check the number.",
                            "card_number")
    return card
