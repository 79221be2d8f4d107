"""Who can mint a token, and how fast a revoked one stops working — against the
running system: every service verifies with the issuers' public keys (fetched
from their /.well-known/jwks.json), and refuses a revoked token within 2 s.

Each probe asks a route that answers 401 only when the token itself is refused:
a valid token of the wrong role gets 403, 404 or 422 there instead."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from kaiku_shared.auth import HOLDER_ISSUER, STAFF_ISSUER
from kaiku_shared.keys import generate_signing_key
from kaiku_dev.testing import (
    HOLDER_PROBES,
    STAFF_PROBES,
    accepted_everywhere,
    reported,
    seconds_until_refused_everywhere,
    statuses,
)

pytestmark = pytest.mark.e2e

PASSWORD = "kaikukortti-salasana-1"

# --- nobody but the issuer mints a token ----------------------------------------------


def _claims(**overrides: Any) -> dict[str, Any]:
    now = time.time()
    return {"iss": STAFF_ISSUER, "aud": "kaikukortti", "iat": now, "exp": now + 600,
            "jti": uuid.uuid4().hex, "role": "kaikukeskus", "sub": "x", **overrides}


async def test_forged_tokens_are_refused_by_every_service(system) -> None:
    staff_kid = jwt.get_unverified_header(system.token("kaikukeskus"))["kid"]
    holder_kid = jwt.get_unverified_header(
        system.token("holder", account_id=uuid.uuid4()))["kid"]
    venues_key = generate_signing_key("venues")  # a key some other service made itself
    venues_private = jwt.PyJWK(venues_key, algorithm="EdDSA").key
    holder_private = jwt.PyJWK(
        system.ns.holder_signer.keys[0], algorithm="EdDSA").key
    old_secret = "dev-only-insecure-jwt-secret-change-me-0123456789"
    forged = {
        "HS256 with the old shared secret": jwt.encode(_claims(), old_secret, algorithm="HS256"),
        "alg none": jwt.encode(_claims(), None, algorithm="none"),
        "venues-signed staff token": jwt.encode(_claims(), venues_private, algorithm="EdDSA",
                                                headers={"kid": venues_key["kid"]}),
        "venues-signed under the real kid": jwt.encode(
            _claims(), venues_private, algorithm="EdDSA", headers={"kid": staff_kid}),
        "wrong kid": jwt.encode(_claims(), venues_private, algorithm="EdDSA",
                                headers={"kid": "staff-20990101-deadbeef"}),
        "staff role signed with the holder key": jwt.encode(
            _claims(iss=HOLDER_ISSUER), holder_private, algorithm="EdDSA",
            headers={"kid": holder_kid}),
        "expired": system.ns.staff_signer.issue(role="kaikukeskus", ttl_seconds=-10),
    }
    await accepted_everywhere(system, system.token("kaikukeskus"), STAFF_PROBES)
    for name, token in forged.items():
        seen = await statuses(system, token, STAFF_PROBES)
        assert set(seen.values()) == {401}, f"{name}: {seen}"


async def test_cards_trusts_staff_tokens_only(system) -> None:
    """Cards, the anonymous registry, has no route for holders: a genuine holder
    token is refused there as a token (401), so cards needs no holder revocations
    and no reader on omakaiku's stream."""
    holder = system.token("holder", account_id=uuid.uuid4())
    await accepted_everywhere(system, holder, HOLDER_PROBES)
    async with system.client("cards", holder) as client:
        answer = await client.get("/auth/me")
    assert answer.status_code == 401, answer.text


async def test_the_issuers_publish_public_keys_only(system) -> None:
    for service, signer in (("cards", system.ns.staff_signer),
                            ("omakaiku", system.ns.holder_signer)):
        async with system.client(service) as client:
            keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert [k["kid"] for k in keys] == [signer.kid]
        assert all("d" not in key for key in keys)
    for service in ("venues", "notifications"):
        async with system.client(service) as client:
            assert (await client.get("/.well-known/jwks.json")).status_code == 404


# --- revocation within 2 s, everywhere ----------------------------------------------------


async def _staff_user(system, world) -> tuple[str, str, str]:
    """A distributor user of the world's distributor; (user id, username, token)."""
    name = f"jakaja.{uuid.uuid4().hex[:8]}"
    async with system.client("cards", world.centre_token) as client:
        created = await client.post("/users", json={
            "username": name, "password": PASSWORD, "organisation_id": world.distributor_id})
        assert created.status_code == 201, created.text
        signed_in = await client.post("/auth/login", json={"username": name,
                                                            "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    return created.json()["user_id"], name, signed_in.json()["access_token"]


async def test_a_deactivated_users_token_is_refused_everywhere(system, world) -> None:
    user_id, _, token = await _staff_user(system, world)
    await accepted_everywhere(system, token, STAFF_PROBES)
    async with system.client("cards", world.centre_token) as client:
        answer = await client.post(f"/users/{user_id}/deactivation")
    since = time.monotonic()
    assert answer.status_code == 200, answer.text
    reported("user deactivated",
             await seconds_until_refused_everywhere(system, token, STAFF_PROBES, since))
    async with system.client("cards", token) as client:
        detail = (await client.get("/auth/me")).json()["detail"]
    assert "deactivated" in detail


async def test_a_password_change_refuses_the_earlier_tokens_only(system, world) -> None:
    user_id, name, token = await _staff_user(system, world)
    await accepted_everywhere(system, token, STAFF_PROBES)
    async with system.client("cards", world.centre_token) as client:
        answer = await client.put(f"/users/{user_id}/password",
                                  json={"password": "a new long passphrase"})
    since = time.monotonic()
    assert answer.status_code == 200, answer.text
    reported("password changed",
             await seconds_until_refused_everywhere(system, token, STAFF_PROBES, since))
    async with system.client("cards") as client:
        again = await client.post("/auth/login", json={"username": name,
                                                        "password": "a new long passphrase"})
    await accepted_everywhere(system, again.json()["access_token"], STAFF_PROBES)


async def test_a_staff_sign_out_refuses_that_token_only(system, world) -> None:
    _, _, token = await _staff_user(system, world)
    other = system.token("distributor", organisation_id=world.distributor_id)
    async with system.client("cards", token) as client:
        answer = await client.post("/auth/sign-out")
    since = time.monotonic()
    assert answer.status_code == 204, answer.text
    reported("staff sign-out",
             await seconds_until_refused_everywhere(system, token, STAFF_PROBES, since))
    await accepted_everywhere(system, other, STAFF_PROBES)


async def test_a_holders_sign_out_refuses_that_token_only(system, world) -> None:
    card = await world.issue_card()
    account = await world.activate_account(card["card_number"])
    token, other = world.holder_token(account), world.holder_token(account)
    await accepted_everywhere(system, token, HOLDER_PROBES)
    async with system.client("omakaiku", token) as client:
        answer = await client.post("/me/sign-out")
    since = time.monotonic()
    assert answer.status_code == 204, answer.text
    reported("holder sign-out",
             await seconds_until_refused_everywhere(system, token, HOLDER_PROBES, since))
    await accepted_everywhere(system, other, HOLDER_PROBES)  # another device stays in


async def test_an_erased_accounts_tokens_are_refused_everywhere(system, world) -> None:
    card = await world.issue_card()
    account = await world.activate_account(card["card_number"])
    token = world.holder_token(account)
    await accepted_everywhere(system, token, HOLDER_PROBES)
    async with system.client("omakaiku", token) as client:
        answer = await client.delete("/me")
    since = time.monotonic()
    assert answer.status_code == 202, answer.text
    reported("account erased",
             await seconds_until_refused_everywhere(system, token, HOLDER_PROBES, since))
