"""The public national statistics, `/tilastot`, for anyone (no sign-in), and the
open data passed on from cards under the web's own address.

The page renders cards' public document (kaiku_shared.public_stats.PublicStatsV1)
as headline figures, charts (web.charts) with the same figures in tables, and
breakdowns whose hidden cells are marked; places are named in the reader's
language from omakaiku's public place names (the document's own region names
when omakaiku does not answer). The data routes pass cards' CSV and JSON on
unchanged in content: the web is the address the public knows.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from kaiku_shared.public_stats import PublicStatsV1

from ..client import Answer
from ..pages import Language, call, not_found, page, public_document
from ..public_view import Places, statistics_view

router = APIRouter()

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CSV = "text/csv"
JSON = "application/json"
# The web's address of each open-data document → cards' route and its type.
DOCUMENTS = {
    "/tilastot.csv": ("/public/stats.csv", CSV),
    "/tilastot.json": ("/public/stats", JSON),
    "/tilastot/schema.json": ("/public/stats/schema.json", JSON),
}
DOWNLOAD_NAMES = {"/tilastot.csv": "kaikukortti-tilastot.csv"}


@router.get("/tilastot", response_class=HTMLResponse)
async def public_statistics(request: Request, lang: Language) -> Response:
    answer = await public_document(request, "cards", "/public/stats")
    stats = parsed(answer)
    if stats is None:
        return page(request, "tilastot.html", status=503, stats=None)
    places = await place_names(request, lang)
    return page(request, "tilastot.html", stats=stats,
                view=statistics_view(stats, lang, places))


# The last body validated and its document: on a 304 the web's DocumentCache
# hands back the very body it kept, so the page reuses the validated copy instead
# of validating the same body on every view.
_LAST_PARSED: list[tuple[dict[str, Any], PublicStatsV1]] = []


def parsed(answer: Answer) -> PublicStatsV1 | None:
    """The document, or None when cards cannot give one (down, or an answer the
    web does not understand: both shown as "not available")."""
    if not answer.ok or not isinstance(answer.data, dict):
        return None
    if _LAST_PARSED and _LAST_PARSED[0][0] is answer.data:
        return _LAST_PARSED[0][1]
    try:
        document = PublicStatsV1.model_validate(answer.data)
    except ValidationError:
        return None
    _LAST_PARSED[:] = [(answer.data, document)]
    return document


async def place_names(request: Request, lang: str) -> Places:
    answer = await call(request, "omakaiku", "GET", "/places", params={"lang": lang},
                        anonymous=True)
    if not answer.ok or not isinstance(answer.data, dict):
        return Places({}, {})
    return Places(
        {str(r.get("code")): str(r.get("name")) for r in answer.data.get("regions") or []},
        {str(m.get("code")): str(m.get("name"))
         for m in answer.data.get("municipalities") or []})


# --- open data ---------------------------------------------------------------------


@router.get("/tilastot.csv", response_model=None)
@router.get("/tilastot.json", response_model=None)
@router.get("/tilastot/schema.json", response_model=None)
async def open_data(request: Request) -> Response:
    path = request.url.path
    service_path, media_type = DOCUMENTS[path]
    return await passed_on(request, service_path, media_type, DOWNLOAD_NAMES.get(path))


@router.get("/tilastot/{month}.csv", response_model=None)
async def month_csv(request: Request, month: str) -> Response:
    if not MONTH.match(month):
        return not_found(request)
    return await passed_on(request, f"/public/stats/months/{month}.csv", CSV,
                           f"kaikukortti-tilastot-{month}.csv")


@router.get("/tilastot/{month}.json", response_model=None)
async def month_json(request: Request, month: str) -> Response:
    if not MONTH.match(month):
        return not_found(request)
    return await passed_on(request, f"/public/stats/months/{month}", JSON, None)


async def passed_on(request: Request, path: str, media_type: str,
                    filename: str | None) -> Response:
    """Cards' document as cards gave it (its refusals too: an unknown month is
    cards' 404); a page that says "not available" when cards does not answer."""
    answer = await public_document(request, "cards", path, accept=media_type)
    if answer.unavailable:
        return page(request, "message.html", status=503, heading_key="error.unavailable",
                    message_key="error.unavailable_detail")
    etag = answer.headers.get("etag")
    # The web writes the JSON anew: the same content, so its tag is a weak one.
    weak = f"W/{etag}" if etag and not etag.startswith("W/") else etag
    headers = {"Cache-Control": answer.headers.get("cache-control") or "no-cache"}
    if weak and answer.ok:
        headers["ETag"] = weak
        if weak in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
    if filename and answer.ok:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    body = answer.data if isinstance(answer.data, str) else json.dumps(
        answer.data, ensure_ascii=False)
    kind = answer.headers.get("content-type") or media_type
    return Response(body, status_code=answer.status, headers=headers, media_type=kind)
