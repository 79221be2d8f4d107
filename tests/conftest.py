"""Shared set-up for tests against the running system: organisations, a venue, helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kaiku_dev.testing import System, eventually


@dataclass
class World:
    system: System
    distributor_id: str
    venue_org_id: str
    venue_id: str

    @property
    def centre_token(self) -> str:
        return self.system.token("kaikukeskus")

    @property
    def distributor_token(self) -> str:
        return self.system.token("distributor", organisation_id=self.distributor_id)

    @property
    def venue_token(self) -> str:
        return self.system.token("venue", organisation_id=self.venue_org_id)

    def holder_token(self, account_id: str) -> str:
        return self.system.token("holder", account_id=account_id)

    async def issue_card(self, **overrides: Any) -> dict[str, Any]:
        body = {"birth_year": 1980, "postal_code": "55100", "municipality": "Imatra",
                "children": 2, **overrides}
        async with self.system.client("cards", self.distributor_token) as client:
            response = await client.post("/cards", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def publish_offering(self, *, card_cap: int = 10, capacity: int = 300,
                               starts_in: timedelta = timedelta(days=14),
                               **overrides: Any) -> str:
        body = {"title": "Kevätkonsertti", "genres": ["music"], "subgenres": ["classical"],
                "starts_at": (datetime.now(UTC) + starts_in).isoformat(),
                "capacity": capacity, "card_cap": card_cap, **overrides}
        async with self.system.client("venues", self.venue_token) as client:
            response = await client.post(f"/venues/{self.venue_id}/offerings", json=body)
        assert response.status_code == 201, response.text
        return response.json()["offering_id"]

    async def activate_account(self, card_number: str, **overrides: Any) -> str:
        body = {"card_number": card_number, "first_name": "Aino", "last_name": "Virtanen",
                "email": "aino.virtanen@example.org", "municipality": "Imatra",
                "language": "fi", **overrides}
        async with self.system.client("omakaiku", self.distributor_token) as client:
            response = await client.post("/accounts", json=body)
        assert response.status_code == 201, response.text
        return response.json()["account_id"]

    async def register_ticket(self, card_number: str, offering_id: str, children: int = 0
                              ) -> Any:
        async with self.system.client("venues", self.venue_token) as client:
            return await client.post("/tickets", json={
                "card_number": card_number, "offering_id": offering_id, "children": children})

    async def history(self, account_id: str) -> list[dict[str, Any]]:
        async with self.system.client("omakaiku", self.holder_token(account_id)) as client:
            response = await client.get("/me/history")
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_for_card_in_venues(self, card_number: str) -> None:
        """Venues learns of cards from events; wait until it has this one."""
        async def known() -> bool:
            conn = await self.system.database("venues")
            try:
                return bool(await conn.fetchval(
                    "SELECT 1 FROM card_validity_view WHERE card_number = $1 "
                    "AND valid_from IS NOT NULL", card_number))
            finally:
                await conn.close()

        await eventually(known, message=f"venues to learn of card {card_number}")


async def _post(system: System, service: str, token: str, path: str, body: dict) -> dict:
    async with system.client(service, token) as client:
        response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="session")
async def world(system: System) -> World:
    centre = system.token("kaikukeskus")
    distributor = await _post(system, "cards", centre, "/organisations", {
        "kind": "distributor", "name": "Imatran sosiaalipalvelut", "municipality": "Imatra"})
    venue_org = await _post(system, "cards", centre, "/organisations", {
        "kind": "venue", "name": "Imatran Teatteri", "municipality": "Imatra"})
    venue_token = system.token("venue", organisation_id=venue_org["organisation_id"])
    venue = await _post(system, "venues", venue_token, "/venues", {
        "organisation_id": venue_org["organisation_id"], "name": "Imatran Teatteri",
        "kind": "performing_arts", "municipality": "imatra",
        "limits": {"one_ticket_per_card": True}})
    return World(system, distributor["organisation_id"], venue_org["organisation_id"],
                 venue["venue_id"])
