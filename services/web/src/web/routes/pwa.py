"""The installable OmaKaiku: the web app manifest, the service worker and the
page it shows for an OmaKaiku page it has no copy of when the phone is offline.

The worker lives at /sw.js and controls /oma (the holder's pages) only: it keeps
the card page and the upcoming tickets for offline use (web/static/sw.js).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from ..i18n import translator
from ..pages import language, page

router = APIRouter()

SCOPE = "/oma"
THEME_COLOUR = "#0b5a6e"  # --brand in style.css
BACKGROUND_COLOUR = "#ffffff"  # --paper
ICONS = (("/static/icons/icon-192.png", 192, "any"),
         ("/static/icons/icon-512.png", 512, "any"),
         ("/static/icons/maskable-512.png", 512, "maskable"))
STATIC = Path(__file__).resolve().parents[1] / "static"


def manifest_of(lang: str) -> dict:
    t = translator(lang)
    return {
        "id": SCOPE, "name": t("pwa.name"), "short_name": t("pwa.short_name"),
        "description": t("pwa.description"), "lang": lang, "dir": "ltr",
        "start_url": SCOPE, "scope": SCOPE, "display": "standalone",
        "theme_color": THEME_COLOUR, "background_color": BACKGROUND_COLOUR,
        "icons": [{"src": src, "sizes": f"{size}x{size}", "type": "image/png",
                   "purpose": purpose} for src, size, purpose in ICONS],
    }


@router.get("/manifest.webmanifest", include_in_schema=False)
async def manifest(request: Request) -> Response:
    # In the language the holder chose; the cookie can change, so revalidate.
    return JSONResponse(manifest_of(language(request)), media_type="application/manifest+json",
                        headers={"Cache-Control": "no-cache", "Vary": "Cookie"})


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> Response:
    """At the site's root so that its scope may be /oma (the card page is /oma
    itself, outside /oma/); no-cache so a new worker reaches phones at once."""
    return FileResponse(STATIC / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": SCOPE})


@router.get("/oma/offline", response_class=HTMLResponse)
async def offline_page(request: Request) -> Response:
    """Kept by the service worker at install: shown for an OmaKaiku page it has
    no copy of while there is no connection. Names no one, so no sign-in."""
    return page(request, "oma/offline.html")
