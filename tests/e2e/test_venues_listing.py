"""GET /venues over HTTP with the real processes: a venue organisation's own
venues, the venues a ticket agent acts for, Kaikukanta's filters, paging, and
the role checks (another organisation's list is 403, a distributor's 403)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from kaiku_dev.assertions import refused
from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e

SETTLE_SECONDS = 60.0  # other engineers' tests share the machine


async def register_venue(system, organisation_id: str, name: str, **extra: Any) -> str:
    token = system.token("venue", organisation_id=organisation_id)
    async with system.client("venues", token) as client:
        response = await client.post("/venues", json={
            "organisation_id": organisation_id, "name": name, "kind": "performing_arts",
            "municipality": "imatra", **extra})
    assert response.status_code == 201, response.text
    return response.json()["venue_id"]


async def listing(system, token: str, **params: Any) -> httpx.Response:
    async with system.client("venues", token) as client:
        return await client.get("/venues", params=params)


async def listed(system, token: str, expected: set[str], **params: Any) -> list[dict]:
    """Wait until the list (a read model) shows exactly ``expected`` venue ids."""
    async def check():
        response = await listing(system, token, **params)
        assert response.status_code == 200, response.text
        rows = response.json()
        return rows if {r["venue_id"] for r in rows} == expected else None

    return await eventually(check, timeout=SETTLE_SECONDS,
                            message=f"the venue list {params} to show {expected}")


async def test_venues_by_organisation_and_by_ticket_agent(system):
    org, other_org, agent, other_agent = (str(uuid.uuid4()) for _ in range(4))
    tag = uuid.uuid4().hex[:6]
    theatre = await register_venue(system, org, f"Teatteri {tag}", contact={
        "phone": "+358 5 123 4567", "box_office": "Lipunmyynti, Koskenparras 1"},
        limits={"ticket_agents": [agent], "one_ticket_per_card": True})
    hall = await register_venue(system, org, f"Areena {tag}")
    elsewhere = await register_venue(system, other_org, f"Museo {tag}",
                                     limits={"ticket_agents": [agent, other_agent]})

    venue_token = system.token("venue", organisation_id=org)
    # Without a filter a venue organisation gets its own, in name order.
    rows = await listed(system, venue_token, {theatre, hall})
    assert [r["name"] for r in rows] == [f"Areena {tag}", f"Teatteri {tag}"]
    first = next(r for r in rows if r["venue_id"] == theatre)
    assert first["organisation_id"] == org and first["kind"] == "performing_arts"
    assert first["municipality"] == "imatra" and first["timezone"] == "Europe/Helsinki"
    assert first["limits"]["ticket_agents"] == [agent]
    assert first["limits"]["one_ticket_per_card"] is True
    assert first["contact"]["box_office"] == "Lipunmyynti, Koskenparras 1"
    # The same shape as GET /venues/{id}.
    async with system.client("venues") as client:
        assert (await client.get(f"/venues/{theatre}")).json() == first
    await listed(system, venue_token, {theatre, hall}, organisation_id=org)
    # A venue organisation may narrow its own list by ticket agent.
    await listed(system, venue_token, {theatre}, agent_organisation_id=agent)

    # A ticket agent gets the venues that list it, across organisations.
    agent_token = system.token("ticket_agent", organisation_id=agent)
    await listed(system, agent_token, {theatre, elsewhere})
    await listed(system, agent_token, {theatre, elsewhere}, agent_organisation_id=agent)
    await listed(system, agent_token, {elsewhere}, organisation_id=other_org)
    await listed(system, system.token("ticket_agent", organisation_id=other_agent),
                 {elsewhere})

    # Kaikukeskus by either filter.
    centre = system.token("kaikukeskus")
    await listed(system, centre, {theatre, hall}, organisation_id=org)
    await listed(system, centre, {theatre, elsewhere}, agent_organisation_id=agent)
    everything = await listing(system, centre, limit=200)
    assert {theatre, hall, elsewhere} <= {r["venue_id"] for r in everything.json()}


async def test_venue_list_pages(system):
    org = str(uuid.uuid4())
    ids = {await register_venue(system, org, f"Sali {n}") for n in range(3)}
    token = system.token("venue", organisation_id=org)
    await listed(system, token, ids)
    first = await listing(system, token, limit=2)
    assert first.status_code == 200 and len(first.json()) == 2
    assert first.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in first.headers["Link"] and "offset=2" in first.headers["Link"]
    second = await listing(system, token, limit=2, offset=2)
    assert [r["name"] for r in second.json()] == ["Sali 2"]
    assert "Link" not in second.headers
    assert {r["venue_id"] for r in first.json() + second.json()} == ids
    refused(await listing(system, token, limit=0), 422, "validation")
    refused(await listing(system, token, limit=201), 422, "validation")
    refused(await listing(system, token, organisation_id="not-a-uuid"), 422, "validation")


async def test_venue_list_role_checks(system):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    await register_venue(system, org, "Kirjasto", limits={"ticket_agents": [agent]})
    other = str(uuid.uuid4())
    refused(await listing(system, system.token("venue", organisation_id=org),
                          organisation_id=other), 403, "not-yours")
    refused(await listing(system, system.token("ticket_agent", organisation_id=agent),
                          agent_organisation_id=other), 403, "not-yours")
    refused(await listing(system, system.token("distributor", organisation_id=org)),
            403, "wrong-role")
    refused(await listing(system, system.token("holder", account_id=str(uuid.uuid4()))),
            403, "wrong-role")
    async with system.client("venues") as client:
        refused(await client.get("/venues"), 401, "unauthenticated")
    # An organisation with no venues gets an empty list, not an error.
    empty = await listing(system, system.token("venue", organisation_id=other))
    assert empty.status_code == 200 and empty.json() == []
    assert empty.headers["X-Total-Count"] == "0"
