"""The mobile card: a short-lived Ed25519-signed token (JWT, alg EdDSA) with the
card number, validity and children, and its QR code. A copied token stops
working when it expires. The token names no person and no account.

Venues verify it offline: the api records the public key (``MobileCardKey``)
at start-up when its kid was never recorded, and the relay publishes it as
``MobileCardKeyPublishedV1``. ``GET /mobile-card/public-key`` shows the same key
to anyone else.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from datetime import date, datetime, timedelta

import jwt
import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

AUDIENCE = "kaikukortti-mobile-card"
ISSUER = "omakaiku"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class CardSigner:
    def __init__(self, seed: bytes) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(seed[:32])
        self.public_raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.kid = _b64url(hashlib.sha256(self.public_raw).digest()[:12])

    def issue(self, *, card_number: str, valid_until: date | None, children: int,
              now: datetime, ttl_seconds: int) -> tuple[str, datetime]:
        expires = now + timedelta(seconds=ttl_seconds)
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": card_number,
                  "card_number": card_number,
                  "valid_until": valid_until.isoformat() if valid_until else None,
                  "children": children, "iat": int(now.timestamp()),
                  "exp": int(expires.timestamp()), "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, self._private, algorithm="EdDSA", headers={"kid": self.kid})
        return token, expires

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(self.public_raw),
                "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def published_key(self) -> dict[str, str]:
        """The public key as MobileCardKeyPublishedV1 carries it (JWK members)."""
        return {"kid": self.kid, "algorithm": "EdDSA", "kty": "OKP", "crv": "Ed25519",
                "x": _b64url(self.public_raw)}

    def public_pem(self) -> str:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def qr_svg(token: str) -> str:
    buffer = io.BytesIO()
    segno.make(token, error="m", micro=False).save(buffer, kind="svg", scale=4,
                                                   xmldecl=False, svgns=True)
    return buffer.getvalue().decode()
