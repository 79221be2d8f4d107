"""What every page of the web shares: rendering, the session, CSRF, the chosen
language and calls to the service APIs with the signed-in person's token.

The route modules (web.routes.*) import this module and never each other; the
app (web.app) puts the pieces on `app.state` that the dependencies here read.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from kaiku_shared import taxonomy
from kaiku_shared.client_address import client_address

from .client import Answer, DocumentCache, Services
from .config import WebSettings
from .i18n import DEFAULT_LANGUAGE, LANGUAGE_NAMES, LANGUAGES, translator
from .session import LANG_COOKIE, Sessions

HELSINKI = ZoneInfo("Europe/Helsinki")
STAFF_ROLES = ("kaikukeskus", "distributor", "venue", "ticket_agent")
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600


class SignInNeeded(Exception):
    def __init__(self, where: str) -> None:
        self.where = where


class CsrfRefused(Exception):
    pass


# --- what the app keeps on app.state ----------------------------------------------------


def services_of(request: Request) -> Services:
    return request.app.state.services


def sessions_of(request: Request) -> Sessions:
    return request.app.state.sessions


def web_settings_of(request: Request) -> WebSettings:
    return request.app.state.web


# --- the request's person and language --------------------------------------------------


def language(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def session_of(request: Request) -> dict[str, Any]:
    if not hasattr(request.state, "session"):
        request.state.session = sessions_of(request).read(request)
    return request.state.session


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


async def csrf_protect(request: Request) -> None:
    submitted = request.headers.get("X-CSRF-Token")
    if submitted is None:
        form = await request.form()
        submitted = form.get("csrf")
    if not sessions_of(request).csrf_ok(request, submitted):
        raise CsrfRefused()


CSRF = [Depends(csrf_protect)]
ServicesDep = Annotated[Services, Depends(services_of)]
SessionsDep = Annotated[Sessions, Depends(sessions_of)]
WebSettingsDep = Annotated[WebSettings, Depends(web_settings_of)]
Language = Annotated[str, Depends(language)]
Session = Annotated[dict[str, Any], Depends(session_of)]
Staff = Annotated[dict[str, Any], Depends(staff_session)]
Holder = Annotated[dict[str, Any], Depends(holder_session)]


def set_language_cookie(response: Response, lang: str, web: WebSettings) -> None:
    response.set_cookie(LANG_COOKIE, lang, max_age=LANGUAGE_COOKIE_SECONDS, httponly=True,
                        samesite="strict", secure=web.secure_cookies, path="/")


# --- rendering -----------------------------------------------------------------------


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    sessions = sessions_of(request)
    csrf = sessions.csrf_token(request)
    response = request.app.state.templates.TemplateResponse(request, template, {
        "t": translator(lang), "lang": lang, "languages": LANGUAGES,
        "language_names": LANGUAGE_NAMES, "session": session_of(request), "csrf": csrf,
        "path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "idem": str(uuid.uuid4()), "web": web_settings_of(request),
        "genre_label": lambda code: genre_label(code, lang), **context,
    }, status_code=status)
    sessions.set_csrf_cookie(request, response)
    return response


def not_found(request: Request) -> HTMLResponse:
    return page(request, "message.html", status=404, heading_key="error.not_found")


def genre_label(code: str, lang: str) -> str:
    return taxonomy.label(code, lang) if taxonomy.is_valid_genre(code) else code


def genres(lang: str) -> list[tuple[str, str]]:
    return [(code, taxonomy.label(code, lang)) for code in taxonomy.GENRE_CODES]


def format_when(value: Any) -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(str(value)) if not isinstance(value, datetime) else value
    return moment.astimezone(HELSINKI).strftime("%d.%m.%Y %H:%M")


def format_day(value: Any) -> str:
    if not value:
        return ""
    return date.fromisoformat(str(value)[:10]).strftime("%d.%m.%Y")


# --- calls to the services ------------------------------------------------------------


async def call(request: Request, service: str, method: str, path: str, *,
               json: Any = None, params: dict[str, Any] | None = None,
               idempotency_key: str | None = None, anonymous: bool = False,
               headers: dict[str, str] | None = None) -> Answer:
    """Call a service as the signed-in person; a refused token means sign in again."""
    session = session_of(request)
    extra = {"headers": headers} if headers else {}
    answer = await services_of(request).call(
        service, method, path, token=None if anonymous else session.get("token"),
        json=json, params=params, idempotency_key=idempotency_key,
        client=browser_address(request), **extra)
    if answer.status == 401 and not anonymous:
        raise SignInNeeded("holder" if session.get("role") == "holder" else "staff")
    return answer


async def public_document(request: Request, service: str, path: str,
                          accept: str = "application/json") -> Answer:
    """A service's public document (no token), revalidated against the copy the
    web keeps (web.client.DocumentCache): cheap when nothing has changed."""
    documents: DocumentCache = request.app.state.documents
    key = f"{service} {path} {accept}"
    answer = await call(request, service, "GET", path, anonymous=True,
                        headers={"Accept": accept, **documents.validator(key)})
    return documents.settle(key, answer)


def browser_address(request: Request) -> str:
    """Who is at the browser: the peer, or what a trusted edge proxy says it saw."""
    return client_address(request.client.host if request.client else None,
                          request.headers.getlist("x-forwarded-for"),
                          request.app.state.settings.trusted_proxy_networks)


# --- forms -----------------------------------------------------------------------------


async def form_of(request: Request) -> dict[str, str]:
    """The submitted form, each value trimmed."""
    return {k: str(v).strip() for k, v in (await request.form()).items()}


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


def as_uuid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(value or "").strip()))
    except ValueError:
        return None
