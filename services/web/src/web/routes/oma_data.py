"""OmaKaiku's "download my data": one file combining the holder's exports from
omakaiku (profile, card, tickets, sign-in) and notifications (messages and
notifications). The file is made only when both answer in full: a service that
is down gives a 503 page, never a partial file presented as complete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..client import Answer
from ..pages import Holder, call, page

COMBINED_SCHEMA = "kaikukortti.export/1"  # documented in docs/api.md and docs/web.md
FILENAME = "kaikukortti-omat-tiedot.json"
PARTS = ("omakaiku", "notifications")  # each service's own export, in the file's order

router = APIRouter()


@router.get("/oma/data", response_class=HTMLResponse)
async def my_data(request: Request, holder: Holder) -> Response:
    return page(request, "oma/data.html")


@router.get("/oma/data/download", response_model=None)
async def download_my_data(request: Request, holder: Holder) -> Response:
    answers = dict(zip(PARTS, await asyncio.gather(
        *(call(request, service, "GET", "/me/export") for service in PARTS)), strict=True))
    if answers["omakaiku"].status == 410:
        return page(request, "message.html", status=410, heading_key="data.erased",
                    message_key="data.erased_detail")
    missing = [service for service, answer in answers.items() if not complete(answer)]
    if missing:
        return page(request, "oma/data.html", status=503, missing=missing)
    return JSONResponse(combined(answers), headers={
        "Content-Disposition": f'attachment; filename="{FILENAME}"',
        "Cache-Control": "no-store"})


def complete(answer: Answer) -> bool:
    """A whole export: a 200 whose body names its schema."""
    return answer.ok and isinstance(answer.data, dict) and bool(answer.data.get("schema"))


def combined(answers: dict[str, Answer]) -> dict[str, Any]:
    """Both exports unchanged, each under its service's name."""
    return {"schema": COMBINED_SCHEMA, "exported_at": datetime.now(UTC).isoformat(),
            "account_id": answers["omakaiku"].data.get("account_id"),
            "parts": list(PARTS),
            **{service: answers[service].data for service in PARTS}}
