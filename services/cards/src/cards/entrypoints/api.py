"""Kaikukanta HTTP API: translates JSON to use cases and errors to problem+json."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Literal
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from kaiku_shared.auth import Principal
from kaiku_shared.http import (
    CurrentPrincipal,
    Problem,
    conflict,
    idempotency_key,
    not_found,
    require_role,
    unprocessable,
)

from ..adapters import statistics
from ..application.app import CardsApplication, Forbidden, NotFound, RuleViolation
from ..domain.model import Card

HELSINKI = ZoneInfo("Europe/Helsinki")
CONFLICT_RULES = {"card-closed"}

router = APIRouter()


def today() -> date:
    return datetime.now(HELSINKI).date()


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrganisationCreate(Schema):
    kind: Literal["distributor", "venue", "ticket_agent"]
    name: str = Field(min_length=1, max_length=200)
    municipality: str = Field(min_length=1, max_length=100)


class OrganisationCreated(BaseModel):
    organisation_id: UUID


class OrganisationPublic(BaseModel):
    organisation_id: UUID
    kind: str
    name: str
    municipality: str


class CardCreate(Schema):
    birth_year: int = Field(ge=1900, le=2100)
    postal_code: str = Field(min_length=5, max_length=6)
    municipality: str = Field(min_length=1, max_length=100)
    children: int = Field(ge=0, le=30, description="own or household children under 18")
    valid_until: date | None = None
    life_satisfaction: int | None = Field(default=None, ge=0, le=10)
    community: bool = False


class CardPublic(BaseModel):
    card_number: str
    valid_from: date
    valid_until: date
    children: int
    municipality: str
    region: str
    status: str
    community: bool
    birth_year: int
    postal_code: str
    issuer_organisation_id: UUID


class CardForVenue(BaseModel):
    """What a venue or ticket agent may see of a card."""

    card_number: str
    valid_until: date
    status: str
    children: int


class CardRenewal(Schema):
    valid_until: date | None = None
    life_satisfaction: int | None = Field(default=None, ge=0, le=10)
    wellbeing_impact: int | None = Field(default=None, ge=0, le=10)


class CardChange(Schema):
    children: int | None = Field(default=None, ge=0, le=30)
    postal_code: str | None = Field(default=None, min_length=5, max_length=6)
    municipality: str | None = Field(default=None, min_length=1, max_length=100)


class CardClosure(Schema):
    reason: Literal["lost", "moved", "misuse", "expired", "holder_request", "other"]


def application(request: Request) -> CardsApplication:
    return request.app.state.application


App = Annotated[CardsApplication, Depends(application)]
Kaikukeskus = Annotated[Principal, Depends(require_role("kaikukeskus"))]
Distributor = Annotated[Principal, Depends(require_role("distributor"))]
DistributorOrCentre = Annotated[Principal, Depends(require_role("distributor", "kaikukeskus"))]
Staff = Annotated[Principal, Depends(require_role("kaikukeskus", "distributor", "venue",
                                                  "ticket_agent"))]


async def run(func, *args, **kwargs):
    """Run a use case in a thread and translate its errors to problems."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except RuleViolation as error:
        if error.rule in CONFLICT_RULES:
            raise conflict(error.rule, str(error)) from None
        raise unprocessable(error.rule, str(error), error.field) from None
    except NotFound as error:
        raise not_found(error.what.capitalize(), str(error)) from None
    except Forbidden as error:
        raise Problem(403, "Forbidden", str(error), kind="not-yours") from None


def card_public(card: Card) -> CardPublic:
    return CardPublic(
        card_number=card.card_number, valid_from=card.valid_from,
        valid_until=card.valid_until, children=card.children,
        municipality=card.municipality, region=card.region, status=card.status,
        community=card.community, birth_year=card.birth_year,
        postal_code=card.postal_code, issuer_organisation_id=card.issuer_organisation_id,
    )


@router.post("/organisations", status_code=201, response_model=OrganisationCreated,
             tags=["organisations"])
async def register_organisation(body: OrganisationCreate, request: Request, app: App,
                                principal: Kaikukeskus) -> OrganisationCreated:
    key = idempotency_key(request)
    organisation_id = (uuid5(NAMESPACE_URL, f"/organisations/{principal.key}/{key}") if key
                       else uuid4())
    organisation = await run(app.register_organisation, organisation_id, body.kind,
                             body.name, body.municipality)
    return OrganisationCreated(organisation_id=organisation.id)


@router.get("/organisations/{organisation_id}", response_model=OrganisationPublic,
            tags=["organisations"])
async def get_organisation(organisation_id: UUID, app: App, principal: Staff
                           ) -> OrganisationPublic:
    organisation = await run(app.get_organisation, organisation_id)
    return OrganisationPublic(organisation_id=organisation.id, kind=organisation.kind,
                              name=organisation.name, municipality=organisation.municipality)


@router.post("/cards", status_code=201, response_model=CardPublic, tags=["cards"])
async def issue_card(body: CardCreate, request: Request, app: App,
                     principal: Distributor) -> CardPublic:
    card = await run(
        app.issue_card, issuer_organisation_id=principal.organisation_id, today=today(),
        birth_year=body.birth_year, postal_code=body.postal_code,
        municipality=body.municipality, children=body.children,
        valid_until=body.valid_until, life_satisfaction=body.life_satisfaction,
        community=body.community, issue_key=idempotency_key(request),
    )
    return card_public(card)


@router.get("/cards/{card_number}", response_model=CardPublic | CardForVenue, tags=["cards"])
async def get_card(card_number: str, app: App, principal: Staff) -> CardPublic | CardForVenue:
    card = await run(app.get_card, card_number)
    if principal.role in ("venue", "ticket_agent"):
        return CardForVenue(card_number=card.card_number, valid_until=card.valid_until,
                            status=card.status, children=card.children)
    if principal.role == "distributor" and card.issuer_organisation_id != principal.organisation_id:
        raise Problem(403, "Forbidden", "This card was issued by another distributor.",
                      kind="not-yours")
    return card_public(card)


@router.post("/cards/{card_number}/renewal", response_model=CardPublic, tags=["cards"])
async def renew_card(card_number: str, body: CardRenewal, app: App,
                     principal: Distributor) -> CardPublic:
    card = await run(app.renew_card, card_number, principal.organisation_id, today=today(),
                     valid_until=body.valid_until, life_satisfaction=body.life_satisfaction,
                     wellbeing_impact=body.wellbeing_impact)
    return card_public(card)


@router.patch("/cards/{card_number}", response_model=CardPublic, tags=["cards"])
async def change_card(card_number: str, body: CardChange, app: App,
                      principal: Distributor) -> CardPublic:
    card = await run(app.change_card, card_number, principal.organisation_id,
                     children=body.children, postal_code=body.postal_code,
                     municipality=body.municipality)
    return card_public(card)


@router.post("/cards/{card_number}/closure", response_model=CardPublic, tags=["cards"])
async def close_card(card_number: str, body: CardClosure, app: App,
                     principal: DistributorOrCentre) -> CardPublic:
    organisation = None if principal.role == "kaikukeskus" else principal.organisation_id
    card = await run(app.close_card, card_number, reason=body.reason,
                     organisation_id=organisation)
    return card_public(card)


@router.get("/stats/national", tags=["statistics"])
async def national_statistics(request: Request, principal: Staff) -> dict[str, int]:
    return await statistics.national(request.app.state.pool, today())


@router.get("/stats/regions", tags=["statistics"])
async def regional_statistics(request: Request, principal: Staff) -> list[dict[str, object]]:
    return await statistics.by_region(request.app.state.pool, today())
