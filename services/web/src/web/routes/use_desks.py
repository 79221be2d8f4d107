"""The swimming hall's and the library's desks: a visit on the card's yearly
series (with the visits left this year), a fee the card covers (with the cap
left this year). The venue is the one chosen at /staff/venue (the venue desk)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..client import Answer
from ..pages import CSRF, Staff, call, form_of, language, page, to_int

router = APIRouter()

FEE_TYPES = ("late_fee", "interlibrary_loan", "copying")
# Venues' refusals (problem kinds), in the desk's own words.
REFUSALS = {
    "card-unknown": "usedesk.error_card_unknown",
    "card-closed": "usedesk.error_card_closed",
    "card-not-valid-on-event-date": "usedesk.error_card_not_valid",
    "too-many-children": "usedesk.error_too_many_children",
    "swimming-series-used-up": "usedesk.error_visits_used_up",
    "library-fee-cap-reached": "usedesk.error_cap_reached",
    "not-a-swimming-hall": "usedesk.error_not_swimming_hall",
    "not-a-library": "usedesk.error_not_library",
    "not-yours": "usedesk.error_not_yours",
}


async def desk_venue(request: Request, session: dict[str, Any]) -> dict[str, Any] | None:
    """The venue this desk works for (chosen on the venue desk), if any."""
    venue_id = session.get("venue_id")
    if not venue_id:
        return None
    answer = await call(request, "venues", "GET", f"/venues/{venue_id}")
    return answer.data if answer.ok and isinstance(answer.data, dict) else None


def refusal_key(answer: Answer) -> str | None:
    if answer.ok or answer.unavailable:
        return None
    return REFUSALS.get(answer.problem_kind or "", "usedesk.error_refused"
                        if answer.status == 422 else None)


def euros_to_cents(value: str) -> int | None:
    """'2,50' or '2.50' euros as cents; None when it is no positive amount."""
    try:
        amount = Decimal(value.replace(",", ".").replace("€", "").strip())
    except InvalidOperation:
        return None
    cents = amount * 100
    if cents != cents.to_integral_value() or cents < 1:
        return None
    return int(cents)


def euros(cents: int | None, lang: str) -> str:
    """Cents as the reader writes euros: 12,50 € (fi, sv) or €12.50 (en)."""
    amount = f"{(cents or 0) / 100:.2f}"
    return f"€{amount}" if lang == "en" else f"{amount.replace('.', ',')} €"


def desk(request: Request, venue: dict[str, Any], *, result: dict[str, Any] | None = None,
         form: dict[str, str] | None = None, error: Answer | None = None,
         error_key: str | None = None, status: int = 200) -> Response:
    return page(request, "staff/use_desk.html", venue=venue, result=result,
                form=form or {}, error=error if error_key is None else None,
                error_key=error_key, fee_types=FEE_TYPES, status=status,
                euros=lambda cents: euros(cents, language(request)))


@router.get("/staff/uses", response_class=HTMLResponse)
async def use_desk(request: Request, staff: Staff) -> Response:
    venue = await desk_venue(request, staff)
    if venue is None:
        return RedirectResponse("/staff/venue", status_code=303)
    return desk(request, venue)


async def record(request: Request, venue: dict[str, Any], path: str, body: dict[str, Any],
                 form: dict[str, str]) -> Response:
    answer = await call(request, "venues", "POST", f"/venues/{venue['venue_id']}/{path}",
                        json=body, idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return desk(request, venue, form=form, error=answer, error_key=refusal_key(answer),
                    status=answer.status)
    return desk(request, venue, result=answer.data)


@router.post("/staff/uses/swimming", dependencies=CSRF)
async def swimming_visit(request: Request, staff: Staff) -> Response:
    venue = await desk_venue(request, staff)
    if venue is None:
        return RedirectResponse("/staff/venue", status_code=303)
    form = await form_of(request)
    card_number = form.get("card_number", "").upper().replace(" ", "")
    children = to_int(form.get("children") or "0")
    if not card_number or children is None or not 0 <= children <= 30:
        key = "usedesk.error_no_card" if not card_number else "usedesk.error_children"
        return desk(request, venue, form=form, error_key=key, status=422)
    return await record(request, venue, "swimming-visits",
                        {"card_number": card_number, "children": children}, form)


@router.post("/staff/uses/library", dependencies=CSRF)
async def library_fee(request: Request, staff: Staff) -> Response:
    venue = await desk_venue(request, staff)
    if venue is None:
        return RedirectResponse("/staff/venue", status_code=303)
    form = await form_of(request)
    card_number = form.get("card_number", "").upper().replace(" ", "")
    cents = euros_to_cents(form.get("amount", ""))
    problem = ("usedesk.error_no_card" if not card_number
               else "usedesk.error_fee_type" if form.get("fee_type") not in FEE_TYPES
               else "usedesk.error_amount" if cents is None or cents > 1_000_000 else None)
    if problem:
        return desk(request, venue, form=form, error_key=problem, status=422)
    return await record(request, venue, "library-fees",
                        {"card_number": card_number, "fee_type": form["fee_type"],
                         "amount_cents": cents}, form)
