"""The mobile-card verifier, without I/O: tokens made here the way omakaiku signs
them (EdDSA, iss omakaiku, aud kaikukortti-mobile-card, kid in the header), and
keys given as the rows of mobile_card_key_view."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from venues.adapters.mobile_card import (
    EXPIRED,
    INVALID,
    MobileCardKeys,
    MobileCardRefused,
    card_number_from,
)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Signer:
    """Signs like omakaiku's CardSigner (adapters/mobile_card.py there)."""

    def __init__(self, seed: bytes, kid: str | None = None) -> None:
        self.private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
        self.x = b64url(raw)
        self.kid = kid or b64url(hashlib.sha256(raw).digest()[:12])

    def row(self) -> dict[str, str]:
        return {"kid": self.kid, "algorithm": "EdDSA", "kty": "OKP", "crv": "Ed25519",
                "x": self.x}

    def token(self, card_number: str | None = "KXA-12345", *, expires_in: float = 300,
              **overrides: Any) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": "omakaiku", "aud": "kaikukortti-mobile-card", "sub": card_number,
            "card_number": card_number, "valid_until": "2027-01-31", "children": 2,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=expires_in)).timestamp()),
            "jti": uuid.uuid4().hex, **overrides}
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": self.kid})


class Table:
    """mobile_card_key_view as the loader sees it; counts the reads."""

    def __init__(self, *signers: Signer) -> None:
        self.rows = {s.kid: s.row() for s in signers}
        self.loads = 0

    async def load(self) -> dict[str, dict[str, str]]:
        self.loads += 1
        return dict(self.rows)


OMAKAIKU = Signer(b"omakaiku")


async def refused(token: str, keys: MobileCardKeys) -> MobileCardRefused:
    with pytest.raises(MobileCardRefused) as caught:
        await card_number_from(token, keys)
    assert token.strip() == "" or token.strip() not in str(caught.value)  # never echoed
    return caught.value


async def test_a_genuine_token_gives_its_card_number() -> None:
    keys = MobileCardKeys(Table(OMAKAIKU).load)
    assert await card_number_from(OMAKAIKU.token("KXB-54321"), keys) == "KXB-54321"
    # Whitespace a scanner adds around it does not matter.
    assert await card_number_from(f"  {OMAKAIKU.token()}\n", keys) == "KXA-12345"


async def test_keys_are_read_once_and_then_served_from_memory() -> None:
    table = Table(OMAKAIKU)
    keys = MobileCardKeys(table.load)
    for _ in range(5):
        await card_number_from(OMAKAIKU.token(), keys)
    assert table.loads == 1


async def test_an_unknown_kid_reads_the_table_once_more_then_is_refused() -> None:
    table = Table(OMAKAIKU)
    keys = MobileCardKeys(table.load)
    await card_number_from(OMAKAIKU.token(), keys)
    stranger = Signer(b"somebody else")
    refusal = await refused(stranger.token(), keys)
    assert refusal.rule == INVALID and "not signed with a key OmaKaiku has published" in str(
        refusal)
    assert table.loads == 2


async def test_a_key_published_after_the_last_read_is_found_by_the_refresh() -> None:
    table = Table(OMAKAIKU)
    keys = MobileCardKeys(table.load)
    await card_number_from(OMAKAIKU.token(), keys)
    rotated = Signer(b"omakaiku, next year")
    table.rows[rotated.kid] = rotated.row()  # MobileCardKeyPublished arrived
    assert await card_number_from(rotated.token("KXC-00001"), keys) == "KXC-00001"
    # Rotation: the older key's tokens still verify until they expire.
    assert await card_number_from(OMAKAIKU.token("KXC-00002"), keys) == "KXC-00002"
    assert table.loads == 2


async def test_a_token_signed_by_another_key_under_a_known_kid_is_refused() -> None:
    forger = Signer(b"forger", kid=OMAKAIKU.kid)
    refusal = await refused(forger.token(), MobileCardKeys(Table(OMAKAIKU).load))
    assert refusal.rule == INVALID and "altered" in str(refusal)


async def test_a_tampered_token_is_refused() -> None:
    keys = MobileCardKeys(Table(OMAKAIKU).load)
    head, body, signature = OMAKAIKU.token("KXA-12345").split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged = b64url(json.dumps({**claims, "card_number": "KXZ-99999"}).encode())
    assert (await refused(f"{head}.{forged}.{signature}", keys)).rule == INVALID
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    assert (await refused(f"{head}.{body}.{flipped}", keys)).rule == INVALID


async def test_an_expired_token_is_refused_with_its_own_rule_and_advice() -> None:
    keys = MobileCardKeys(Table(OMAKAIKU).load)
    refusal = await refused(OMAKAIKU.token(expires_in=-120), keys)
    assert refusal.rule == EXPIRED
    assert "refresh the card in OmaKaiku" in str(refusal)
    # A few seconds of clock difference between the hosts is tolerated.
    assert await card_number_from(OMAKAIKU.token(expires_in=-5), keys) == "KXA-12345"


async def test_an_expired_forgery_is_invalid_not_expired() -> None:
    forger = Signer(b"forger", kid=OMAKAIKU.kid)
    refusal = await refused(forger.token(expires_in=-120), MobileCardKeys(Table(OMAKAIKU).load))
    assert refusal.rule == INVALID


@pytest.mark.parametrize("claims", [
    {"aud": "some-other-service"},
    {"iss": "someone-else"},
])
async def test_wrong_audience_or_issuer_is_refused(claims: dict[str, str]) -> None:
    refusal = await refused(OMAKAIKU.token(**claims), MobileCardKeys(Table(OMAKAIKU).load))
    assert refusal.rule == INVALID and "issuer or audience" in str(refusal)


@pytest.mark.parametrize("missing", ["exp", "aud", "iss", "card_number"])
async def test_a_token_without_a_required_claim_is_refused(missing: str) -> None:
    token = OMAKAIKU.token(**{missing: None})
    assert (await refused(token, MobileCardKeys(Table(OMAKAIKU).load))).rule == INVALID


async def test_a_non_string_card_number_is_refused() -> None:
    token = OMAKAIKU.token(card_number=12345)  # type: ignore[arg-type]
    assert (await refused(token, MobileCardKeys(Table(OMAKAIKU).load))).rule == INVALID


async def test_other_algorithms_are_refused_even_with_a_known_kid() -> None:
    keys = MobileCardKeys(Table(OMAKAIKU).load)
    claims = {"iss": "omakaiku", "aud": "kaikukortti-mobile-card", "card_number": "KXA-12345",
              "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}
    # An HMAC token keyed with the public key (the classic algorithm confusion).
    hs = jwt.encode(claims, OMAKAIKU.x.encode() * 2, algorithm="HS256",
                    headers={"kid": OMAKAIKU.kid})
    assert (await refused(hs, keys)).rule == INVALID
    header = b64url(json.dumps({"alg": "none", "kid": OMAKAIKU.kid}).encode())
    body = b64url(json.dumps(claims).encode())
    assert (await refused(f"{header}.{body}.", keys)).rule == INVALID


@pytest.mark.parametrize("token", [
    "", "   ", "abc", "a.b.c", "ä.ö.å", "....", "KXA-12345",
    b64url(b"[1, 2]") + ".e30.sig",  # a header that is not an object
    b64url(b'{"alg": "EdDSA", "kid": 7}') + ".e30.sig",  # a kid that is not text
    b64url(b'{"alg": "EdDSA"}') + ".e30.sig",  # no kid
    "x" * 4000,
])
async def test_what_is_not_a_token_is_refused_as_invalid(token: str) -> None:
    table = Table(OMAKAIKU)
    assert (await refused(token, MobileCardKeys(table.load))).rule == INVALID


async def test_a_published_key_of_an_unsupported_kind_is_skipped() -> None:
    table = Table(OMAKAIKU)
    table.rows["rsa-key"] = {"kid": "rsa-key", "algorithm": "RS256", "kty": "RSA", "crv": "",
                             "x": ""}
    table.rows["broken"] = {"kid": "broken", "algorithm": "EdDSA", "kty": "OKP",
                            "crv": "Ed25519", "x": "not base64url of 32 bytes"}
    keys = MobileCardKeys(table.load)
    assert await card_number_from(OMAKAIKU.token(), keys) == "KXA-12345"
    assert await keys.get("rsa-key") is None
    assert await keys.get("broken") is None
