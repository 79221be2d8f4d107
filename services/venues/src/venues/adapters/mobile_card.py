"""Reading a holder's OmaKaiku mobile card at the box office, offline.

The QR code on the holder's card page holds a short-lived token that omakaiku
signs: a JWT with alg EdDSA (Ed25519), iss ``omakaiku``, aud
``kaikukortti-mobile-card``, the signing key's ``kid`` in its header, and the
claims card_number, valid_until, children, exp and jti.

Venues knows omakaiku's public keys only from ``MobileCardKeyPublishedV1``
events (``mobile_card_key_view``), so no registration waits for omakaiku.
``MobileCardKeys`` keeps them in memory; a kid it does not know makes it read
the table again, once, before the token is refused (a key published since the
last read). Several kids may be valid at once, so omakaiku can rotate its key.

A verified token gives only the card number. Whether the card is open, valid
on the event date and covers the children is decided from Kaikukanta's events,
exactly as for a typed number: the registry wins over the token's claims.

The token itself is never logged, stored or repeated in an answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger("venues.mobile_card")

AUDIENCE = "kaikukortti-mobile-card"
ISSUER = "omakaiku"
ALGORITHM = "EdDSA"
# Clocks of omakaiku's and venues' hosts may differ a little.
CLOCK_SKEW_SECONDS = 30

INVALID = "mobile-card-invalid"
EXPIRED = "mobile-card-expired"

KeyRows = Mapping[str, Mapping[str, Any]]


class MobileCardRefused(Exception):
    """The token cannot stand for a card; ``rule`` is INVALID or EXPIRED."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _public_key(row: Mapping[str, Any]) -> Ed25519PublicKey | None:
    """The key of one published row, or None for a kind this code cannot verify."""
    if (row.get("algorithm"), row.get("kty"), row.get("crv")) != (ALGORITHM, "OKP", "Ed25519"):
        return None
    x = str(row.get("x") or "")
    try:
        return Ed25519PublicKey.from_public_bytes(
            base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    except (ValueError, binascii.Error):
        return None


class MobileCardKeys:
    """kid → omakaiku's public key, in memory; an unknown kid reloads the table once."""

    def __init__(self, load: Callable[[], Awaitable[KeyRows]]) -> None:
        self._load = load
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:  # concurrent misses share one read
            key = self._keys.get(kid)
            if key is None:
                await self.reload()
                key = self._keys.get(kid)
        return key

    async def reload(self) -> None:
        keys: dict[str, Ed25519PublicKey] = {}
        for kid, row in (await self._load()).items():
            key = _public_key(row)
            if key is None:
                log.warning("mobile-card key of an unsupported kind skipped",
                            extra={"kid": kid, "algorithm": row.get("algorithm")})
                continue
            keys[kid] = key
        self._keys = keys


NOT_READABLE = ("This is not a readable OmaKaiku mobile card. Scan the QR code on the "
                "holder's card page again, or type the card number instead.")
NOT_VERIFIED = ("This mobile card could not be verified: it was not signed with a key "
                "OmaKaiku has published. Ask the holder to refresh the card in OmaKaiku and "
                "scan it again, or type the card number instead.")
ALTERED = ("This mobile card's signature does not match its content: the code has been "
           "altered or was not issued by OmaKaiku. Ask the holder to refresh the card in "
           "OmaKaiku, or type the card number instead.")
NOT_FOR_VENUES = ("This code is not an OmaKaiku mobile card for venues (wrong issuer or "
                  "audience). Scan the QR code on the holder's card page in OmaKaiku.")
EXPIRED_MESSAGE = ("The mobile card's code has expired: it is valid for a few minutes only. "
                   "Ask the holder to refresh the card in OmaKaiku and scan it again.")


async def card_number_from(token: str, keys: MobileCardKeys) -> str:
    """The card number inside a genuine, unexpired mobile-card token; else refused."""
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError):
        raise MobileCardRefused(INVALID, NOT_READABLE) from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
        raise MobileCardRefused(INVALID, NOT_READABLE)
    key = await keys.get(kid)
    if key is None:
        raise MobileCardRefused(INVALID, NOT_VERIFIED)
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE,
                            issuer=ISSUER, leeway=CLOCK_SKEW_SECONDS,
                            options={"require": ["exp", "iss", "aud", "card_number"]})
    except jwt.ExpiredSignatureError:
        raise MobileCardRefused(EXPIRED, EXPIRED_MESSAGE) from None
    except jwt.InvalidSignatureError:
        raise MobileCardRefused(INVALID, ALTERED) from None
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise MobileCardRefused(INVALID, NOT_FOR_VENUES) from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise MobileCardRefused(INVALID, NOT_READABLE) from None
    card_number = claims.get("card_number")
    if not isinstance(card_number, str) or not card_number:
        raise MobileCardRefused(INVALID, NOT_READABLE)
    return card_number
