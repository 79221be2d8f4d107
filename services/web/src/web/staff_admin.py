"""Kaikukanta's administration pages: the network of regions and municipalities,
the yearly partner continuation round (Kaikukeskus's side and the partner's
answer), and staff users (Kaikukeskus, or an organisation's admin user).

Like every page, these only call the cards API with the signed-in person's
token; cards decides who may do what, and its refusals are shown on the page.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from .app import CSRF, call, language, page, session_of, staff_session
from .client import Answer

HELSINKI = ZoneInfo("Europe/Helsinki")
# The network's codes, as cards checks them; checked here too because a code
# becomes part of the cards URL.
CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,60}$")
COUNTRY = re.compile(r"^[A-Za-z]{2}$")


def place_form_problem(code: str, form: dict[str, str], country: str) -> str | None:
    """What a region or municipality form lacks before it may go to cards (a message key)."""
    if not CODE.fullmatch(code):
        return "network.bad_code"
    if not form.get("name_fi"):
        return "network.name_fi_needed"
    if not COUNTRY.fullmatch(country):
        return "network.bad_country"
    return None


MUNICIPALITY_STATUSES = ("in_use", "pilot", "joining_2025_2026", "popup", "left")
LANGS = ("fi", "sv", "en")
DECISIONS = ("continue", "leave")
MIN_PASSWORD = 12


def today() -> date:
    return datetime.now(HELSINKI).date()


def round_years() -> tuple[int, int]:
    """A round asks about this year or the next (cards refuses other years)."""
    year = today().year
    return year, year + 1


def as_uuid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(value or "").strip()))
    except ValueError:
        return None


def as_year(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d{4}", value or "") else None


def name_in(names: Any, lang: str) -> str:
    """A network name in the chosen language, else Finnish, else any."""
    if isinstance(names, dict):
        return names.get(lang) or names.get("fi") or next(iter(names.values()), "")
    return str(names or "")


def form_names(form: dict[str, str]) -> dict[str, str]:
    return {lang: form.get(f"name_{lang}", "") for lang in LANGS if form.get(f"name_{lang}")}


async def form_of(request: Request) -> dict[str, str]:
    return {k: str(v).strip() for k, v in (await request.form()).items()}


def register_admin_routes(app: FastAPI) -> None:  # noqa: C901 - one place per page group
    # --- the network: regions and municipalities (Kaikukeskus edits) ------------------

    async def network_page(request: Request, *, status: int = 200, done_key: str | None = None,
                           values: dict[str, Any] | None = None) -> Response:
        answer = await call(request, "cards", "GET", "/network")
        return page(request, "staff/network.html", status=status, answer=answer,
                    regions=regions_of(answer), done_key=done_key, values=values or {},
                    name_in=name_in)

    def regions_of(answer: Answer) -> list[dict[str, Any]]:
        if answer.ok and isinstance(answer.data, dict):
            return list(answer.data.get("regions") or [])
        return []

    @app.get("/staff/network", response_class=HTMLResponse)
    async def network(request: Request) -> Response:
        staff_session(request)
        return await network_page(request)

    @app.get("/staff/network/region", response_class=HTMLResponse)
    async def region_form(request: Request, code: str = "") -> Response:
        staff_session(request)
        form: dict[str, str] = {"country": "FI"}
        if code:
            answer = await call(request, "cards", "GET", "/network")
            region = next((r for r in regions_of(answer) if r.get("code") == code), None)
            if region is None:
                return page(request, "message.html", status=answer.status if not answer.ok
                            else 404, heading_key="network.region_unknown",
                            error=None if answer.ok else answer)
            form = {"code": code, "country": region.get("country", "FI"),
                    **{f"name_{lang}": (region.get("name") or {}).get(lang, "")
                       for lang in LANGS}}
        return page(request, "staff/region_form.html", form=form, existing=bool(code))

    @app.post("/staff/network/region", dependencies=CSRF)
    async def save_region(request: Request) -> Response:
        staff_session(request)
        form = await form_of(request)
        existing = form.get("existing") == "1"
        code = form.get("code", "").lower()
        country = form.get("country", "").upper() or "FI"

        def again(status: int, **context: Any) -> Response:
            return page(request, "staff/region_form.html", status=status, form=form,
                        existing=existing, **context)

        if (problem := place_form_problem(code, form, country)) is not None:
            return again(422, error_key=problem)
        if not existing:
            current = await call(request, "cards", "GET", "/network")
            if any(r.get("code") == code for r in regions_of(current)):
                return again(409, error_key="network.code_taken")
        answer = await call(request, "cards", "PUT", f"/network/regions/{code}",
                            json={"name": form_names(form), "country": country})
        if not answer.ok:
            return again(answer.status, error=answer)
        return await network_page(request, done_key="network.region_saved",
                                  values={"name": name_in(answer.data.get("name"),
                                                          language(request))})

    @app.get("/staff/network/municipality", response_class=HTMLResponse)
    async def municipality_form(request: Request, code: str = "",
                                region: str = "") -> Response:
        staff_session(request)
        answer = await call(request, "cards", "GET", "/network")
        regions = regions_of(answer)
        form: dict[str, str] = {"country": "FI", "region": region, "status": "in_use"}
        if code:
            found = next(((r, m) for r in regions for m in r.get("municipalities") or []
                          if m.get("code") == code), None)
            if found is None:
                return page(request, "message.html", status=answer.status if not answer.ok
                            else 404, heading_key="network.municipality_unknown",
                            error=None if answer.ok else answer)
            owner, municipality = found
            form = {"code": code, "region": owner.get("code", ""),
                    "status": municipality.get("status", ""),
                    "country": municipality.get("country", "FI"),
                    **{f"name_{lang}": (municipality.get("name") or {}).get(lang, "")
                       for lang in LANGS}}
        return page(request, "staff/municipality_form.html", form=form, existing=bool(code),
                    regions=regions, statuses=MUNICIPALITY_STATUSES, name_in=name_in,
                    error=None if answer.ok else answer)

    @app.post("/staff/network/municipality", dependencies=CSRF)
    async def save_municipality(request: Request) -> Response:
        staff_session(request)
        form = await form_of(request)
        existing = form.get("existing") == "1"
        code = form.get("code", "").lower()
        country = form.get("country", "").upper() or "FI"
        current = await call(request, "cards", "GET", "/network")
        regions = regions_of(current)

        def again(status: int, **context: Any) -> Response:
            return page(request, "staff/municipality_form.html", status=status, form=form,
                        existing=existing, regions=regions, statuses=MUNICIPALITY_STATUSES,
                        name_in=name_in, **context)

        if (problem := place_form_problem(code, form, country)) is not None:
            return again(422, error_key=problem)
        if form.get("status") not in MUNICIPALITY_STATUSES:
            return again(422, error_key="network.status_needed")
        if not form.get("region"):
            return again(422, error_key="network.region_needed")
        if not existing and any(m.get("code") == code for r in regions
                                for m in r.get("municipalities") or []):
            return again(409, error_key="network.code_taken")
        answer = await call(request, "cards", "PUT", f"/network/municipalities/{code}", json={
            "name": form_names(form), "region": form["region"], "status": form["status"],
            "country": country})
        if not answer.ok:
            return again(answer.status, error=answer)
        return await network_page(request, done_key="network.municipality_saved",
                                  values={"name": name_in(answer.data.get("name"),
                                                          language(request))})

    # --- the continuation round: Kaikukeskus -----------------------------------------

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

    @app.get("/staff/rounds", response_class=HTMLResponse)
    async def rounds(request: Request) -> Response:
        staff_session(request)
        return await rounds_page(request)

    @app.post("/staff/rounds", dependencies=CSRF)
    async def open_round(request: Request) -> Response:
        staff_session(request)
        form = await form_of(request)
        year = as_year(form.get("year", ""))
        try:
            deadline = date.fromisoformat(form.get("deadline", ""))
        except ValueError:
            deadline = None
        if year is None or deadline is None:
            return await rounds_page(request, status=422, form=form,
                                     error_key="round.bad_input")
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

    @app.get("/staff/rounds/{year}", response_class=HTMLResponse)
    async def show_round(request: Request, year: str) -> Response:
        staff_session(request)
        chosen = as_year(year)
        if chosen is None:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        return await round_page(request, chosen)

    @app.post("/staff/rounds/{year}/closure", dependencies=CSRF)
    async def close_round(request: Request, year: str) -> Response:
        staff_session(request)
        chosen = as_year(year)
        if chosen is None:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        form = await form_of(request)
        if form.get("confirm") != "yes":
            return await round_page(request, chosen, status=422,
                                    error_key="round.confirm_needed")
        answer = await call(request, "cards", "POST", f"/continuation-rounds/{chosen}/closure",
                            idempotency_key=form.get("idem") or None)
        if not answer.ok:
            return await round_page(request, chosen, status=answer.status, error=answer)
        return await round_page(request, chosen, done_key="round.closed_done")

    # --- the continuation round: the partner's answer ---------------------------------

    async def continuation_page(request: Request, *, status: int = 200,
                                done_key: str | None = None, error: Answer | None = None,
                                error_key: str | None = None) -> Response:
        rounds, unavailable, refused = [], False, None
        for year in round_years():
            answer = await call(request, "cards", "GET", f"/continuation-rounds/{year}/my-answer")
            if answer.ok:
                mine = dict(answer.data)
                mine["open"] = not mine.get("closed") and str(mine.get("deadline")) >= \
                    today().isoformat()
                rounds.append(mine)
            elif answer.unavailable:
                unavailable = True
            elif answer.problem_kind != "round-not-found":
                refused = answer
        return page(request, "staff/continuation.html", status=status, rounds=rounds,
                    unavailable=unavailable, refused=refused, done_key=done_key, error=error,
                    error_key=error_key, decisions=DECISIONS)

    @app.get("/staff/continuation", response_class=HTMLResponse)
    async def continuation(request: Request) -> Response:
        staff_session(request)
        return await continuation_page(request)

    @app.post("/staff/continuation/{year}", dependencies=CSRF)
    async def answer_round(request: Request, year: str) -> Response:
        staff_session(request)
        chosen = as_year(year)
        form = await form_of(request)
        if chosen is None:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        if form.get("decision") not in DECISIONS:
            return await continuation_page(request, status=422,
                                           error_key="continuation.choose")
        answer = await call(request, "cards", "POST", f"/continuation-rounds/{chosen}/answers",
                            json={"decision": form["decision"]},
                            idempotency_key=form.get("idem") or None)
        if not answer.ok:
            return await continuation_page(request, status=answer.status, error=answer)
        return await continuation_page(request, done_key="continuation.saved")

    # --- staff users -----------------------------------------------------------------

    async def users_page(request: Request, organisation_id: str | None, *, status: int = 200,
                         done_key: str | None = None, values: dict[str, Any] | None = None,
                         error: Answer | None = None, error_key: str | None = None,
                         form: dict[str, str] | None = None) -> Response:
        session = staff_session(request)
        organisations: list[dict[str, Any]] = []
        if session.get("role") == "kaikukeskus":
            listing = await call(request, "cards", "GET", "/organisations")
            if listing.ok and isinstance(listing.data, list):
                organisations = [o for o in listing.data if o.get("status") != "left"]
        users = await call(request, "cards", "GET", "/users",
                           params={"organisation_id": organisation_id})
        chosen = next((o for o in organisations
                       if str(o.get("organisation_id")) == organisation_id), None)
        return page(request, "staff/users.html", status=status, users=users,
                    organisations=organisations, organisation_id=organisation_id or "",
                    chosen=chosen, done_key=done_key, values=values or {}, error=error,
                    error_key=error_key, form=form or {}, min_password=MIN_PASSWORD)

    @app.get("/staff/users", response_class=HTMLResponse)
    async def users(request: Request, organisation_id: str = "") -> Response:
        staff_session(request)
        return await users_page(request, as_uuid(organisation_id))

    @app.post("/staff/users", dependencies=CSRF)
    async def create_user(request: Request) -> Response:
        session = staff_session(request)
        form = await form_of(request)
        organisation_id = as_uuid(form.get("organisation_id"))
        if session.get("role") != "kaikukeskus":
            organisation_id = None  # an admin user adds to its own organisation
        kept = {k: v for k, v in form.items() if k != "password"}
        if len(form.get("password", "")) < MIN_PASSWORD:
            return await users_page(request, organisation_id, status=422, form=kept,
                                    error_key="users.password_short")
        body: dict[str, Any] = {"username": form.get("username", ""),
                                "password": form.get("password", ""),
                                "admin": form.get("admin") == "on"}
        if organisation_id:
            body["organisation_id"] = organisation_id
        answer = await call(request, "cards", "POST", "/users", json=body,
                            idempotency_key=form.get("idem") or None)
        if not answer.ok:
            return await users_page(request, organisation_id, status=answer.status,
                                    error=answer, form=kept)
        return await users_page(request, organisation_id, done_key="users.created",
                                values={"username": answer.data.get("username", "")})

    @app.post("/staff/users/{user_id}/deactivation", dependencies=CSRF)
    async def deactivate_user(request: Request, user_id: str) -> Response:
        staff_session(request)
        form = await form_of(request)
        organisation_id = as_uuid(form.get("organisation_id"))
        target = as_uuid(user_id)
        if target is None:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        answer = await call(request, "cards", "POST", f"/users/{target}/deactivation",
                            idempotency_key=form.get("idem") or None)
        if not answer.ok:
            return await users_page(request, organisation_id, status=answer.status,
                                    error=answer)
        return await users_page(request, organisation_id, done_key="users.deactivated",
                                values={"username": answer.data.get("username", "")})

    def password_form(request: Request, *, user_id: str, username: str, own: bool,
                      organisation_id: str | None, status: int = 200, **context: Any
                      ) -> Response:
        return page(request, "staff/password.html", status=status, user_id=user_id,
                    username=username, own=own, organisation_id=organisation_id or "",
                    min_password=MIN_PASSWORD, **context)

    async def set_password(request: Request, *, user_id: str, username: str, own: bool,
                           organisation_id: str | None) -> Response:
        form = await form_of(request)
        password, repeat = form.get("password", ""), form.get("repeat", "")
        again = {"user_id": user_id, "username": username, "own": own,
                 "organisation_id": organisation_id}
        if len(password) < MIN_PASSWORD:
            return password_form(request, status=422, error_key="users.password_short", **again)
        if password != repeat:
            return password_form(request, status=422, error_key="users.password_mismatch",
                                 **again)
        body = {"password": password}
        if own:
            body["current_password"] = form.get("current_password", "")
        answer = await call(request, "cards", "PUT", f"/users/{user_id}/password", json=body)
        if own and answer.status == 403:
            return password_form(request, status=403, error_key="users.current_password_wrong",
                                 **again)
        if not answer.ok:
            return password_form(request, status=answer.status, error=answer, **again)
        if own:
            return await signed_in_again(request, username, password)
        return await users_page(request, organisation_id, done_key="users.password_changed",
                                values={"username": answer.data.get("username", username)})

    async def signed_in_again(request: Request, username: str, password: str) -> Response:
        """A password change ends every earlier token of the user, this session's
        too: sign in with the new password, so only the other sessions end."""
        response = page(request, "message.html", heading_key="users.own_password_changed",
                        message_key="users.own_password_changed_detail", live=True)
        answer = await call(request, "cards", "POST", "/auth/login", anonymous=True,
                            json={"username": username, "password": password})
        if answer.ok:
            session = {**session_of(request), "token": answer.data["access_token"]}
            request.app.state.sessions.write(response, session)
        return response

    @app.get("/staff/users/{user_id}/password", response_class=HTMLResponse)
    async def user_password_form(request: Request, user_id: str, username: str = "",
                                 organisation_id: str = "") -> Response:
        staff_session(request)
        target = as_uuid(user_id)
        if target is None:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        return password_form(request, user_id=target, username=username[:64], own=False,
                             organisation_id=as_uuid(organisation_id))

    @app.post("/staff/users/{user_id}/password", dependencies=CSRF)
    async def user_password(request: Request, user_id: str) -> Response:
        staff_session(request)
        target = as_uuid(user_id)
        if target is None:
            return page(request, "message.html", status=404, heading_key="error.not_found")
        form = await form_of(request)
        return await set_password(request, user_id=target,
                                  username=form.get("username", "")[:64], own=False,
                                  organisation_id=as_uuid(form.get("organisation_id")))

    @app.get("/staff/password", response_class=HTMLResponse)
    async def own_password_form(request: Request) -> Response:
        session = staff_session(request)
        if not as_uuid(session.get("user_id")):
            return page(request, "message.html", status=404, heading_key="users.own_password",
                        message_key="users.own_password_unavailable")
        return password_form(request, user_id=session["user_id"],
                             username=session.get("username", ""), own=True,
                             organisation_id=None)

    @app.post("/staff/password", dependencies=CSRF)
    async def own_password(request: Request) -> Response:
        session = staff_session(request)
        user_id = as_uuid(session.get("user_id"))
        if not user_id:
            return page(request, "message.html", status=404, heading_key="users.own_password",
                        message_key="users.own_password_unavailable")
        return await set_password(request, user_id=user_id,
                                  username=session.get("username", ""), own=True,
                                  organisation_id=None)
