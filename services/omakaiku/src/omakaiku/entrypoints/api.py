"""OmaKaiku HTTP API: activation and erasure by a distributor; sign-in; the
holder's own views and actions; offering browsing; the mobile card."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from kaiku_shared import taxonomy
from kaiku_shared.kernel import card_numbers
from kaiku_shared.auth import Principal
from kaiku_shared.client_address import client_address
from kaiku_shared.contracts import FEEDBACK_WINDOW
from kaiku_shared.problems import negotiate
from kaiku_shared.http import MAX_OFFSET, PROBLEM, Problem, ProblemDetail, conflict, \
    not_found, require_role, unprocessable
from kaiku_shared.usecases import derived_id, run_use_case, wait_for

from ..adapters import queries, retention
from ..adapters.mail import Mailer, record_mail, render
from ..adapters.mobile_card import CardSigner, qr_svg
from ..adapters.signin import CodeRejected, RateLimited, SignIn
from ..adapters.signin_queue import CodeRequests
from ..application.app import OmaKaikuApplication, PersonalData
from ..domain import offering_terms
from ..config import OmaKaikuSettings
from .erasure import HOLDER, ErasedBy, Eraser, by_distributor

CARD_ARRIVAL_GRACE_SECONDS = 3.0
HOLDER_TOKEN_TTL_SECONDS = 12 * 3600
RATE_LIMITED: dict[int | str, dict[str, Any]] = {429: {
    "description": "Too many attempts (`rate-limited`); `Retry-After` says when to try again",
    "model": ProblemDetail,
    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}}

log = logging.getLogger("omakaiku.api")
router = APIRouter()


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# A genre or subgenre code, e.g. "music" or "jazz"; anything longer is not one.
TaxonomyCode = Annotated[str, Field(max_length=100)]


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


class ErasureRequest(Schema):
    card_number: str = Field(min_length=8, max_length=12)


class ErasureAccepted(BaseModel):
    account_id: UUID
    status: str = "erased"
    detail: str = ("The holder's personal data is destroyed; the other services drop "
                   "what they derived when they receive AccountErased.")


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
    ticket_id: UUID = Field(description="The ticket, or the swimming visit or library fee")
    kind: Literal["ticket", "swimming_visit", "library_fee"] = "ticket"
    card_number: str
    offering_id: UUID | None
    offering_title: str | None
    venue_id: UUID
    venue_name: str | None
    starts_at: datetime | None = Field(description="The event, or when the card was used")
    children: int
    status: Literal["registered", "cancelled", "used"]
    cancellation_requested: bool = False
    cancellation_refused: str | None = None
    detail: dict[str, Any] | None = Field(
        default=None, description="swimming_visit: visits, visits_used, visits_per_year; "
        "library_fee: fee_type, amount_cents, year_total_cents, cap_cents")


class CancellationAccepted(BaseModel):
    ticket_id: UUID
    status: str = "cancellation_requested"
    detail: str = "The venue confirms the cancellation; the ticket then shows as cancelled."


class FeedbackCreate(Schema):
    accessibility: int = Field(ge=0, le=5, strict=True)
    meaning: int = Field(ge=0, le=5, strict=True)
    interest: int = Field(ge=0, le=5, strict=True)


class FeedbackCreated(BaseModel):
    ticket_id: UUID
    accessibility: int
    meaning: int
    interest: int


class Subscriptions(Schema):
    genres: list[TaxonomyCode] = Field(default_factory=list, max_length=20)
    subgenres: list[TaxonomyCode] = Field(
        default_factory=list, max_length=50,
        description="Subgenre codes; each must belong to one of `genres`, e.g. jazz with music.")
    only_my_region: bool = False

    @model_validator(mode="after")
    def _in_the_national_taxonomy(self) -> Subscriptions:
        taxonomy.check_choice(self.genres, self.subgenres)
        return self


class SubscriptionsPublic(BaseModel):
    genres: list[str]
    subgenres: list[str]
    only_my_region: bool
    region: str | None


class MobileCard(BaseModel):
    card_number: str
    valid_until: date | None
    children: int
    token: str
    expires_at: datetime
    qr_svg: str
    public_key_url: str = "/mobile-card/public-key"


class CodeRequest(Schema):
    email: EmailStr
    language: Literal["fi", "sv", "en"] | None = Field(
        default=None, description="The code e-mail's language; by default the account's.")


class CodeRequested(BaseModel):
    detail: str = ("If this address belongs to an OmaKaiku account, a sign-in code is on "
                   "its way. It is valid for 10 minutes and works once.")


class TokenRequest(Schema):
    email: EmailStr | None = None
    code: str | None = Field(default=None, max_length=20, pattern=r"^\s*[0-9]{6}\s*$")
    link_token: str | None = Field(default=None, min_length=20, max_length=100)
    card_number: str | None = Field(
        default=None, max_length=40, description="Only when several accounts share the e-mail.")

    @model_validator(mode="after")
    def _code_or_link(self) -> TokenRequest:
        if self.link_token is None and (self.email is None or self.code is None):
            raise ValueError("send either {email, code} or {link_token}")
        return self


class HolderToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    account_id: UUID


class VenueContactPublic(BaseModel):
    phone: str | None = None
    email: str | None = None
    url: str | None = None
    box_office: str | None = None


class VenuePublic(BaseModel):
    name: str
    municipality: str = Field(description="The municipality's name in the reader's language")
    contact: VenueContactPublic


class LimitInWords(BaseModel):
    code: str = Field(description="Which limit, e.g. one_ticket_per_card")
    text: str = Field(description="The limit in words, in the reader's language")


class OfferingPublic(BaseModel):
    offering_id: UUID
    venue_id: UUID
    venue_name: str
    title: str
    kind: str
    genres: list[str]
    genre_labels: list[str]
    subgenres: list[str]
    subgenre_labels: list[str]
    starts_at: datetime
    municipality: str = Field(description="The municipality's code")
    municipality_name: str
    region: str | None = Field(description="The region's code")
    region_name: str | None
    venue: VenuePublic
    card_places_left: int | None = Field(
        description="Card places left now (null until venues' terms have arrived)")
    limits: list[LimitInWords]
    how_to_get: list[str] = Field(description="How to get a card ticket, step by step")


class PlaceName(BaseModel):
    code: str
    name: str


class MunicipalityName(PlaceName):
    region: str


class Places(BaseModel):
    regions: list[PlaceName]
    municipalities: list[MunicipalityName]


# --- dependencies -------------------------------------------------------------------


async def application(request: Request) -> OmaKaikuApplication:
    return request.app.state.application


App = Annotated[OmaKaikuApplication, Depends(application)]
Distributor = Annotated[Principal, Depends(require_role("distributor"))]
Holder = Annotated[Principal, Depends(require_role("holder"))]


def normalise_card_number(raw: str) -> str:
    try:
        return card_numbers.normalise_card_number(raw)
    except card_numbers.CardNumberFormatError as error:
        raise unprocessable("card-number-format", str(error), "card_number") from None


def _staff_user(principal: Principal) -> UUID | None:
    """The staff user behind a token (its subject), when it names one (a token
    made for an organisation alone carries the organisation's id instead)."""
    try:
        user = UUID(principal.subject)
    except ValueError:
        return None
    return None if user == principal.organisation_id else user


def _omakaiku(request: Request) -> OmaKaikuSettings:
    return request.app.state.omakaiku


# --- accounts (distributor) ------------------------------------------------------


@router.post("/accounts", status_code=201, response_model=AccountCreated, tags=["accounts"])
async def activate_account(body: AccountCreate, request: Request, app: App,
                           principal: Distributor) -> AccountCreated:
    card_number = normalise_card_number(body.card_number)
    card = await _known_card(request, card_number)
    # Ownership before state: another distributor learns nothing about the card.
    if card["issuer"] != principal.organisation_id:
        raise Problem(403, "Forbidden",
                      "OmaKaiku is activated by the distributor that issued the card.",
                      kind="not-yours")
    if card["status"] != "open":
        raise unprocessable("card-closed", f"Card {card_number} is closed.", "card_number")
    account_id = derived_id(request, principal, "accounts")
    personal = PersonalData(first_name=body.first_name, last_name=body.last_name,
                            email=str(body.email), phone=body.phone,
                            municipality=body.municipality)
    account = await run_use_case(app.activate_account, account_id=account_id, card_number=card_number,
                        personal=personal, language=body.language,
                        activated_by=principal.organisation_id)
    await retention.unsettle(request.app.state.pool, card_number)
    await _send_welcome(request, account.id, personal, body.language)
    return AccountCreated(account_id=account.id)


async def _send_welcome(request: Request, account_id: UUID, personal: PersonalData,
                        language: str) -> None:
    """The welcome e-mail with a one-time sign-in link. A mail server being down
    does not undo the activation: the outcome is recorded, and the holder can
    always ask for a code."""
    settings = _omakaiku(request)
    signin: SignIn = request.app.state.signin
    token = await signin.new_link(account_id)
    link = f"{settings.public_url.rstrip('/')}/signin#link_token={token}"
    subject, text = render("welcome", language, first_name=personal.first_name, link=link,
                           link_days=max(1, settings.signin_link_ttl_seconds // 86400))
    mailer: Mailer = request.app.state.mailer
    outcome = await mailer.send(personal.email, subject, text, language=language)
    await record_mail(request.app.state.pool, account_id, "welcome", outcome)


@router.post("/accounts/erasure", status_code=202, response_model=ErasureAccepted,
             tags=["accounts"])
async def erase_on_request(body: ErasureRequest, request: Request, app: App,
                           principal: Distributor) -> ErasureAccepted:
    """The holder asked their distributor to erase the account (e.g. no phone)."""
    card_number = normalise_card_number(body.card_number)
    card = await queries.card(request.app.state.pool, card_number)
    if card is None or card["issuer"] != principal.organisation_id:
        raise Problem(403, "Forbidden",
                      "Only the distributor that issued the card can erase its account.",
                      kind="not-yours")
    account_id = await asyncio.to_thread(app.account_for_card, card_number)
    if account_id is None:
        raise not_found("Account", f"Card {card_number} has no OmaKaiku account.")
    await _erase(request, account_id, by_distributor(_staff_user(principal),
                                                     principal.organisation_id))
    return ErasureAccepted(account_id=account_id)


async def _erase(request: Request, account_id: UUID, by: ErasedBy) -> None:
    eraser: Eraser = request.app.state.eraser
    await eraser.erase(account_id, by)


# --- sign-in -------------------------------------------------------------------------


@router.post("/auth/code", status_code=202, response_model=CodeRequested, tags=["sign-in"],
             responses=RATE_LIMITED)
async def request_code(body: CodeRequest, request: Request, app: App) -> CodeRequested:
    """Queues a one-time 6-digit code; the worker e-mails it if the address has an
    account. The answer and the work done are the same either way (the account is
    looked up only in the worker), so nobody can probe who holds a card."""
    client = client_address(request.client.host if request.client else None,
                            request.headers.getlist("x-forwarded-for"),
                            request.app.state.settings.trusted_proxy_networks)
    code_requests: CodeRequests = request.app.state.code_requests
    try:
        await code_requests.enqueue(app.vault.email_lookup(str(body.email)), client,
                                    body.language)
    except RateLimited as error:
        raise _too_many(error) from None
    return CodeRequested()


@router.post("/auth/token", response_model=HolderToken, tags=["sign-in"],
             responses=RATE_LIMITED)
async def exchange_code(body: TokenRequest, request: Request, app: App) -> HolderToken:
    signin: SignIn = request.app.state.signin
    try:
        if body.link_token:
            account_id = await signin.redeem_link(body.link_token)
        else:
            email = str(body.email)
            account_id = await signin.redeem_code(app.vault.email_lookup(email), body.code or "")
            accounts = await asyncio.to_thread(app.accounts_for_email, email)
            if len(accounts) > 1 and body.card_number:
                chosen = await asyncio.to_thread(
                    app.account_for_card, normalise_card_number(body.card_number))
                if chosen in accounts:
                    account_id = chosen
    except RateLimited as error:
        raise _too_many(error) from None
    except CodeRejected as error:
        raise Problem(401, "Sign-in refused", str(error), kind="signin-refused") from None
    await run_use_case(app.get_account, account_id)  # erased since the code was sent: 404
    token = request.app.state.signer.issue(role="holder", account_id=account_id,
                                           ttl_seconds=HOLDER_TOKEN_TTL_SECONDS)
    return HolderToken(access_token=token, expires_in=HOLDER_TOKEN_TTL_SECONDS,
                       account_id=account_id)


def _too_many(error: RateLimited) -> Problem:
    return Problem(429, "Too many attempts", str(error), kind="rate-limited",
                   headers={"Retry-After": str(error.retry_after)})


# --- the holder -----------------------------------------------------------------------


@router.get("/me", response_model=Profile, tags=["holder"])
async def me(app: App, principal: Holder) -> Profile:
    profile = await run_use_case(app.get_profile, principal.account_id)
    personal = profile.personal
    return Profile(account_id=profile.account.id, card_number=profile.account.card_number,
                   first_name=personal.first_name, last_name=personal.last_name,
                   email=personal.email, phone=personal.phone,
                   municipality=personal.municipality, language=profile.account.language)


@router.post("/me/sign-out", status_code=204, tags=["holder"],
             responses={204: {"description": "this token is refused from now on"}})
async def sign_out(app: App, principal: Holder) -> Response:
    """The token this request carries stops working in every service within 2 s."""
    expires_at = datetime.fromtimestamp(principal.expires_at, tz=UTC)
    await run_use_case(app.sign_out, principal.token_id or "", expires_at)
    return Response(status_code=204)


@router.delete("/me", status_code=202, response_model=ErasureAccepted, tags=["holder"])
async def erase_me(request: Request, app: App, principal: Holder) -> ErasureAccepted:
    """Crypto-shredding: the key that sealed the personal data is destroyed, so no
    copy of it can be read again; AccountErased tells every service to drop what
    it derived. Repeating the request is harmless."""
    await _erase(request, principal.account_id, HOLDER)
    return ErasureAccepted(account_id=principal.account_id)


@router.get("/me/history", response_model=list[HistoryEntry], tags=["holder"])
async def my_history(request: Request, app: App, principal: Holder) -> list[HistoryEntry]:
    account = await run_use_case(app.get_account, principal.account_id)
    rows = await queries.history(request.app.state.pool, account.card_numbers)
    return [_entry(row, account) for row in rows]


@router.get("/me/tickets", response_model=list[HistoryEntry], tags=["holder"])
async def my_tickets(request: Request, app: App, principal: Holder) -> list[HistoryEntry]:
    account = await run_use_case(app.get_account, principal.account_id)
    rows = await queries.history(request.app.state.pool, account.card_numbers,
                                     upcoming_after=datetime.now(UTC))
    return [_entry(row, account) for row in rows]


async def _my_ticket(request: Request, account: Any, ticket_id: UUID):
    ticket = await queries.ticket(request.app.state.pool, ticket_id)
    if ticket is None or ticket["card_number"] not in account.card_numbers:
        raise not_found("Ticket", f"You have no ticket {ticket_id}.")
    return ticket


@router.post("/me/tickets/{ticket_id}/cancellation", status_code=202,
             response_model=CancellationAccepted, tags=["holder"])
async def cancel_my_ticket(ticket_id: UUID, request: Request, app: App,
                           principal: Holder) -> CancellationAccepted:
    account = await run_use_case(app.get_account, principal.account_id)
    ticket = await _my_ticket(request, account, ticket_id)
    if ticket["status"] == "cancelled":
        raise conflict("already-cancelled", "This ticket is already cancelled.")
    if ticket["starts_at"] and ticket["starts_at"] <= datetime.now(UTC):
        raise conflict("event-started", "The event has started; it can no longer be cancelled.")
    await run_use_case(app.request_cancellation, account.id, ticket_id)
    return CancellationAccepted(ticket_id=ticket_id)


@router.post("/me/tickets/{ticket_id}/feedback", status_code=201,
             response_model=FeedbackCreated, tags=["holder"])
async def give_feedback(ticket_id: UUID, body: FeedbackCreate, request: Request, app: App,
                        principal: Holder) -> FeedbackCreated:
    account = await run_use_case(app.get_account, principal.account_id)
    ticket = await _my_ticket(request, account, ticket_id)
    if ticket["status"] == "cancelled":
        raise unprocessable("ticket-cancelled",
                            "Feedback is for events you attended; this ticket was cancelled.")
    if ticket["starts_at"] is None or ticket["starts_at"] > datetime.now(UTC):
        raise unprocessable("event-not-over",
                            "Feedback opens when the event has taken place.")
    if ticket["starts_at"] + FEEDBACK_WINDOW <= datetime.now(UTC):
        raise unprocessable("feedback-closed", "Feedback closes "
                            f"{FEEDBACK_WINDOW.days} days after the event; this one is closed.")
    # asyncpg's own UUID type is not the event store's: convert.
    await run_use_case(app.give_feedback, ticket_id=ticket_id, offering_id=UUID(str(ticket["offering_id"])),
              venue_id=UUID(str(ticket["venue_id"])), accessibility=body.accessibility,
              meaning=body.meaning, interest=body.interest)
    return FeedbackCreated(ticket_id=ticket_id, **body.model_dump())


@router.get("/me/subscriptions", response_model=SubscriptionsPublic, tags=["holder"])
async def my_subscriptions(app: App, principal: Holder) -> SubscriptionsPublic:
    account = await run_use_case(app.get_account, principal.account_id)
    return _subscriptions(account)


@router.put("/me/subscriptions", response_model=SubscriptionsPublic, tags=["holder"])
async def change_subscriptions(body: Subscriptions, request: Request, app: App,
                               principal: Holder) -> SubscriptionsPublic:
    account = await run_use_case(app.get_account, principal.account_id)
    region = None
    if body.only_my_region:
        card = await queries.card(request.app.state.pool, account.card_number)
        region = card["region"] if card else None
        if region is None:
            raise unprocessable("region-unknown",
                                "Your card's region is not known yet; try again shortly.",
                                "only_my_region")
    account = await run_use_case(app.change_subscriptions, principal.account_id, genres=body.genres,
                        subgenres=body.subgenres, region=region)
    return _subscriptions(account)


def _subscriptions(account: Any) -> SubscriptionsPublic:
    return SubscriptionsPublic(genres=account.genres, subgenres=account.subgenres,
                               only_my_region=account.region is not None,
                               region=account.region)


@router.get("/me/card", response_model=MobileCard, tags=["holder"])
async def my_card(request: Request, app: App, principal: Holder) -> MobileCard:
    account = await run_use_case(app.get_account, principal.account_id)
    card = await queries.card(request.app.state.pool, account.card_number)
    if card is None:
        raise not_found("Card", "Your card is not known here yet; try again shortly.")
    if card["status"] != "open":
        raise conflict("card-closed", "Your card is closed; your distributor can renew it.")
    today = datetime.now(UTC).date()
    if card["valid_until"] is not None and card["valid_until"] < today:
        raise conflict("card-expired", "Your card has expired; your distributor can renew it.")
    signer: CardSigner = request.app.state.card_signer
    token, expires = signer.issue(card_number=account.card_number,
                                  valid_until=card["valid_until"],
                                  children=card["children"] or 0, now=datetime.now(UTC),
                                  ttl_seconds=_omakaiku(request).mobile_card_ttl_seconds)
    return MobileCard(card_number=account.card_number, valid_until=card["valid_until"],
                      children=card["children"] or 0, token=token, expires_at=expires,
                      qr_svg=qr_svg(token))


@router.get("/mobile-card/public-key", tags=["mobile card"], responses={200: {
    "description": "The public key: a JWK set (default) or PEM (?format=pem)",
    "content": {"application/jwk-set+json": {"schema": {"type": "object"}},
                "application/x-pem-file": {"schema": {"type": "string"}}}}})
async def mobile_card_public_key(request: Request, format: Literal["jwk", "pem"] = "jwk"
                                 ) -> Response:
    """The Ed25519 key that verifies mobile-card tokens (alg EdDSA, aud
    kaikukortti-mobile-card). Public: venues fetch it once and verify offline."""
    signer: CardSigner = request.app.state.card_signer
    if format == "pem":
        return Response(signer.public_pem(), media_type="application/x-pem-file")
    import json

    return Response(json.dumps({"keys": [signer.public_jwk()]}),
                    media_type="application/jwk-set+json")


# --- offering ------------------------------------------------------------------------


@router.get("/offerings", response_model=list[OfferingPublic], tags=["offering"])
async def browse_offerings(
    request: Request, app: App, principal: Holder,
    genre: str | None = Query(default=None, max_length=100),
    subgenre: str | None = Query(default=None, max_length=100),
    municipality: str | None = Query(default=None, max_length=100),
    region: str | None = Query(default=None, max_length=100),
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
    q: str | None = Query(default=None, max_length=100, description="Text in title or venue"),
    lang: Literal["fi", "sv", "en"] | None = None,
    limit: int = Query(default=100, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> list[OfferingPublic]:
    """Every published, upcoming offering, filtered; genre names in the holder's language."""
    if genre is not None and not taxonomy.is_valid_genre(genre):
        raise unprocessable("unknown-genre", f"Unknown genre {genre!r}; valid codes: "
                            f"{', '.join(taxonomy.GENRE_CODES)}.", "genre")
    if subgenre is not None and not any(taxonomy.is_valid_subgenre(g, subgenre)
                                        for g in ([genre] if genre else taxonomy.GENRE_CODES)):
        raise unprocessable("unknown-subgenre", f"Unknown subgenre {subgenre!r}"
                            + (f" for genre {genre!r}." if genre else "."), "subgenre")
    if region is not None:
        await _known_region(request, region)
    if from_ and to and to < from_:
        raise unprocessable("date-range", "'to' is before 'from'.", "to")
    account = await run_use_case(app.get_account, principal.account_id)
    heard = request.headers.get("accept-language")
    language = lang or (negotiate(heard, account.language) if heard
                        else account.language)
    rows = await queries.offerings(
        request.app.state.pool, genre=genre, subgenre=subgenre, municipality=municipality,
        region=region, date_from=from_, date_to=to, text=q, now=datetime.now(UTC),
        limit=limit, offset=offset)
    now = datetime.now(UTC)
    return [_offering(r, language, now) for r in rows]


@router.get("/offerings/{offering_id}", response_model=OfferingPublic, tags=["offering"])
async def offering_details(request: Request, offering_id: UUID,
                           lang: Literal["fi", "sv", "en"] | None = None) -> OfferingPublic:
    """One published offering for anyone, no token: the venue's contact, the card
    places left, each limit in words and how to get a card ticket, in the language
    of ``lang`` or else ``Accept-Language`` (fi, sv, en; Finnish by default)."""
    row = await queries.offering(request.app.state.pool, offering_id)
    if row is None:
        raise not_found("Offering", f"There is no published offering {offering_id}: it may "
                        "have been cancelled, or it has not reached OmaKaiku yet.")
    language = lang or negotiate(request.headers.get("accept-language"), "fi")
    return _offering(row, language, datetime.now(UTC))


@router.get("/places", response_model=Places, tags=["offering"])
async def place_names(request: Request,
                      lang: Literal["fi", "sv", "en"] | None = None) -> Places:
    """The network's regions and municipalities by name in the reader's language
    (``lang``, else ``Accept-Language``), as cards last published them."""
    language = lang or negotiate(request.headers.get("accept-language"), "fi")
    regions, municipalities = await queries.places(request.app.state.pool)
    return Places(
        regions=[PlaceName(code=r["code"], name=_name(r["name"], language, r["code"]))
                 for r in regions],
        municipalities=[MunicipalityName(code=m["code"], region=m["region"],
                                         name=_name(m["name"], language, m["code"]))
                        for m in municipalities])


# --- helpers ---------------------------------------------------------------------------


def _name(names: Any, language: str, fallback: str) -> str:
    """A place's name in the language (then Finnish), from the network's jsonb."""
    if isinstance(names, str):
        names = json.loads(names)
    names = names or {}
    return names.get(language) or names.get("fi") or fallback.capitalize()


def _labels(codes: list[str], genres: list[str], language: str) -> list[str]:
    """Subgenre names: each under the first of the offering's genres it belongs to."""
    labels = []
    for code in codes:
        genre = next((g for g in genres if taxonomy.is_valid_subgenre(g, code)), None)
        labels.append(taxonomy.label(genre, language, code) if genre else code)
    return labels


def _offering(r: Any, language: str, now: datetime) -> OfferingPublic:
    contact = r["venue_contact"]
    contact = json.loads(contact) if isinstance(contact, str) else (contact or {})
    limits = r["limits"]
    limits = json.loads(limits) if isinstance(limits, str) else limits
    left = None if r["card_cap"] is None else max(0, r["card_places_left"])
    municipality = _name(r["municipality_names"], language, r["municipality"])
    return OfferingPublic(
        offering_id=r["offering_id"], venue_id=r["venue_id"],
        venue_name=r["venue_display_name"], title=r["title"], kind=r["kind"],
        genres=list(r["genres"]),
        genre_labels=[taxonomy.label(g, language) if taxonomy.is_valid_genre(g) else g
                      for g in r["genres"]],
        subgenres=list(r["subgenres"]),
        subgenre_labels=_labels(list(r["subgenres"]), list(r["genres"]), language),
        starts_at=r["starts_at"], municipality=r["municipality"],
        municipality_name=municipality, region=r["region"],
        region_name=_name(r["region_names"], language, r["region"]) if r["region"] else None,
        venue=VenuePublic(name=r["venue_display_name"], municipality=municipality,
                          contact=VenueContactPublic(**contact)),
        card_places_left=left,
        limits=[LimitInWords(**said) for said in offering_terms.limits_in_words(
            limits=limits, sales_opens_at=r["sales_opens_at"],
            card_tickets_excluded=r["card_tickets_excluded"], language=language, now=now)],
        how_to_get=offering_terms.how_to_get(
            contact=contact, places_left=left,
            card_tickets_excluded=r["card_tickets_excluded"], language=language))


def _entry(row, account) -> HistoryEntry:
    detail = row["detail"]
    return HistoryEntry(
        ticket_id=row["ticket_id"], kind=row["kind"], card_number=row["card_number"],
        offering_id=row["offering_id"], offering_title=row["offering_title"],
        venue_id=row["venue_id"], venue_name=row["venue_display_name"],
        starts_at=row["starts_at"], children=row["children"], status=row["status"],
        cancellation_requested=str(row["ticket_id"]) in account.cancellation_requests,
        cancellation_refused=row["cancellation_refused"] if row["status"] == "registered"
        else None,
        detail=json.loads(detail) if isinstance(detail, str) else detail,
    )


async def _known_region(request: Request, region: str) -> None:
    known = await queries.region_codes(request.app.state.pool)
    if region in known:
        return
    if not known:
        raise unprocessable("unknown-region",
                            f"Region {region!r} is not known yet: the network's regions have "
                            "not reached OmaKaiku from Kaikukanta. Try again shortly.", "region")
    raise unprocessable("unknown-region", f"Unknown region {region!r}; valid codes: "
                        f"{', '.join(known)}.", "region")


async def _known_card(request: Request, card_number: str):
    """The card, waiting a moment for one cards issued just now to arrive here."""
    pool = request.app.state.pool
    card = await wait_for(lambda: queries.card(pool, card_number),
                          within=CARD_ARRIVAL_GRACE_SECONDS)
    if card is None:
        raise unprocessable("card-unknown",
                            f"Card {card_number} is not in Kaikukanta. Check the number.",
                            "card_number")
    return card
