"""The web interfaces: Kaikukanta for staff (/staff) and OmaKaiku for holders (/oma).

Server-rendered Jinja2 pages; htmx swaps fragments where it makes a task faster
(the ticket desk, the live card-cap hint) and every form also works without it.
The web holds no data: each page calls the service APIs with the signed-in
person's bearer token from the session cookie, and shows their answers.

This module builds the app from the routers in web.routes (one per area) and
the helpers they share in web.pages.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from kaiku_shared.auth import TokenVerifier
from kaiku_shared.production import refuse_unsafe_start, secret_problem
from kaiku_shared.settings import KaikuSettings, load_settings

from .client import DocumentCache, Services
from .config import DEFAULT_PORT, WebSettings
from .pages import CsrfRefused, SignInNeeded, format_day, format_when, page
from .routes import ROUTERS
from .session import Sessions

HERE = Path(__file__).parent

# No 'unsafe-eval': htmx runs with allowEval false (base.html's htmx-config), so
# it never evaluates attribute code, and no page has inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
# One year; includeSubDomains/preload are the operator's call, for the whole domain.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def create_app(settings: KaikuSettings | None = None,
               web: WebSettings | None = None) -> FastAPI:
    settings = settings or load_settings()
    web = web or WebSettings()
    secret = web.session_secret
    if not secret:
        raise SystemExit("the web needs KAIKU_WEB_SESSION_SECRET (a random value of its own) "
                         "to sign its session cookies")
    web = harden_for_production(settings, web)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services(web)
        try:
            yield
        finally:
            await app.state.services.close()

    app = FastAPI(title="Kaikukortti web", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.web = web
    # Public keys only: the web checks what a pasted or returned token is, and
    # the services refuse a revoked one (the web then asks to sign in again).
    app.state.verifier = TokenVerifier.from_settings(settings)
    app.state.documents = DocumentCache()
    app.state.sessions = Sessions(secret, web.session_seconds, web.secure_cookies)
    app.state.templates = templates()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    add_security_headers(app, security_headers_for(settings))
    app.add_exception_handler(SignInNeeded, sign_in_again)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    for router in ROUTERS:
        app.include_router(router)
    return app


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=str(HERE / "templates"))
    found.env.filters["when"] = format_when
    found.env.filters["day"] = format_day
    return found


def add_security_headers(app: FastAPI, headers: dict[str, str]) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response


async def sign_in_again(request: Request, exc: SignInNeeded) -> Response:
    target = "/oma/signin" if exc.where == "holder" else "/staff/login"
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    response = RedirectResponse(target, status_code=303)
    request.app.state.sessions.clear(response)
    return response


async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
    return page(request, "message.html", status=403, heading_key="csrf.title",
                message_key="csrf.detail")


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
