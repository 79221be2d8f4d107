"""Venues HTTP API: venues, offering, ticket registration and cancellation,
swimming-hall series, library fees and feedback averages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kaiku_shared import taxonomy
from kaiku_shared.kernel import card_numbers
from kaiku_shared.auth import Principal
from kaiku_shared.http import MAX_OFFSET, Problem, idempotency_key, require_role, unprocessable
from kaiku_shared.kernel.errors import RuleViolation
from kaiku_shared.usecases import derived_id, run_use_case, wait_for

from ..adapters import queries
from ..adapters.mobile_card import MobileCardKeys, MobileCardRefused, card_number_from
from ..application.app import CardNotKnownYet, VenuesApplication
from ..domain.model import (
    CHANNELS,
    COMPANIONS,
    DEFAULT_TIMEZONE,
    EXCLUDABLE_PRODUCTIONS,
    LIBRARY_FEE_TYPES,
    OFFERING_KINDS,
    PRODUCTIONS,
    VENUE_KINDS,
    CardStanding,
    card_cap_guideline,
    Ticket,
)

HELSINKI = ZoneInfo("Europe/Helsinki")
# A mobile-card token is about 450 characters; anything far longer is not one.
MAX_MOBILE_CARD_TOKEN = 4096
# A card issued a moment ago may not have reached venues yet: wait this long.
CARD_ARRIVAL_GRACE_SECONDS = 1.5

router = APIRouter()


class OfferingWriters:
    """One registration at a time per offering inside this process.

    Correctness never depends on it: optimistic concurrency on the offering
    decides between processes. It only keeps this process's threads from
    racing each other for one hot offering (a sold-out première), so the
    conflicts left are between processes and no request runs out of retries.
    """

    def __init__(self) -> None:
        self._locks: dict[UUID, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, offering_id: UUID) -> AsyncIterator[None]:
        lock, users = self._locks.get(offering_id, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[offering_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[offering_id]
            if users <= 1:
                del self._locks[offering_id]
            else:
                self._locks[offering_id] = (lock, users - 1)


offering_writers = OfferingWriters()


def now() -> datetime:
    return datetime.now(UTC)


# What each part of a venue's contact must look like, and what to say when not.
CONTACT_SHAPES = {
    "phone": (re.compile(r"[+0-9 ()\-]+"),
              "A phone number has only digits, spaces, +, - and brackets"),
    "email": (re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
              "An e-mail address looks like liput@example.fi"),
    "url": (re.compile(r"https?://\S+"), "A web page starts with https:// or http://"),
}


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# A genre or subgenre code, e.g. "music" or "jazz"; anything longer is not one.
TaxonomyCode = Annotated[str, Field(max_length=100)]


class Limits(Schema):
    one_ticket_per_card: bool = False
    max_open_reservations: int | None = Field(default=None, ge=1, le=100)
    ticket_agents: list[UUID] = Field(default_factory=list, max_length=50)
    weekends_excluded: bool = False
    excluded_productions: list[Literal[EXCLUDABLE_PRODUCTIONS]] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=3)
    # Swimming halls: visits per card per year (the guideline: at least 30).
    series_visits_per_year: int | None = Field(default=None, ge=0, le=10_000)
    # Libraries: the most the card covers per card per year, in cents; none = no cap.
    library_fee_cap_cents: int | None = Field(default=None, ge=0, le=10_000_000)


class VenueContact(Schema):
    """The venue organisation's public box-office contact (never a person's own).
    ``box_office``: where and when the box office is open, in words."""

    phone: str | None = Field(default=None, max_length=40,
                              description="digits, spaces, +, - and brackets")
    email: str | None = Field(default=None, max_length=200,
                              description="the box office's address, e.g. liput@example.fi")
    url: str | None = Field(default=None, max_length=300,
                            description="starts with https:// or http://")
    box_office: str | None = Field(default=None, max_length=300)

    @field_validator("phone", "email", "url")
    @classmethod
    def _readable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not CONTACT_SHAPES[info.field_name][0].fullmatch(value):
            # A custom error: the message as written, without pydantic's prefix.
            raise PydanticCustomError("contact", CONTACT_SHAPES[info.field_name][1])
        return value


class VenueCreate(Schema):
    organisation_id: UUID
    name: str = Field(min_length=1, max_length=200)
    kind: Literal[VENUE_KINDS]  # type: ignore[valid-type]
    municipality: str = Field(min_length=1, max_length=100)
    contact: VenueContact = Field(default_factory=VenueContact)
    timezone: str = Field(default=DEFAULT_TIMEZONE, max_length=60)
    limits: Limits = Field(default_factory=Limits)


class VenuePublic(BaseModel):
    venue_id: UUID
    organisation_id: UUID
    name: str
    kind: str
    municipality: str
    timezone: str
    contact: dict[str, str]
    limits: dict[str, object]


class LimitsChange(Schema):
    """The limits to change; a limit left out stays as it is (null removes an
    optional one)."""

    one_ticket_per_card: bool | None = None
    max_open_reservations: int | None = Field(default=None, ge=1, le=100)
    weekends_excluded: bool | None = None
    excluded_productions: list[Literal[EXCLUDABLE_PRODUCTIONS]] | None = Field(  # type: ignore[valid-type]
        default=None, max_length=3)
    series_visits_per_year: int | None = Field(default=None, ge=0, le=10_000)
    library_fee_cap_cents: int | None = Field(default=None, ge=0, le=10_000_000)


class VenueChange(Schema):
    """What to change; anything left out stays. ``contact`` is the whole contact
    after the change; ``ticket_agents`` the whole list."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    contact: VenueContact | None = None
    limits: LimitsChange | None = None
    ticket_agents: list[UUID] | None = Field(default=None, max_length=50)


# Where a venue's changed limits count: never against a ticket already held.
LIMITS_APPLY_TO = "offerings-published-from-now-on"


class VenueChanged(VenuePublic):
    changed: list[str]
    limits_apply_to: str | None = Field(
        default=None, description=f"``{LIMITS_APPLY_TO}`` when limits changed: offerings "
                                  "already published keep theirs, so no ticket breaks.")


class OfferingTicket(BaseModel):
    ticket_id: UUID
    card_number: str
    children: int
    status: str
    registered_at: datetime


class VenueCreated(BaseModel):
    venue_id: UUID


class OfferingCreate(Schema):
    title: str = Field(min_length=1, max_length=300)
    genres: list[TaxonomyCode] = Field(min_length=1, max_length=5)
    subgenres: list[TaxonomyCode] = Field(default_factory=list, max_length=10)
    starts_at: AwareDatetime
    capacity: int = Field(ge=1, le=1_000_000)
    card_cap: int = Field(ge=0, le=1_000_000)
    kind: Literal[OFFERING_KINDS] = "performance"  # type: ignore[valid-type]
    production: Literal[PRODUCTIONS] = "own"  # type: ignore[valid-type]
    # When card tickets become obtainable; none = at once. At least 7 days before.
    sales_opens_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _in_the_national_taxonomy(self) -> OfferingCreate:
        taxonomy.check_choice(self.genres, self.subgenres)
        return self


class OfferingChange(Schema):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    starts_at: AwareDatetime | None = None
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    card_cap: int | None = Field(default=None, ge=0, le=1_000_000)
    sales_opens_at: AwareDatetime | None = None


class OfferingCancellation(Schema):
    reason: str | None = Field(default=None, max_length=500)


class OfferingCancelled(BaseModel):
    offering_id: UUID
    status: str
    tickets_cancelled: int


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
    status: str = "published"
    production: str = "own"
    venue_kind: str | None = None
    sales_opens_at: datetime | None = None
    # The rule that keeps the card from covering it at all, if any.
    card_tickets_excluded: str | None = None
    limits: dict[str, object] = Field(default_factory=dict)
    contact: dict[str, str] = Field(default_factory=dict)


class OfferingDetail(OfferingPublic):
    card_places_left: int


class TicketCreate(Schema):
    """The card is given as exactly one of ``card_number`` or ``mobile_card_token``."""

    card_number: str | None = Field(
        default=None, min_length=8, max_length=12,
        description="The card number as typed, e.g. KXA-12345. Send this or "
                    "mobile_card_token, not both.")
    mobile_card_token: str | None = Field(
        default=None, min_length=1, max_length=MAX_MOBILE_CARD_TOKEN,
        description="The token in the holder's OmaKaiku mobile-card QR code (omakaiku "
                    "`GET /me/card` → `token`), in place of card_number. Verified offline "
                    "with omakaiku's published keys; then the card number inside is "
                    "checked like a typed one and recorded. The token is never stored.")
    offering_id: UUID
    children: int = Field(default=0, ge=0, le=30)
    channel: Literal[CHANNELS] = "box_office"  # type: ignore[valid-type]
    # The holder's assistant or interpreter, who also gets a free ticket.
    companion: Literal[COMPANIONS] | None = None  # type: ignore[valid-type]


class TicketPublic(BaseModel):
    ticket_id: UUID
    offering_id: UUID
    venue_id: UUID
    card_number: str
    children: int
    companion: str | None = None
    status: str
    starts_at: datetime
    channel: str


class SwimmingVisitCreate(Schema):
    card_number: str = Field(min_length=8, max_length=12)
    children: int = Field(default=0, ge=0, le=30)


class SwimmingVisitRegistered(BaseModel):
    venue_id: UUID
    card_number: str
    year: int
    visits_used: int
    visits_per_year: int | None
    visits_left: int | None


class LibraryFeeCreate(Schema):
    card_number: str = Field(min_length=8, max_length=12)
    fee_type: Literal[LIBRARY_FEE_TYPES]  # type: ignore[valid-type]
    amount_cents: int = Field(ge=1, le=1_000_000)


class LibraryFeeCovered(BaseModel):
    venue_id: UUID
    card_number: str
    year: int
    year_total_cents: int
    cap_cents: int | None
    left_cents: int | None


class FeedbackAverages(BaseModel):
    responses: int
    accessibility: float | None
    meaning: float | None
    interest: float | None


class OfferingFeedback(FeedbackAverages):
    offering_id: UUID
    title: str | None
    starts_at: datetime | None


class WithheldFeedback(BaseModel):
    """An offering with answers whose averages are not shown (yet): its feedback
    window is open (``window-open``, until ``releases_at``), or it has fewer than
    ``minimum_responses`` answers (``too-few-responses``). No count is given."""

    offering_id: UUID
    title: str | None
    starts_at: datetime | None
    reason: Literal["window-open", "too-few-responses"]
    releases_at: datetime | None


class VenueFeedback(BaseModel):
    venue_id: UUID
    minimum_responses: int
    window_days: int = Field(description="Holders give feedback until this many days "
                                         "after an offering starts; its averages are "
                                         "released a day after that.")
    overall: FeedbackAverages = Field(description="Over exactly the offerings listed.")
    offerings: list[OfferingFeedback]
    withheld: list[WithheldFeedback]


class TicketCancellation(Schema):
    reason: str | None = Field(default=None, max_length=500)


async def application(request: Request) -> VenuesApplication:
    return request.app.state.application


App = Annotated[VenuesApplication, Depends(application)]
VenueStaff = Annotated[Principal, Depends(require_role("venue", "kaikukeskus"))]
Registrar = Annotated[Principal, Depends(require_role("venue", "ticket_agent"))]
VenueLister = Annotated[Principal, Depends(require_role("venue", "ticket_agent",
                                                        "kaikukeskus"))]


@router.post("/venues", status_code=201, response_model=VenueCreated, tags=["venues"])
async def register_venue(body: VenueCreate, request: Request, app: App,
                         principal: VenueStaff) -> VenueCreated:
    if principal.role == "venue" and principal.organisation_id != body.organisation_id:
        raise Problem(403, "Forbidden", "A venue organisation registers only its own venues.",
                      kind="not-yours")
    venue = await run_use_case(
        app.register_venue, venue_id=derived_id(request, principal, "venues"),
        organisation_id=body.organisation_id, name=body.name, kind=body.kind,
        municipality=body.municipality, one_ticket_per_card=body.limits.one_ticket_per_card,
        max_open_reservations=body.limits.max_open_reservations,
        ticket_agents=body.limits.ticket_agents,
        contact=body.contact.model_dump(exclude_none=True),
        weekends_excluded=body.limits.weekends_excluded,
        excluded_productions=list(body.limits.excluded_productions),
        series_visits_per_year=body.limits.series_visits_per_year,
        library_fee_cap_cents=body.limits.library_fee_cap_cents, timezone=body.timezone,
    )
    return VenueCreated(venue_id=venue.id)


@router.get("/venues", response_model=list[VenuePublic], tags=["venues"])
async def list_venues(
    request: Request,
    response: Response,
    principal: VenueLister,
    organisation_id: Annotated[UUID | None, Query(
        description="the venue organisation whose venues to list")] = None,
    agent_organisation_id: Annotated[UUID | None, Query(
        description="the ticket agent organisation the venues list in ticket_agents")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[VenuePublic]:
    """Venues by organisation, or those a ticket agent acts for, in name order.

    A venue organisation sees its own venues (``organisation_id`` defaults to
    its own; another's is 403); a ticket agent the venues that list it
    (``agent_organisation_id`` defaults to its own; another's is 403);
    Kaikukeskus any, by either filter or none. ``X-Total-Count`` carries how
    many match; ``Link`` the next page. Read from a read model: a venue
    registered a moment ago appears within moments.
    """
    if principal.role != "kaikukeskus" and principal.organisation_id is None:
        raise Problem(403, "Forbidden", "The token names no organisation.", kind="not-yours")
    if principal.role == "venue":
        if organisation_id is not None and organisation_id != principal.organisation_id:
            raise Problem(403, "Forbidden", "A venue organisation lists only its own venues.",
                          kind="not-yours")
        organisation_id = principal.organisation_id
    elif principal.role == "ticket_agent":
        if agent_organisation_id is not None \
                and agent_organisation_id != principal.organisation_id:
            raise Problem(403, "Forbidden", "A ticket agent lists only the venues it acts "
                          "for.", kind="not-yours")
        agent_organisation_id = principal.organisation_id
    rows, total = await queries.list_venues(
        request.app.state.pool, organisation_id=organisation_id,
        agent_organisation_id=agent_organisation_id, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    if offset + len(rows) < total:
        next_url = request.url.include_query_params(offset=offset + limit, limit=limit)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return [VenuePublic(venue_id=row["venue_id"], organisation_id=row["organisation_id"],
                        name=row["name"], kind=row["kind"], municipality=row["municipality"],
                        timezone=row["timezone"], contact=_json(row["contact"]),
                        limits=_json(row["limits"])) for row in rows]


@router.get("/venues/{venue_id}", response_model=VenuePublic, tags=["venues"])
async def get_venue(venue_id: UUID, app: App) -> VenuePublic:
    """A venue's public profile: kind, contact and the limits it chose."""
    return venue_public(await run_use_case(app.get_venue, venue_id))


@router.patch("/venues/{venue_id}", response_model=VenueChanged, tags=["venues"])
async def change_venue(venue_id: UUID, body: VenueChange, app: App,
                       principal: VenueStaff) -> VenueChanged:
    """Change a venue's name, public contact, limits and ticket agents (that
    venue's organisation, or Kaikukeskus): one event per part changed.

    ``ticket_agents`` is the whole list after the change: an agent left out
    can no longer register tickets for this venue (403 from its next request).
    Changed limits apply to offerings published from now on (``limits_apply_to``)."""
    fields = body.model_dump(exclude_unset=True)
    contact = body.contact.model_dump(exclude_none=True) if body.contact else None
    limits = fields.get("limits")
    if not fields or limits == {}:
        # Who asks comes first: a stranger learns nothing from a 422.
        await run_use_case(app.venue_managed_by, venue_id, principal.organisation_id,
                           principal.role)
        raise unprocessable("nothing-to-change", "Send at least one of name, contact, limits "
                            "or ticket_agents; limits must name a limit to change.",
                            "limits" if fields else None)
    venue, changed = await run_use_case(
        app.change_venue, venue_id, principal.organisation_id, principal.role,
        name=body.name, contact=contact, limits=limits,
        ticket_agents=None if body.ticket_agents is None else list(body.ticket_agents))
    return VenueChanged(**venue_public(venue).model_dump(), changed=changed,
                        limits_apply_to=LIMITS_APPLY_TO if "limits" in changed else None)


def venue_public(venue: Any) -> VenuePublic:
    return VenuePublic(venue_id=venue.id, organisation_id=venue.organisation_id,
                       name=venue.name, kind=venue.kind, municipality=venue.municipality,
                       timezone=venue.timezone, contact=venue.contact,
                       limits={**venue.limits, "ticket_agents": [
                           str(a) for a in venue.ticket_agents]})


@router.post("/venues/{venue_id}/offerings", status_code=201, response_model=OfferingCreated,
             tags=["offering"])
async def publish_offering(venue_id: UUID, body: OfferingCreate, request: Request, app: App,
                           principal: VenueStaff) -> OfferingCreated:
    offering = await run_use_case(
        app.publish_offering, offering_id=derived_id(request, principal, "offerings"),
        venue_id=venue_id, organisation_id=principal.organisation_id, role=principal.role,
        title=body.title, kind=body.kind, genres=body.genres, subgenres=body.subgenres,
        starts_at=body.starts_at, capacity=body.capacity, card_cap=body.card_cap,
        production=body.production, sales_opens_at=body.sales_opens_at, now=now(),
    )
    return OfferingCreated(offering_id=offering.id)


class CardCapGuideline(Schema):
    capacity: int
    kind: str
    minimum_card_cap: int
    # Which part of the guideline gave the minimum: course, share or mass-event.
    rule: Literal["course", "share", "mass-event"]


@router.get("/offerings/card-cap-minimum", response_model=CardCapGuideline, tags=["offering"])
async def card_cap_minimum(
    principal: VenueStaff,
    capacity: Annotated[int, Query(ge=1, le=1_000_000)],
    kind: Annotated[Literal[OFFERING_KINDS], Query()] = "performance",  # type: ignore[valid-type]
) -> CardCapGuideline:
    """The smallest card cap the guideline allows for an offering of this size and
    kind: the rule lives here only, and the web's form hint asks for it."""
    minimum, rule = card_cap_guideline(capacity, kind)
    return CardCapGuideline(capacity=capacity, kind=kind, minimum_card_cap=minimum, rule=rule)


@router.get("/offerings/{offering_id}", response_model=OfferingDetail, tags=["offering"])
async def get_offering(offering_id: UUID, app: App) -> OfferingDetail:
    """One offering as it is now, with the card places left (read from the write side)."""
    offering = await run_use_case(app.get_offering, offering_id)
    return offering_detail(offering)


@router.get("/offerings/{offering_id}/tickets", response_model=list[OfferingTicket],
            tags=["tickets"])
async def offering_tickets(
    offering_id: UUID, request: Request, app: App, principal: Registrar,
    status: Annotated[Literal["registered", "cancelled"] | None, Query(
        description="only tickets in this status")] = None,
) -> list[OfferingTicket]:
    """The box office's list: each card ticket of the offering with its card
    number, children along, status and registration time, in registration
    order (that venue's staff and its ticket agents). Read from a read model: a
    ticket registered or cancelled a moment ago shows within moments."""
    offering = await run_use_case(app.get_offering, offering_id)
    _may_register(await run_use_case(app.get_venue, offering.venue_id), principal)
    rows = await queries.offering_tickets(request.app.state.pool, offering_id, status)
    return [OfferingTicket(**dict(row)) for row in rows]


@router.patch("/offerings/{offering_id}", response_model=OfferingDetail, tags=["offering"])
async def change_offering(offering_id: UUID, body: OfferingChange, app: App,
                          principal: VenueStaff) -> OfferingDetail:
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise unprocessable("nothing-to-change", "Send at least one field to change.")
    offering = await run_use_case(app.change_offering, offering_id=offering_id,
                         organisation_id=principal.organisation_id, role=principal.role,
                         now=now(), **changes)
    return offering_detail(offering)


@router.post("/offerings/{offering_id}/cancellation", response_model=OfferingCancelled,
             tags=["offering"])
async def cancel_offering(offering_id: UUID, app: App, principal: VenueStaff,
                          body: OfferingCancellation | None = None) -> OfferingCancelled:
    """Cancel the offering and every ticket on it; each holder is told by TicketCancelled."""
    offering, tickets = await run_use_case(
        app.cancel_offering, offering_id=offering_id,
        organisation_id=principal.organisation_id, role=principal.role,
        reason=body.reason if body else None, now=now())
    return OfferingCancelled(offering_id=offering.id, status=offering.status,
                             tickets_cancelled=len(tickets))


def offering_detail(offering) -> OfferingDetail:
    return OfferingDetail(
        offering_id=offering.id, venue_id=offering.venue_id, venue_name=offering.venue_name,
        title=offering.title, kind=offering.kind, genres=offering.genres,
        subgenres=offering.subgenres, starts_at=offering.starts_at,
        municipality=offering.municipality, capacity=offering.capacity,
        card_cap=offering.card_cap, status=offering.status, production=offering.production,
        venue_kind=offering.venue_kind, sales_opens_at=offering.sales_opens_at,
        card_tickets_excluded=offering.card_tickets_excluded, limits=offering.limits,
        contact=offering.contact,
        card_places_left=max(0, offering.card_cap - offering.places_taken))


@router.get("/offerings", response_model=list[OfferingPublic], tags=["offering"])
async def list_offerings(
    request: Request,
    response: Response,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    subgenre: Annotated[str | None, Query(max_length=100)] = None,
    municipality: Annotated[str | None, Query(max_length=100)] = None,
    venue_id: UUID | None = None,
    from_: Annotated[date | None, Query(alias="from", ge=date(2000, 1, 1),
                                         le=date(2200, 12, 31))] = None,
    to: Annotated[date | None, Query(description="last start date, inclusive",
                                     ge=date(2000, 1, 1), le=date(2200, 12, 31))] = None,
    include_cancelled: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[OfferingPublic]:
    """The published offering, in start order, one page at a time.

    ``X-Total-Count`` carries how many match the filters; ``Link`` the next page.
    """
    if genre and not taxonomy.is_valid_genre(genre):
        raise unprocessable("unknown-genre", f"Unknown genre {genre!r}.", "genre")
    starts_from = (datetime.combine(from_, datetime.min.time(), HELSINKI) if from_ else None)
    starts_before = (datetime.combine(to + timedelta(days=1), datetime.min.time(), HELSINKI)
                     if to else None)
    rows, total = await queries.list_offerings(
        request.app.state.pool, genre=genre, subgenre=subgenre, municipality=municipality,
        starts_from=starts_from, starts_before=starts_before, venue_id=venue_id,
        include_cancelled=include_cancelled, limit=limit, offset=offset,
    )
    response.headers["X-Total-Count"] = str(total)
    if offset + len(rows) < total:
        next_url = request.url.include_query_params(offset=offset + limit, limit=limit)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return [offering_public(row) for row in rows]


def offering_public(row) -> OfferingPublic:
    values = {k: row[k] for k in OfferingPublic.model_fields if k not in ("limits", "contact")}
    return OfferingPublic(**values, limits=_json(row["limits"]), contact=_json(row["contact"]))


def _json(value) -> dict:
    """jsonb arrives as text unless the pool has a codec for it."""
    if isinstance(value, str):
        return json.loads(value or "{}")
    return dict(value or {})


@router.post("/tickets", status_code=201, response_model=TicketPublic, tags=["tickets"])
async def register_ticket(body: TicketCreate, request: Request, app: App,
                          principal: Registrar) -> TicketPublic:
    card_number = await ticket_card_number(request, body)
    pool = request.app.state.pool
    card = await queries.card_standing(pool, card_number)
    ticket_id = derived_id(request, principal, "tickets")

    async def register(card: CardStanding | None) -> Ticket:
        async with offering_writers.one_at_a_time(body.offering_id):
            return await run_use_case(
                app.register_ticket, ticket_id=ticket_id, offering_id=body.offering_id,
                card_number=card_number, card=card, children=body.children,
                channel="ticket_agent" if principal.role == "ticket_agent" else body.channel,
                organisation_id=principal.organisation_id, role=principal.role, now=now(),
                companion=body.companion, may_be_retry=idempotency_key(request) is not None)

    try:
        ticket = await register(card)
    except CardNotKnownYet:
        # Issued a moment ago, perhaps: wait briefly for Kaikukanta's event.
        ticket = await register(await known_card(request, card_number))
    return ticket_public(ticket)


async def ticket_card_number(request: Request, body: TicketCreate) -> str:
    """The card number typed, or the one inside a verified mobile-card token."""
    if (body.card_number is None) == (body.mobile_card_token is None):
        raise unprocessable(
            "card-number-or-mobile-card",
            "Send exactly one of card_number (the number typed) or mobile_card_token (the "
            "scanned OmaKaiku mobile card), not both and not neither.",
            "card_number" if body.card_number is None else "mobile_card_token")
    if body.card_number is not None:
        return normalise_card_number(body.card_number)
    keys: MobileCardKeys = request.app.state.mobile_card_keys
    try:
        number = await card_number_from(body.mobile_card_token or "", keys)
    except MobileCardRefused as refusal:
        raise unprocessable(refusal.rule, str(refusal), "mobile_card_token") from None
    return normalise_card_number(number)


async def valid_card(request: Request, card_number: str, day: date,
                     children: int) -> CardStanding:
    """The card is known, open, valid on ``day`` and covers the children: else 422."""
    card = await known_card(request, card_number)
    try:
        card.check(day, children)
    except RuleViolation as error:
        raise unprocessable(error.rule, str(error), error.field) from None
    return card


@router.get("/tickets/{ticket_id}", response_model=TicketPublic, tags=["tickets"])
async def get_ticket(ticket_id: UUID, app: App, principal: Registrar) -> TicketPublic:
    ticket = await run_use_case(app.get_ticket, ticket_id)
    venue = await run_use_case(app.get_venue, ticket.venue_id)
    if not venue.may_register_for(principal.organisation_id, principal.role):
        raise Problem(403, "Forbidden", "This ticket belongs to another venue.",
                      kind="not-yours")
    return ticket_public(ticket)


@router.post("/tickets/{ticket_id}/cancellation", response_model=TicketPublic,
             tags=["tickets"])
async def cancel_ticket(ticket_id: UUID, app: App, principal: Registrar,
                        body: TicketCancellation | None = None) -> TicketPublic:
    ticket = await run_use_case(app.cancel_ticket, ticket_id=ticket_id,
                       reason=body.reason if body else None, now=now(),
                       organisation_id=principal.organisation_id, role=principal.role)
    return ticket_public(ticket)


def ticket_public(ticket) -> TicketPublic:
    return TicketPublic(ticket_id=ticket.id, offering_id=ticket.offering_id,
                        venue_id=ticket.venue_id, card_number=ticket.card_number,
                        children=ticket.children, companion=ticket.companion,
                        status=ticket.status, starts_at=ticket.starts_at,
                        channel=ticket.channel)


# --- swimming halls and libraries -----------------------------------------------------


async def _venue_today(app: VenuesApplication, venue_id: UUID) -> tuple[object, date]:
    venue = await run_use_case(app.get_venue, venue_id)
    return venue, now().astimezone(ZoneInfo(venue.timezone)).date()


def _may_register(venue, principal: Principal) -> None:
    if not venue.may_register_for(principal.organisation_id, principal.role):
        raise Problem(403, "Forbidden", "Only the venue's own staff or its ticket agents may "
                      "do this for the venue.", kind="not-yours")


@router.post("/venues/{venue_id}/swimming-visits", status_code=201,
             response_model=SwimmingVisitRegistered, tags=["swimming halls"])
async def register_swimming_visit(venue_id: UUID, body: SwimmingVisitCreate,
                                  request: Request, app: App,
                                  principal: Registrar) -> SwimmingVisitRegistered:
    """One visit on the card's yearly series; children along use visits too."""
    card_number = normalise_card_number(body.card_number)
    venue, today = await _venue_today(app, venue_id)
    _may_register(venue, principal)  # who asks comes before what the card is
    await valid_card(request, card_number, today, body.children)
    series = await run_use_case(
        app.register_swimming_visit, visit_id=derived_id(request, principal, "visits"),
        venue_id=venue_id, card_number=card_number, children=body.children,
        organisation_id=principal.organisation_id, role=principal.role, now=now())
    return SwimmingVisitRegistered(
        venue_id=venue_id, card_number=card_number, year=series.year,
        visits_used=series.visits_used, visits_per_year=series.visits_per_year,
        visits_left=series.visits_left)


@router.post("/venues/{venue_id}/library-fees", status_code=201,
             response_model=LibraryFeeCovered, tags=["libraries"])
async def cover_library_fee(venue_id: UUID, body: LibraryFeeCreate, request: Request,
                            app: App, principal: Registrar) -> LibraryFeeCovered:
    """A fee the card covers (interlibrary loan, late fee, copying), within the cap."""
    card_number = normalise_card_number(body.card_number)
    venue, today = await _venue_today(app, venue_id)
    _may_register(venue, principal)  # who asks comes before what the card is
    await valid_card(request, card_number, today, 0)
    fees = await run_use_case(
        app.cover_library_fee, fee_id=derived_id(request, principal, "library-fees"),
        venue_id=venue_id, card_number=card_number, fee_type=body.fee_type,
        amount_cents=body.amount_cents, organisation_id=principal.organisation_id,
        role=principal.role, now=now())
    return LibraryFeeCovered(
        venue_id=venue_id, card_number=card_number, year=fees.year,
        year_total_cents=fees.total_cents, cap_cents=fees.cap_cents,
        left_cents=None if fees.cap_cents is None else fees.cap_cents - fees.total_cents)


# --- feedback -------------------------------------------------------------------------


@router.get("/venues/{venue_id}/feedback", response_model=VenueFeedback, tags=["feedback"])
async def venue_feedback(venue_id: UUID, request: Request, app: App,
                         principal: VenueStaff) -> VenueFeedback:
    """Averages per category, per offering whose feedback window has closed and
    that has enough answers, and overall over exactly those offerings; the others
    are listed as withheld, without figures."""
    await run_use_case(app.venue_managed_by, venue_id, principal.organisation_id, principal.role)
    return VenueFeedback(**await queries.feedback_averages(request.app.state.pool,
                                                                venue_id))


def normalise_card_number(raw: str) -> str:
    try:
        return card_numbers.normalise_card_number(raw)
    except card_numbers.CardNumberFormatError as error:
        raise unprocessable("card-number-format", str(error), "card_number") from None


async def known_card(request: Request, card_number: str) -> CardStanding:
    """The card as venues knows it from Kaikukanta's events; 422 if unknown."""
    pool = request.app.state.pool
    card = await wait_for(lambda: queries.card_standing(pool, card_number),
                          within=CARD_ARRIVAL_GRACE_SECONDS)
    if card is None:
        raise unprocessable("card-unknown",
                            f"Card {card_number} is not in Kaikukanta. Check the number.",
                            "card_number")
    return card
