"""Staff users: Kaikukeskus, or an organisation's admin user, adds users,
deactivates them and sets their passwords. (A user's own password is in
web.routes.staff_signin.)"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..client import Answer
from ..pages import CSRF, Staff, as_uuid, call, form_of, not_found, page, staff_session
from ..passwords import MIN_PASSWORD, change_password, password_form

router = APIRouter()


async def partner_organisations(request: Request) -> list[dict[str, Any]]:
    """The organisations Kaikukeskus may choose among (those that have not left)."""
    listing = await call(request, "cards", "GET", "/organisations")
    if listing.ok and isinstance(listing.data, list):
        return [o for o in listing.data if o.get("status") != "left"]
    return []


async def users_page(request: Request, organisation_id: str | None, *, status: int = 200,
                     done_key: str | None = None, values: dict[str, Any] | None = None,
                     error: Answer | None = None, error_key: str | None = None,
                     form: dict[str, str] | None = None) -> Response:
    session = staff_session(request)
    organisations: list[dict[str, Any]] = []
    if session.get("role") == "kaikukeskus":
        organisations = await partner_organisations(request)
    users = await call(request, "cards", "GET", "/users",
                       params={"organisation_id": organisation_id})
    chosen = next((o for o in organisations
                   if str(o.get("organisation_id")) == organisation_id), None)
    return page(request, "staff/users.html", status=status, users=users,
                organisations=organisations, organisation_id=organisation_id or "",
                chosen=chosen, done_key=done_key, values=values or {}, error=error,
                error_key=error_key, form=form or {}, min_password=MIN_PASSWORD)


@router.get("/staff/users", response_class=HTMLResponse)
async def users(request: Request, staff: Staff, organisation_id: str = "") -> Response:
    return await users_page(request, as_uuid(organisation_id))


@router.post("/staff/users", dependencies=CSRF)
async def create_user(request: Request, staff: Staff) -> Response:
    form = await form_of(request)
    organisation_id = as_uuid(form.get("organisation_id"))
    if staff.get("role") != "kaikukeskus":
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


@router.post("/staff/users/{user_id}/deactivation", dependencies=CSRF)
async def deactivate_user(request: Request, user_id: str, staff: Staff) -> Response:
    form = await form_of(request)
    organisation_id = as_uuid(form.get("organisation_id"))
    target = as_uuid(user_id)
    if target is None:
        return not_found(request)
    answer = await call(request, "cards", "POST", f"/users/{target}/deactivation",
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return await users_page(request, organisation_id, status=answer.status, error=answer)
    return await users_page(request, organisation_id, done_key="users.deactivated",
                            values={"username": answer.data.get("username", "")})


@router.get("/staff/users/{user_id}/password", response_class=HTMLResponse)
async def user_password_form(request: Request, user_id: str, staff: Staff,
                             username: str = "", organisation_id: str = "") -> Response:
    target = as_uuid(user_id)
    if target is None:
        return not_found(request)
    return password_form(request, user_id=target, username=username[:64], own=False,
                         organisation_id=as_uuid(organisation_id))


@router.post("/staff/users/{user_id}/password", dependencies=CSRF)
async def user_password(request: Request, user_id: str, staff: Staff) -> Response:
    target = as_uuid(user_id)
    if target is None:
        return not_found(request)
    form = await form_of(request)
    username = form.get("username", "")[:64]
    organisation_id = as_uuid(form.get("organisation_id"))
    changed = await change_password(request, user_id=target, username=username, own=False,
                                    organisation_id=organisation_id)
    if isinstance(changed, Response):
        return changed
    answer, _ = changed
    return await users_page(request, organisation_id, done_key="users.password_changed",
                            values={"username": answer.data.get("username", username)})
