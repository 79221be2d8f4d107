"""Demo data for `kaiku run`, loaded through the public HTTP APIs.

Every request carries a fixed Idempotency-Key, so a second `make run` on the
same data finds what the first created instead of creating it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kaiku_shared.auth import TokenSigner
from kaiku_shared.keys import KeyMaterial
from kaiku_shared.settings import KaikuSettings


@dataclass
class DemoData:
    distributor_id: str
    venue_organisation_id: str
    ticket_agent_id: str
    venue_id: str
    offering_ids: list[str]
    card_number: str
    account_id: str | None
    password: str = ""
    usernames: tuple[str, ...] = ()


def demo_password(seed: str) -> str:
    """Stable per installation (a rerun must send the same body with its key),
    different between installations (it derives from the installation's seed)."""
    import hashlib

    return "demo-" + hashlib.sha256(seed.encode()).hexdigest()[:12]


def _post(client: httpx.Client, url: str, token: str, key: str, body: dict[str, Any]
          ) -> dict[str, Any]:
    response = client.post(url, json=body, headers={"Authorization": f"Bearer {token}",
                                                    "Idempotency-Key": key})
    if response.status_code >= 400:
        raise RuntimeError(f"demo data: {url} answered {response.status_code}: "
                           f"{response.text}")
    return response.json()


def load_demo_data(keys: KeyMaterial, seed: str, urls: dict[str, str]) -> DemoData:
    staff = TokenSigner.for_staff(KaikuSettings(
        staff_signing_keys=keys.values["KAIKU_STAFF_SIGNING_KEYS"]))
    centre = staff.issue(role="kaikukeskus")
    with httpx.Client(timeout=10) as client:
        orgs = {}
        for kind, name, municipality in (
            ("distributor", "Imatran sosiaali- ja terveyspalvelut", "Imatra"),
            ("venue", "Imatran Teatteri", "Imatra"),
            ("ticket_agent", "Lippukeskus Itä", "Lappeenranta"),
        ):
            orgs[kind] = _post(client, f"{urls['cards']}/organisations", centre,
                               f"demo-org-{kind}", {"kind": kind, "name": name,
                                                    "municipality": municipality}
                               )["organisation_id"]
        password = demo_password(seed)
        users = (("demo.keskus", None), ("demo.jakaja", orgs["distributor"]),
                 ("demo.kohde", orgs["venue"]), ("demo.lipunvalitys", orgs["ticket_agent"]))
        for username, organisation_id in users:
            body = {"username": username, "password": password, "admin": True}
            if organisation_id:
                body["organisation_id"] = organisation_id
            _post(client, f"{urls['cards']}/users", centre, f"demo-user-{username}", body)
        venue_staff = staff.issue(role="venue", organisation_id=orgs["venue"])
        venue_id = _post(client, f"{urls['venues']}/venues", venue_staff, "demo-venue", {
            "organisation_id": orgs["venue"], "name": "Imatran Teatteri",
            "kind": "performing_arts", "municipality": "imatra",
            "limits": {"one_ticket_per_card": True, "ticket_agents": [orgs["ticket_agent"]]},
        })["venue_id"]
        # Offering a few weeks ahead (from the first run; reruns keep the same ones).
        start = (datetime.now(UTC) + timedelta(days=21)).replace(hour=16, minute=0, second=0,
                                                                 microsecond=0)
        offerings = []
        for n, (title, genres, subgenres, capacity) in enumerate((
            ("Kevätkonsertti", ["music"], ["classical"], 300),
            ("Tuntematon sotilas", ["theatre"], ["drama"], 250),
            ("Iskelmäilta", ["music"], ["iskelma"], 120),
        )):
            offerings.append(_post(
                client, f"{urls['venues']}/venues/{venue_id}/offerings", venue_staff,
                f"demo-offering-{n}", {
                    "title": title, "genres": genres, "subgenres": subgenres,
                    "starts_at": (start + timedelta(days=7 * n)).isoformat(),
                    "capacity": capacity, "card_cap": max(10, -(-capacity * 3 // 100)),
                },
            )["offering_id"])
        distributor = staff.issue(role="distributor",
                                  organisation_id=orgs["distributor"])
        card = _post(client, f"{urls['cards']}/cards", distributor, "demo-card", {
            "birth_year": 1985, "postal_code": "55100", "municipality": "Imatra",
            "children": 2, "life_satisfaction": 6,
        })
        account = _post(client, f"{urls['omakaiku']}/accounts", distributor, "demo-account", {
            "card_number": card["card_number"], "first_name": "Demo", "last_name": "Haltija",
            "email": "demo.haltija@example.org", "municipality": "Imatra", "language": "fi",
        })
    return DemoData(orgs["distributor"], orgs["venue"], orgs["ticket_agent"], venue_id,
                    offerings, card["card_number"], account.get("account_id"), password,
                    tuple(u for u, _ in users))
