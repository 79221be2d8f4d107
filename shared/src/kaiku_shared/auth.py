"""Bearer tokens: issued by their owner, verified everywhere with public keys only.

Staff tokens are signed by cards (the staff identity provider), holder tokens by
omakaiku, each with its own Ed25519 key set (EdDSA, a ``kid`` in the header).
Every other process holds only the public halves, so no service but the issuer
can mint a token. Verification accepts only EdDSA from the issuer that owns the
token's role: a staff role signed with the holder keys, ``none``, HMAC with an
old shared secret or any other algorithm is refused.

A token carries ``jti`` (its id) and a fractional ``iat``, so that revocations
(per user, organisation, account or token, see ``revocation.py``) can refuse
exactly the tokens issued before them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import UUID

import httpx
import jwt

from .keys import ALGORITHM, KeySetError, public_key_set, read_key_set
from .settings import KaikuSettings

log = logging.getLogger("kaiku.auth")

Role = Literal["kaikukeskus", "distributor", "venue", "ticket_agent", "holder"]
STAFF_ROLES: tuple[Role, ...] = ("kaikukeskus", "distributor", "venue", "ticket_agent")
HOLDER_ROLES: tuple[Role, ...] = ("holder",)
STAFF_ISSUER = "kaikukortti/cards"
HOLDER_ISSUER = "kaikukortti/omakaiku"
# Cards, the anonymous registry, has no route for holders: it trusts only the
# staff issuer, so it needs no holder revocations and never reads omakaiku's
# stream (deploy/nats/nats.conf grants it none).
STAFF_ONLY_SERVICES = frozenset({"cards"})
REQUIRED_CLAIMS = ["exp", "iat", "aud", "iss", "sub", "role", "jti"]


class TokenError(Exception):
    """The token is missing, malformed, expired, revoked or not ours."""


class KeysUnavailable(Exception):
    """The issuer's public keys cannot be fetched now (answer 503, not 401)."""


class SigningKeyMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    organisation_id: UUID | None = None
    account_id: UUID | None = None
    # What revocation compares; not part of who the caller is.
    token_id: str | None = field(default=None, compare=False)
    issued_at: float = field(default=0.0, compare=False)
    expires_at: float = field(default=0.0, compare=False)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def key(self) -> str:
        """A stable, non-personal identifier for idempotency records."""
        return f"{self.role}:{self.organisation_id or self.account_id or self.subject}"


# --- issuing ---------------------------------------------------------------------------


class TokenSigner:
    """Signs tokens with the first key of an issuer's private key set."""

    def __init__(self, keys: list[dict[str, Any]], *, issuer: str, audience: str,
                 roles: tuple[Role, ...]) -> None:
        if not keys:
            raise SigningKeyMissing(f"no signing key for {issuer}")
        self.keys, self.issuer, self.audience, self.roles = keys, issuer, audience, roles
        self._current = jwt.PyJWK(keys[0], algorithm=ALGORITHM)

    @classmethod
    def for_staff(cls, settings: KaikuSettings) -> TokenSigner:
        return cls._configured(settings.staff_signing_keys, "KAIKU_STAFF_SIGNING_KEYS",
                               "cards", STAFF_ISSUER, STAFF_ROLES, settings)

    @classmethod
    def for_holders(cls, settings: KaikuSettings) -> TokenSigner:
        return cls._configured(settings.holder_signing_keys, "KAIKU_HOLDER_SIGNING_KEYS",
                               "omakaiku", HOLDER_ISSUER, HOLDER_ROLES, settings)

    @classmethod
    def _configured(cls, value: str | None, setting: str, service: str, issuer: str,
                    roles: tuple[Role, ...], settings: KaikuSettings) -> TokenSigner:
        keys = read_key_set(value, setting=setting, private=True)
        if not keys:
            raise SigningKeyMissing(f"{setting} is not set: {service} cannot issue tokens "
                                    "(see `kaiku keys generate`)")
        return cls(keys, issuer=issuer, audience=settings.jwt_audience, roles=roles)

    @property
    def kid(self) -> str:
        return self.keys[0]["kid"]

    def public_jwks(self) -> dict[str, list[dict[str, Any]]]:
        return public_key_set(self.keys)

    def issue(self, *, role: Role, organisation_id: UUID | str | None = None,
              account_id: UUID | str | None = None, subject: str | None = None,
              ttl_seconds: int = 12 * 3600) -> str:
        if role not in self.roles:
            raise ValueError(f"{self.issuer} does not issue {role} tokens")
        if role == "holder" and account_id is None:
            raise ValueError("a holder token needs an account id")
        if role != "holder" and organisation_id is None and role != "kaikukeskus":
            raise ValueError(f"a {role} token needs an organisation id")
        now = round(time.time(), 3)
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.audience, "iat": now,
            "exp": int(now) + ttl_seconds, "jti": uuid.uuid4().hex, "role": role,
            "sub": str(account_id or subject or organisation_id or role),
        }
        if organisation_id is not None:
            claims["org"] = str(organisation_id)
        return jwt.encode(claims, self._current.key, algorithm=ALGORITHM,
                          headers={"kid": self.kid})


# --- verifying -------------------------------------------------------------------------


class Revocations(Protocol):
    def refusal(self, principal: Principal) -> str | None:
        """Why this token no longer counts, or None."""


class TrustedKeys:
    """One issuer's public keys: configured, and/or fetched from its JWKS URL.

    An unknown ``kid`` (a rotation) fetches the set again, at most once every
    ``refetch_seconds``, so a flood of forged kids cannot hammer the issuer."""

    def __init__(self, issuer: str, roles: tuple[Role, ...], keys: list[dict[str, Any]],
                 url: str | None = None, refetch_seconds: float = 10.0) -> None:
        self.issuer, self.roles, self.url = issuer, roles, url
        self._keys = {key["kid"]: jwt.PyJWK(key, algorithm=ALGORITHM) for key in keys}
        self._configured = dict(self._keys)
        self._refetch_seconds = refetch_seconds
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Any:
        if kid in self._keys:
            return self._keys[kid].key
        if self.url and time.monotonic() - self._fetched_at >= self._refetch_seconds:
            async with self._lock:
                if kid not in self._keys:
                    await self._fetch()
        if kid in self._keys:
            return self._keys[kid].key
        raise TokenError("the token is signed with a key this service does not know")

    async def _fetch(self) -> None:
        assert self.url is not None
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                answer = await client.get(self.url)
                answer.raise_for_status()
            keys = read_key_set(answer.text, setting=self.url, private=False)
        except (httpx.HTTPError, KeySetError) as error:
            log.warning("cannot fetch the issuer's public keys",
                        extra={"issuer": self.issuer, "error": type(error).__name__})
            raise KeysUnavailable(f"the public keys of {self.issuer} cannot be fetched now; "
                                  "try again shortly") from None
        self._fetched_at = time.monotonic()
        self._keys = {**self._configured,
                      **{k["kid"]: jwt.PyJWK(k, algorithm=ALGORITHM) for k in keys}}


class TokenVerifier:
    """Verifies tokens of both issuers; remembers the last verified ones.

    A box office sends the same token with every request: its signature and
    claims are checked once (a tenth of the api's CPU per ticket registration),
    its expiry and revocation on every use."""

    def __init__(self, audience: str, issuers: list[TrustedKeys],
                 revocations: Revocations | None = None, remember: int = 4096) -> None:
        self.audience = audience
        self.issuers = {trusted.issuer: trusted for trusted in issuers}
        self.revocations = revocations
        self._remembered: OrderedDict[str, Principal] = OrderedDict()
        self._remember = remember

    @classmethod
    def from_settings(cls, settings: KaikuSettings, *, own: TokenSigner | None = None,
                      revocations: Revocations | None = None,
                      holders: bool = True) -> TokenVerifier:
        """Trust the configured (or fetched) public keys; an issuer trusts its own.
        ``holders=False``: holder tokens are refused (a staff-only service)."""
        staff = read_key_set(settings.staff_jwks, setting="KAIKU_STAFF_JWKS", private=False)
        holder = read_key_set(settings.holder_jwks, setting="KAIKU_HOLDER_JWKS", private=False)
        issuers = [TrustedKeys(STAFF_ISSUER, STAFF_ROLES, staff, settings.staff_jwks_url or None),
                   TrustedKeys(HOLDER_ISSUER, HOLDER_ROLES, holder,
                               settings.holder_jwks_url or None)]
        if own is not None:
            mine = public_key_set(own.keys)["keys"]
            issuers = [TrustedKeys(own.issuer, own.roles, mine) if t.issuer == own.issuer else t
                       for t in issuers]
        if not holders:
            issuers = [t for t in issuers if t.issuer != HOLDER_ISSUER]
        return cls(settings.jwt_audience, issuers, revocations)

    async def verify(self, token: str) -> Principal:
        principal = self._remembered.get(token)
        if principal is None:
            principal = await self._verify_signature(token)
            self._remembered[token] = principal
            if len(self._remembered) > self._remember:
                self._remembered.popitem(last=False)
        if time.time() >= principal.expires_at:
            raise TokenError("the token has expired; sign in again")
        if self.revocations is not None and (why := self.revocations.refusal(principal)):
            raise TokenError(why)
        return principal

    async def _verify_signature(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise TokenError(f"the token is not valid: {error}") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"the token is not valid: only {ALGORITHM} tokens are accepted")
        trusted = self.issuers.get(unverified.get("iss"))  # type: ignore[arg-type]
        if trusted is None or not isinstance(header.get("kid"), str):
            raise TokenError("the token is not valid: unknown issuer or no key id")
        key = await trusted.key(header["kid"])
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=self.audience,
                                issuer=trusted.issuer, options={"require": REQUIRED_CLAIMS})
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired; sign in again") from None
        except jwt.PyJWTError as error:
            raise TokenError(f"the token is not valid: {error}") from None
        return principal_of(claims, trusted.roles)


def principal_of(claims: dict[str, Any], roles: tuple[Role, ...]) -> Principal:
    """The caller a verified token names, if its role is one its issuer may grant."""
    role = claims.get("role")
    if role not in (*STAFF_ROLES, *HOLDER_ROLES):
        raise TokenError(f"unknown role {role!r}")
    if role not in roles:
        raise TokenError(f"a {role} token from the wrong issuer")
    try:
        org = UUID(claims["org"]) if claims.get("org") else None
        account = UUID(claims["sub"]) if role == "holder" else None
        issued_at, expires_at = float(claims["iat"]), float(claims["exp"])
    except (ValueError, TypeError, AttributeError):
        raise TokenError("the token's ids are malformed") from None
    if role in ("distributor", "venue", "ticket_agent") and org is None:
        raise TokenError(f"a {role} token must name its organisation")
    return Principal(role=role, subject=str(claims["sub"]), organisation_id=org,
                     account_id=account, token_id=str(claims["jti"]), issued_at=issued_at,
                     expires_at=expires_at)
