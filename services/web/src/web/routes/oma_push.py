"""OmaKaiku's notification settings: push on this device, the holder's devices
and what to be told of. The web keeps nothing: omakaiku holds the devices (push
endpoints are personal data) and the choices; the web passes them on with the
holder's token.

The page asks the browser for permission only when the holder presses the
button (web/static/oma.js), and then posts the browser's PushSubscription to
/oma/notifications/devices, which forwards it to omakaiku.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from kaiku_shared.http import PROBLEM, PROBLEM_BASE

from ..client import Answer
from ..pages import CSRF, Holder, as_uuid, call, page

router = APIRouter()

PREFERENCES = ("new_offerings", "messages", "muted")
MAX_BODY = 8_000  # a PushSubscription is well under 1 kB
KEY_TEXT = re.compile(r"^[A-Za-z0-9_\-=]{8,200}$")


def push_missing(answer: Answer) -> bool:
    """omakaiku without push (an older version, or no VAPID key configured)."""
    return answer.status in (404, 405, 501) or answer.problem_kind == "push-not-configured"


async def notifications_page(request: Request, *, notice: str | None = None,
                             error: Answer | None = None, status: int = 200) -> Response:
    key = await call(request, "omakaiku", "GET", "/push/public-key", anonymous=True)
    if not key.ok:
        state = "missing" if push_missing(key) else "down"
        return page(request, "oma/notifications.html", state=state,
                    status=200 if state == "missing" else 503)
    devices = await call(request, "omakaiku", "GET", "/me/push-subscriptions")
    choices = await call(request, "omakaiku", "GET", "/me/push-preferences")
    if not (devices.ok and choices.ok):
        missing = push_missing(devices) or push_missing(choices)
        return page(request, "oma/notifications.html", state="missing" if missing else "down",
                    status=200 if missing else 503)
    return page(request, "oma/notifications.html", state="on",
                public_key=key.data.get("public_key", ""),
                devices=devices.data.get("items", []), choices=choices.data,
                notice=notice, error=error, status=status)


DONE = {"saved": "push.saved", "removed": "push.removed"}


@router.get("/oma/notifications", response_class=HTMLResponse)
async def my_notifications(request: Request, holder: Holder, done: str = "") -> Response:
    return await notifications_page(request, notice=DONE.get(done))


@router.post("/oma/notifications/preferences", dependencies=CSRF)
async def save_preferences(request: Request, holder: Holder) -> Response:
    form = await request.form()
    chosen = {name: form.get(name) == "on" for name in PREFERENCES}
    answer = await call(request, "omakaiku", "PUT", "/me/push-preferences", json=chosen)
    if answer.ok:
        return RedirectResponse("/oma/notifications?done=saved", status_code=303)
    return await notifications_page(request, error=answer, status=answer.status)


@router.post("/oma/notifications/devices/{subscription_id}/remove", dependencies=CSRF)
async def remove_device(request: Request, subscription_id: str, holder: Holder) -> Response:
    if as_uuid(subscription_id) is None:
        return await notifications_page(request, error=Answer(404, {}), status=404)
    answer = await call(request, "omakaiku", "DELETE",
                        f"/me/push-subscriptions/{as_uuid(subscription_id)}")
    if answer.ok or answer.status == 404:  # gone already is what was asked
        return RedirectResponse("/oma/notifications?done=removed", status_code=303)
    return await notifications_page(request, error=answer, status=answer.status)


@router.post("/oma/notifications/devices", dependencies=CSRF)
async def add_device(request: Request, holder: Holder) -> Response:
    """The browser's PushSubscription (JSON, from oma.js) on to omakaiku."""
    body = await request.body()
    subscription = subscription_from(body, request.headers.get("user-agent", ""))
    if isinstance(subscription, str):
        return problem(422, "validation", "Not a push subscription", subscription)
    answer = await call(request, "omakaiku", "POST", "/me/push-subscriptions",
                        json=subscription)
    if answer.ok:
        return JSONResponse({"subscription_id": answer.data.get("subscription_id")},
                            status_code=answer.status)
    if answer.unavailable or push_missing(answer):
        return problem(503, "notifications-unavailable", "Notifications are not available",
                       "Notifications cannot be turned on right now; try again later.")
    return JSONResponse(answer.data, status_code=answer.status, media_type=PROBLEM)


def subscription_from(body: bytes, user_agent: str) -> dict[str, Any] | str:
    """What omakaiku is sent, or why the body is not a PushSubscription."""
    if len(body) > MAX_BODY:
        return "The subscription is too large."
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return "Send the browser's PushSubscription as JSON."
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        return "A push subscription has an endpoint and keys (p256dh, auth)."
    endpoint, keys = data.get("endpoint"), data["keys"]
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return "The endpoint must be the push service's https address."
    for name in ("p256dh", "auth"):
        if not isinstance(keys.get(name), str) or not KEY_TEXT.match(keys[name]):
            return f"keys.{name} must be the browser's base64url key."
    expiry = data.get("expirationTime")
    if expiry is not None and not (isinstance(expiry, int | float) and float(expiry).is_integer()):
        return "expirationTime must be a whole number of milliseconds or null."
    label = data.get("label") if isinstance(data.get("label"), str) else ""
    return {"endpoint": endpoint, "expirationTime": None if expiry is None else int(expiry),
            "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]},
            "label": (label.strip() or device_label(user_agent))[:80]}


BROWSERS = (("Edg/", "Edge"), ("SamsungBrowser", "Samsung Internet"), ("Firefox/", "Firefox"),
            ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"))
SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
           ("Windows", "Windows"), ("Mac OS X", "Mac"), ("Linux", "Linux"))


def device_label(user_agent: str) -> str:
    """A name the holder recognises in the list, e.g. "Chrome, Android"."""
    browser = next((name for mark, name in BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in SYSTEMS if mark in user_agent), "")
    return ", ".join(part for part in (browser, system) if part) or "?"


def problem(status: int, kind: str, title: str, detail: str) -> JSONResponse:
    return JSONResponse({"type": PROBLEM_BASE + kind, "title": title, "status": status,
                         "detail": detail}, status_code=status, media_type=PROBLEM)
