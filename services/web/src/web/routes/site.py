"""What belongs to no one area: health, the front page and the language choice."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..i18n import LANGUAGES
from ..pages import WebSettingsDep, page, set_language_cookie

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz() -> JSONResponse:
    return JSONResponse({"status": "ready"})


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return page(request, "home.html")


@router.get("/lang/{lang}")
async def choose_language(lang: str, web: WebSettingsDep, next: str = "/") -> Response:
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    if lang in LANGUAGES:
        set_language_cookie(response, lang, web)
    return response
