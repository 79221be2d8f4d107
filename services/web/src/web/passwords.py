"""Setting a staff user's password: the form and its checks, shared by
Kaikukeskus or an admin setting another's (web.routes.admin_users) and a user
changing their own (web.routes.staff_signin)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from .client import Answer
from .pages import call, form_of, page

MIN_PASSWORD = 12


def password_form(request: Request, *, user_id: str, username: str, own: bool,
                  organisation_id: str | None, status: int = 200, **context: Any
                  ) -> Response:
    return page(request, "staff/password.html", status=status, user_id=user_id,
                username=username, own=own, organisation_id=organisation_id or "",
                min_password=MIN_PASSWORD, **context)


async def change_password(request: Request, *, user_id: str, username: str, own: bool,
                          organisation_id: str | None) -> tuple[Answer, str] | Response:
    """Check the submitted password and send it to cards: the page to show if it
    was refused, else cards' answer and the new password (to sign in again with)."""
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
    return answer, password
