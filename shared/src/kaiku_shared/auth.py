"""Bearer-token issuing (dev CLI, tests) and verification (every service).

Tokens are HS256 JWTs with a fixed audience and issuer; verification accepts
only HS256, so neither ``none`` nor an algorithm swap gets through.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import jwt

from .settings import KaikuSettings

Role = Literal["kaikukeskus", "distributor", "venue", "ticket_agent", "holder"]
STAFF_ROLES: tuple[Role, ...] = ("kaikukeskus", "distributor", "venue", "ticket_agent")
ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is missing, malformed, expired or not ours."""


class SigningKeyMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    organisation_id: UUID | None = None
    account_id: UUID | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def key(self) -> str:
        """A stable, non-personal identifier for idempotency records."""
        return f"{self.role}:{self.organisation_id or self.account_id or self.subject}"


def issue_token(
    settings: KaikuSettings,
    *,
    role: Role,
    organisation_id: UUID | str | None = None,
    account_id: UUID | str | None = None,
    subject: str | None = None,
    ttl_seconds: int = 12 * 3600,
) -> str:
    if not settings.jwt_secret:
        raise SigningKeyMissing("KAIKU_JWT_SECRET is not set: no token can be issued")
    if role == "holder" and account_id is None:
        raise ValueError("a holder token needs an account id")
    if role in STAFF_ROLES and organisation_id is None and role != "kaikukeskus":
        raise ValueError(f"a {role} token needs an organisation id")
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "role": role,
        "sub": str(account_id or subject or organisation_id or role),
    }
    if organisation_id is not None:
        claims["org"] = str(organisation_id)
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify_token(settings: KaikuSettings, token: str) -> Principal:
    if not settings.jwt_secret:
        raise TokenError("this service has no signing key configured")
    principal, expires = _verified(settings.jwt_secret, settings.jwt_audience,
                                   settings.jwt_issuer, token)
    if time.time() >= expires:  # as PyJWT judges it, with no leeway
        raise TokenError("the token has expired; sign in again")
    return principal


# A box office sends the same token with every request: its signature and claims
# are checked once (a tenth of the api's CPU per ticket registration, see
# bench/profiles/), its expiry on every use. A refused token is not remembered.
@functools.lru_cache(maxsize=4096)
def _verified(secret: str, audience: str, issuer: str, token: str) -> tuple[Principal, int]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "aud", "iss", "sub", "role"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired; sign in again") from None
    except jwt.PyJWTError as error:
        raise TokenError(f"the token is not valid: {error}") from None
    role = claims.get("role")
    if role not in (*STAFF_ROLES, "holder"):
        raise TokenError(f"unknown role {role!r}")
    try:
        org = UUID(claims["org"]) if claims.get("org") else None
        account = UUID(claims["sub"]) if role == "holder" else None
    except (ValueError, TypeError, AttributeError):
        raise TokenError("the token's ids are malformed") from None
    if role in ("distributor", "venue", "ticket_agent") and org is None:
        raise TokenError(f"a {role} token must name its organisation")
    return (Principal(role=role, subject=claims["sub"], organisation_id=org, account_id=account),
            claims["exp"])
