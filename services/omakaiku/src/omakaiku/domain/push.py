"""Web Push rules that need nothing outside: which browser subscriptions are
accepted, what a holder chose to receive, and when a failed push is tried again.

A subscription is the browser's ``PushSubscription``: the push service's
``endpoint`` URL and the keys of RFC 8291 (``p256dh``: the browser's P-256
public key, 65 bytes uncompressed; ``auth``: a 16-byte secret)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
MAX_ENDPOINT_LENGTH = 2048
# The kinds a holder can turn on and off, and the notification kinds each covers.
NEW_OFFERINGS, MESSAGES = "new_offerings", "messages"
PUSHED_KINDS = {"new_offering": NEW_OFFERINGS, "message": MESSAGES}


class SubscriptionRefused(ValueError):
    """A subscription the service cannot push to; ``kind`` names the rule."""

    def __init__(self, kind: str, detail: str, field: str) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.field = kind, detail, field


@dataclass(frozen=True)
class PushSubscription:
    endpoint: str
    p256dh: str
    auth: str

    @property
    def origin(self) -> str:
        return endpoint_origin(self.endpoint)


def endpoint_origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def b64url_decode(value: str) -> bytes:
    """Base64url with or without padding (browsers send it without)."""
    text = value.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_subscription(endpoint: str, p256dh: str, auth: str, *,
                       development: bool) -> PushSubscription:
    """The subscription, or ``SubscriptionRefused`` saying what to fix. Only
    ``https`` push services; plain ``http`` to this machine only in development
    (a local push endpoint in tests)."""
    check_endpoint(endpoint, development=development)
    try:
        point = b64url_decode(p256dh)
    except (binascii.Error, ValueError):
        point = b""
    if len(point) != 65 or point[0] != 4 or not _on_p256(point):
        raise SubscriptionRefused(
            "push-key-invalid", "keys.p256dh must be the browser's P-256 public key: 65 bytes "
            "(an uncompressed point), base64url.", "keys.p256dh")
    try:
        secret = b64url_decode(auth)
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) != 16:
        raise SubscriptionRefused("push-key-invalid",
                                  "keys.auth must be the 16-byte auth secret, base64url.",
                                  "keys.auth")
    return PushSubscription(endpoint, p256dh.strip(), auth.strip())


def check_endpoint(endpoint: str, *, development: bool) -> None:
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if (parts is None or len(endpoint) > MAX_ENDPOINT_LENGTH or not host
            or any(c.isspace() for c in endpoint)):
        raise SubscriptionRefused("push-endpoint-invalid", "endpoint must be the push "
                                  "service's URL from the browser's PushSubscription.",
                                  "endpoint")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and development and host in LOOPBACK_HOSTS:
        return
    raise SubscriptionRefused("push-endpoint-invalid", "endpoint must be an https:// URL "
                              "(a browser's push service).", "endpoint")


def _on_p256(point: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PushPreferences:
    """What the holder wants pushed; everything until the holder says otherwise."""

    new_offerings: bool = True
    messages: bool = True
    muted: bool = False

    def wants(self, notification_kind: str) -> bool:
        choice = PUSHED_KINDS.get(notification_kind)
        return bool(choice) and not self.muted and getattr(self, choice)


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before attempt ``attempt + 1``: doubling from 2 s up to an hour,
    and never sooner than the push service asked (``Retry-After``)."""
    backoff = min(2.0 ** attempt, 3600.0)
    return max(backoff, min(retry_after, 24 * 3600.0)) if retry_after else backoff
