"""Web Push for holders: the VAPID public key, the holder's devices (browser
push subscriptions) and what the holder wants pushed. Sending: adapters/webpush.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kaiku_shared.http import PROBLEM, Problem, ProblemDetail, unprocessable
from kaiku_shared.settings import KaikuSettings

from ..adapters.push import PushDevices, TooManyDevices
from ..application.ports import KeyErased
from ..domain.push import PushPreferences, SubscriptionRefused, check_subscription
from .api import Holder

router = APIRouter()


def _problem(status: int, kind: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": f"{description} (`{kind}`)", "model": ProblemDetail,
                     "content": {PROBLEM: {"schema": {
                         "$ref": "#/components/schemas/ProblemDetail"}}}}}


class PublicKey(BaseModel):
    public_key: str = Field(description="The VAPID application server key: the uncompressed "
                            "P-256 point, base64url without padding (applicationServerKey)")


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    p256dh: str = Field(min_length=1, max_length=200)
    auth: str = Field(min_length=1, max_length=100)


class SubscriptionCreate(BaseModel):
    """A browser's ``PushSubscription.toJSON()``, and a label the holder knows it by."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    endpoint: str = Field(min_length=1, max_length=2048)
    # The browser's name; milliseconds since 1970 (a DOMHighResTimeStamp) or null.
    expirationTime: float | None = Field(default=None, ge=0, le=1e15)  # noqa: N815
    keys: SubscriptionKeys
    label: str | None = Field(default=None, max_length=80)


class SubscriptionCreated(BaseModel):
    subscription_id: UUID


class DevicePublic(BaseModel):
    subscription_id: UUID
    label: str | None
    created_at: datetime
    endpoint_origin: str = Field(description="The push service's origin only, e.g. "
                                 "https://fcm.googleapis.com")


class Devices(BaseModel):
    items: list[DevicePublic]


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_offerings: bool = True
    messages: bool = True
    muted: bool = False


def _devices(request: Request) -> PushDevices:
    return request.app.state.push_devices


def _development(request: Request) -> bool:
    settings: KaikuSettings = request.app.state.settings
    return settings.env == "development"


def _erased() -> Problem:
    return Problem(404, "Account not found", "This account has been erased.",
                   kind="account-not-found")


@router.get("/push/public-key", response_model=PublicKey, tags=["push"],
            responses=_problem(503, "push-not-configured", "Web Push is not configured"))
async def push_public_key(request: Request) -> PublicKey:
    """What a browser subscribes with (``applicationServerKey``). Anyone may read it."""
    vapid = request.app.state.vapid
    if vapid is None:
        raise Problem(503, "Push not configured", "Web Push is not configured on this "
                      "server.", kind="push-not-configured")
    return PublicKey(public_key=vapid.public_key)


@router.post("/me/push-subscriptions", status_code=201, response_model=SubscriptionCreated,
             tags=["push"], responses={
                 200: {"description": "This device was already subscribed: the same id",
                       "model": SubscriptionCreated},
                 **_problem(409, "push-devices-limit", "The holder has too many devices")})
async def subscribe_device(body: SubscriptionCreate, request: Request,
                           principal: Holder) -> Any:
    """Idempotent by endpoint: the same browser again answers 200 with its id."""
    try:
        subscription = check_subscription(body.endpoint, body.keys.p256dh, body.keys.auth,
                                           development=_development(request))
    except SubscriptionRefused as refused:
        raise unprocessable(refused.kind, refused.detail, refused.field) from None
    devices = _devices(request)
    try:
        subscription_id, created = await devices.subscribe(
            principal.account_id, subscription, body.label or None)
    except TooManyDevices:
        raise Problem(409, "Too many devices", f"You can receive notifications on at most "
                      f"{devices.max_devices} devices; remove one first.",
                      kind="push-devices-limit") from None
    except KeyErased:
        raise _erased() from None
    return JSONResponse({"subscription_id": str(subscription_id)},
                        status_code=201 if created else 200)


@router.get("/me/push-subscriptions", response_model=Devices, tags=["push"])
async def my_devices(request: Request, principal: Holder) -> Devices:
    found = await _devices(request).devices(principal.account_id)
    return Devices(items=[DevicePublic(subscription_id=d.subscription_id, label=d.label,
                                       created_at=d.created_at,
                                       endpoint_origin=d.endpoint_origin) for d in found])


@router.delete("/me/push-subscriptions/{subscription_id}", status_code=204, tags=["push"],
               responses={204: {"description": "No more pushes to this device"},
                          **_problem(404, "push-subscription-not-found",
                                     "No such device of this holder")})
async def forget_device(subscription_id: UUID, request: Request, principal: Holder) -> Response:
    if not await _devices(request).unsubscribe(principal.account_id, subscription_id):
        raise Problem(404, "Push subscription not found", "You have no device with this id.",
                      kind="push-subscription-not-found")
    return Response(status_code=204)


@router.get("/me/push-preferences", response_model=Preferences, tags=["push"])
async def my_push_preferences(request: Request, principal: Holder) -> Preferences:
    chosen = await _devices(request).preferences(principal.account_id)
    return Preferences(new_offerings=chosen.new_offerings, messages=chosen.messages,
                       muted=chosen.muted)


@router.put("/me/push-preferences", response_model=Preferences, tags=["push"])
async def change_push_preferences(body: Preferences, request: Request,
                                  principal: Holder) -> Preferences:
    """Per kind (new offerings, messages); ``muted`` stops every push."""
    chosen = await _devices(request).set_preferences(
        principal.account_id, PushPreferences(body.new_offerings, body.messages, body.muted))
    return Preferences(new_offerings=chosen.new_offerings, messages=chosen.messages,
                       muted=chosen.muted)
