"""Staff sign-in and sign-out, the staff front page and inbox, and a staff
user's own password."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaiku_shared.auth import KeysUnavailable, TokenError

from ..pages import (
    CSRF,
    STAFF_ROLES,
    ServicesDep,
    Session,
    SessionsDep,
    Staff,
    WebSettingsDep,
    as_uuid,
    call,
    page,
    session_of,
)
from ..passwords import change_password, password_form

router = APIRouter()


@router.post("/signout", dependencies=CSRF)
async def sign_out(session: Session, services: ServicesDep,
                   sessions: SessionsDep) -> Response:
    holder = session.get("role") == "holder"
    if session.get("token"):
        # The token inside the cookie stops working everywhere, not just here.
        await services.call("omakaiku" if holder else "cards", "POST",
                            "/me/sign-out" if holder else "/auth/sign-out",
                            token=session["token"])
    response = RedirectResponse("/oma/signin" if holder else "/staff/login", status_code=303)
    sessions.clear(response)
    if holder:
        # The phone's offline copies of the card and tickets (static/sw.js) go too.
        response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@router.get("/staff/login", response_class=HTMLResponse)
async def staff_login_page(request: Request) -> Response:
    return page(request, "staff/login.html")


async def signed_in(request: Request, token: str,
                    extra: dict[str, Any] | None = None) -> Response | None:
    """Sign a staff member in with a token (None: not a valid staff token)."""
    try:
        principal = await request.app.state.verifier.verify(token)
    except (TokenError, KeysUnavailable):
        return None
    if principal.role not in STAFF_ROLES:
        return None
    response = RedirectResponse("/staff", status_code=303)
    request.app.state.sessions.write(response, {
        "token": token, "role": principal.role,
        "org": str(principal.organisation_id or ""), **(extra or {})})
    return response


@router.post("/staff/login", dependencies=CSRF)
async def staff_login(request: Request, username: str = Form(""),
                      password: str = Form("")) -> Response:
    answer = await call(request, "cards", "POST", "/auth/login", anonymous=True,
                        json={"username": username.strip(), "password": password})
    if answer.ok:
        response = await signed_in(request, answer.data["access_token"], {
            "username": username.strip(), "user_id": str(answer.data.get("user_id") or ""),
            "admin": bool(answer.data.get("admin"))})
        if response is not None:
            return response
    key = "login.unavailable" if answer.unavailable else "login.failed"
    return page(request, "staff/login.html", status=401 if not answer.unavailable else 503,
                error_key=key, username=username)


@router.post("/staff/login/token", dependencies=CSRF)
async def staff_token_login(request: Request, web: WebSettingsDep,
                            token: str = Form("")) -> Response:
    if not web.dev_token_signin:
        return page(request, "message.html", status=404, heading_key="error.not_found",
                    message_key="login.token_disabled")
    response = await signed_in(request, token.strip())
    if response is None:
        return page(request, "staff/login.html", status=401, error_key="login.bad_token")
    return response


@router.get("/staff", response_class=HTMLResponse)
async def staff_home(request: Request, staff: Staff) -> Response:
    return page(request, "staff/home.html")


@router.get("/staff/inbox", response_class=HTMLResponse)
async def staff_inbox(request: Request, staff: Staff) -> Response:
    answer = await call(request, "notifications", "GET", "/inbox")
    known = await call(request, "notifications", "GET", "/messages/organisations")
    names = {o["organisation_id"]: o["name"] for o in (known.data if known.ok else [])}
    return page(request, "inbox.html", answer=answer, holder=False, names=names)


# --- the user's own password --------------------------------------------------------


def own_password_unavailable(request: Request) -> Response:
    return page(request, "message.html", status=404, heading_key="users.own_password",
                message_key="users.own_password_unavailable")


@router.get("/staff/password", response_class=HTMLResponse)
async def own_password_form(request: Request, staff: Staff) -> Response:
    if not as_uuid(staff.get("user_id")):
        return own_password_unavailable(request)
    return password_form(request, user_id=staff["user_id"],
                         username=staff.get("username", ""), own=True, organisation_id=None)


@router.post("/staff/password", dependencies=CSRF)
async def own_password(request: Request, staff: Staff) -> Response:
    user_id = as_uuid(staff.get("user_id"))
    if not user_id:
        return own_password_unavailable(request)
    username = staff.get("username", "")
    changed = await change_password(request, user_id=user_id, username=username, own=True,
                                    organisation_id=None)
    if isinstance(changed, Response):
        return changed
    _, password = changed
    return await signed_in_again(request, username, password)


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
