"""``GET /me/export``: everything omakaiku holds about the signed-in holder, as
one machine-readable JSON document (GDPR Art. 15 and 20). Notifications has an
export of its own; the web combines the two into one file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from kaiku_shared.http import PROBLEM, Problem, ProblemDetail
from kaiku_shared.usecases import run_use_case

from ..adapters.export import holder_records
from ..adapters.push import export_records as push_records
from ..application.app import OmaKaikuApplication
from ..application.export import feedback_by_ticket
from .api import App, Holder

EXPORT_SCHEMA = "kaikukortti.omakaiku.export/1"  # documented in docs/api.md
ERASED: dict[int | str, dict[str, Any]] = {410: {
    "description": "The account has been erased (`account-erased`): nothing is left to export",
    "model": ProblemDetail,
    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}}

router = APIRouter()


def account_erased() -> Problem:
    return Problem(410, "Account erased", "This OmaKaiku account has been erased: its "
                   "personal data is destroyed and there is nothing left to export.",
                   kind="account-erased")


@router.get("/me/export", tags=["holder"], responses=ERASED)
async def holder_export(request: Request, app: App, principal: Holder) -> JSONResponse:
    """The profile (opened under the holder's key), the card, every ticket with its
    history and feedback, subscriptions, push devices, and the sign-in and e-mail
    records omakaiku keeps. After erasure: 410."""
    account = await run_use_case(app.load_account, principal.account_id)
    if account.erased:
        raise account_erased()
    try:
        profile = await run_use_case(app.get_profile, principal.account_id)
    except Problem as refused:
        raise account_erased() if refused.status == 404 else refused  # erased meanwhile
    records = await holder_records(request.app.state.pool, account.id, account.card_number,
                                   account.card_numbers)
    records["push"] = await push_records(request.app.state.pool, app.vault, account.id)
    body = {"service": "omakaiku", "schema": EXPORT_SCHEMA,
            "exported_at": datetime.now(UTC).isoformat(), "account_id": str(account.id),
            **await _holder_sections(app, profile, records)}
    filename = f"kaikukortti-omakaiku-{datetime.now(UTC).date().isoformat()}.json"
    return JSONResponse(jsonable_encoder(body), headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})


async def _holder_sections(app: OmaKaikuApplication, profile: Any,
                           records: dict[str, Any]) -> dict[str, Any]:
    account = profile.account
    ticket_ids = [UUID(str(row["ticket_id"])) for row in records["tickets"]]
    feedback = await asyncio.to_thread(feedback_by_ticket, app, ticket_ids)
    tickets = [{**row, "cancellation_requested":
                str(row["ticket_id"]) in account.cancellation_requests,
                "feedback": feedback.get(str(row["ticket_id"]))}
               for row in records["tickets"]]
    card = records["card"] or {"card_number": account.card_number}
    return {
        "profile": {**profile.personal.as_dict(), "language": account.language,
                    "activated_at": records["activated_at"] or account.created_on,
                    "activated_by": account.activated_by},
        "card": {**card, "previous_card_numbers": account.previous_card_numbers},
        "tickets": tickets,
        "subscriptions": {"genres": account.genres, "subgenres": account.subgenres,
                          "only_my_region": account.region is not None,
                          "region": account.region},
        # The devices' labels and push services, never their endpoints or keys.
        "push_devices": records["push"]["devices"],
        "push_preferences": records["push"]["preferences"],
        "sign_in": records["sign_in"],
        "emails": records["emails"],
    }
