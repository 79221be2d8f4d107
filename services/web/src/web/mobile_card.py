"""Reading a scanned OmaKaiku mobile-card QR code at the ticket desk.

The QR code holds a short-lived token signed by omakaiku (EdDSA, audience
``kaikukortti-mobile-card``). The web verifies it with omakaiku's public key
(fetched once from ``GET /mobile-card/public-key?format=pem``) and takes the card
number from it; an expired or forged token is refused before any registration.
"""

from __future__ import annotations

import jwt

AUDIENCE = "kaikukortti-mobile-card"
ISSUER = "omakaiku"


def looks_like_token(value: str) -> bool:
    return value.count(".") == 2 and len(value) > 40


class MobileCardRejected(Exception):
    pass


class MobileCards:
    def __init__(self) -> None:
        self._public_pem: str | None = None

    async def card_number(self, services, token: str) -> str:
        if self._public_pem is None:
            answer = await services.call("omakaiku", "GET", "/mobile-card/public-key",
                                         params={"format": "pem"})
            if not answer.ok or not isinstance(answer.data, str):
                raise MobileCardRejected("the mobile-card key is not available")
            self._public_pem = answer.data
        try:
            claims = jwt.decode(token.strip(), self._public_pem, algorithms=["EdDSA"],
                                audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "card_number"]})
        except jwt.PyJWTError as error:
            raise MobileCardRejected(str(error)) from None
        return str(claims["card_number"])
