"""Every route of every service × every role: who is let in, who is turned away.

Routes are read from each running service's OpenAPI, so a new route without a
rule here fails the test. For each route and role the test sends a real
request against real objects owned by "our" organisations (a card our
distributor issued, our venue, its offering and ticket, our holder's account)
and asserts:
- "none" (no token) → 401 on protected routes;
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
    "venue_only": {"venue"},
    "holder": {"holder"},
    "any_distributor": {"distributor", "other_distributor"},
    PUBLIC: None,
}

RULES: dict[tuple[str, str, str], str] = {
    ("cards", "POST", "/organisations"): "centre",
    ("cards", "GET", "/organisations/{organisation_id}"): "staff",
    ("cards", "POST", "/cards"): "any_distributor",
    ("cards", "GET", "/cards/{card_number}"): "card_readers",
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
}

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
}


@dataclass
class Targets:
    card_number: str
    venue_id: str
    offering_id: str
    ticket_id: str
    account_id: str
    organisation_id: str
    venue_org_id: str


@pytest.fixture
async def targets(world) -> Targets:
    """Fresh objects for each service's run: probes change state (a closure)."""
    card = await world.issue_card(children=1)
    account_id = await world.activate_account(card["card_number"],
                                              email=f"matrix.{uuid.uuid4().hex[:8]}@example.org")
    offering_id = await world.publish_offering(card_cap=20)
    await world.wait_for_card_in_venues(card["card_number"])
    ticket = await world.register_ticket(card["card_number"], offering_id)
    assert ticket.status_code == 201, ticket.text
    return Targets(card["card_number"], world.venue_id, offering_id, ticket.json()["ticket_id"],
                   account_id, world.distributor_id, world.venue_org_id)


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


def sample_body(service: str, method: str, path: str, t: Targets) -> dict | None:
    bodies = {
        ("cards", "/organisations"): {"kind": "venue", "name": "Matriisi", "municipality": "Oulu"},
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
        ("venues", "/tickets"): {"card_number": t.card_number, "offering_id": t.offering_id,
                                 "children": 0},
        ("venues", "/tickets/{ticket_id}/cancellation"): {},
        ("omakaiku", "/accounts"): {"card_number": t.card_number, "first_name": "M",
                                    "last_name": "M", "email": "m.m@example.org",
                                    "municipality": "Imatra"},
    }
    if method in ("GET", "DELETE"):
        return None
    return bodies.get((service, path), {})


def fill(path: str, t: Targets) -> str:
    return path.format(card_number=t.card_number, venue_id=t.venue_id,
                       offering_id=t.offering_id, ticket_id=t.ticket_id,
                       account_id=t.account_id, organisation_id=t.organisation_id)


async def routes_of(system, service: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as client:
        spec = (await client.get(system.url(service, "/openapi.json"))).json()
    return [(method.upper(), path) for path, ops in spec["paths"].items()
            for method in ops if path not in OPERATIONS]


@pytest.mark.parametrize("service", ["cards", "venues", "omakaiku", "notifications"])
async def test_every_route_admits_exactly_its_roles(world, targets, tokens, service):
    system = world.system
    problems, checked = [], 0
    for method, path in await routes_of(system, service):
        key = (service, method, path)
        if key not in RULES:
            problems.append(f"{method} {path}: no authorization rule in this test")
            continue
        admitted = ROLE_SETS[RULES[key]]
        for role, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            # Fresh keys: each probe is its own request, never a replay.
            headers["Idempotency-Key"] = str(uuid.uuid4())
            async with system.client(service) as client:
                response = await client.request(
                    method, fill(path, targets), headers=headers,
                    json=sample_body(service, method, path, targets))
            status = response.status_code
            checked += 1
            if admitted is None:
                ok = status not in (401, 403)
            elif role == "none":
                ok = status == 401
            elif role in admitted:
                ok = status not in (401, 403)
            else:
                ok = status == 403
            foreign = role.startswith("other_") or role == "ticket_agent"  # not listed by us
            if admitted and role in admitted and key in OWNERSHIP_ROUTES and foreign:
                ok = status == 403  # admitted by role, but it is not theirs
            if not ok:
                problems.append(f"{method} {path} as {role}: {status} {response.text[:160]}")
    print(f"{service}: {checked} route × role requests checked")
    assert not problems, "\n".join(problems)


async def test_forged_tokens_are_refused(world):
    system = world.system
    settings = system.ns.settings
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "role": "kaikukeskus",
              "sub": "x", "iat": 1, "exp": 4_000_000_000}
    forged = {
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "wrong key": jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256"),
        "HS512": jwt.encode(claims, settings.jwt_secret, algorithm="HS512"),
        "wrong audience": jwt.encode({**claims, "aud": "elsewhere"}, settings.jwt_secret,
                                     algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": 2}, settings.jwt_secret, algorithm="HS256"),
    }
    async with system.client("cards") as client:
        for name, token in forged.items():
            response = await client.get("/stats/national",
                                        headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, f"{name}: {response.status_code}"
