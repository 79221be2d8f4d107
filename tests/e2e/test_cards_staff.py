"""Kaikukanta staff: sign-in, user management, approval, roles and ownership, the
partner continuation round — over HTTP against the running system."""

from __future__ import annotations

import time
import uuid
from datetime import date

import pytest

from kaiku_dev.testing import (
    STAFF_PROBES,
    accepted_everywhere,
    reported,
    seconds_until_refused_everywhere,
)

pytestmark = pytest.mark.e2e

PASSWORD = "kaikukortti-salasana-1"


async def _post(system, token, path, body, expect=201):
    async with system.client("cards", token) as client:
        response = await client.post(path, json=body)
    assert response.status_code == expect, response.text
    return response.json()


async def new_distributor(system, name="Kokkolan sosiaalityö", municipality="Kokkola",
                          **extra):
    centre = system.token("kaikukeskus")
    return (await _post(system, centre, "/organisations", {
        "kind": "distributor", "name": name, "municipality": municipality, **extra}))


async def login(system, username, password=PASSWORD):
    async with system.client("cards") as client:
        return await client.post("/auth/login", json={"username": username,
                                                      "password": password})


def unique(prefix):
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


async def test_a_distributor_admin_signs_in_manages_users_and_issues(system):
    org = (await new_distributor(system))["organisation_id"]
    admin_name = unique("admin")
    centre = system.token("kaikukeskus")
    created = await _post(system, centre, "/users", {
        "username": admin_name, "password": PASSWORD, "organisation_id": org, "admin": True})
    assert created["role"] == "distributor" and created["admin"] is True
    assert "password" not in created and "password_hash" not in created

    response = await login(system, admin_name.upper())
    assert response.status_code == 200, response.text
    signed_in = response.json()
    assert (signed_in["role"], signed_in["organisation_id"]) == ("distributor", org)
    token = signed_in["access_token"]

    # the organisation's own admin adds a colleague
    colleague = unique("jakaja")
    await _post(system, token, "/users", {"username": colleague, "password": PASSWORD})
    async with system.client("cards", token) as client:
        listing = (await client.get("/users")).json()
    assert {u["username"] for u in listing} == {admin_name, colleague}

    # the colleague is no admin: may issue, may not manage users
    colleague_token = (await login(system, colleague)).json()["access_token"]
    card = await _post(system, colleague_token, "/cards", {
        "birth_year": 1970, "postal_code": "67100", "municipality": "Kokkola", "children": 0})
    assert card["issuer_organisation_id"] == org
    async with system.client("cards", colleague_token) as client:
        refused = await client.post("/users", json={"username": unique("x"),
                                                     "password": PASSWORD})
        assert refused.status_code == 403
        assert (await client.get("/users")).status_code == 403

    # an admin manages only its own organisation's users
    other = (await new_distributor(system, name="Toinen jakaja"))["organisation_id"]
    async with system.client("cards", token) as client:
        foreign = await client.post("/users", json={
            "username": unique("y"), "password": PASSWORD, "organisation_id": other})
        assert foreign.status_code == 403
        kaikukeskus_user = await client.post("/users", json={
            "username": unique("z"), "password": PASSWORD,
            "organisation_id": "00000000-0000-0000-0000-000000000000"})
        assert kaikukeskus_user.status_code in (403, 404)

    # deactivation ends sign-in
    colleague_id = next(u["user_id"] for u in listing if u["username"] == colleague)
    async with system.client("cards", token) as client:
        response = await client.post(f"/users/{colleague_id}/deactivation")
    assert response.status_code == 200 and response.json()["active"] is False
    assert (await login(system, colleague)).status_code == 401


async def test_sign_in_refusals_are_clear(system):
    response = await login(system, "nobody.at.all", "whatever-password")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/login-failed")
    org = (await new_distributor(system))["organisation_id"]
    name = unique("aino")
    await _post(system, system.token("kaikukeskus"), "/users", {
        "username": name, "password": PASSWORD, "organisation_id": org})
    assert (await login(system, name, "wrong-password-123")).status_code == 401
    async with system.client("cards", system.token("kaikukeskus")) as client:
        weak = await client.post("/users", json={"username": unique("b"), "password": "lyhyt",
                                                 "organisation_id": org})
        taken = await client.post("/users", json={"username": name, "password": PASSWORD,
                                                  "organisation_id": org})
    assert weak.status_code == 422 and weak.json()["type"].endswith("/weak-password")
    assert taken.status_code == 409 and taken.json()["type"].endswith("/username-taken")


async def test_a_kaikukeskus_user_signs_in_with_the_kaikukeskus_role(system):
    name = unique("keskus")
    created = await _post(system, system.token("kaikukeskus"), "/users", {
        "username": name, "password": PASSWORD, "admin": True})
    assert created["role"] == "kaikukeskus"
    token = (await login(system, name)).json()["access_token"]
    registered = await _post(system, token, "/organisations", {
        "kind": "venue", "name": "Kokkolan kaupunginteatteri", "municipality": "Kokkola"})
    assert registered["status"] == "approved"


async def test_a_proposed_distributor_issues_only_after_approval(system):
    org = (await new_distributor(system, name="Ehdotettu jakaja", pending=True))
    assert org["status"] == "pending"
    token = system.token("distributor", organisation_id=org["organisation_id"])
    body = {"birth_year": 1980, "postal_code": "67100", "municipality": "Kokkola",
            "children": 1}
    async with system.client("cards", token) as client:
        refused = await client.post("/cards", json=body)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/distributor-not-approved")
    async with system.client("cards", token) as client:
        self_approval = await client.post(f"/organisations/{org['organisation_id']}/approval",
                                          json={})
    assert self_approval.status_code == 403
    approved = await _post(system, system.token("kaikukeskus"),
                           f"/organisations/{org['organisation_id']}/approval", {}, expect=200)
    assert approved["status"] == "approved"
    await _post(system, token, "/cards", body)


async def test_every_route_checks_role_and_ownership(system, world):
    card = await world.issue_card()
    number = card["card_number"]
    other = (await new_distributor(system, name="Vieras jakaja"))["organisation_id"]
    stranger = system.token("distributor", organisation_id=other)
    venue = world.venue_token
    async with system.client("cards", stranger) as client:
        assert (await client.get(f"/cards/{number}")).status_code == 403
        assert (await client.post(f"/cards/{number}/renewal", json={})).status_code == 403
        assert (await client.patch(f"/cards/{number}", json={"children": 0})).status_code == 403
        assert (await client.post(f"/cards/{number}/closure",
                                  json={"reason": "lost"})).status_code == 403
        assert (await client.post(f"/cards/{number}/replacement")).status_code == 403
        assert (await client.post("/organisations", json={
            "kind": "venue", "name": "X", "municipality": "Imatra"})).status_code == 403
        assert (await client.post(f"/organisations/{other}/approval",
                                  json={})).status_code == 403
    async with system.client("cards", venue) as client:
        seen = await client.get(f"/cards/{number}")
        assert seen.status_code == 200
        assert set(seen.json()) == {"card_number", "valid_until", "status", "children"}
        assert (await client.post("/cards", json={
            "birth_year": 1980, "postal_code": "55100", "municipality": "Imatra",
            "children": 0})).status_code == 403
        assert (await client.post(f"/cards/{number}/closure",
                                  json={"reason": "lost"})).status_code == 403
        assert (await client.get("/organisations")).status_code == 403
    # Cards trusts staff tokens only: a holder's token is refused as a token there.
    async with system.client("cards", system.token("holder", account_id=str(uuid.uuid4()))
                             ) as client:
        assert (await client.get("/stats/national")).status_code == 401
    async with system.client("cards") as client:
        assert (await client.get("/stats/national")).status_code == 401
        assert (await client.get(f"/cards/{number}")).status_code == 401
    # the issuing distributor still sees it whole, nothing was changed
    async with system.client("cards", world.distributor_token) as client:
        mine = (await client.get(f"/cards/{number}")).json()
    assert (mine["status"], mine["children"]) == ("open", card["children"])


async def test_the_partner_continuation_round(system, world):
    year = date.today().year + 1
    centre = system.token("kaikukeskus")
    leaving = await _post(system, centre, "/organisations", {
        "kind": "ticket_agent", "name": "Lähtevä lipunvälittäjä", "municipality": "Imatra"})
    opened = await _post(system, centre, "/continuation-rounds", {
        "year": year, "deadline": f"{year - 1}-12-31"})
    assert opened["closed"] is False
    async with system.client("cards", centre) as client:
        again = await client.post("/continuation-rounds", json={
            "year": year, "deadline": f"{year - 1}-12-31"})
    assert again.status_code == 409
    await _post(system, world.distributor_token, f"/continuation-rounds/{year}/answers",
                {"decision": "continue"}, expect=200)
    await _post(system, system.token("ticket_agent", organisation_id=leaving["organisation_id"]),
                f"/continuation-rounds/{year}/answers", {"decision": "leave"}, expect=200)
    async with system.client("cards", world.distributor_token) as client:
        assert (await client.get(f"/continuation-rounds/{year}")).status_code == 403

    from kaiku_dev.testing import eventually

    async def report():
        async with system.client("cards", centre) as client:
            body = (await client.get(f"/continuation-rounds/{year}")).json()
        listed = {str(p["organisation_id"]) for p in body["answered"] + body["not_answered"]}
        return body if world.venue_org_id in listed else None

    body = await eventually(report, message="the partners in the round's report")
    decisions = {str(p["organisation_id"]): p["decision"] for p in body["answered"]}
    assert decisions[world.distributor_id] == "continue"
    assert decisions[leaving["organisation_id"]] == "leave"
    assert world.venue_org_id in {str(p["organisation_id"]) for p in body["not_answered"]}

    leaving_token = system.token("ticket_agent", organisation_id=leaving["organisation_id"])
    await accepted_everywhere(system, leaving_token, STAFF_PROBES)
    closed = await _post(system, centre, f"/continuation-rounds/{year}/closure", {}, expect=200)
    since = time.monotonic()
    assert closed["closed"] is True
    # The organisation has left the network: its tokens stop working everywhere.
    reported("organisation left", await seconds_until_refused_everywhere(
        system, leaving_token, STAFF_PROBES, since))
    async with system.client("cards", world.venue_token) as client:
        late = await client.post(f"/continuation-rounds/{year}/answers",
                                 json={"decision": "continue"})
    assert late.status_code == 409 and late.json()["type"].endswith("/round-closed")
    async with system.client("cards", centre) as client:
        left = (await client.get(f"/organisations/{leaving['organisation_id']}")).json()
    assert left["status"] == "left"


async def test_a_signed_in_distributor_issues_and_the_statistics_wait_for_the_month(system):
    """The acceptance walk: sign in as a distributor, issue a card; the statistics
    count only completed months, so the card is not counted before this month ends
    and the figures stay as they were (no day-by-day differencing)."""
    from kaiku_dev.testing import eventually

    org = (await new_distributor(system, name="Kokkolan diakonia"))["organisation_id"]
    name = unique("jakaja")
    await _post(system, system.token("kaikukeskus"), "/users", {
        "username": name, "password": PASSWORD, "organisation_id": org})
    token = (await login(system, name)).json()["access_token"]
    async with system.client("cards", token) as client:
        before = (await client.get("/stats/regions/keski-pohjanmaa")).json()
    card = await _post(system, token, "/cards", {
        "birth_year": 1990, "postal_code": "67100", "municipality": "Kokkola", "children": 1,
        "life_satisfaction": 7})

    conn = await system.database("cards")
    try:
        await eventually(lambda: conn.fetchval(
            "SELECT count(*) FROM card_view WHERE card_number = $1", card["card_number"]),
            message="the new card in the statistics read model")
    finally:
        await conn.close()
    async with system.client("cards", token) as client:
        after = (await client.get("/stats/regions/keski-pohjanmaa")).json()
    assert after == before
    assert after["covers_until"] < card["valid_from"][:7]
    async with system.client("cards", token) as client:
        mine = (await client.get(f"/cards/{card['card_number']}")).json()
    assert mine["issuer_organisation_id"] == org
