"""Bearer tokens: what the verifier accepts and, above all, what it refuses.

Staff tokens come from cards' key set, holder tokens from omakaiku's; every
other process holds public keys only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kaiku_shared.auth import (
    HOLDER_ISSUER,
    HOLDER_ROLES,
    STAFF_ISSUER,
    STAFF_ROLES,
    KeysUnavailable,
    Principal,
    SigningKeyMissing,
    TokenError,
    TokenSigner,
    TokenVerifier,
    TrustedKeys,
)
from kaiku_shared.keys import KeyMaterial, generate_signing_key, public_key_set
from kaiku_shared.revocation import RevocationList, hashed
from kaiku_shared.settings import KaikuSettings

AUDIENCE = "kaikukortti"


@pytest.fixture(scope="module")
def keys() -> KeyMaterial:
    return KeyMaterial.generate(development=True)


@pytest.fixture
def staff(keys: KeyMaterial) -> TokenSigner:
    return TokenSigner.for_staff(KaikuSettings(
        staff_signing_keys=keys.values["KAIKU_STAFF_SIGNING_KEYS"]))


@pytest.fixture
def holders(keys: KeyMaterial) -> TokenSigner:
    return TokenSigner.for_holders(KaikuSettings(
        holder_signing_keys=keys.values["KAIKU_HOLDER_SIGNING_KEYS"]))


@pytest.fixture
def verifier(keys: KeyMaterial) -> TokenVerifier:
    """What venues or notifications hold: the two public key sets, nothing else."""
    return TokenVerifier.from_settings(KaikuSettings(**{
        "staff_jwks": keys.values["KAIKU_STAFF_JWKS"],
        "holder_jwks": keys.values["KAIKU_HOLDER_JWKS"],
        "staff_jwks_url": "", "holder_jwks_url": ""}))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = time.time()
    base: dict[str, Any] = {"iss": STAFF_ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600,
                            "jti": uuid4().hex, "role": "distributor", "sub": "staff-1",
                            "org": str(uuid4())}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def private_key(signer: TokenSigner) -> Any:
    return jwt.PyJWK(signer.keys[0], algorithm="EdDSA").key


# --- the happy paths -----------------------------------------------------------------


async def test_staff_token_round_trip(staff: TokenSigner, verifier: TokenVerifier) -> None:
    org = uuid4()
    token = staff.issue(role="distributor", organisation_id=org, subject="staff-7")
    principal = await verifier.verify(token)
    assert principal == Principal(role="distributor", subject="staff-7", organisation_id=org)
    assert principal.is_staff and principal.account_id is None
    assert principal.key == f"distributor:{org}"
    # iat is stored to the millisecond: it may round up past the clock by < 1 ms.
    assert principal.token_id and principal.issued_at <= time.time() + 0.001 < principal.expires_at


async def test_holder_token_gives_the_account_id(holders: TokenSigner,
                                                 verifier: TokenVerifier) -> None:
    account = uuid4()
    principal = await verifier.verify(holders.issue(role="holder", account_id=account))
    assert principal.role == "holder" and principal.account_id == account
    assert isinstance(principal.account_id, UUID)
    assert not principal.is_staff


async def test_kaikukeskus_needs_no_organisation(staff: TokenSigner,
                                                 verifier: TokenVerifier) -> None:
    principal = await verifier.verify(staff.issue(role="kaikukeskus"))
    assert principal.role == "kaikukeskus" and principal.organisation_id is None


def test_issued_token_is_eddsa_with_kid_jti_audience_issuer_and_expiry(
        staff: TokenSigner) -> None:
    token = staff.issue(role="kaikukeskus", ttl_seconds=120)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == staff.kid
    assert staff.kid.startswith("dev-staff-")
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["aud"] == AUDIENCE and payload["iss"] == STAFF_ISSUER
    assert int(payload["exp"]) - int(payload["iat"]) == 120
    assert len(payload["jti"]) == 32


def test_the_public_key_set_holds_no_private_part(staff: TokenSigner) -> None:
    public = staff.public_jwks()
    assert public["keys"][0]["kid"] == staff.kid
    assert all("d" not in key for key in public["keys"])


# --- issuing refuses --------------------------------------------------------------------


def test_no_signer_without_a_key() -> None:
    with pytest.raises(SigningKeyMissing, match="KAIKU_STAFF_SIGNING_KEYS"):
        TokenSigner.for_staff(KaikuSettings())
    with pytest.raises(SigningKeyMissing, match="KAIKU_HOLDER_SIGNING_KEYS"):
        TokenSigner.for_holders(KaikuSettings())


def test_each_issuer_issues_only_its_own_roles(staff: TokenSigner, holders: TokenSigner) -> None:
    with pytest.raises(ValueError, match="does not issue holder"):
        staff.issue(role="holder", account_id=uuid4())
    with pytest.raises(ValueError, match="does not issue kaikukeskus"):
        holders.issue(role="kaikukeskus")


@pytest.mark.parametrize("role", ["distributor", "venue", "ticket_agent"])
def test_issue_refuses_staff_without_organisation(staff: TokenSigner, role: str) -> None:
    with pytest.raises(ValueError, match="organisation id"):
        staff.issue(role=role)  # type: ignore[arg-type]


def test_issue_refuses_a_holder_without_account(holders: TokenSigner) -> None:
    with pytest.raises(ValueError, match="account id"):
        holders.issue(role="holder")


# --- verification refuses ---------------------------------------------------------------


async def test_a_staff_role_signed_with_the_holder_keys_is_refused(
        holders: TokenSigner, verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(iss=HOLDER_ISSUER, role="kaikukeskus", org=None),
                       private_key(holders), algorithm="EdDSA", headers={"kid": holders.kid})
    with pytest.raises(TokenError, match="wrong issuer"):
        await verifier.verify(token)


async def test_a_holder_token_naming_the_staff_issuer_is_refused(
        holders: TokenSigner, verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(role="holder", sub=str(uuid4()), org=None), private_key(holders),
                       algorithm="EdDSA", headers={"kid": holders.kid})
    with pytest.raises(TokenError):
        await verifier.verify(token)


async def test_a_token_from_another_services_key_is_refused(
        staff: TokenSigner, verifier: TokenVerifier) -> None:
    """A venues-made key, even under the real kid: no service but cards mints staff."""
    venues_key = generate_signing_key("venues")
    for kid in (venues_key["kid"], staff.kid):
        token = jwt.encode(claims(role="kaikukeskus", org=None),
                           jwt.PyJWK(venues_key, algorithm="EdDSA").key, algorithm="EdDSA",
                           headers={"kid": kid})
        with pytest.raises(TokenError):
            await verifier.verify(token)


async def test_hs256_with_the_old_shared_secret_is_refused(verifier: TokenVerifier) -> None:
    old = "dev-only-insecure-jwt-secret-change-me-0123456789"
    token = jwt.encode(claims(role="kaikukeskus", org=None), old, algorithm="HS256")
    with pytest.raises(TokenError, match="only EdDSA"):
        await verifier.verify(token)


async def test_an_hmac_made_with_the_public_key_is_refused(
        staff: TokenSigner, verifier: TokenVerifier) -> None:
    """The classic algorithm confusion: HS256 keyed with the published key."""
    public = staff.public_jwks()["keys"][0]["x"]
    signing_input = (f"{b64(json.dumps({'alg': 'HS256', 'kid': staff.kid}).encode())}."
                     f"{b64(json.dumps(claims()).encode())}")
    signature = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(TokenError):
        await verifier.verify(f"{signing_input}.{b64(signature)}")


@pytest.mark.parametrize("make_key,alg", [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
])
async def test_other_asymmetric_algorithms_are_refused(
        verifier: TokenVerifier, staff: TokenSigner, make_key: Any, alg: str) -> None:
    token = jwt.encode(claims(), make_key(), algorithm=alg, headers={"kid": staff.kid})
    with pytest.raises(TokenError):
        await verifier.verify(token)


async def test_alg_none_is_refused(verifier: TokenVerifier, staff: TokenSigner) -> None:
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": staff.kid})
    with pytest.raises(TokenError):
        await verifier.verify(token)


async def test_a_tampered_payload_is_refused(staff: TokenSigner,
                                             verifier: TokenVerifier) -> None:
    token = staff.issue(role="venue", organisation_id=uuid4())
    header, _, signature = token.split(".")
    forged = b64(json.dumps(claims(role="kaikukeskus", org=None)).encode())
    with pytest.raises(TokenError):
        await verifier.verify(f"{header}.{forged}.{signature}")


async def test_expired_token_is_refused(staff: TokenSigner, verifier: TokenVerifier) -> None:
    with pytest.raises(TokenError, match="expired"):
        await verifier.verify(staff.issue(role="kaikukeskus", ttl_seconds=-5))


async def test_a_remembered_token_is_refused_once_it_expires(
        staff: TokenSigner, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from kaiku_shared import auth

    token = staff.issue(role="kaikukeskus", ttl_seconds=60)
    assert (await verifier.verify(token)).role == "kaikukeskus"  # now remembered
    later = time.time() + 61
    monkeypatch.setattr(auth, "time", types.SimpleNamespace(time=lambda: later,
                                                            monotonic=time.monotonic))
    with pytest.raises(TokenError, match="expired"):
        await verifier.verify(token)


@pytest.mark.parametrize("missing", ["exp", "iat", "aud", "iss", "sub", "role", "jti"])
async def test_a_missing_required_claim_is_refused(
        staff: TokenSigner, verifier: TokenVerifier, missing: str) -> None:
    token = jwt.encode({k: v for k, v in claims().items() if k != missing},
                       private_key(staff), algorithm="EdDSA", headers={"kid": staff.kid})
    with pytest.raises(TokenError):
        await verifier.verify(token)


@pytest.mark.parametrize("overrides,message", [
    ({"role": "admin"}, "unknown role"),
    ({"org": None}, "must name its organisation"),
    ({"org": "not-a-uuid"}, "malformed"),
    ({"aud": "another-system"}, "not valid"),
])
async def test_bad_claims_are_refused(staff: TokenSigner, verifier: TokenVerifier,
                                      overrides: dict[str, Any], message: str) -> None:
    token = jwt.encode(claims(**overrides), private_key(staff), algorithm="EdDSA",
                       headers={"kid": staff.kid})
    with pytest.raises(TokenError, match=message):
        await verifier.verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x.y.z"])
async def test_garbage_is_refused(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(TokenError):
        await verifier.verify(garbage)


# --- rotation and fetched keys ------------------------------------------------------------


async def test_after_a_rotation_the_new_key_signs_and_the_old_still_verifies(
        keys: KeyMaterial) -> None:
    rotated = keys.rotated("staff", development=True)
    old = TokenSigner.for_staff(KaikuSettings(
        staff_signing_keys=keys.values["KAIKU_STAFF_SIGNING_KEYS"]))
    new = TokenSigner.for_staff(KaikuSettings(
        staff_signing_keys=rotated.values["KAIKU_STAFF_SIGNING_KEYS"]))
    assert new.kid != old.kid and [k["kid"] for k in new.keys][1] == old.kid
    verifier = TokenVerifier.from_settings(KaikuSettings(
        staff_jwks=rotated.values["KAIKU_STAFF_JWKS"], staff_jwks_url="", holder_jwks_url=""))
    for signer in (old, new):
        token = signer.issue(role="kaikukeskus")
        assert jwt.get_unverified_header(token)["kid"] == signer.kid
        assert (await verifier.verify(token)).role == "kaikukeskus"


@pytest.fixture
def jwks_server(staff: TokenSigner) -> Iterator[tuple[str, list[int]]]:
    """A real HTTP server publishing the staff keys, counting its requests."""
    hits: list[int] = []
    body = json.dumps(staff.public_jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", hits
    finally:
        server.shutdown()


async def test_public_keys_are_fetched_once_and_an_unknown_kid_refetches_at_most_so_often(
        staff: TokenSigner, jwks_server: tuple[str, list[int]]) -> None:
    url, hits = jwks_server
    trusted = TrustedKeys(STAFF_ISSUER, STAFF_ROLES, [], url, refetch_seconds=60)
    verifier = TokenVerifier(AUDIENCE, [trusted, TrustedKeys(HOLDER_ISSUER, HOLDER_ROLES, [])])
    for _ in range(3):
        assert (await verifier.verify(staff.issue(role="kaikukeskus"))).role == "kaikukeskus"
    assert len(hits) == 1
    unknown = jwt.encode(claims(), private_key(staff), algorithm="EdDSA",
                         headers={"kid": "never-published"})
    for _ in range(5):
        with pytest.raises(TokenError, match="does not know"):
            await verifier.verify(unknown)
    assert len(hits) == 1  # within refetch_seconds: no flood reaches the issuer


async def test_an_unreachable_issuer_is_unavailable_not_unauthorised(
        staff: TokenSigner) -> None:
    trusted = TrustedKeys(STAFF_ISSUER, STAFF_ROLES, [], "http://127.0.0.1:9/jwks.json")
    verifier = TokenVerifier(AUDIENCE, [trusted])
    with pytest.raises(KeysUnavailable):
        await verifier.verify(staff.issue(role="kaikukeskus"))


# --- revocation -----------------------------------------------------------------------------


def test_a_user_revocation_refuses_only_tokens_issued_before_it() -> None:
    user = uuid4()
    before = Principal("distributor", str(user), uuid4(), issued_at=100.0, expires_at=9e9)
    after = Principal("distributor", str(user), uuid4(), issued_at=200.0, expires_at=9e9)
    other = Principal("distributor", str(uuid4()), uuid4(), issued_at=100.0, expires_at=9e9)
    revoked = RevocationList()
    revoked._not_before[("user", hashed(str(user)))] = (150.0, "password_changed")
    assert "password was changed" in (revoked.refusal(before) or "")
    assert revoked.refusal(after) is None and revoked.refusal(other) is None


def test_an_organisation_account_or_token_revocation_refuses() -> None:
    org, account = uuid4(), uuid4()
    revoked = RevocationList()
    revoked._not_before[("organisation", hashed(str(org)))] = (150.0, "left")
    revoked._not_before[("account", hashed(str(account)))] = (150.0, "erased")
    revoked._not_before[("token", hashed("abc"))] = (0.0, "signed_out")
    assert "left the Kaikukortti network" in (revoked.refusal(
        Principal("venue", "x", org, issued_at=100.0)) or "")
    assert "erased" in (revoked.refusal(
        Principal("holder", str(account), account_id=account, issued_at=100.0)) or "")
    assert "signed out" in (revoked.refusal(
        Principal("holder", "y", account_id=uuid4(), token_id="abc", issued_at=999.0)) or "")
    assert revoked.refusal(Principal("holder", "y", account_id=uuid4(), token_id="abd",
                                     issued_at=100.0)) is None


def test_a_public_set_of_private_keys_drops_every_private_part() -> None:
    keys = [generate_signing_key("staff"), generate_signing_key("staff")]
    assert all(set(k) == {"kty", "crv", "alg", "use", "kid", "x"}
               for k in public_key_set(keys)["keys"])
