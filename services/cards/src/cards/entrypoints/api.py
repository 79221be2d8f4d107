"""Kaikukanta HTTP API: translates JSON to use cases and errors to problem+json."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from kaiku_shared.auth import Principal
from kaiku_shared.http import (
    Problem,
    conflict,
    idempotency_key,
    not_found,
    require_role,
    unprocessable,
)

from ..adapters import report as report_page
from ..adapters import queries
from ..adapters.login_throttle import LoginThrottle, TooManyAttempts
from ..application.app import (
    KAIKUKESKUS_ID,
    AuthenticationFailed,
    CardsApplication,
    Forbidden,
    NotFound,
    RuleViolation,
)
from ..config import CardsSettings
from ..domain.disclosure import NotWholeMonths, whole_month_period
from ..domain.model import Card
from kaiku_shared.client_address import client_address

HELSINKI = ZoneInfo("Europe/Helsinki")
T = TypeVar("T")
# Refusals of a well-formed request by the state of things: 409. The rest: 422.
CONFLICT_RULES = {
    "card-closed", "card-already-replaced", "card-expired", "distributor-not-approved",
    "organisation-left", "organisation-already-approved", "no-new-partners-mid-year",
    "username-taken", "user-inactive", "round-exists", "round-closed",
    "round-deadline-passed", "busy",
}

router = APIRouter()


def today() -> date:
    return datetime.now(HELSINKI).date()


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Score = Annotated[int, Field(ge=0, le=10)]
# Codes in paths and queries: anything longer than these is not one.
CardNumberPath = Annotated[str, Path(max_length=40, description="e.g. KXA-12345")]
RegionPath = Annotated[str, Path(max_length=100, description="a region code")]
RegionQuery = Annotated[str | None, Query(max_length=100, description="a region code")]
CodePath = Annotated[str, Path(max_length=100, description="lower-case letters, digits, '-'")]
RoundYear = Annotated[int, Path(ge=2000, le=2100, description="the round's year")]
# A region's or municipality's name in one language.
PlaceName = Annotated[str, Field(max_length=100)]
# A skipped wellbeing question is recorded as "no answer": send "no_answer" or
# leave the field out.
Answer = Score | Literal["no_answer"] | None


def answer(value: Answer) -> int | None:
    return None if value in (None, "no_answer") else int(value)


# --- schemas -------------------------------------------------------------------------


class OrganisationCreate(Schema):
    kind: Literal["distributor", "venue", "ticket_agent"]
    name: str = Field(min_length=1, max_length=200)
    municipality: str = Field(min_length=1, max_length=100)
    pending: bool = Field(default=False, description=(
        "register as a proposal that Kaikukeskus approves later (POST .../approval)"))
    override: bool = Field(default=False, description=(
        "Kaikukeskus lets a new partner join after the year's partner list is fixed"))


class OrganisationCreated(BaseModel):
    organisation_id: UUID
    status: str


class OrganisationPublic(BaseModel):
    organisation_id: UUID
    kind: str
    name: str
    municipality: str
    status: str


class Approval(Schema):
    override: bool = False


class Login(Schema):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=256)


class LoginAnswer(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: str
    organisation_id: UUID
    user_id: UUID
    admin: bool


class UserCreate(Schema):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    organisation_id: UUID | None = Field(default=None, description=(
        "defaults to the caller's organisation (Kaikukeskus for Kaikukeskus)"))
    admin: bool = Field(default=False, description="may manage the organisation's users")


class UserPublic(BaseModel):
    user_id: UUID
    username: str
    organisation_id: UUID
    role: str
    admin: bool
    active: bool


class PasswordChange(Schema):
    password: str = Field(min_length=1, max_length=256)
    current_password: str | None = Field(default=None, max_length=256, description=(
        "needed when users change their own password; an admin setting another user's "
        "password leaves it out"))


class CardCreate(Schema):
    birth_year: int = Field(ge=1900, le=2100)
    postal_code: str = Field(min_length=5, max_length=6)
    municipality: str = Field(min_length=1, max_length=100)
    children: int = Field(ge=0, le=30, description="own or household children under 18")
    valid_until: date | None = None
    life_satisfaction: Answer = None
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
    closure_reason: str | None = None
    replaces: str | None = None
    replaced_by: str | None = None


class CardForVenue(BaseModel):
    """What a venue or ticket agent may see of a card."""

    card_number: str
    valid_until: date
    status: str
    children: int


class CardRenewal(Schema):
    valid_until: date | None = None
    life_satisfaction: Answer = None
    wellbeing_impact: Answer = None


class CardChange(Schema):
    children: int | None = Field(default=None, ge=0, le=30)
    postal_code: str | None = Field(default=None, min_length=5, max_length=6)
    municipality: str | None = Field(default=None, min_length=1, max_length=100)


class CardClosure(Schema):
    reason: Literal["lost", "moved", "misuse", "expired", "holder_request", "other"]


class RoundOpen(Schema):
    year: int = Field(ge=2015, le=2100)
    deadline: date


class RoundAnswer(Schema):
    decision: Literal["continue", "leave"]


# --- dependencies ------------------------------------------------------------------------


async def application(request: Request) -> CardsApplication:
    return request.app.state.application


async def cards_settings(request: Request) -> CardsSettings:
    return request.app.state.cards_settings


App = Annotated[CardsApplication, Depends(application)]
Settings = Annotated[CardsSettings, Depends(cards_settings)]
Kaikukeskus = Annotated[Principal, Depends(require_role("kaikukeskus"))]
Distributor = Annotated[Principal, Depends(require_role("distributor"))]
DistributorOrCentre = Annotated[Principal, Depends(require_role("distributor", "kaikukeskus"))]
Partner = Annotated[Principal, Depends(require_role("distributor", "venue", "ticket_agent"))]
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


def derived_id(request: Request, principal: Principal, kind: str) -> UUID:
    """New ids from the Idempotency-Key make a retried create find its first result."""
    key = idempotency_key(request)
    return uuid5(NAMESPACE_URL, f"/{kind}/{principal.key}/{key}") if key else uuid4()


def card_public(card: Card) -> CardPublic:
    return CardPublic(
        card_number=card.card_number, valid_from=card.valid_from,
        valid_until=card.valid_until, children=card.children,
        municipality=card.municipality, region=card.region, status=card.status,
        community=card.community, birth_year=card.birth_year,
        postal_code=card.postal_code, issuer_organisation_id=card.issuer_organisation_id,
        closure_reason=card.closure_reason, replaces=getattr(card, "replaces", None),
        replaced_by=getattr(card, "replaced_by", None),
    )


def organisation_public(organisation) -> OrganisationPublic:
    return OrganisationPublic(organisation_id=organisation.id, kind=organisation.kind,
                              name=organisation.name, municipality=organisation.municipality,
                              status=organisation.status)


# --- sign-in and staff users ----------------------------------------------------------


def too_many_attempts(error: TooManyAttempts) -> Problem:
    return Problem(429, "Too many attempts",
                   f"Too many wrong passwords for this user from your address; try again in "
                   f"{error.retry_after} seconds, or ask an admin of your organisation to set "
                   "a new password.", kind="rate-limited",
                   headers={"Retry-After": str(error.retry_after)})


async def throttled(request: Request, settings: CardsSettings, username: str,
                    check: Callable[[], T]) -> T:
    """Run a password ``check`` (it raises AuthenticationFailed) as one attempt of
    the sign-in throttle for this username and client address: reserved before
    the check, so parallel guesses cannot overtake the limit; reset on success."""
    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_address(request.client.host if request.client else None,
                             request.headers.getlist("x-forwarded-for"),
                             request.app.state.settings.trusted_proxy_networks)
    try:
        await throttle.reserve(username, address)
    except TooManyAttempts as error:
        raise too_many_attempts(error) from None
    result = await asyncio.to_thread(check)
    await throttle.reset(username, address)
    return result


@router.post("/auth/login", response_model=LoginAnswer, tags=["auth"],
             responses={401: {"description": "wrong username or password"}})
async def login(body: Login, request: Request, app: App, settings: Settings) -> LoginAnswer:
    """A staff member signs in; the token carries their role and organisation.

    After five attempts for a username from one address, that address is refused
    with 429 (the right password too) for a minute, then for twice as long after
    each further failure; other addresses are not affected."""
    try:
        user = await throttled(request, settings, body.username,
                               lambda: app.authenticate(body.username, body.password))
    except AuthenticationFailed:
        raise Problem(401, "Not signed in", "The username or password is wrong, or the "
                      "user is deactivated.", kind="login-failed") from None
    token = request.app.state.signer.issue(role=user.role,
                                           organisation_id=user.organisation_id,
                                           subject=str(user.id),
                                           ttl_seconds=settings.login_token_seconds)
    return LoginAnswer(access_token=token, expires_in=settings.login_token_seconds,
                       role=user.role, organisation_id=user.organisation_id,
                       user_id=user.id, admin=user.admin)


@router.post("/auth/sign-out", status_code=204, tags=["auth"],
             responses={204: {"description": "this token is refused from now on"}})
async def sign_out(app: App, principal: Staff) -> Response:
    """The token this request carries stops working in every service within 2 s
    (the web calls this when a staff member signs out)."""
    expires_at = datetime.fromtimestamp(principal.expires_at, tz=ZoneInfo("UTC"))
    await asyncio.to_thread(app.sign_out, principal.token_id or "", expires_at)
    return Response(status_code=204)


@router.get("/auth/me", tags=["auth"])
async def who_am_i(principal: Staff) -> dict[str, Any]:
    return {"role": principal.role, "organisation_id": principal.organisation_id,
            "subject": principal.subject}


def _caller_user(app: CardsApplication, principal: Principal):
    try:
        return app.get_user(UUID(principal.subject))
    except (ValueError, NotFound):
        return None  # a token not from /auth/login (dev tokens, services)


def _check_user_admin(app: CardsApplication, principal: Principal,
                      organisation_id: UUID) -> None:
    """Kaikukeskus manages every organisation's users; an organisation's own admin
    user manages its own."""
    if principal.role == "kaikukeskus":
        return
    if principal.organisation_id != organisation_id:
        raise Forbidden("You manage only your own organisation's users.")
    caller = _caller_user(app, principal)
    if caller is None or not caller.admin or not caller.active \
            or caller.organisation_id != organisation_id:
        raise Forbidden("Managing users needs an admin user of the organisation.")


def user_public(user) -> UserPublic:
    return UserPublic(user_id=user.id, username=user.username,
                      organisation_id=user.organisation_id, role=user.role,
                      admin=user.admin, active=user.active)


@router.post("/users", status_code=201, response_model=UserPublic, tags=["users"])
async def create_user(body: UserCreate, app: App, principal: Staff) -> UserPublic:
    def create():
        organisation_id = body.organisation_id or principal.organisation_id
        if organisation_id is None or organisation_id == KAIKUKESKUS_ID:
            if principal.role != "kaikukeskus":
                raise Forbidden("Only Kaikukeskus creates Kaikukeskus users.")
            organisation_id = app.ensure_kaikukeskus().id
        _check_user_admin(app, principal, organisation_id)
        return app.create_user(username=body.username, password=body.password,
                               organisation_id=organisation_id, admin=body.admin)

    return user_public(await run(create))


@router.get("/users", response_model=list[dict[str, Any]], tags=["users"])
async def list_users(app: App, principal: Staff,
                     organisation_id: UUID | None = None) -> list[dict[str, Any]]:
    def listing():
        org = organisation_id or principal.organisation_id or KAIKUKESKUS_ID
        _check_user_admin(app, principal, org)
        if org == KAIKUKESKUS_ID:
            app.ensure_kaikukeskus()
        return app.list_users(org)

    return await run(listing)


@router.post("/users/{user_id}/deactivation", response_model=UserPublic, tags=["users"])
async def deactivate_user(user_id: UUID, app: App, principal: Staff) -> UserPublic:
    def deactivate():
        _check_user_admin(app, principal, app.get_user(user_id).organisation_id)
        return app.deactivate_user(user_id)

    return user_public(await run(deactivate))


async def prove_own_password(request: Request, app: CardsApplication,
                             settings: CardsSettings, user_id: UUID,
                             current_password: str | None) -> None:
    """A stolen token alone must not be enough to take over the account."""
    if not current_password:
        raise Problem(403, "Current password needed", "To change your own password, send "
                      "your current password as current_password as well.",
                      kind="current-password-needed")
    user = await run(app.get_user, user_id)
    try:
        # Guesses here count with the sign-in's, or this would be a way round them.
        await throttled(request, settings, user.username,
                        lambda: app.verify_current_password(user_id, current_password))
    except AuthenticationFailed:
        raise Problem(403, "Current password wrong", "The current password is not right. "
                      "Type it again, or ask an admin of your organisation to set a new "
                      "password for you.", kind="current-password-wrong") from None


@router.put("/users/{user_id}/password", response_model=UserPublic, tags=["users"])
async def change_password(user_id: UUID, body: PasswordChange, request: Request, app: App,
                          settings: Settings, principal: Staff) -> UserPublic:
    """Users change their own password with their current one; Kaikukeskus and an
    organisation's admin users set a new one for another user without it."""
    own = principal.subject == str(user_id)
    if own:
        await prove_own_password(request, app, settings, user_id, body.current_password)

    def change():
        if not own:
            _check_user_admin(app, principal, app.get_user(user_id).organisation_id)
        return app.change_password(user_id, body.password)

    return user_public(await run(change))


# --- organisations ----------------------------------------------------------------------


@router.post("/organisations", status_code=201, response_model=OrganisationCreated,
             tags=["organisations"])
async def register_organisation(body: OrganisationCreate, request: Request, app: App,
                                principal: Kaikukeskus) -> OrganisationCreated:
    organisation = await run(app.register_organisation,
                             derived_id(request, principal, "organisations"), body.kind,
                             body.name, body.municipality, pending=body.pending,
                             override=body.override, today=today())
    return OrganisationCreated(organisation_id=organisation.id, status=organisation.status)


@router.post("/organisations/{organisation_id}/approval", response_model=OrganisationPublic,
             tags=["organisations"])
async def approve_organisation(organisation_id: UUID, body: Approval, app: App,
                               principal: Kaikukeskus) -> OrganisationPublic:
    organisation = await run(app.approve_organisation, organisation_id, today=today(),
                             override=body.override)
    return organisation_public(organisation)


@router.get("/organisations", tags=["organisations"])
async def list_organisations(request: Request, app: App, principal: Kaikukeskus
                             ) -> list[dict[str, Any]]:
    """The partner list (a read model). ``status`` is ``approved``, or ``pending``
    for a proposal waiting for approval."""
    rows = await queries.partner_organisations(request.app.state.pool)
    # Rows projected before OrganisationRegistered carried a status (older data
    # directories) have none: take it from the registry itself.
    missing = [row for row in rows if row.get("status") is None]
    if missing:
        def fill() -> None:
            for row in missing:
                try:
                    organisation = app.get_organisation(row["organisation_id"])
                except NotFound:
                    continue
                row["status"] = getattr(organisation, "status", "approved")

        await asyncio.to_thread(fill)
    return rows


@router.get("/organisations/{organisation_id}", response_model=OrganisationPublic,
            tags=["organisations"])
async def get_organisation(organisation_id: UUID, app: App, principal: Staff
                           ) -> OrganisationPublic:
    return organisation_public(await run(app.get_organisation, organisation_id))


# --- partner continuation ----------------------------------------------------------------


def round_public(round_) -> dict[str, Any]:
    return {"year": round_.year, "deadline": round_.deadline, "closed": round_.closed,
            "answers": len(round_.answers)}


@router.post("/continuation-rounds", status_code=201, tags=["partners"])
async def open_round(body: RoundOpen, app: App, principal: Kaikukeskus) -> dict[str, Any]:
    return round_public(await run(app.open_round, year=body.year, deadline=body.deadline,
                                  today=today()))


@router.post("/continuation-rounds/{year}/answers", tags=["partners"])
async def answer_round(year: RoundYear, body: RoundAnswer, app: App,
                       principal: Partner) -> dict[str, Any]:
    await run(app.answer_round, year, principal.organisation_id, body.decision, today=today())
    return {"year": year, "organisation_id": principal.organisation_id,
            "decision": body.decision}


@router.get("/continuation-rounds/{year}/my-answer", tags=["partners"])
async def my_round_answer(year: RoundYear, app: App, principal: Partner) -> dict[str, Any]:
    """The calling partner's view of a round: its deadline, whether it is closed,
    and the partner's own answer so far (``decision`` is null before it answers).
    Other partners' answers are Kaikukeskus's to see."""
    if principal.organisation_id is None:
        raise Problem(403, "Forbidden", "The token names no organisation.", kind="not-yours")
    round_ = await run(app.get_round, year)
    return {"year": round_.year, "deadline": round_.deadline, "closed": round_.closed,
            "organisation_id": principal.organisation_id,
            "decision": round_.answers.get(str(principal.organisation_id))}


@router.post("/continuation-rounds/{year}/closure", tags=["partners"])
async def close_round(year: RoundYear, app: App, principal: Kaikukeskus) -> dict[str, Any]:
    return round_public(await run(app.close_round, year))


@router.get("/continuation-rounds/{year}", tags=["partners"])
async def round_report(year: RoundYear, request: Request, app: App,
                       principal: Kaikukeskus) -> dict[str, Any]:
    """Who continues, who leaves and who has not answered yet."""
    round_ = await run(app.get_round, year)
    partners = await queries.partner_organisations(request.app.state.pool)
    answered, missing = [], []
    known = set()
    for partner in partners:
        known.add(str(partner["organisation_id"]))
        decision = round_.answers.get(str(partner["organisation_id"]))
        entry = {**partner, "decision": decision}
        (answered if decision else missing).append(entry)
    for organisation_id, decision in round_.answers.items():
        if organisation_id not in known:  # left already, or the listing lags
            answered.append({"organisation_id": organisation_id, "decision": decision})
    return {**round_public(round_), "answered": answered, "not_answered": missing}


# --- the network: regions and municipalities ---------------------------------------------


class RegionPut(Schema):
    name: dict[Literal["fi", "sv", "en"], PlaceName]
    country: str = Field(default="FI", min_length=2, max_length=2)


class MunicipalityPut(Schema):
    name: dict[Literal["fi", "sv", "en"], PlaceName] | None = None
    region: str | None = Field(default=None, max_length=100)
    status: Literal["in_use", "pilot", "joining_2025_2026", "popup", "left"] | None = None
    country: str | None = Field(default=None, min_length=2, max_length=2)


def network_public(network) -> dict[str, Any]:
    regions = []
    for code, region in sorted(network.regions.items()):
        regions.append({
            "code": code, "name": region["name"], "country": region.get("country", "FI"),
            "municipalities": [
                {"code": m.code, "name": m.names, "status": m.status, "country": m.country}
                for m in sorted(network.municipalities.values(), key=lambda m: m.code)
                if m.region == code],
        })
    return {"regions": regions}


@router.get("/network", tags=["network"])
async def get_network(app: App, principal: Staff) -> dict[str, Any]:
    """Regions and their municipalities with status (in use, pilot, joining, …)."""
    return network_public(await run(lambda: app.network))


@router.put("/network/regions/{code}", tags=["network"])
async def put_region(code: CodePath, body: RegionPut, app: App,
                     principal: Kaikukeskus) -> dict[str, Any]:
    network = await run(app.set_region, code, names=dict(body.name), country=body.country)
    return next(r for r in network_public(network)["regions"] if r["code"] == code)


@router.put("/network/municipalities/{code}", tags=["network"])
async def put_municipality(code: CodePath, body: MunicipalityPut, app: App,
                           principal: Kaikukeskus) -> dict[str, Any]:
    """Add a municipality or change its name, region or status."""
    network = await run(app.set_municipality, code,
                        names=dict(body.name) if body.name else None, region=body.region,
                        status=body.status, country=body.country)
    m = network.municipalities[code]
    return {"code": m.code, "name": m.names, "region": m.region, "status": m.status,
            "country": m.country}


# --- cards --------------------------------------------------------------------------------


@router.post("/cards", status_code=201, response_model=CardPublic, tags=["cards"])
async def issue_card(body: CardCreate, request: Request, app: App,
                     principal: Distributor) -> CardPublic:
    card = await run(
        app.issue_card, issuer_organisation_id=principal.organisation_id, today=today(),
        birth_year=body.birth_year, postal_code=body.postal_code,
        municipality=body.municipality, children=body.children,
        valid_until=body.valid_until, life_satisfaction=answer(body.life_satisfaction),
        community=body.community, issue_key=idempotency_key(request),
    )
    return card_public(card)


class CaseloadItem(BaseModel):
    card_number: str
    valid_from: date | None
    valid_until: date | None
    status: str
    children: int | None
    municipality: str | None
    municipality_names: dict[str, str] | None = Field(description=(
        "the municipality's name in fi, sv and en, for showing it"))
    region: str | None
    community: bool
    active: bool = Field(description="open and valid today")


class Caseload(BaseModel):
    items: list[CaseloadItem]
    next_cursor: str | None = Field(description="pass as ``cursor`` for the next page; "
                                                "null on the last page")


CaseloadStatus = Literal["open", "closed", "active", "expired"]
CASELOAD_CURSOR = "caseload.v1"


def caseload_query(principal: Principal, status: str | None,
                   expiring_before: date | None) -> str:
    """What a cursor belongs to: a cursor is refused with another query or caller."""
    return f"{principal.organisation_id}|{status or ''}|{expiring_before or ''}"


def caseload_cursor(query: str, last_card_number: str) -> str:
    raw = json.dumps({"v": CASELOAD_CURSOR, "q": query, "after": last_card_number})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def caseload_after(cursor: str | None, query: str) -> str | None:
    """The card number a cursor continues after; 422 for one not made for this query."""
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        valid = (isinstance(raw, dict) and raw.get("v") == CASELOAD_CURSOR
                 and isinstance(raw.get("after"), str) and len(raw["after"]) <= 40)
    except ValueError:
        valid = False
    if not valid:
        raise unprocessable("cursor", "This cursor is not one this list gave; start again "
                            "without a cursor.", "cursor")
    if raw.get("q") != query:
        raise unprocessable("cursor", "This cursor belongs to a list with other filters; "
                            "start again without a cursor.", "cursor")
    return raw["after"]


def municipality_names(network, code: str | None) -> dict[str, str] | None:
    place = network.municipalities.get(code or "")
    if place is None:
        return None
    names = place.names
    return {lang: (names.get(lang) or "").strip() or names["fi"] for lang in ("fi", "sv", "en")}


@router.get("/cards", response_model=Caseload, tags=["cards"])
async def list_cards(request: Request, app: App, principal: DistributorOrCentre,
                     status: Annotated[CaseloadStatus | None, Query(description=(
                         "open, closed, active (open and valid today) or expired "
                         "(open, validity over)"))] = None,
                     expiring_before: Annotated[date | None, Query(description=(
                         "only open cards valid until a day before this (YYYY-MM-DD)"))]
                     = None,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     cursor: Annotated[str | None, Query(max_length=400)] = None
                     ) -> Caseload:
    """The caller's caseload: a distributor's own cards (Kaikukeskus: every card), in
    card-number order, a page at a time. Read from the registry's read model, so a
    card issued a moment ago may take a moment to appear."""
    query = caseload_query(principal, status, expiring_before)
    after = caseload_after(cursor, query)
    issuer = None if principal.role == "kaikukeskus" else principal.organisation_id
    rows = await queries.caseload(request.app.state.pool, today=today(), issuer=issuer,
                                  status=status, expiring_before=expiring_before,
                                  after=after, limit=limit)
    network = await current_network(app)
    page = rows[:limit]
    items = [CaseloadItem(**row, municipality_names=municipality_names(
        network, row["municipality"])) for row in page]
    more = len(rows) > limit
    return Caseload(items=items,
                    next_cursor=caseload_cursor(query, page[-1]["card_number"]) if more else None)


@router.get("/cards/{card_number}", response_model=CardPublic | CardForVenue, tags=["cards"])
async def get_card(card_number: CardNumberPath, app: App, principal: Staff
                   ) -> CardPublic | CardForVenue:
    card = await run(app.get_card, card_number)
    if principal.role in ("venue", "ticket_agent"):
        return CardForVenue(card_number=card.card_number, valid_until=card.valid_until,
                            status=card.status, children=card.children)
    if principal.role == "distributor" and card.issuer_organisation_id != principal.organisation_id:
        raise Problem(403, "Forbidden", "This card was issued by another distributor.",
                      kind="not-yours")
    return card_public(card)


@router.post("/cards/{card_number}/renewal", response_model=CardPublic, tags=["cards"])
async def renew_card(card_number: CardNumberPath, body: CardRenewal, app: App,
                     principal: Distributor) -> CardPublic:
    card = await run(app.renew_card, card_number, principal.organisation_id, today=today(),
                     valid_until=body.valid_until,
                     life_satisfaction=answer(body.life_satisfaction),
                     wellbeing_impact=answer(body.wellbeing_impact))
    return card_public(card)


@router.post("/cards/{card_number}/replacement", status_code=201, response_model=CardPublic,
             tags=["cards"])
async def replace_card(card_number: CardNumberPath, request: Request, app: App,
                       principal: Distributor) -> CardPublic:
    """A lost card gets a new number with the same validity; the old one is closed
    and linked to the new (``replaced_by``/``replaces``)."""
    card = await run(app.replace_card, card_number, principal.organisation_id,
                     today=today(), issue_key=idempotency_key(request))
    return card_public(card)


@router.patch("/cards/{card_number}", response_model=CardPublic, tags=["cards"])
async def change_card(card_number: CardNumberPath, body: CardChange, app: App,
                      principal: Distributor) -> CardPublic:
    card = await run(app.change_card, card_number, principal.organisation_id,
                     children=body.children, postal_code=body.postal_code,
                     municipality=body.municipality)
    return card_public(card)


@router.post("/cards/{card_number}/closure", response_model=CardPublic, tags=["cards"])
async def close_card(card_number: CardNumberPath, body: CardClosure, app: App,
                     principal: DistributorOrCentre) -> CardPublic:
    organisation = None if principal.role == "kaikukeskus" else principal.organisation_id
    card = await run(app.close_card, card_number, reason=body.reason,
                     organisation_id=organisation)
    return card_public(card)


# --- statistics ------------------------------------------------------------------------------

# Whole calendar months only, and only completed ones (domain.disclosure): a
# day-level range, or one that grows day by day through the current month, would
# let two queries be differenced down to one holder's answer or use.
From = Annotated[str | None, Query(
    alias="from", max_length=10, examples=["2026-03"],
    description="first month, inclusive: YYYY-MM, or YYYY-MM-DD on a month's first day. "
                "Whole months only.")]
To = Annotated[str | None, Query(
    alias="to", max_length=10, examples=["2026-05"],
    description="last month, inclusive: YYYY-MM, or YYYY-MM-DD on a month's last day. "
                "Whole months only; the current month and later are not yet counted.")]
# Answers to the wellbeing questions are for Kaikukeskus and the distributors who ask them.
WellbeingReader = Annotated[Principal, Depends(require_role("kaikukeskus", "distributor"))]


def period(start: str | None, end: str | None) -> queries.Period:
    """The months asked for, cut at the last completed month. Every figure, counts
    of cards included, is cut there, so that a page's totals and breakdowns cover
    the same months and none changes from one day to the next."""
    try:
        months = whole_month_period(start, end, today())
    except NotWholeMonths as error:
        raise unprocessable("period", str(error), error.field) from None
    return queries.Period(months.first, months.last, today())


def covered(chosen: queries.Period) -> dict[str, Any]:
    """What a statistics answer covers: ``to`` is the last day counted."""
    return {"from": chosen.start, "to": chosen.end, "covers_until": chosen.end.isoformat()[:7]}


def mark_covered(response: Response, chosen: queries.Period) -> None:
    """For list answers, the same in a header."""
    response.headers["Kaiku-Statistics-Covers-Until"] = chosen.end.isoformat()[:7]


async def current_network(app: CardsApplication):
    return await asyncio.to_thread(lambda: app.network)


def known_region(network, region: str) -> str:
    if region not in network.regions:
        raise not_found("Region", f"No region {region!r} in the network; see GET /stats/regions.")
    return region


def region_name(network, code: str | None) -> str | None:
    region = network.regions.get(code or "")
    return region["name"]["fi"] if region else None


def region_names(network, code: str | None) -> dict[str, str] | None:
    """The region's name in Finnish, Swedish and English; a language the network
    has no name for falls back to the Finnish name."""
    region = network.regions.get(code or "")
    if not region:
        return None
    names = region["name"]
    return {lang: (names.get(lang) or "").strip() or names["fi"] for lang in ("fi", "sv", "en")}


@router.get("/stats/national", tags=["statistics"])
async def national_statistics(request: Request, principal: Staff, start: From = None,
                              end: To = None) -> dict[str, Any]:
    """National totals over whole, completed months; with no ``from``/``to``, every
    month up to the last completed one (``covers_until``). ``active_cards`` is
    judged on the period's last day."""
    chosen = period(start, end)
    return {**await queries.national(request.app.state.pool, chosen), **covered(chosen)}


@router.get("/stats/regions", tags=["statistics"])
async def regional_statistics(request: Request, response: Response, app: App,
                              principal: Staff, start: From = None, end: To = None
                              ) -> list[dict[str, Any]]:
    """Every region of the network side by side (zeros included), over whole,
    completed months (the header Kaiku-Statistics-Covers-Until says up to which)."""
    network = await current_network(app)
    chosen = period(start, end)
    mark_covered(response, chosen)
    async with request.app.state.pool.acquire() as conn:
        grouped = await queries.figures(conn, chosen, by="region")
    return [{"region": code, "name": region_name(network, code),
             "names": region_names(network, code),
             **(grouped.get(code) or queries.zero_figures())}
            for code in sorted(network.regions)]


def may_read_wellbeing(principal: Principal) -> bool:
    return principal.role in ("kaikukeskus", "distributor")


async def region_details(request: Request, app: CardsApplication, settings: CardsSettings,
                         region: str, chosen: queries.Period, *, with_wellbeing: bool
                         ) -> dict[str, Any]:
    network = await current_network(app)
    known_region(network, region)
    pool = request.app.state.pool
    threshold = settings.suppress_below
    async with pool.acquire() as conn:
        own = (await queries.figures(conn, chosen, region=region))[None]
        national = (await queries.figures(conn, chosen))[None]
    wellbeing = (await queries.wellbeing(pool, chosen, region=region, threshold=threshold)
                 if with_wellbeing else None)
    return {
        "region": region, "name": region_name(network, region),
        "names": region_names(network, region),
        **covered(chosen), "active_on": chosen.at,
        **own,
        "national": national,
        "by_municipality": await queries.breakdown(pool, chosen, "municipality",
                                                   region=region, threshold=threshold),
        "by_month": await queries.breakdown(pool, chosen, "month", region=region,
                                            threshold=threshold),
        "age_groups": await queries.age_groups(pool, chosen, region=region,
                                               threshold=threshold),
        "wellbeing": wellbeing,  # null for venues and ticket agents
        "suppression_threshold": threshold,
    }


@router.get("/stats/regions/{region}", tags=["statistics"])
async def one_region(region: RegionPath, request: Request, app: App, settings: Settings,
                     principal: Staff, start: From = None, end: To = None) -> dict[str, Any]:
    """One region over whole, completed months. ``wellbeing`` is null for venues and
    ticket agents: the answers are for Kaikukeskus and distributors only."""
    return await region_details(request, app, settings, region, period(start, end),
                                with_wellbeing=may_read_wellbeing(principal))


@router.get("/stats/regions/{region}/report", response_class=HTMLResponse, tags=["statistics"])
async def region_report(region: RegionPath, request: Request, app: App, settings: Settings,
                        principal: Staff, start: From = None, end: To = None) -> HTMLResponse:
    """The feedback-meeting report: a printable HTML page with SVG charts, over whole,
    completed months (wellbeing only for Kaikukeskus and distributors)."""
    chosen = period(start, end)
    details = await region_details(request, app, settings, region, chosen,
                                   with_wellbeing=may_read_wellbeing(principal))
    async with request.app.state.pool.acquire() as conn:
        regions = await queries.figures(conn, chosen, by="region")
    network = await current_network(app)
    comparison = [{"region": code, "name": region_name(network, code),
                   **(regions.get(code) or queries.zero_figures())}
                  for code in sorted(network.regions)]
    national_months = await queries.breakdown(
        request.app.state.pool, chosen, "month", region=None,
        threshold=settings.suppress_below)
    return HTMLResponse(report_page.render(details, comparison, national_months,
                                           generated_on=today()))


@router.get("/stats/age-groups", tags=["statistics"])
async def age_group_statistics(request: Request, response: Response, settings: Settings,
                               app: App, principal: Staff, start: From = None,
                               end: To = None, region: RegionQuery = None
                               ) -> list[dict[str, Any]]:
    """Holders' ages at issue over whole, completed months; small groups hidden with
    complements."""
    if region:
        known_region(await current_network(app), region)
    chosen = period(start, end)
    mark_covered(response, chosen)
    return await queries.age_groups(request.app.state.pool, chosen,
                                    region=region, threshold=settings.suppress_below)


@router.get("/stats/wellbeing", tags=["statistics"])
async def wellbeing_statistics(request: Request, settings: Settings, app: App,
                               principal: WellbeingReader, start: From = None,
                               end: To = None, region: RegionQuery = None) -> dict[str, Any]:
    """Answers to the wellbeing questions over whole, completed months, for
    Kaikukeskus and distributors only (others: 403). A region's month with fewer
    answers than the threshold is left out of the averages (``left_out``)."""
    if region:
        known_region(await current_network(app), region)
    chosen = period(start, end)
    return {**await queries.wellbeing(request.app.state.pool, chosen, region=region,
                                      threshold=settings.suppress_below),
            **covered(chosen)}


@router.get("/stats/by/{dimension}", tags=["statistics"],
            responses={200: {"content": {"text/csv": {}}}})
async def statistics_by(dimension: Literal["region", "municipality", "distributor", "venue",
                                           "month"],
                        request: Request, response: Response, settings: Settings, app: App,
                        principal: Staff, start: From = None, end: To = None,
                        region: RegionQuery = None,
                        format: Literal["json", "csv"] = "json") -> Any:
    """One row per region, municipality, distributor, venue or month over whole,
    completed months; ``format=csv`` downloads the same rows as CSV. Small counts,
    and the cells that would let them be worked out from a total, are null and
    listed in ``suppressed``."""
    if region:
        known_region(await current_network(app), region)
    chosen = period(start, end)
    rows = await queries.breakdown(request.app.state.pool, chosen, dimension,
                                   region=region, threshold=settings.suppress_below)
    if format == "json":
        mark_covered(response, chosen)
        return rows
    out = io.StringIO()
    fields = [k for k in (rows[0] if rows else {dimension: None}) if k != "suppressed"]
    writer = csv.writer(out)
    writer.writerow([*fields, "suppressed"])
    for row in rows:
        writer.writerow([("" if row.get(f) is None else row.get(f)) for f in fields]
                        + [" ".join(row.get("suppressed", []))])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="kaikukortti-{dimension}.csv"',
        "Kaiku-Statistics-Covers-Until": chosen.end.isoformat()[:7]})
