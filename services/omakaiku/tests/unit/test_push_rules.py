"""Web Push rules without servers: which subscriptions are accepted, what the
preferences let through, the retry backoff, the VAPID key and the payload."""

from __future__ import annotations

import base64
import json
import time

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kaiku_shared.keys import KeyMaterial, generate_vapid_key
from omakaiku.adapters.webpush import VapidKey, VapidKeyError, encrypt, payload
from omakaiku.domain.push import (
    PushPreferences,
    SubscriptionRefused,
    check_subscription,
    retry_delay,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


BROWSER = ec.generate_private_key(ec.SECP256R1())
P256DH = b64url(BROWSER.public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
AUTH = b64url(b"0123456789abcdef")


def refusal(endpoint: str, p256dh: str = P256DH, auth: str = AUTH, *,
            development: bool = False) -> str | None:
    try:
        check_subscription(endpoint, p256dh, auth, development=development)
    except SubscriptionRefused as refused:
        return refused.kind
    return None


def test_only_https_endpoints_and_loopback_http_in_development() -> None:
    assert refusal("https://fcm.googleapis.com/fcm/send/abc") is None
    assert refusal("http://push.example.org/x") == "push-endpoint-invalid"
    assert refusal("http://127.0.0.1:9000/push/x") == "push-endpoint-invalid"
    assert refusal("http://127.0.0.1:9000/push/x", development=True) is None
    assert refusal("http://localhost/x", development=True) is None
    assert refusal("http://example.org/x", development=True) == "push-endpoint-invalid"
    assert refusal("ftp://example.org/x") == "push-endpoint-invalid"
    assert refusal("not a url") == "push-endpoint-invalid"
    assert refusal("https://" + "a" * 2050 + ".example") == "push-endpoint-invalid"


def test_the_keys_must_be_a_p256_point_and_a_16_byte_secret() -> None:
    endpoint = "https://push.example.org/x"
    compressed = b64url(BROWSER.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint))
    assert refusal(endpoint, p256dh=compressed) == "push-key-invalid"
    assert refusal(endpoint, p256dh=b64url(b"\x04" + b"\x01" * 64)) == "push-key-invalid"
    assert refusal(endpoint, p256dh="***") == "push-key-invalid"
    assert refusal(endpoint, auth=b64url(b"x" * 15)) == "push-key-invalid"
    assert refusal(endpoint, p256dh=P256DH + "==", auth=AUTH + "==") is None  # padded too


def test_preferences_by_kind_and_mute() -> None:
    assert PushPreferences().wants("new_offering") and PushPreferences().wants("message")
    assert not PushPreferences().wants("offering_changed")  # not pushed at all
    assert not PushPreferences(muted=True).wants("message")
    assert not PushPreferences(new_offerings=False).wants("new_offering")
    assert PushPreferences(new_offerings=False).wants("message")


def test_retry_delay_doubles_and_honours_retry_after() -> None:
    assert [retry_delay(n, None) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert retry_delay(20, None) == 3600.0
    assert retry_delay(1, 30.0) == 30.0
    assert retry_delay(1, 0.5) == 2.0


def test_vapid_key_signs_a_jwt_for_the_endpoints_origin() -> None:
    key = VapidKey(generate_vapid_key(), "mailto:ops@kaikukortti.fi")
    header = key.authorization("https://updates.push.services.mozilla.com/wpush/v2/abc")
    token = header.removeprefix("vapid t=").split(",k=")[0]
    assert header.endswith(f",k={key.public_key}")
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), base64.urlsafe_b64decode(key.public_key + "="))
    claims = jwt.decode(token, public, algorithms=["ES256"],
                        audience="https://updates.push.services.mozilla.com")
    assert claims["sub"] == "mailto:ops@kaikukortti.fi"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    assert len(base64.urlsafe_b64decode(VapidKey(pem, "mailto:a@b.fi").public_key + "=")) == 65
    with pytest.raises(VapidKeyError, match="KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY"):
        VapidKey("dGVzdA", "mailto:a@b.fi")


def test_the_payload_is_encrypted_for_the_browser_in_its_language() -> None:
    body = payload("new_offering", "1234", {"title": "Jazzia"}, "sv")
    sealed = encrypt(body, P256DH, AUTH)
    opened = http_ece.decrypt(sealed, private_key=BROWSER,
                              auth_secret=b"0123456789abcdef", version="aes128gcm")
    assert json.loads(opened) == {"kind": "new_offering", "title": "Nytt utbud: Jazzia",
                                  "url": "/oma/offerings/1234"}
    assert b"Jazzia" not in sealed


def test_a_development_key_set_gains_a_vapid_key_once(tmp_path) -> None:
    path = tmp_path / "kaiku.env"
    before = KeyMaterial.generate(development=True)
    KeyMaterial({k: v for k, v in before.values.items()
                 if k != "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY"}).write_env_file(path)
    completed = KeyMaterial.read_env_file(path, complete=True)
    VapidKey(completed.values["KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY"], "mailto:a@b.fi")
    assert KeyMaterial.read_env_file(path) == completed  # written down: stable on restart
