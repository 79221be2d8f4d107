"""The distributor's pages: issuing, finding, changing, renewing, closing and
replacing cards, listing the caseload (my cards, those expiring soon) and
renewing from it, and activating a holder's OmaKaiku account."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..client import Answer
from ..pages import HELSINKI, CSRF, Language, Staff, call, form_of, page, to_int

router = APIRouter()

CLOSURE_REASONS = ("lost", "moved", "misuse", "expired", "holder_request", "other")


def survey_answer(value: Any) -> int | str | None:
    """A survey question's field: a number, or that the holder did not answer."""
    return "no_answer" if value in ("", "no_answer", None) else to_int(value)


@router.get("/staff/cards/new", response_class=HTMLResponse)
async def new_card(request: Request, staff: Staff) -> Response:
    return page(request, "staff/card_new.html", form={}, year=date.today().year)


@router.post("/staff/cards", dependencies=CSRF)
async def issue_card(request: Request, staff: Staff) -> Response:
    form = dict(await request.form())
    body: dict[str, Any] = {
        "birth_year": to_int(form.get("birth_year"), 0),
        "postal_code": str(form.get("postal_code", "")).strip(),
        "municipality": str(form.get("municipality", "")).strip(),
        "children": to_int(form.get("children"), 0),
        "community": form.get("community") == "on",
        "life_satisfaction": survey_answer(form.get("life_satisfaction", "no_answer")),
    }
    if form.get("valid_until"):
        body["valid_until"] = form["valid_until"]
    answer = await call(request, "cards", "POST", "/cards", json=body,
                        idempotency_key=str(form.get("idem") or "") or None)
    if not answer.ok:
        return page(request, "staff/card_new.html", status=answer.status, form=form,
                    error=answer, year=date.today().year)
    return page(request, "staff/card_issued.html", card=answer.data)


@router.get("/staff/cards", response_class=HTMLResponse)
async def find_card(request: Request, staff: Staff, card_number: str = "") -> Response:
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


async def card_page_after(request: Request, card_number: str, answer: Answer,
                          done_key: str) -> Response:
    """The card again after a change: what was done, or why it was refused."""
    return await card_page(request, card_number, status=200 if answer.ok else answer.status,
                           error=None if answer.ok else answer,
                           done_key=done_key if answer.ok else None)


@router.get("/staff/cards/{card_number}", response_class=HTMLResponse)
async def show_card(request: Request, card_number: str, staff: Staff) -> Response:
    return await card_page(request, card_number)


@router.post("/staff/cards/{card_number}/children", dependencies=CSRF)
async def change_children(request: Request, card_number: str, staff: Staff,
                          children: str = Form("")) -> Response:
    answer = await call(request, "cards", "PATCH", f"/cards/{card_number}",
                        json={"children": to_int(children, -1)})
    return await card_page_after(request, card_number, answer, "card.children_changed")


@router.post("/staff/cards/{card_number}/renewal", dependencies=CSRF)
async def renew_card(request: Request, card_number: str, staff: Staff) -> Response:
    form = dict(await request.form())
    body: dict[str, Any] = {field: survey_answer(form.get(field, "no_answer"))
                            for field in ("life_satisfaction", "wellbeing_impact")}
    if form.get("valid_until"):
        body["valid_until"] = form["valid_until"]
    answer = await call(request, "cards", "POST", f"/cards/{card_number}/renewal", json=body)
    return await card_page_after(request, card_number, answer, "card.renewed")


@router.post("/staff/cards/{card_number}/closure", dependencies=CSRF)
async def close_card(request: Request, card_number: str, staff: Staff,
                     reason: str = Form("")) -> Response:
    answer = await call(request, "cards", "POST", f"/cards/{card_number}/closure",
                        json={"reason": reason})
    return await card_page_after(request, card_number, answer, "card.closed")


@router.post("/staff/cards/{card_number}/replacement", dependencies=CSRF)
async def replace_card(request: Request, card_number: str, staff: Staff,
                       idem: str = Form("")) -> Response:
    answer = await call(request, "cards", "POST", f"/cards/{card_number}/replacement",
                        idempotency_key=idem or None)
    if not answer.ok:
        return await card_page(request, card_number, status=answer.status, error=answer)
    return page(request, "staff/card_issued.html", card=answer.data, replaced=card_number)


# --- OmaKaiku activation --------------------------------------------------------------


@router.get("/staff/accounts/new", response_class=HTMLResponse)
async def new_account(request: Request, staff: Staff, lang: Language,
                      card_number: str = "") -> Response:
    return page(request, "staff/account_new.html",
                form={"card_number": card_number, "language": lang})


@router.post("/staff/accounts", dependencies=CSRF)
async def activate_account(request: Request, staff: Staff) -> Response:
    form = await form_of(request)
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


# --- the caseload: my cards, those expiring soon, renewal from the list ------------------

CASELOAD_PAGE = 25
EXPIRING_DAYS = 30
# The list's status filters and their names.
CASELOAD_STATUSES = {"active": "caseload.status_active", "expired": "caseload.status_expired",
                     "closed": "caseload.status_closed"}


def place_name(item: dict[str, Any], lang: str) -> str:
    """The card's municipality in the reader's language (its code only if unknown)."""
    names = item.get("municipality_names") or {}
    return names.get(lang) or names.get("fi") or item.get("municipality") or ""


async def caseload_page(request: Request, lang: str, *, expiring: bool, status: str,
                        cursor: str, done: str | None = None) -> Response:
    params: dict[str, Any] = {"limit": CASELOAD_PAGE}
    if expiring:
        soon = datetime.now(HELSINKI).date() + timedelta(days=EXPIRING_DAYS + 1)
        params.update(status="active", expiring_before=soon.isoformat())
    elif status in CASELOAD_STATUSES:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    answer = await call(request, "cards", "GET", "/cards", params=params)
    items = answer.data.get("items", []) if answer.ok else []
    return page(request, "staff/caseload.html", status=answer.status if not answer.ok else 200,
                error=None if answer.ok else answer, expiring=expiring,
                status_filter=params.get("status", "") if not expiring else "",
                statuses=CASELOAD_STATUSES.items(), first_page=not cursor, done=done,
                items=[{**item, "place": place_name(item, lang)} for item in items],
                next_cursor=answer.data.get("next_cursor") if answer.ok else None)


@router.get("/staff/caseload", response_class=HTMLResponse)
async def my_cards(request: Request, staff: Staff, lang: Language, status: str = "",
                   cursor: str = "") -> Response:
    """The distributor's own cards, a page at a time (Kaikukeskus: every card)."""
    return await caseload_page(request, lang, expiring=False, status=status, cursor=cursor)


@router.get("/staff/caseload/expiring", response_class=HTMLResponse)
async def expiring_cards(request: Request, staff: Staff, lang: Language, cursor: str = "",
                         renewed: str = "") -> Response:
    """Valid cards whose validity ends within 30 days: the ones to renew."""
    return await caseload_page(request, lang, expiring=True, status="", cursor=cursor,
                               done=renewed or None)


@router.get("/staff/caseload/{card_number}/renewal", response_class=HTMLResponse)
async def confirm_renewal(request: Request, card_number: str, staff: Staff) -> Response:
    """Renewal from the list asks first: the card's details and the survey."""
    answer = await call(request, "cards", "GET", f"/cards/{card_number}")
    if not answer.ok:
        return page(request, "staff/card_find.html", status=answer.status, error=answer,
                    card_number=card_number)
    return page(request, "staff/caseload_renew.html", card=answer.data)


@router.post("/staff/caseload/{card_number}/renewal", dependencies=CSRF)
async def renew_from_list(request: Request, card_number: str, staff: Staff) -> Response:
    form = dict(await request.form())
    body: dict[str, Any] = {field: survey_answer(form.get(field, "no_answer"))
                            for field in ("life_satisfaction", "wellbeing_impact")}
    answer = await call(request, "cards", "POST", f"/cards/{card_number}/renewal", json=body)
    if not answer.ok:
        card = await call(request, "cards", "GET", f"/cards/{card_number}")
        return page(request, "staff/caseload_renew.html", status=answer.status, error=answer,
                    card=card.data if card.ok else {"card_number": card_number})
    return RedirectResponse(f"/staff/caseload/expiring?renewed={answer.data['card_number']}",
                            status_code=303)
