"""Every route of every service × every role: who is let in, who is turned away.

Routes are read from each running service's OpenAPI, so a new route without a
rule here fails the test. For each route and role the test sends a real
request against real objects owned by "our" organisations (a card our
distributor issued, our venue, its offering and ticket, our holder's account)
and asserts:
- "none" (no token) → 401 on protected routes, and so is a holder token at
  cards, which trusts staff tokens only (auth.STAFF_ONLY_SERVICES);
- a role the route does not admit, or another organisation's staff → 403;
- an admitted role → neither 401 nor 403 (2xx, or a business answer such as
  404/409/422 when the sample body does not fit the object's state).
JWTs themselves (signature, expiry, audience, algorithm) are covered by the
unit tests of kaiku_shared.auth and by `test_forged_tokens_are_refused` here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import jwt
import pytest

from kaiku_dev.testing import eventually
from kaiku_shared.auth import STAFF_ONLY_SERVICES

pytestmark = pytest.mark.e2e

PUBLIC = "public"
OPERATIONS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc",
              "/docs/oauth2-redirect"}

# (service, METHOD, path) → roles admitted; "own" ownership is checked by using
# another organisation's staff, who must get 403 where ownership matters.
ROLE_SETS = {
    "centre": {"kaikukeskus"},
    "staff": {"kaikukeskus", "distributor", "venue", "ticket_agent", "other_distributor",
              "other_venue"},
    "issuer": {"distributor"},  # the issuing distributor only
    "issuer_or_centre": {"distributor", "kaikukeskus"},
    "card_readers": {"distributor", "kaikukeskus", "venue", "ticket_agent", "other_venue"},
    "venue_owner": {"venue", "kaikukeskus"},
    "venue_staff": {"venue", "ticket_agent"},
    # The card-cap guideline is the same for every venue organisation.
    "any_venue_or_centre": {"venue", "other_venue", "kaikukeskus"},
    "venue_only": {"venue"},
    "holder": {"holder"},
    "any_distributor": {"distributor", "other_distributor"},
    # Partners answer the continuation round for their own organisation.
    # Who lists venues: a venue organisation its own, a ticket agent those it acts
    # for, Kaikukeskus any (another organisation's plain list is its own, empty).
    "venue_listers": {"venue", "ticket_agent", "other_venue", "kaikukeskus"},
    "partners": {"distributor", "venue", "ticket_agent", "other_distributor", "other_venue"},
    # Staff who write to a holder: the card's distributor, a venue that sold them a ticket.
    "holder_writers": {"distributor", "venue"},
    "wellbeing_readers": {"distributor", "other_distributor", "kaikukeskus"},
    # A distributor lists its own cards (another's list is its own, without these);
    # Kaikukeskus every card.
    "caseload_readers": {"distributor", "other_distributor", "kaikukeskus"},
    PUBLIC: None,
}

RULES: dict[tuple[str, str, str], str] = {
    ("cards", "POST", "/organisations"): "centre",
    ("cards", "GET", "/organisations/{organisation_id}"): "staff",
    ("cards", "POST", "/cards"): "any_distributor",
    ("cards", "GET", "/cards/{card_number}"): "card_readers",
    ("cards", "GET", "/cards"): "caseload_readers",
    ("cards", "POST", "/cards/{card_number}/renewal"): "issuer",
    ("cards", "PATCH", "/cards/{card_number}"): "issuer",
    ("cards", "POST", "/cards/{card_number}/closure"): "issuer_or_centre",
    ("cards", "GET", "/stats/national"): "staff",
    ("cards", "GET", "/stats/regions"): "staff",
    ("venues", "POST", "/venues"): "venue_owner",
    ("venues", "POST", "/venues/{venue_id}/offerings"): "venue_owner",
    ("venues", "GET", "/offerings"): PUBLIC,
    ("venues", "POST", "/tickets"): "venue_staff",
    ("venues", "GET", "/tickets/{ticket_id}"): "venue_staff",
    ("venues", "POST", "/tickets/{ticket_id}/cancellation"): "venue_staff",
    ("omakaiku", "POST", "/accounts"): "issuer",
    ("omakaiku", "GET", "/me"): "holder",
    ("omakaiku", "GET", "/me/history"): "holder",
    ("omakaiku", "GET", "/me/tickets"): "holder",
    ("omakaiku", "POST", "/me/tickets/{ticket_id}/cancellation"): "holder",
    ("notifications", "GET", "/me/notifications"): "holder",
    # --- cards: sign-in and staff users. Users are managed by Kaikukeskus or by an
    # organisation's own *admin user*; the probe tokens name no user, so only
    # Kaikukeskus is admitted (an organisation's own plain token gets 403).
    ("cards", "POST", "/auth/login"): PUBLIC,
    ("cards", "GET", "/auth/me"): "staff",
    ("cards", "POST", "/users"): "centre",
    ("cards", "GET", "/users"): "centre",
    ("cards", "POST", "/users/{user_id}/deactivation"): "centre",
    ("cards", "PUT", "/users/{user_id}/password"): "centre",
    # --- cards: organisations, continuation rounds, the network
    ("cards", "GET", "/organisations"): "centre",
    ("cards", "POST", "/organisations/{organisation_id}/approval"): "centre",
    ("cards", "POST", "/continuation-rounds"): "centre",
    ("cards", "POST", "/continuation-rounds/{year}/answers"): "partners",
    ("cards", "POST", "/continuation-rounds/{year}/closure"): "centre",
    ("cards", "GET", "/continuation-rounds/{year}"): "centre",
    ("cards", "GET", "/continuation-rounds/{year}/my-answer"): "partners",
    ("cards", "GET", "/network"): "staff",
    ("cards", "PUT", "/network/regions/{code}"): "centre",
    ("cards", "PUT", "/network/municipalities/{code}"): "centre",
    # --- cards: cards and statistics
    ("cards", "POST", "/cards/{card_number}/replacement"): "issuer",
    ("cards", "GET", "/stats/regions/{region}"): "staff",
    ("cards", "GET", "/stats/regions/{region}/report"): "staff",
    ("cards", "GET", "/stats/age-groups"): "staff",
    # Answers to the wellbeing questions: Kaikukeskus and the distributors who ask them.
    ("cards", "GET", "/stats/wellbeing"): "wellbeing_readers",
    ("cards", "GET", "/stats/by/{dimension}"): "staff",
    # --- venues
    ("venues", "GET", "/venues"): "venue_listers",
    ("venues", "GET", "/venues/{venue_id}"): PUBLIC,
    ("venues", "GET", "/offerings/card-cap-minimum"): "any_venue_or_centre",
    ("venues", "GET", "/offerings/{offering_id}"): PUBLIC,
    ("venues", "PATCH", "/offerings/{offering_id}"): "venue_owner",
    ("venues", "POST", "/offerings/{offering_id}/cancellation"): "venue_owner",
    ("venues", "POST", "/venues/{venue_id}/swimming-visits"): "venue_staff",
    ("venues", "POST", "/venues/{venue_id}/library-fees"): "venue_staff",
    ("venues", "GET", "/venues/{venue_id}/feedback"): "venue_owner",
    # --- omakaiku
    ("omakaiku", "POST", "/accounts/erasure"): "issuer",
    ("omakaiku", "GET", "/erasures"): "centre",  # the erasure audit
    ("omakaiku", "POST", "/auth/code"): PUBLIC,
    ("omakaiku", "POST", "/auth/token"): PUBLIC,
    ("omakaiku", "DELETE", "/me"): "holder",
    ("omakaiku", "POST", "/me/tickets/{ticket_id}/feedback"): "holder",
    ("omakaiku", "GET", "/me/subscriptions"): "holder",
    ("omakaiku", "PUT", "/me/subscriptions"): "holder",
    ("omakaiku", "GET", "/me/card"): "holder",
    ("omakaiku", "GET", "/mobile-card/public-key"): PUBLIC,
    ("omakaiku", "GET", "/offerings"): "holder",  # omakaiku's list is for signed-in holders
    ("omakaiku", "GET", "/me/export"): "holder",
    ("omakaiku", "GET", "/offerings/{offering_id}"): PUBLIC,  # how to get a ticket: anyone
    ("omakaiku", "GET", "/places"): PUBLIC,
    ("omakaiku", "GET", "/push/public-key"): PUBLIC,  # the browser subscribes with it
    ("omakaiku", "POST", "/me/push-subscriptions"): "holder",
    ("omakaiku", "GET", "/me/push-subscriptions"): "holder",
    ("omakaiku", "DELETE", "/me/push-subscriptions/{subscription_id}"): "holder",
    ("omakaiku", "GET", "/me/push-preferences"): "holder",
    ("omakaiku", "PUT", "/me/push-preferences"): "holder",
    # --- notifications
    ("notifications", "POST", "/me/notifications/{source_id}/read"): "holder",
    ("notifications", "GET", "/me/preferences"): "holder",
    ("notifications", "PUT", "/me/preferences"): "holder",
    # Sent to our holder's card: Kaikukeskus and ticket agents by role, other
    # organisations because they have no link to the holder.
    ("notifications", "POST", "/messages"): "holder_writers",
    ("notifications", "POST", "/me/messages"): "holder",
    ("notifications", "GET", "/me/messages"): "holder",
    ("notifications", "POST", "/me/messages/{item_id}/read"): "holder",
    ("notifications", "GET", "/me/export"): "holder",
    ("notifications", "GET", "/me/messages/sent"): "holder",
    ("notifications", "GET", "/me/messages/organisations"): "holder",
    ("notifications", "GET", "/me/messages/{message_id}/thread"): "holder",
    ("notifications", "POST", "/me/messages/{message_id}/replies"): "holder",
    ("notifications", "GET", "/messages/sent"): "staff",
    ("notifications", "GET", "/messages/organisations"): "staff",
    ("notifications", "GET", "/messages/{message_id}/thread"): "staff",
    ("notifications", "POST", "/messages/{message_id}/replies"): "staff",
    ("notifications", "GET", "/inbox"): "staff",
    ("notifications", "POST", "/inbox/{item_id}/read"): "staff",
    ("notifications", "POST", "/bulletins"): "centre",
    ("notifications", "GET", "/handovers"): "centre",
    # --- tokens: the issuers' public keys, and sign-out (each probe signs out a
    # fresh token of its own, see SINGLE_USE)
    ("cards", "GET", "/.well-known/jwks.json"): PUBLIC,
    ("cards", "POST", "/auth/sign-out"): "staff",
    ("omakaiku", "GET", "/.well-known/jwks.json"): PUBLIC,
    ("omakaiku", "POST", "/me/sign-out"): "holder",
    ("venues", "PATCH", "/venues/{venue_id}"): "venue_owner",
    # The box office's list: that venue's staff and its ticket agents.
    ("venues", "GET", "/offerings/{offering_id}/tickets"): "venue_staff",
    # The published event contracts (AsyncAPI), like the OpenAPI document: public.
    ("cards", "GET", "/asyncapi.json"): PUBLIC,
    ("venues", "GET", "/asyncapi.json"): PUBLIC,
    ("omakaiku", "GET", "/asyncapi.json"): PUBLIC,
    ("notifications", "GET", "/asyncapi.json"): PUBLIC,
    # The public statistics: open data, no token (docs/open-data.md).
    ("cards", "GET", "/public/stats"): PUBLIC,
    ("cards", "GET", "/public/stats.csv"): PUBLIC,
    ("cards", "GET", "/public/stats/schema.json"): PUBLIC,
    ("cards", "GET", "/public/stats/months/{month}"): PUBLIC,
    ("cards", "GET", "/public/stats/months/{month}.csv"): PUBLIC,
}

# Routes that end the token they are called with: each probe gets a fresh one.
SINGLE_USE = {("cards", "POST", "/auth/sign-out"), ("omakaiku", "POST", "/me/sign-out")}

# Roles that are "another organisation": admitted by role, refused by ownership.
OWNERSHIP_ROUTES = {
    ("cards", "POST", "/cards/{card_number}/renewal"),
    ("cards", "PATCH", "/cards/{card_number}"),
    ("cards", "POST", "/cards/{card_number}/closure"),
    ("venues", "POST", "/venues"),
    ("venues", "POST", "/venues/{venue_id}/offerings"),
    ("venues", "POST", "/tickets"),
    ("venues", "GET", "/tickets/{ticket_id}"),
    ("venues", "POST", "/tickets/{ticket_id}/cancellation"),
    ("omakaiku", "POST", "/accounts"),
    ("cards", "POST", "/cards/{card_number}/replacement"),
    ("venues", "PATCH", "/offerings/{offering_id}"),
    ("venues", "POST", "/offerings/{offering_id}/cancellation"),
    ("venues", "POST", "/venues/{venue_id}/swimming-visits"),
    ("venues", "POST", "/venues/{venue_id}/library-fees"),
    ("venues", "GET", "/venues/{venue_id}/feedback"),
    ("omakaiku", "POST", "/accounts/erasure"),
    ("notifications", "POST", "/messages"),
    ("venues", "PATCH", "/venues/{venue_id}"),
    ("venues", "GET", "/offerings/{offering_id}/tickets"),
}

# A public route's own refusal of wrong credentials is a business answer, not an
# authorization one: (service, METHOD, path) → the problem kind it may answer 401 with.
# (/auth/token's codes and links work once, so eight probes cannot all hold a good one.)
CREDENTIAL_REFUSALS = {
    ("omakaiku", "POST", "/auth/token"): "signin-refused",
}

# Real authorization bugs found by this test: reported, not failed; strict, so an
# entry fails the test once the route behaves (then remove it). Each entry is
# (service, METHOD, path, role) → what was seen.
KNOWN_BUGS: dict[tuple[str, str, str, str], str] = {
}

MATRIX_PASSWORD = "matriisi-salasana-2026"
ROUND_YEAR = 2099  # far future: closing it must not close the current year's partner list


@dataclass
class Targets:
    card_number: str
    venue_id: str
    offering_id: str
    ticket_id: str
    account_id: str
    organisation_id: str
    venue_org_id: str
    holder_email: str
    # Destructive probes get objects of their own.
    spare_offering_id: str  # cancelled by POST /offerings/{id}/cancellation
    erase_card_number: str  # its account is erased by POST /accounts/erasure
    erase_account_id: str  # and by DELETE /me (its holder's token replaces "holder")
    user_id: str  # a distributor staff user: deactivated, password changed
    login_username: str  # another user that signs in (never deactivated)
    year: int = ROUND_YEAR
    region: str = "etela-karjala"
    municipality: str = "imatra"
    dimension: str = "region"
    message_id: str = "00000000-0000-4000-8000-000000000001"  # nobody's: 404 when admitted


async def _create_user(world, organisation_id: str, prefix: str) -> dict:
    async with world.system.client("cards", world.centre_token) as client:
        response = await client.post("/users", json={
            "username": f"{prefix}-{uuid.uuid4().hex[:10]}", "password": MATRIX_PASSWORD,
            "organisation_id": organisation_id})
    assert response.status_code == 201, response.text
    return response.json()


async def _wait_for_notifications(world, card_number: str, ticket_id: str,
                                  account_id: str) -> None:
    """POST /messages decides on notifications' read models: wait until they know
    the card, the ticket (and its venue) and the account, so ownership decides."""
    async def known() -> bool:
        conn = await world.system.database("notifications")
        try:
            return bool(
                await conn.fetchval("SELECT 1 FROM card_view WHERE card_number = $1",
                                    card_number)
                and await conn.fetchval(
                    "SELECT 1 FROM ticket_view t JOIN venue_view v USING (venue_id) "
                    "WHERE t.ticket_id = $1", uuid.UUID(ticket_id))
                and await conn.fetchval("SELECT 1 FROM account_view WHERE account_id = $1",
                                        uuid.UUID(account_id)))
        finally:
            await conn.close()

    await eventually(known, timeout=30, message="notifications to learn of card and ticket")


@pytest.fixture
async def targets(world, service) -> Targets:
    """Fresh objects for each service's run: probes change state (a closure)."""
    card = await world.issue_card(children=1)
    email = f"matrix.{uuid.uuid4().hex[:8]}@example.org"
    account_id = await world.activate_account(card["card_number"], email=email)
    offering_id = await world.publish_offering(card_cap=20)
    spare_offering_id = await world.publish_offering(card_cap=20)
    await world.wait_for_card_in_venues(card["card_number"])
    ticket = await world.register_ticket(card["card_number"], offering_id)
    assert ticket.status_code == 201, ticket.text
    erase_card = await world.issue_card(children=0)
    erase_account_id = await world.activate_account(
        erase_card["card_number"], email=f"erase.{uuid.uuid4().hex[:8]}@example.org")
    user = await _create_user(world, world.distributor_id, "matrix-user")
    login = await _create_user(world, world.distributor_id, "matrix-login")
    if service == "notifications":
        await _wait_for_notifications(world, card["card_number"], ticket.json()["ticket_id"],
                                      account_id)
    return Targets(card["card_number"], world.venue_id, offering_id, ticket.json()["ticket_id"],
                   account_id, world.distributor_id, world.venue_org_id, email,
                   spare_offering_id, erase_card["card_number"], erase_account_id,
                   user["user_id"], login["username"])


@pytest.fixture
async def tokens(world, targets) -> dict[str, str | None]:
    system = world.system
    other_org = str(uuid.uuid4())  # an organisation that owns nothing here
    return {
        "none": None,
        "holder": system.token("holder", account_id=targets.account_id),
        "distributor": world.distributor_token,
        "venue": world.venue_token,
        "other_distributor": system.token("distributor", organisation_id=other_org),
        "other_venue": system.token("venue", organisation_id=other_org),
        # A ticket agent our venue has not listed: another organisation to us.
        "ticket_agent": system.token("ticket_agent", organisation_id=other_org),
        "kaikukeskus": system.token("kaikukeskus"),
    }


# Routes that destroy the caller's own object: the holder probe uses a throwaway
# account so that later probes of the same service still find the main one.
ERASING_ROUTES = {("omakaiku", "DELETE", "/me")}


def sample_body(service: str, method: str, path: str, t: Targets) -> dict | None:
    bodies = {
        ("cards", "/auth/login"): {"username": t.login_username, "password": MATRIX_PASSWORD},
        ("cards", "/users"): {"username": f"matrix-new-{uuid.uuid4().hex[:10]}",
                              "password": MATRIX_PASSWORD,
                              "organisation_id": t.organisation_id},
        ("cards", "/users/{user_id}/password"): {"password": MATRIX_PASSWORD + "-uusi"},
        ("cards", "/organisations"): {"kind": "venue", "name": "Matriisi", "municipality": "Oulu"},
        ("cards", "/organisations/{organisation_id}/approval"): {},
        ("cards", "/continuation-rounds"): {"year": t.year, "deadline": f"{t.year}-01-31"},
        ("cards", "/continuation-rounds/{year}/answers"): {"decision": "continue"},
        ("cards", "/network/regions/{code}"): {
            "name": {"fi": "Etelä-Karjala", "sv": "Södra Karelen", "en": "South Karelia"},
            "country": "FI"},
        ("cards", "/network/municipalities/{code}"): {"region": "etela-karjala",
                                                      "status": "in_use"},
        ("cards", "/cards"): {"birth_year": 1990, "postal_code": "90100",
                              "municipality": "Oulu", "children": 0},
        ("cards", "/cards/{card_number}/renewal"): {"life_satisfaction": 7,
                                                    "wellbeing_impact": 8},
        ("cards", "/cards/{card_number}"): {"children": 1},
        ("cards", "/cards/{card_number}/closure"): {"reason": "other"},
        ("venues", "/venues"): {"organisation_id": t.venue_org_id, "name": "Matriisi",
                                "kind": "museum", "municipality": "oulu"},
        ("venues", "/venues/{venue_id}/offerings"): {
            "title": "Matriisi", "genres": ["museums"], "starts_at": "2031-05-01T12:00:00+03:00",
            "capacity": 100, "card_cap": 5},
        ("venues", "/offerings/{offering_id}"): {"title": "Kevätkonsertti (matriisi)"},
        ("venues", "/offerings/{offering_id}/cancellation"): {"reason": "matriisi"},
        ("venues", "/tickets"): {"card_number": t.card_number, "offering_id": t.offering_id,
                                 "children": 0},
        ("venues", "/tickets/{ticket_id}/cancellation"): {},
        ("venues", "/venues/{venue_id}/swimming-visits"): {"card_number": t.card_number,
                                                           "children": 0},
        ("venues", "/venues/{venue_id}/library-fees"): {"card_number": t.card_number,
                                                        "fee_type": "late_fee",
                                                        "amount_cents": 100},
        ("omakaiku", "/accounts"): {"card_number": t.card_number, "first_name": "M",
                                    "last_name": "M", "email": "m.m@example.org",
                                    "municipality": "Imatra"},
        ("omakaiku", "/accounts/erasure"): {"card_number": t.erase_card_number},
        ("omakaiku", "/auth/code"): {"email": t.holder_email},
        ("omakaiku", "/auth/token"): {"email": t.holder_email, "code": "000000"},
        ("omakaiku", "/me/tickets/{ticket_id}/feedback"): {"accessibility": 4, "meaning": 5,
                                                           "interest": 4},
        ("omakaiku", "/me/subscriptions"): {"genres": ["music"], "subgenres": [],
                                            "only_my_region": False},
        # Keys that are not a P-256 point: 422 when admitted, and no device to push to.
        ("omakaiku", "/me/push-subscriptions"): {
            "endpoint": "https://push.example.org/matriisi",
            "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
        ("omakaiku", "/me/push-preferences"): {"new_offerings": True, "messages": True,
                                              "muted": False},
        ("notifications", "/me/preferences"): {"delivery": "immediate"},
        ("notifications", "/messages"): {"to": {"card_number": t.card_number},
                                         "subject": "Matriisi", "body": "Hei"},
        ("notifications", "/me/messages"): {"to": {"organisation_id": t.organisation_id},
                                            "subject": "Matriisi", "body": "Hei"},
        ("notifications", "/bulletins"): {"title": "Matriisi", "body": "Tiedote"},
        ("notifications", "/messages/{message_id}/replies"): {"body": "Hei"},
        ("notifications", "/me/messages/{message_id}/replies"): {"body": "Hei"},
    }
    if method in ("GET", "DELETE"):
        return None
    return bodies.get((service, path), {})


def another_like(system, token: str) -> str:
    """A new token for the same role, organisation or account."""
    claims = jwt.decode(token, options={"verify_signature": False})
    if claims["role"] == "holder":
        return system.token("holder", account_id=claims["sub"])
    return system.token(claims["role"], organisation_id=claims.get("org"))


def fill(service: str, method: str, path: str, t: Targets) -> str:
    offering_id = t.offering_id
    if (service, method, path) == ("venues", "POST", "/offerings/{offering_id}/cancellation"):
        offering_id = t.spare_offering_id
    return path.format(card_number=t.card_number, venue_id=t.venue_id,
                       offering_id=offering_id, ticket_id=t.ticket_id,
                       account_id=t.account_id, organisation_id=t.organisation_id,
                       user_id=t.user_id, year=t.year, code=t.region if "regions" in path
                       else t.municipality, region=t.region, dimension=t.dimension,
                       source_id=t.message_id, item_id=t.message_id,
                       message_id=t.message_id, subscription_id=t.message_id,
                       month="2026-01")


async def routes_of(system, service: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as client:
        spec = (await client.get(system.url(service, "/openapi.json"))).json()
    return [(method.upper(), path) for path, ops in spec["paths"].items()
            for method in ops if path not in OPERATIONS]


@pytest.fixture(params=["cards", "venues", "omakaiku", "notifications"])
def service(request) -> str:
    return request.param


async def test_every_route_admits_exactly_its_roles(world, targets, tokens, service):
    system = world.system
    problems, known, checked, table = [], [], 0, []
    for method, path in await routes_of(system, service):
        key = (service, method, path)
        if key not in RULES:
            problems.append(f"{method} {path}: no authorization rule in this test")
            continue
        admitted = ROLE_SETS[RULES[key]]
        seen = []
        for role, token in tokens.items():
            if key in ERASING_ROUTES and role == "holder":
                token = system.token("holder", account_id=targets.erase_account_id)
            if key in SINGLE_USE and token:
                token = another_like(system, token)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            # Fresh keys: each probe is its own request, never a replay.
            headers["Idempotency-Key"] = str(uuid.uuid4())
            body = sample_body(service, method, path, targets)
            async with system.client(service) as client:
                response = await client.request(
                    method, fill(service, method, path, targets), headers=headers, json=body)
            status = response.status_code
            checked += 1
            if admitted is None:
                ok = status not in (401, 403) or (
                    status == 401 and key in CREDENTIAL_REFUSALS
                    and response.json().get("type", "").endswith(CREDENTIAL_REFUSALS[key]))
            elif role == "none" or (role == "holder" and service in STAFF_ONLY_SERVICES):
                ok = status == 401  # no token; or one of an issuer this service does not trust
            elif role in admitted:
                ok = status not in (401, 403)
            else:
                ok = status == 403
            foreign = role.startswith("other_") or role == "ticket_agent"  # not listed by us
            if admitted and role in admitted and key in OWNERSHIP_ROUTES and foreign:
                ok = status == 403  # admitted by role, but it is not theirs
            ok = ok and status < 500  # a crash is never an authorization answer
            seen.append(f"{role}={status}")
            line = (f"{method} {path} as {role}: {status} {response.text[:200]} "
                    f"(body {body})")
            if (*key, role) in KNOWN_BUGS:
                if ok:
                    problems.append(f"KNOWN BUG FIXED, remove it from KNOWN_BUGS: {line}")
                else:
                    known.append(line)
            elif not ok:
                problems.append(line)
        table.append(f"  {method:6} {path} [{RULES[key]}]: {' '.join(seen)}")
    print(f"{service}: {checked} route × role requests checked")
    print("\n".join(table))
    for line in known:
        print(f"known authorization bug (KNOWN_BUGS): {line}")
    stale = [k for k in KNOWN_BUGS if k[0] == service
             and (k[1], k[2]) not in set(await routes_of(system, service))]
    problems += [f"KNOWN_BUGS entry for a route that does not exist: {k}" for k in stale]
    assert not problems, "\n".join(problems)
