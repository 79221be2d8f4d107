"""Bearer tokens: what ``verify_token`` accepts and, above all, what it refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kaiku_shared.auth import (
    Principal,
    SigningKeyMissing,
    TokenError,
    issue_token,
    verify_token,
)
from kaiku_shared.settings import KaikuSettings

SECRET = "unit-test-signing-key-" + "0123456789abcdef" * 3  # 70 bytes: long enough for HS512 too


@pytest.fixture
def settings() -> KaikuSettings:
    return KaikuSettings(jwt_secret=SECRET, jwt_audience="kaikukortti",
                         jwt_issuer="kaikukortti-test")


def claims(settings: KaikuSettings, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "iat": now,
        "exp": now + 600, "role": "distributor", "sub": "staff-1", "org": str(uuid4()),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], key: str) -> str:
    """A JWT whose header says whatever we like, HMAC-SHA256-signed with ``key``."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


# --- the happy paths -----------------------------------------------------------------


def test_staff_token_round_trip(settings: KaikuSettings) -> None:
    org = uuid4()
    token = issue_token(settings, role="distributor", organisation_id=org, subject="staff-7")
    principal = verify_token(settings, token)
    assert principal == Principal(role="distributor", subject="staff-7", organisation_id=org)
    assert principal.is_staff
    assert principal.account_id is None
    assert principal.key == f"distributor:{org}"


@pytest.mark.parametrize("role", ["venue", "ticket_agent"])
def test_other_staff_roles_round_trip(settings: KaikuSettings, role: str) -> None:
    org = uuid4()
    principal = verify_token(settings, issue_token(settings, role=role, organisation_id=org))
    assert (principal.role, principal.organisation_id) == (role, org)
    assert principal.subject == str(org)  # no subject given: the organisation


def test_kaikukeskus_needs_no_organisation(settings: KaikuSettings) -> None:
    principal = verify_token(settings, issue_token(settings, role="kaikukeskus"))
    assert principal.role == "kaikukeskus"
    assert principal.organisation_id is None
    assert principal.is_staff


def test_holder_token_gives_the_account_id(settings: KaikuSettings) -> None:
    account = uuid4()
    principal = verify_token(settings, issue_token(settings, role="holder", account_id=account))
    assert principal.role == "holder"
    assert principal.account_id == account
    assert isinstance(principal.account_id, UUID)
    assert principal.organisation_id is None
    assert not principal.is_staff
    assert principal.key == f"holder:{account}"


def test_issued_token_is_hs256_with_audience_issuer_and_expiry(settings: KaikuSettings) -> None:
    token = issue_token(settings, role="kaikukeskus", ttl_seconds=120)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["aud"] == "kaikukortti" and payload["iss"] == "kaikukortti-test"
    assert payload["exp"] - payload["iat"] == 120


# --- issuing refuses incomplete tokens --------------------------------------------------


def test_issue_refuses_without_a_key() -> None:
    with pytest.raises(SigningKeyMissing):
        issue_token(KaikuSettings(jwt_secret=None), role="kaikukeskus")


def test_issue_refuses_a_holder_without_account(settings: KaikuSettings) -> None:
    with pytest.raises(ValueError, match="account id"):
        issue_token(settings, role="holder")


@pytest.mark.parametrize("role", ["distributor", "venue", "ticket_agent"])
def test_issue_refuses_staff_without_organisation(settings: KaikuSettings, role: str) -> None:
    with pytest.raises(ValueError, match="organisation id"):
        issue_token(settings, role=role)  # type: ignore[arg-type]


# --- verification refuses ---------------------------------------------------------------


def test_without_a_key_nothing_verifies(settings: KaikuSettings) -> None:
    token = issue_token(settings, role="kaikukeskus")
    with pytest.raises(TokenError, match="no signing key"):
        verify_token(KaikuSettings(jwt_secret=None), token)


def test_expired_token_is_refused(settings: KaikuSettings) -> None:
    token = issue_token(settings, role="kaikukeskus", ttl_seconds=-5)
    with pytest.raises(TokenError, match="expired"):
        verify_token(settings, token)


def test_a_token_verified_before_is_refused_once_it_expires(
        settings: KaikuSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from kaiku_shared import auth

    token = issue_token(settings, role="kaikukeskus", ttl_seconds=60)
    assert verify_token(settings, token).role == "kaikukeskus"  # now remembered
    later = time.time() + 61
    monkeypatch.setattr(auth, "time", types.SimpleNamespace(time=lambda: later))
    with pytest.raises(TokenError, match="expired"):
        verify_token(settings, token)


def test_a_remembered_token_is_not_valid_under_another_key(settings: KaikuSettings) -> None:
    token = issue_token(settings, role="kaikukeskus")
    verify_token(settings, token)
    with pytest.raises(TokenError, match="not valid"):
        verify_token(settings.model_copy(update={"jwt_secret": "another-key-" * 3}), token)


def test_wrong_audience_is_refused(settings: KaikuSettings) -> None:
    token = issue_token(settings.model_copy(update={"jwt_audience": "another-system"}),
                        role="kaikukeskus")
    with pytest.raises(TokenError):
        verify_token(settings, token)


def test_wrong_issuer_is_refused(settings: KaikuSettings) -> None:
    token = issue_token(settings.model_copy(update={"jwt_issuer": "someone-else"}),
                        role="kaikukeskus")
    with pytest.raises(TokenError):
        verify_token(settings, token)


def test_alg_none_is_refused(settings: KaikuSettings) -> None:
    token = jwt.encode(claims(settings, role="kaikukeskus"), None, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    with pytest.raises(TokenError):
        verify_token(settings, token)
    # Also the hand-made kind with an empty signature.
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(settings, role="kaikukeskus")).encode())
    with pytest.raises(TokenError):
        verify_token(settings, f"{header}.{payload}.")


def test_token_signed_with_another_hmac_key_is_refused(settings: KaikuSettings) -> None:
    token = jwt.encode(claims(settings), "another-key-that-is-long-enough-xx", algorithm="HS256")
    with pytest.raises(TokenError):
        verify_token(settings, token)


def test_token_signed_with_an_rsa_key_is_refused(settings: KaikuSettings) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(settings), key, algorithm="RS256")
    with pytest.raises(TokenError):
        verify_token(settings, token)


@pytest.mark.parametrize("alg", ["RS256", "HS512", "ES256", "HS384"])
def test_hs256_signature_under_another_alg_header_is_refused(
    settings: KaikuSettings, alg: str,
) -> None:
    # The signature is a valid HS256 MAC with the real key; only the header lies.
    token = hand_signed({"alg": alg, "typ": "JWT"}, claims(settings), SECRET)
    with pytest.raises(TokenError):
        verify_token(settings, token)
    # Control: the very same construction with an honest header is accepted.
    honest = hand_signed({"alg": "HS256", "typ": "JWT"}, claims(settings), SECRET)
    assert verify_token(settings, honest).role == "distributor"


def test_hs512_token_with_the_right_key_is_refused(settings: KaikuSettings) -> None:
    token = jwt.encode(claims(settings), SECRET, algorithm="HS512")
    with pytest.raises(TokenError):
        verify_token(settings, token)


def test_a_tampered_payload_is_refused(settings: KaikuSettings) -> None:
    token = issue_token(settings, role="venue", organisation_id=uuid4())
    header, _, signature = token.split(".")
    forged = b64(json.dumps(claims(settings, role="kaikukeskus")).encode())
    with pytest.raises(TokenError):
        verify_token(settings, f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x.y.z"])
def test_garbage_is_refused(settings: KaikuSettings, garbage: str) -> None:
    with pytest.raises(TokenError):
        verify_token(settings, garbage)


@pytest.mark.parametrize("missing", ["exp", "iat", "aud", "iss", "sub", "role"])
def test_a_missing_required_claim_is_refused(settings: KaikuSettings, missing: str) -> None:
    token = jwt.encode({k: v for k, v in claims(settings).items() if k != missing},
                       SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        verify_token(settings, token)


def test_an_unknown_role_is_refused(settings: KaikuSettings) -> None:
    token = jwt.encode(claims(settings, role="admin"), SECRET, algorithm="HS256")
    with pytest.raises(TokenError, match="unknown role"):
        verify_token(settings, token)


@pytest.mark.parametrize("role", ["distributor", "venue", "ticket_agent"])
def test_staff_token_without_org_claim_is_refused(settings: KaikuSettings, role: str) -> None:
    token = jwt.encode(claims(settings, role=role, org=None), SECRET, algorithm="HS256")
    with pytest.raises(TokenError, match="must name its organisation"):
        verify_token(settings, token)


def test_malformed_org_claim_is_refused(settings: KaikuSettings) -> None:
    token = jwt.encode(claims(settings, org="not-a-uuid"), SECRET, algorithm="HS256")
    with pytest.raises(TokenError, match="malformed"):
        verify_token(settings, token)


def test_holder_token_whose_subject_is_not_an_account_id_is_refused(
    settings: KaikuSettings,
) -> None:
    token = jwt.encode(claims(settings, role="holder", sub="someone", org=None), SECRET,
                       algorithm="HS256")
    with pytest.raises(TokenError, match="malformed"):
        verify_token(settings, token)




def test_non_string_org_claim_is_refused(settings: KaikuSettings) -> None:
    token = jwt.encode(claims(settings, org=12345), SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        verify_token(settings, token)
