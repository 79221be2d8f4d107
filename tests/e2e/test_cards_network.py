"""Regions and municipalities: seeded from the reference data, editable by
Kaikukeskus, and what they say is what issuing a card checks."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e


async def test_the_network_is_seeded_from_the_reference_data(system, world):
    async with system.client("cards", world.distributor_token) as client:
        body = (await client.get("/network")).json()
    regions = {r["code"]: r for r in body["regions"]}
    assert len(regions) == 17
    imatra = next(m for m in regions["etela-karjala"]["municipalities"]
                  if m["code"] == "imatra")
    assert imatra["status"] == "in_use" and imatra["name"]["sv"] == "Imatra"
    assert regions["ruotsi"]["country"] == "SE"


async def test_kaikukeskus_adds_and_changes_regions_and_municipalities(system, world):
    centre = system.token("kaikukeskus")
    region = f"testialue-{uuid.uuid4().hex[:6]}"
    town = f"testikunta-{uuid.uuid4().hex[:6]}"
    async with system.client("cards", centre) as client:
        added = await client.put(f"/network/regions/{region}", json={
            "name": {"fi": "Testialue", "sv": "Testområde", "en": "Test region"}})
        assert added.status_code == 200, added.text
        incomplete = await client.put(f"/network/municipalities/{town}", json={
            "status": "pilot"})
        assert incomplete.status_code == 422
        unknown_region = await client.put(f"/network/municipalities/{town}", json={
            "name": {"fi": "Testikunta"}, "region": "atlantis", "status": "pilot"})
        assert unknown_region.status_code == 422
        created = await client.put(f"/network/municipalities/{town}", json={
            "name": {"fi": "Testikunta"}, "region": region, "status": "pilot"})
        assert created.status_code == 200, created.text
        assert (created.json()["region"], created.json()["status"]) == (region, "pilot")
        bad_status = await client.put(f"/network/municipalities/{town}", json={
            "status": "maybe"})
        assert bad_status.status_code == 422

    body = {"birth_year": 1980, "postal_code": "12345", "municipality": "Testikunta",
            "children": 0}
    async with system.client("cards", world.distributor_token) as client:
        issued = await client.post("/cards", json=body)
        assert issued.status_code == 201, issued.text
        assert (issued.json()["municipality"], issued.json()["region"]) == (town, region)
        not_allowed = await client.put(f"/network/municipalities/{town}",
                                       json={"status": "left"})
        assert not_allowed.status_code == 403

    async with system.client("cards", centre) as client:
        left = await client.put(f"/network/municipalities/{town}", json={"status": "left"})
        assert left.status_code == 200
    async with system.client("cards", world.distributor_token) as client:
        refused = await client.post("/cards", json=body)
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/municipality-not-in-network")
    async with system.client("cards", centre) as client:
        stats = (await client.get("/stats/regions")).json()
    assert region in {r["region"] for r in stats}  # new regions appear side by side
