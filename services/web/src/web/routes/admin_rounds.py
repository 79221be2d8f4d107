"""The yearly partner continuation round: Kaikukeskus opens and closes it, and
each partner answers whether it continues.

Like every page, these only call the cards API with the signed-in person's
token; cards decides who may do what, and its refusals are shown on the page.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..client import Answer
from ..pages import CSRF, HELSINKI, Staff, call, form_of, not_found, page

router = APIRouter()

DECISIONS = ("continue", "leave")


def today() -> date:
    return datetime.now(HELSINKI).date()


def round_years() -> tuple[int, int]:
    """A round asks about this year or the next (cards refuses other years)."""
    year = today().year
    return year, year + 1


def as_year(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d{4}", value or "") else None


def as_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


# --- Kaikukeskus's side -----------------------------------------------------------------


async def rounds_page(request: Request, *, status: int = 200, error: Answer | None = None,
                      error_key: str | None = None,
                      form: dict[str, str] | None = None) -> Response:
    rounds = []
    for year in round_years():
        answer = await call(request, "cards", "GET", f"/continuation-rounds/{year}")
        rounds.append({"year": year, "answer": answer,
                       "missing": answer.problem_kind == "round-not-found"})
    return page(request, "staff/rounds.html", status=status, rounds=rounds,
                years=round_years(), error=error, error_key=error_key, form=form or {})


@router.get("/staff/rounds", response_class=HTMLResponse)
async def rounds(request: Request, staff: Staff) -> Response:
    return await rounds_page(request)


@router.post("/staff/rounds", dependencies=CSRF)
async def open_round(request: Request, staff: Staff) -> Response:
    form = await form_of(request)
    year = as_year(form.get("year", ""))
    deadline = as_date(form.get("deadline", ""))
    if year is None or deadline is None:
        return await rounds_page(request, status=422, form=form, error_key="round.bad_input")
    answer = await call(request, "cards", "POST", "/continuation-rounds",
                        json={"year": year, "deadline": deadline.isoformat()},
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return await rounds_page(request, status=answer.status, error=answer, form=form)
    return await round_page(request, year, done_key="round.opened")


async def round_page(request: Request, year: int, *, status: int = 200,
                     done_key: str | None = None, error: Answer | None = None,
                     error_key: str | None = None) -> Response:
    answer = await call(request, "cards", "GET", f"/continuation-rounds/{year}")
    return page(request, "staff/round.html", status=status if answer.ok or status != 200
                else answer.status, year=year, answer=answer, done_key=done_key,
                error=error, error_key=error_key, today=today().isoformat())


@router.get("/staff/rounds/{year}", response_class=HTMLResponse)
async def show_round(request: Request, year: str, staff: Staff) -> Response:
    chosen = as_year(year)
    if chosen is None:
        return not_found(request)
    return await round_page(request, chosen)


@router.post("/staff/rounds/{year}/closure", dependencies=CSRF)
async def close_round(request: Request, year: str, staff: Staff) -> Response:
    chosen = as_year(year)
    if chosen is None:
        return not_found(request)
    form = await form_of(request)
    if form.get("confirm") != "yes":
        return await round_page(request, chosen, status=422, error_key="round.confirm_needed")
    answer = await call(request, "cards", "POST", f"/continuation-rounds/{chosen}/closure",
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return await round_page(request, chosen, status=answer.status, error=answer)
    return await round_page(request, chosen, done_key="round.closed_done")


# --- the partner's answer ---------------------------------------------------------------


def my_answer(answer: Answer) -> dict[str, Any]:
    """The partner's answer to a round, and whether the round still takes one."""
    mine = dict(answer.data)
    mine["open"] = not mine.get("closed") and str(mine.get("deadline")) >= \
        today().isoformat()
    return mine


async def continuation_page(request: Request, *, status: int = 200,
                            done_key: str | None = None, error: Answer | None = None,
                            error_key: str | None = None) -> Response:
    rounds, unavailable, refused = [], False, None
    for year in round_years():
        answer = await call(request, "cards", "GET", f"/continuation-rounds/{year}/my-answer")
        if answer.ok:
            rounds.append(my_answer(answer))
        elif answer.unavailable:
            unavailable = True
        elif answer.problem_kind != "round-not-found":
            refused = answer
    return page(request, "staff/continuation.html", status=status, rounds=rounds,
                unavailable=unavailable, refused=refused, done_key=done_key, error=error,
                error_key=error_key, decisions=DECISIONS)


@router.get("/staff/continuation", response_class=HTMLResponse)
async def continuation(request: Request, staff: Staff) -> Response:
    return await continuation_page(request)


@router.post("/staff/continuation/{year}", dependencies=CSRF)
async def answer_round(request: Request, year: str, staff: Staff) -> Response:
    chosen = as_year(year)
    form = await form_of(request)
    if chosen is None:
        return not_found(request)
    if form.get("decision") not in DECISIONS:
        return await continuation_page(request, status=422, error_key="continuation.choose")
    answer = await call(request, "cards", "POST", f"/continuation-rounds/{chosen}/answers",
                        json={"decision": form["decision"]},
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return await continuation_page(request, status=answer.status, error=answer)
    return await continuation_page(request, done_key="continuation.saved")
