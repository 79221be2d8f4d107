"""The web interfaces: Kaikukanta for staff (/staff) and OmaKaiku for holders (/oma).

Server-rendered Jinja2 pages; htmx swaps fragments where it makes a task faster
(the ticket desk, the live card-cap hint) and every form also works without it.
The web holds no data: each page calls the service APIs with the signed-in
person's bearer token from the session cookie, and shows their answers.
"""

from __future__ import annotations

import base64
import contextlib
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from kaiku_shared import taxonomy
from kaiku_shared.auth import KeysUnavailable, TokenError, TokenVerifier
from kaiku_shared.client_address import client_address
from kaiku_shared.production import refuse_unsafe_start, secret_problem
from kaiku_shared.settings import KaikuSettings, load_settings

from .client import Answer, Services
from .config import DEFAULT_PORT, WebSettings
from .i18n import DEFAULT_LANGUAGE, LANGUAGE_NAMES, LANGUAGES, translator
from .session import LANG_COOKIE, Sessions

HERE = Path(__file__).parent
HELSINKI = ZoneInfo("Europe/Helsinki")
MASS_EVENT_CAPACITY = 1000
MASS_EVENT_MIN_CAP = 20
CLOSURE_REASONS = ("lost", "moved", "misuse", "expired", "holder_request", "other")
STAFF_ROLES = ("kaikukeskus", "distributor", "venue", "ticket_agent")
VENUE_PAGE = 200  # venues' GET /venues gives at most 200 a page


def minimum_card_cap(capacity: int, kind: str = "performance") -> int:
    """The guideline's smallest card cap: 3 % of capacity rounded up; events over
    1,000 places need at most 20; a course at least 1. (Venues enforces it; the
    web only explains it while the form is filled in.)"""
    if capacity <= 0:
        return 0
    if kind == "course":
        return 1
    share = math.ceil(capacity * 3 / 100)
    return min(share, MASS_EVENT_MIN_CAP) if capacity > MASS_EVENT_CAPACITY else share


def looks_like_mobile_card(value: str) -> bool:
    """What a QR scanner types from an OmaKaiku mobile card: a JWT (three parts),
    never a card number."""
    return value.count(".") == 2 and len(value) > 40


# Venues' refusals of a scanned mobile card, in the desk's own words.
MOBILE_CARD_REFUSALS = {"mobile-card-invalid": "register.qr_invalid",
                        "mobile-card-expired": "register.qr_expired"}


def refusal_key(answer: Answer, scanned: bool) -> str | None:
    """The message key for a refusal (None: the generic one with the card number)."""
    if answer.ok or not scanned:
        return None
    return MOBILE_CARD_REFUSALS.get(answer.problem_kind or "", "register.refused_mobile")


def guideline_context(capacity: str, kind: str, card_cap: str) -> dict[str, Any]:
    """What the card-cap hint says for the numbers typed so far."""
    places = to_int(capacity)
    cap = to_int(card_cap)
    minimum = minimum_card_cap(places, kind) if places and places > 0 else None
    return {"minimum": minimum, "capacity": places, "kind": kind,
            "below": minimum is not None and cap is not None and cap < minimum,
            "mass": bool(places and places > MASS_EVENT_CAPACITY)}


class SignInNeeded(Exception):
    def __init__(self, where: str) -> None:
        self.where = where


class CsrfRefused(Exception):
    pass


# --- the app ----------------------------------------------------------------------


def create_app(settings: KaikuSettings | None = None,
               web: WebSettings | None = None) -> FastAPI:
    settings = settings or load_settings()
    web = web or WebSettings()
    secret = web.session_secret
    if not secret:
        raise SystemExit("the web needs KAIKU_WEB_SESSION_SECRET (a random value of its own) "
                         "to sign its session cookies")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services(web)
        try:
            yield
        finally:
            await app.state.services.close()

    web = harden_for_production(settings, web)
    app = FastAPI(title="Kaikukortti web", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.web = web
    # Public keys only: the web checks what a pasted or returned token is, and
    # the services refuse a revoked one (the web then asks to sign in again).
    app.state.verifier = TokenVerifier.from_settings(settings)
    app.state.sessions = Sessions(secret, web.session_seconds, web.secure_cookies)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = format_when
    templates.env.filters["day"] = format_day
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    headers = security_headers_for(settings)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        target = "/oma/signin" if exc.where == "holder" else "/staff/login"
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        response = RedirectResponse(target, status_code=303)
        app.state.sessions.clear(response)
        return response

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return page(request, "message.html", status=403, heading_key="csrf.title",
                    message_key="csrf.detail")

    register_routes(app)
    from .staff_admin import register_admin_routes  # it uses this module's helpers

    register_admin_routes(app)
    return app


# No 'unsafe-eval': htmx runs with allowEval false (base.html's htmx-config), so
# it never evaluates attribute code, and no page has inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
# One year; includeSubDomains/preload are the operator's call, for the whole domain.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def security_headers_for(settings: KaikuSettings) -> dict[str, str]:
    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
               "X-Frame-Options": "DENY", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    if settings.env == "production":
        # Served only behind TLS: browsers must never come back over plain HTTP.
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    return headers


def harden_for_production(settings: KaikuSettings, web: WebSettings) -> WebSettings:
    """KAIKU_ENV=production: cookies only over HTTPS (Secure), and a session key
    of its own rather than a fallback."""
    if settings.env != "production":
        return web
    if not web.session_secret or len(web.session_secret) < 32:
        raise SystemExit("KAIKU_ENV=production needs KAIKU_WEB_SESSION_SECRET of at least 32 "
                         "characters (`kaiku keys generate` writes one)")
    return web.model_copy(update={"secure_cookies": True})


def format_when(value: Any) -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(str(value)) if not isinstance(value, datetime) else value
    return moment.astimezone(HELSINKI).strftime("%d.%m.%Y %H:%M")


def format_day(value: Any) -> str:
    if not value:
        return ""
    return date.fromisoformat(str(value)[:10]).strftime("%d.%m.%Y")


# --- request helpers ---------------------------------------------------------------


def language(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def session_of(request: Request) -> dict[str, Any]:
    if not hasattr(request.state, "session"):
        request.state.session = request.app.state.sessions.read(request)
    return request.state.session


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    sessions: Sessions = request.app.state.sessions
    csrf = sessions.csrf_token(request)
    response = request.app.state.templates.TemplateResponse(request, template, {
        "t": translator(lang), "lang": lang, "languages": LANGUAGES,
        "language_names": LANGUAGE_NAMES, "session": session_of(request), "csrf": csrf,
        "path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "idem": str(uuid.uuid4()), "web": request.app.state.web,
        "genre_label": lambda code: genre_label(code, lang), **context,
    }, status_code=status)
    sessions.set_csrf_cookie(request, response)
    return response


def genre_label(code: str, lang: str) -> str:
    return taxonomy.label(code, lang) if taxonomy.is_valid_genre(code) else code


def genres(lang: str) -> list[tuple[str, str]]:
    return [(code, taxonomy.label(code, lang)) for code in taxonomy.GENRE_CODES]


async def csrf_protect(request: Request) -> None:
    submitted = request.headers.get("X-CSRF-Token")
    if submitted is None:
        form = await request.form()
        submitted = form.get("csrf")
    if not request.app.state.sessions.csrf_ok(request, submitted):
        raise CsrfRefused()


def staff_session(request: Request) -> dict[str, Any]:
    session = session_of(request)
    if session.get("role") not in STAFF_ROLES or not session.get("token"):
        raise SignInNeeded("staff")
    return session


def holder_session(request: Request) -> dict[str, Any]:
    session = session_of(request)
    if session.get("role") != "holder" or not session.get("token"):
        raise SignInNeeded("holder")
    return session


CSRF = [Depends(csrf_protect)]


async def call(request: Request, service: str, method: str, path: str, *,
               json: Any = None, params: dict[str, Any] | None = None,
               idempotency_key: str | None = None, anonymous: bool = False) -> Answer:
    session = session_of(request)
    services: Services = request.app.state.services
    answer = await services.call(service, method, path,
                                 token=None if anonymous else session.get("token"),
                                 json=json, params=params, idempotency_key=idempotency_key,
                                 client=browser_address(request))
    if answer.status == 401 and not anonymous:
        raise SignInNeeded("holder" if session.get("role") == "holder" else "staff")
    return answer


def browser_address(request: Request) -> str:
    """Who is at the browser: the peer, or what a trusted edge proxy says it saw."""
    return client_address(request.client.host if request.client else None,
                          request.headers.getlist("x-forwarded-for"),
                          request.app.state.settings.trusted_proxy_networks)


def is_htmx(request: Request) -> bool:
    return bool(request.headers.get("HX-Request"))


def local_datetime(value: str) -> datetime | None:
    """A datetime-local field (Finnish time) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=HELSINKI) if moment.tzinfo is None else moment


def to_int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


# --- routes ------------------------------------------------------------------------


def register_routes(app: FastAPI) -> None:  # noqa: C901 - one place lists every page
    sessions: Sessions = app.state.sessions

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        return JSONResponse({"status": "ready"})

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        return page(request, "home.html")

    @app.get("/lang/{lang}")
    async def choose_language(lang: str, request: Request, next: str = "/") -> Response:
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True,
                                samesite="strict", secure=app.state.web.secure_cookies,
                                path="/")
        return response

    @app.post("/signout", dependencies=CSRF)
    async def sign_out(request: Request) -> Response:
        session = session_of(request)
        holder = session.get("role") == "holder"
        if session.get("token"):
            # The token inside the cookie stops working everywhere, not just here.
            await app.state.services.call("omakaiku" if holder else "cards", "POST",
                                          "/me/sign-out" if holder else "/auth/sign-out",
                                          token=session["token"])
        response = RedirectResponse("/oma/signin" if holder else "/staff/login",
                                    status_code=303)
        sessions.clear(response)
        return response

    # --- staff sign-in ------------------------------------------------------------

    @app.get("/staff/login", response_class=HTMLResponse)
    async def staff_login_page(request: Request) -> Response:
        return page(request, "staff/login.html")

    async def signed_in(token: str, extra: dict[str, Any] | None = None) -> Response | None:
        try:
            principal = await app.state.verifier.verify(token)
        except (TokenError, KeysUnavailable):
            return None
        if principal.role not in STAFF_ROLES:
            return None
        response = RedirectResponse("/staff", status_code=303)
        sessions.write(response, {"token": token, "role": principal.role,
                                  "org": str(principal.organisation_id or ""),
                                  **(extra or {})})
        return response

    @app.post("/staff/login", dependencies=CSRF)
    async def staff_login(request: Request, username: str = Form(""),
                          password: str = Form("")) -> Response:
        answer = await call(request, "cards", "POST", "/auth/login", anonymous=True,
                            json={"username": username.strip(), "password": password})
        if answer.ok:
            response = await signed_in(answer.data["access_token"], {
                "username": username.strip(), "user_id": str(answer.data.get("user_id") or ""),
                "admin": bool(answer.data.get("admin"))})
            if response is not None:
                return response
        key = "login.unavailable" if answer.unavailable else "login.failed"
        return page(request, "staff/login.html", status=401 if not answer.unavailable else 503,
                    error_key=key, username=username)

    @app.post("/staff/login/token", dependencies=CSRF)
    async def staff_token_login(request: Request, token: str = Form("")) -> Response:
        if not app.state.web.dev_token_signin:
            return page(request, "message.html", status=404, heading_key="error.not_found",
                        message_key="login.token_disabled")
        response = await signed_in(token.strip())
        if response is None:
            return page(request, "staff/login.html", status=401, error_key="login.bad_token")
        return response

    @app.get("/staff", response_class=HTMLResponse)
    async def staff_home(request: Request) -> Response:
        staff_session(request)
        return page(request, "staff/home.html")

    # --- distributor: cards ------------------------------------------------------

    @app.get("/staff/cards/new", response_class=HTMLResponse)
    async def new_card(request: Request) -> Response:
        staff_session(request)
        return page(request, "staff/card_new.html", form={}, year=date.today().year)

    @app.post("/staff/cards", dependencies=CSRF)
    async def issue_card(request: Request) -> Response:
        staff_session(request)
        form = dict(await request.form())
        body: dict[str, Any] = {
            "birth_year": to_int(form.get("birth_year"), 0),
            "postal_code": str(form.get("postal_code", "")).strip(),
            "municipality": str(form.get("municipality", "")).strip(),
            "children": to_int(form.get("children"), 0),
            "community": form.get("community") == "on",
        }
        satisfaction = form.get("life_satisfaction", "no_answer")
        body["life_satisfaction"] = ("no_answer" if satisfaction in ("", "no_answer", None)
                                     else to_int(satisfaction))
        if form.get("valid_until"):
            body["valid_until"] = form["valid_until"]
        answer = await call(request, "cards", "POST", "/cards", json=body,
                            idempotency_key=str(form.get("idem") or "") or None)
        if not answer.ok:
            return page(request, "staff/card_new.html", status=answer.status, form=form,
                        error=answer, year=date.today().year)
        return page(request, "staff/card_issued.html", card=answer.data)

    @app.get("/staff/cards", response_class=HTMLResponse)
    async def find_card(request: Request, card_number: str = "") -> Response:
        staff_session(request)
        if card_number.strip():
            number = card_number.strip().upper()
            return RedirectResponse(f"/staff/cards/{number}", status_code=303)
        return page(request, "staff/card_find.html")

    async def card_page(request: Request, card_number: str, *, status: int = 200,
                        error: Answer | None = None, done_key: str | None = None) -> Response:
        answer = await call(request, "cards", "GET", f"/cards/{card_number}")
        if not answer.ok:
            return page(request, "staff/card_find.html", status=answer.status, error=answer,
                        card_number=card_number)
        return page(request, "staff/card.html", status=status, card=answer.data, error=error,
                    done_key=done_key, reasons=CLOSURE_REASONS)

    @app.get("/staff/cards/{card_number}", response_class=HTMLResponse)
    async def show_card(request: Request, card_number: str) -> Response:
        staff_session(request)
        return await card_page(request, card_number)

    @app.post("/staff/cards/{card_number}/children", dependencies=CSRF)
    async def change_children(request: Request, card_number: str,
                              children: str = Form("")) -> Response:
        staff_session(request)
        answer = await call(request, "cards", "PATCH", f"/cards/{card_number}",
                            json={"children": to_int(children, -1)})
        return await card_page(request, card_number, status=200 if answer.ok else answer.status,
                               error=None if answer.ok else answer,
                               done_key="card.children_changed" if answer.ok else None)

    @app.post("/staff/cards/{card_number}/renewal", dependencies=CSRF)
    async def renew_card(request: Request, card_number: str) -> Response:
        staff_session(request)
        form = dict(await request.form())
        body: dict[str, Any] = {}
        for field in ("life_satisfaction", "wellbeing_impact"):
            value = form.get(field, "no_answer")
            body[field] = "no_answer" if value in ("", "no_answer", None) else to_int(value)
        if form.get("valid_until"):
            body["valid_until"] = form["valid_until"]
        answer = await call(request, "cards", "POST", f"/cards/{card_number}/renewal",
                            json=body)
        return await card_page(request, card_number, status=200 if answer.ok else answer.status,
                               error=None if answer.ok else answer,
                               done_key="card.renewed" if answer.ok else None)

    @app.post("/staff/cards/{card_number}/closure", dependencies=CSRF)
    async def close_card(request: Request, card_number: str,
                         reason: str = Form("")) -> Response:
        staff_session(request)
        answer = await call(request, "cards", "POST", f"/cards/{card_number}/closure",
                            json={"reason": reason})
        return await card_page(request, card_number, status=200 if answer.ok else answer.status,
                               error=None if answer.ok else answer,
                               done_key="card.closed" if answer.ok else None)

    @app.post("/staff/cards/{card_number}/replacement", dependencies=CSRF)
    async def replace_card(request: Request, card_number: str,
                           idem: str = Form("")) -> Response:
        staff_session(request)
        answer = await call(request, "cards", "POST", f"/cards/{card_number}/replacement",
                            idempotency_key=idem or None)
        if not answer.ok:
            return await card_page(request, card_number, status=answer.status, error=answer)
        return page(request, "staff/card_issued.html", card=answer.data, replaced=card_number)

    # --- distributor: OmaKaiku activation -----------------------------------------

    @app.get("/staff/accounts/new", response_class=HTMLResponse)
    async def new_account(request: Request, card_number: str = "") -> Response:
        staff_session(request)
        return page(request, "staff/account_new.html",
                    form={"card_number": card_number, "language": language(request)})

    @app.post("/staff/accounts", dependencies=CSRF)
    async def activate_account(request: Request) -> Response:
        staff_session(request)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        body = {k: form.get(k, "") for k in ("card_number", "first_name", "last_name",
                                              "email", "municipality", "language")}
        if form.get("phone"):
            body["phone"] = form["phone"]
        answer = await call(request, "omakaiku", "POST", "/accounts", json=body,
                            idempotency_key=form.get("idem") or None)
        if not answer.ok:
            return page(request, "staff/account_new.html", status=answer.status, form=form,
                        error=answer)
        return page(request, "message.html", heading_key="account.activated",
                    message_key="account.activated_detail",
                    values={"email": body["email"]}, live=True)

    # --- venue: which venue --------------------------------------------------------

    async def chosen_venue(request: Request) -> dict[str, Any] | None:
        venue_id = session_of(request).get("venue_id")
        if not venue_id:
            return None
        answer = await call(request, "venues", "GET", f"/venues/{venue_id}")
        return answer.data if answer.ok else None

    async def my_venues(request: Request) -> Answer:
        """The venues the signed-in organisation works for: a venue organisation's
        own, or those that name a ticket agent among their ticket agents."""
        session = staff_session(request)
        if session.get("role") not in ("venue", "ticket_agent"):
            return Answer(200, None)  # Kaikukeskus names the venue by its id
        filter_ = ("agent_organisation_id" if session.get("role") == "ticket_agent"
                   else "organisation_id")
        found: list[dict[str, Any]] = []
        for offset in range(0, 2000, VENUE_PAGE):
            listing = await call(request, "venues", "GET", "/venues", params={
                filter_: session.get("org"), "limit": VENUE_PAGE, "offset": offset})
            if not listing.ok or not isinstance(listing.data, list):
                return listing
            found += listing.data
            if len(listing.data) < VENUE_PAGE:
                break
        return Answer(200, found)

    def acts_for(session: dict[str, Any], venue: dict[str, Any]) -> bool:
        org = str(session.get("org") or "")
        if session.get("role") not in ("venue", "ticket_agent"):
            return True  # Kaikukeskus: venues decides what it may do
        if session.get("role") == "ticket_agent":
            return org in [str(a) for a in (venue.get("limits") or {}).get("ticket_agents", [])]
        return str(venue.get("organisation_id")) == org

    async def venue_choice_page(request: Request, *, status: int = 200,
                                error: Answer | None = None,
                                error_key: str | None = None) -> Response:
        listing = await my_venues(request)
        venues = listing.data if listing.ok and isinstance(listing.data, list) else None
        return page(request, "staff/venue_choice.html", status=status, venues=venues,
                    listing_unavailable=not listing.ok,
                    listing_error=None if listing.ok or listing.unavailable else listing,
                    current=await chosen_venue(request), error=error, error_key=error_key)

    @app.get("/staff/venue", response_class=HTMLResponse)
    async def venue_choice(request: Request) -> Response:
        staff_session(request)
        return await venue_choice_page(request)

    @app.post("/staff/venue", dependencies=CSRF)
    async def venue_chosen(request: Request, venue_id: str = Form("")) -> Response:
        session = dict(staff_session(request))
        try:
            venue_id = str(uuid.UUID(venue_id.strip()))
        except ValueError:
            return await venue_choice_page(request, status=422, error_key="venue.bad_id")
        answer = await call(request, "venues", "GET", f"/venues/{venue_id}")
        if not answer.ok:
            return await venue_choice_page(request, status=answer.status, error=answer)
        if not acts_for(session, answer.data):
            return await venue_choice_page(request, status=403, error_key=(
                "venue.not_an_agent" if session.get("role") == "ticket_agent"
                else "venue.not_yours"))
        session["venue_id"] = venue_id
        response = RedirectResponse("/staff/register", status_code=303)
        sessions.write(response, session)
        return response

    async def need_venue(request: Request) -> dict[str, Any] | Response:
        staff_session(request)
        venue = await chosen_venue(request)
        if venue is None:
            return RedirectResponse("/staff/venue", status_code=303)
        return venue

    # --- venue: offering ---------------------------------------------------------

    @app.get("/staff/guideline", response_class=HTMLResponse)
    async def guideline_hint(request: Request, capacity: str = "", kind: str = "performance",
                             card_cap: str = "") -> Response:
        """The live hint under the card-cap field (an htmx fragment)."""
        return page(request, "staff/_guideline.html",
                    **guideline_context(capacity, kind, card_cap))

    @app.get("/staff/offerings/new", response_class=HTMLResponse)
    async def new_offering(request: Request) -> Response:
        venue = await need_venue(request)
        if isinstance(venue, Response):
            return venue
        lang = language(request)
        return page(request, "staff/offering_new.html", venue=venue, genres=genres(lang),
                    form={}, **guideline_context("", "performance", ""))

    @app.post("/staff/offerings", dependencies=CSRF)
    async def publish_offering(request: Request) -> Response:
        venue = await need_venue(request)
        if isinstance(venue, Response):
            return venue
        form = dict(await request.form())
        starts_at = local_datetime(str(form.get("starts_at", "")))
        body = {"title": str(form.get("title", "")).strip(),
                "genres": [g for g in [form.get("genre")] if g],
                "starts_at": starts_at.isoformat() if starts_at else "",
                "capacity": to_int(form.get("capacity"), 0),
                "card_cap": to_int(form.get("card_cap"), 0),
                "kind": form.get("kind") or "performance"}
        answer = await call(request, "venues", "POST",
                            f"/venues/{venue['venue_id']}/offerings", json=body,
                            idempotency_key=str(form.get("idem") or "") or None)
        if not answer.ok:
            lang = language(request)
            return page(request, "staff/offering_new.html", status=answer.status, venue=venue,
                        genres=genres(lang), form=form, error=answer,
                        **guideline_context(str(form.get("capacity", "")),
                                            str(form.get("kind", "performance")),
                                            str(form.get("card_cap", ""))))
        return page(request, "message.html", heading_key="offering.published",
                    message_key="offering.published_detail", values={"title": body["title"]},
                    live=True, next_href="/staff/register", next_key="nav.register")

    @app.get("/staff/offerings", response_class=HTMLResponse)
    async def venue_offerings(request: Request) -> Response:
        venue = await need_venue(request)
        if isinstance(venue, Response):
            return venue
        answer = await call(request, "venues", "GET", "/offerings",
                            params={"venue_id": venue["venue_id"], "limit": 200})
        return page(request, "staff/offerings.html", venue=venue,
                    offerings=answer.data if answer.ok else [], error=None if answer.ok else answer)

    @app.post("/staff/offerings/{offering_id}/cancellation", dependencies=CSRF)
    async def cancel_offering(request: Request, offering_id: str) -> Response:
        staff_session(request)
        answer = await call(request, "venues", "POST",
                            f"/offerings/{offering_id}/cancellation", json={})
        if not answer.ok:
            return page(request, "message.html", status=answer.status,
                        heading_key="error.refused", error=answer)
        return RedirectResponse("/staff/offerings", status_code=303)

    def edit_form(offering: dict[str, Any]) -> dict[str, str]:
        starts = offering.get("starts_at")
        local = (datetime.fromisoformat(str(starts)).astimezone(HELSINKI)
                 .strftime("%Y-%m-%dT%H:%M") if starts else "")
        return {"title": str(offering.get("title", "")), "starts_at": local,
                "capacity": str(offering.get("capacity", "")),
                "card_cap": str(offering.get("card_cap", "")),
                "kind": str(offering.get("kind", "performance"))}

    def edit_page(request: Request, offering: dict[str, Any], form: dict[str, str], *,
                  status: int = 200, error: Answer | None = None,
                  error_key: str | None = None, done_key: str | None = None) -> Response:
        return page(request, "staff/offering_edit.html", status=status, offering=offering,
                    form=form, error=error, error_key=error_key, done_key=done_key,
                    **guideline_context(form.get("capacity", ""), form.get("kind", ""),
                                        form.get("card_cap", "")))

    async def offering_to_edit(request: Request, offering_id: str) -> dict[str, Any] | Response:
        try:
            offering_id = str(uuid.UUID(offering_id))
        except ValueError:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        answer = await call(request, "venues", "GET", f"/offerings/{offering_id}")
        if not answer.ok:
            return page(request, "message.html", status=answer.status,
                        heading_key="error.refused", error=answer)
        return answer.data

    @app.get("/staff/offerings/{offering_id}/edit", response_class=HTMLResponse)
    async def edit_offering(request: Request, offering_id: str) -> Response:
        staff_session(request)
        offering = await offering_to_edit(request, offering_id)
        if isinstance(offering, Response):
            return offering
        return edit_page(request, offering, edit_form(offering))

    @app.post("/staff/offerings/{offering_id}", dependencies=CSRF)
    async def change_offering(request: Request, offering_id: str) -> Response:
        """Send venues only what was changed (PATCH); the guideline is checked again."""
        staff_session(request)
        offering = await offering_to_edit(request, offering_id)
        if isinstance(offering, Response):
            return offering
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        form["kind"] = str(offering.get("kind", "performance"))
        before = edit_form(offering)
        body: dict[str, Any] = {}
        if form.get("title", "") != before["title"]:
            body["title"] = form.get("title", "")
        if form.get("starts_at", "") != before["starts_at"]:
            starts_at = local_datetime(form.get("starts_at", ""))
            if starts_at is None:
                return edit_page(request, offering, form, status=422,
                                 error_key="offering.bad_start")
            body["starts_at"] = starts_at.isoformat()
        for field in ("capacity", "card_cap"):
            if form.get(field, "") != before[field]:
                value = to_int(form.get(field))
                if value is None:
                    return edit_page(request, offering, form, status=422,
                                     error_key="offering.bad_number")
                body[field] = value
        if not body:
            return edit_page(request, offering, form, done_key="offering.nothing_changed")
        answer = await call(request, "venues", "PATCH", f"/offerings/{offering['offering_id']}",
                            json=body)
        if not answer.ok:
            return edit_page(request, offering, form, status=answer.status, error=answer)
        return page(request, "message.html", heading_key="offering.changed",
                    message_key="offering.changed_detail",
                    values={"title": answer.data.get("title", "")}, live=True,
                    next_href="/staff/offerings", next_key="nav.offerings")

    # --- venue: the ticket desk ----------------------------------------------------

    async def upcoming(request: Request, venue_id: str) -> list[dict[str, Any]]:
        answer = await call(request, "venues", "GET", "/offerings",
                            params={"venue_id": venue_id, "from": date.today().isoformat(),
                                    "limit": 200})
        return answer.data if answer.ok and isinstance(answer.data, list) else []

    @app.get("/staff/register", response_class=HTMLResponse)
    async def ticket_desk(request: Request) -> Response:
        venue = await need_venue(request)
        if isinstance(venue, Response):
            return venue
        return page(request, "staff/register.html", venue=venue,
                    offerings=await upcoming(request, venue["venue_id"]), result=None)

    @app.post("/staff/tickets", dependencies=CSRF)
    async def register_ticket(request: Request) -> Response:
        venue = await need_venue(request)
        if isinstance(venue, Response):
            return venue
        form = dict(await request.form())
        typed = str(form.get("card_number", "")).strip()
        scanned = looks_like_mobile_card(typed)
        body = {"offering_id": str(form.get("offering_id", "")),
                "children": to_int(form.get("children"), 0) or 0}
        # A scanned OmaKaiku mobile card goes to venues as it is: venues verifies
        # it offline and registers the card number inside. The web never reads it.
        body["mobile_card_token" if scanned else "card_number"] = typed
        answer = await call(request, "venues", "POST", "/tickets", json=body,
                            idempotency_key=str(form.get("idem") or "") or None)
        result = {"ok": answer.ok, "answer": answer, "children": body["children"],
                  "card_number": "" if scanned else typed,
                  "message_key": refusal_key(answer, scanned)}
        if is_htmx(request):
            return page(request, "staff/_ticket_result.html", result=result,
                        status=200)
        return page(request, "staff/register.html", venue=venue, result=result,
                    offerings=await upcoming(request, venue["venue_id"]),
                    chosen=body["offering_id"], status=200 if answer.ok else answer.status)

    @app.post("/staff/tickets/{ticket_id}/cancellation", dependencies=CSRF)
    async def cancel_ticket(request: Request, ticket_id: str) -> Response:
        staff_session(request)
        answer = await call(request, "venues", "POST", f"/tickets/{ticket_id}/cancellation",
                            json={})
        result = {"cancelled": answer.ok, "answer": answer, "ok": answer.ok}
        return page(request, "staff/_ticket_result.html", result=result)

    # --- venue: feedback and inbox ------------------------------------------------

    @app.get("/staff/feedback", response_class=HTMLResponse)
    async def venue_feedback(request: Request) -> Response:
        venue = await need_venue(request)
        if isinstance(venue, Response):
            return venue
        answer = await call(request, "venues", "GET", f"/venues/{venue['venue_id']}/feedback")
        return page(request, "staff/feedback.html", venue=venue, answer=answer)

    @app.get("/staff/inbox", response_class=HTMLResponse)
    async def staff_inbox(request: Request) -> Response:
        staff_session(request)
        answer = await call(request, "notifications", "GET", "/inbox")
        return page(request, "inbox.html", answer=answer, holder=False)

    # --- Kaikukeskus -------------------------------------------------------------------

    async def organisations_page(request: Request, *, status: int = 200,
                                 form: dict[str, str] | None = None,
                                 error: Answer | None = None, done_key: str | None = None,
                                 values: dict[str, Any] | None = None,
                                 changed: dict[str, Any] | None = None,
                                 override_for: str | None = None) -> Response:
        answer = await call(request, "cards", "GET", "/organisations")
        rows = answer.data if answer.ok and isinstance(answer.data, list) else []
        if changed:  # the list is a read model: show what the registry just answered
            rows = [{**row, "status": changed["status"]}
                    if str(row.get("organisation_id")) == str(changed["organisation_id"])
                    else row for row in rows]
        pending = [row for row in rows if row.get("status") == "pending"]
        return page(request, "staff/organisations.html", status=status, answer=answer,
                    rows=rows, pending=pending, form=form or {}, error=error,
                    done_key=done_key, values=values or {}, override_for=override_for)

    @app.get("/staff/organisations", response_class=HTMLResponse)
    async def organisations(request: Request) -> Response:
        staff_session(request)
        return await organisations_page(request)

    @app.post("/staff/organisations", dependencies=CSRF)
    async def add_organisation(request: Request) -> Response:
        staff_session(request)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        created = await call(request, "cards", "POST", "/organisations", json={
            "kind": form.get("kind", ""), "name": form.get("name", ""),
            "municipality": form.get("municipality", ""),
            "pending": form.get("pending") == "on", "override": form.get("override") == "on"},
            idempotency_key=form.get("idem") or None)
        if not created.ok:
            return await organisations_page(
                request, status=created.status, form=form, error=created,
                override_for="new" if created.problem_kind == "no-new-partners-mid-year"
                else None)
        pending = created.data.get("status") == "pending"
        return await organisations_page(
            request, done_key="organisation.proposed" if pending else "organisation.added",
            values={"name": form.get("name", "")})

    @app.post("/staff/organisations/{organisation_id}/approval", dependencies=CSRF)
    async def approve_organisation(request: Request, organisation_id: str) -> Response:
        staff_session(request)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        try:
            organisation_id = str(uuid.UUID(organisation_id))
        except ValueError:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        answer = await call(request, "cards", "POST",
                            f"/organisations/{organisation_id}/approval",
                            json={"override": form.get("override") == "on"},
                            idempotency_key=form.get("idem") or None)
        if not answer.ok:
            return await organisations_page(
                request, status=answer.status, error=answer,
                override_for=organisation_id
                if answer.problem_kind == "no-new-partners-mid-year" else None)
        return await organisations_page(request, done_key="organisation.approved",
                                        values={"name": answer.data.get("name", "")},
                                        changed=answer.data)

    @app.get("/staff/stats", response_class=HTMLResponse)
    async def statistics(request: Request) -> Response:
        staff_session(request)
        national = await call(request, "cards", "GET", "/stats/national")
        regions = await call(request, "cards", "GET", "/stats/regions")
        rows = regions.data if regions.ok and isinstance(regions.data, list) else []
        lang = language(request)
        rows = sorted(rows, key=lambda r: str((r.get("names") or {}).get(lang)
                                              or r.get("name") or r.get("region") or "").lower())
        top = max([r.get("uses", 0) or 0 for r in rows] + [r.get("cards_issued", 0) or 0
                                                              for r in rows] + [1])
        return page(request, "staff/stats.html", national=national, regions=regions,
                    rows=rows, top=top)

    @app.get("/staff/stats/regions/{region}/report", response_class=HTMLResponse)
    async def region_report(request: Request, region: str) -> Response:
        """Kaikukanta's printable feedback-meeting report, fetched with the staff token."""
        staff_session(request)
        answer = await call(request, "cards", "GET", f"/stats/regions/{region}/report")
        if not answer.ok or not isinstance(answer.data, str):
            return page(request, "message.html", status=answer.status if not answer.ok else 502,
                        heading_key="error.refused", error=answer)
        return HTMLResponse(answer.data)

    @app.get("/staff/bulletins", response_class=HTMLResponse)
    async def bulletin_form(request: Request) -> Response:
        staff_session(request)
        return page(request, "staff/bulletin.html", form={})

    @app.post("/staff/bulletins", dependencies=CSRF)
    async def send_bulletin(request: Request) -> Response:
        staff_session(request)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        answer = await call(request, "notifications", "POST", "/bulletins",
                            json={"title": form.get("title", ""), "body": form.get("body", "")},
                            idempotency_key=form.get("idem") or None)
        if not answer.ok:
            return page(request, "staff/bulletin.html", status=answer.status, form=form,
                        error=answer)
        return page(request, "message.html", heading_key="bulletin.sent",
                    message_key="bulletin.sent_detail", live=True)

    # --- OmaKaiku: sign-in ------------------------------------------------------------

    @app.get("/oma/signin", response_class=HTMLResponse)
    async def holder_signin(request: Request) -> Response:
        return page(request, "oma/signin.html", step="email")

    @app.post("/oma/signin/code", dependencies=CSRF)
    async def holder_code(request: Request, email: str = Form("")) -> Response:
        answer = await call(request, "omakaiku", "POST", "/auth/code", anonymous=True,
                            json={"email": email.strip()})
        if answer.unavailable:
            return page(request, "oma/signin.html", status=503, step="email",
                        error_key="signin.unavailable")
        if not answer.ok:
            key = "signin.too_many" if answer.status == 429 else "signin.bad_email"
            return page(request, "oma/signin.html", status=answer.status, step="email",
                        email=email, error_key=key)
        return page(request, "oma/signin.html", step="code", email=email.strip())

    @app.post("/oma/signin/link", dependencies=CSRF)
    async def holder_link(request: Request, link_token: str = Form("")) -> Response:
        """The one-time link from the welcome e-mail (its token travels in the URL
        fragment, which only the page's script can read and post here)."""
        answer = await call(request, "omakaiku", "POST", "/auth/token", anonymous=True,
                            json={"link_token": link_token.strip()})
        if not answer.ok:
            return page(request, "oma/signin.html", status=answer.status, step="email",
                        error_key="signin.bad_link")
        return await holder_signed_in(request, answer.data["access_token"])

    async def holder_signed_in(request: Request, token: str) -> Response:
        response = RedirectResponse("/oma", status_code=303)
        sessions.write(response, {"token": token, "role": "holder"})
        me = await app.state.services.call("omakaiku", "GET", "/me", token=token)
        if me.ok and me.data.get("language") in LANGUAGES and not request.cookies.get(
                LANG_COOKIE):
            response.set_cookie(LANG_COOKIE, me.data["language"], max_age=365 * 24 * 3600,
                                httponly=True, samesite="strict",
                                secure=app.state.web.secure_cookies, path="/")
        return response

    @app.post("/oma/signin/token", dependencies=CSRF)
    async def holder_token(request: Request, email: str = Form(""),
                           code: str = Form("")) -> Response:
        answer = await call(request, "omakaiku", "POST", "/auth/token", anonymous=True,
                            json={"email": email.strip(), "code": code.strip()})
        if not answer.ok:
            key = "signin.too_many" if answer.status == 429 else "signin.bad_code"
            return page(request, "oma/signin.html", status=answer.status, step="code",
                        email=email, error_key=key)
        return await holder_signed_in(request, answer.data["access_token"])

    # --- OmaKaiku: the holder's pages -----------------------------------------------

    @app.get("/oma", response_class=HTMLResponse)
    async def my_card(request: Request) -> Response:
        holder_session(request)
        card = await call(request, "omakaiku", "GET", "/me/card")
        qr = None
        if card.ok and card.data.get("qr_svg"):
            qr = "data:image/svg+xml;base64," + base64.b64encode(
                card.data["qr_svg"].encode()).decode()
        return page(request, "oma/card.html", card=card, qr=qr)

    @app.get("/oma/events", response_class=HTMLResponse)
    async def my_events(request: Request) -> Response:
        holder_session(request)
        answer = await call(request, "omakaiku", "GET", "/me/tickets")
        return page(request, "oma/events.html", answer=answer)

    @app.post("/oma/tickets/{ticket_id}/cancel", dependencies=CSRF)
    async def cancel_my_ticket(request: Request, ticket_id: str) -> Response:
        holder_session(request)
        answer = await call(request, "omakaiku", "POST",
                            f"/me/tickets/{ticket_id}/cancellation")
        tickets = await call(request, "omakaiku", "GET", "/me/tickets")
        return page(request, "oma/events.html", answer=tickets, action=answer,
                    status=200 if answer.ok else answer.status)

    @app.get("/oma/history", response_class=HTMLResponse)
    async def my_history(request: Request) -> Response:
        holder_session(request)
        answer = await call(request, "omakaiku", "GET", "/me/history")
        return page(request, "oma/history.html", answer=answer,
                    now=datetime.now(UTC).isoformat())

    @app.post("/oma/tickets/{ticket_id}/feedback", dependencies=CSRF)
    async def give_feedback(request: Request, ticket_id: str) -> Response:
        holder_session(request)
        form = dict(await request.form())
        body = {k: to_int(form.get(k), -1) for k in ("accessibility", "meaning", "interest")}
        answer = await call(request, "omakaiku", "POST", f"/me/tickets/{ticket_id}/feedback",
                            json=body)
        history = await call(request, "omakaiku", "GET", "/me/history")
        return page(request, "oma/history.html", answer=history, feedback=answer,
                    given=ticket_id if answer.ok else None,
                    now=datetime.now(UTC).isoformat(),
                    status=200 if answer.ok else answer.status)

    @app.get("/oma/offerings", response_class=HTMLResponse)
    async def browse(request: Request, genre: str = "", municipality: str = "",
                     from_: str = "") -> Response:
        holder_session(request)
        lang = language(request)
        answer = await call(request, "omakaiku", "GET", "/offerings",
                            params={"genre": genre or None, "municipality": municipality,
                                    "lang": lang})
        return page(request, "oma/offerings.html", answer=answer, genres=genres(lang),
                    genre=genre, municipality=municipality)

    async def subscriptions_page(request: Request, *, saved: Answer | None = None
                                 ) -> Response:
        answer = await call(request, "omakaiku", "GET", "/me/subscriptions")
        chosen = set(answer.data.get("genres", [])) if answer.ok else set()
        return page(request, "oma/subscriptions.html", answer=answer, chosen=chosen,
                    genres=genres(language(request)), saved=saved,
                    status=200 if saved is None or saved.ok else saved.status)

    @app.get("/oma/subscriptions", response_class=HTMLResponse)
    async def my_subscriptions(request: Request) -> Response:
        holder_session(request)
        return await subscriptions_page(request)

    @app.post("/oma/subscriptions", dependencies=CSRF)
    async def save_subscriptions(request: Request) -> Response:
        holder_session(request)
        form = await request.form()
        chosen = [g for g in form.getlist("genres") if taxonomy.is_valid_genre(str(g))]
        saved = await call(request, "omakaiku", "PUT", "/me/subscriptions",
                           json={"genres": chosen})
        return await subscriptions_page(request, saved=saved)

    @app.get("/oma/inbox", response_class=HTMLResponse)
    async def holder_inbox(request: Request) -> Response:
        holder_session(request)
        answer = await call(request, "notifications", "GET", "/me/notifications")
        messages = await call(request, "notifications", "GET", "/me/messages")
        return page(request, "inbox.html", answer=answer, messages=messages, holder=True)

    @app.get("/oma/erase", response_class=HTMLResponse)
    async def erase_form(request: Request) -> Response:
        holder_session(request)
        return page(request, "oma/erase.html")

    @app.post("/oma/erase", dependencies=CSRF)
    async def erase(request: Request, confirm: str = Form("")) -> Response:
        holder_session(request)
        if confirm != "yes":
            return page(request, "oma/erase.html", status=422, error_key="erase.confirm_needed")
        answer = await call(request, "omakaiku", "DELETE", "/me")
        if not answer.ok:
            return page(request, "oma/erase.html", status=answer.status, error=answer)
        response = page(request, "message.html", heading_key="erase.done",
                        message_key="erase.done_detail", live=True)
        sessions.clear(response)
        return response


def main() -> None:
    import sys

    import uvicorn

    args = sys.argv[1:]
    if not args or args[0] not in ("api", "check"):
        raise SystemExit("usage: python -m web api|check")
    settings = load_settings()
    refuse_unsafe_start(settings, lambda: production_problems(WebSettings()))
    if args[0] == "check":
        return
    uvicorn.run(create_app(settings), host=settings.http_host,
                port=settings.http_port or DEFAULT_PORT, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)


def production_problems(web: WebSettings) -> list[str]:
    """The web signs its session cookies (in production always Secure, see
    harden_for_production)."""
    problems = [secret_problem(web.session_secret, "KAIKU_WEB_SESSION_SECRET")]
    if web.dev_token_signin:
        problems.append("KAIKU_WEB_DEV_TOKEN_SIGNIN is a development form")
    return [problem for problem in problems if problem]
