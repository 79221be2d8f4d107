"""Cards over HTTP with the real processes: region names in Finnish, Swedish and
English in the statistics, and a partner's own view of a continuation round.

The test session shares one system: nothing here adds a region (other tests
count the seeded ones), a changed region's names are put back, and only this
year's round is used and never closed (a closed round fixes this year's partner
list; next year's round belongs to tests/e2e/test_cards_staff.py).
"""

from __future__ import annotations

import uuid
from datetime import date

import httpx
import pytest

from kaiku_dev.assertions import refused

pytestmark = pytest.mark.e2e

LAPPI = {"fi": "Lappi", "sv": "Lappland", "en": "Lapland"}


async def test_regional_statistics_name_each_region_in_three_languages(system):
    staff = system.token("venue", organisation_id=str(uuid.uuid4()))
    async with system.client("cards", staff) as client:
        rows = (await client.get("/stats/regions")).json()
        one = (await client.get("/stats/regions/etela-karjala")).json()
    by_code = {r["region"]: r for r in rows}
    assert by_code["etela-karjala"]["names"] == {
        "fi": "Etelä-Karjala", "sv": "Södra Karelen", "en": "South Karelia"}
    assert by_code["ruotsi"]["names"] == {"fi": "Ruotsi", "sv": "Sverige", "en": "Sweden"}
    # The Finnish name stays where it was, for older clients.
    assert by_code["etela-karjala"]["name"] == "Etelä-Karjala"
    assert all(set(r["names"]) == {"fi", "sv", "en"} and all(r["names"].values())
               for r in rows)
    assert one["name"] == "Etelä-Karjala" and one["names"]["sv"] == "Södra Karelen"


async def test_a_name_missing_in_a_language_falls_back_to_finnish(system):
    centre = system.token("kaikukeskus")
    async with system.client("cards", centre) as client:
        try:
            changed = await client.put("/network/regions/lappi",
                                       json={"name": {"fi": "Lapin hyvinvointialue"}})
            assert changed.status_code == 200, changed.text
            rows = (await client.get("/stats/regions")).json()
            lappi = next(r for r in rows if r["region"] == "lappi")
            assert lappi["name"] == "Lapin hyvinvointialue"
            assert lappi["names"] == {"fi": "Lapin hyvinvointialue",
                                      "sv": "Lapin hyvinvointialue",
                                      "en": "Lapin hyvinvointialue"}
        finally:
            restored = await client.put("/network/regions/lappi", json={"name": LAPPI})
            assert restored.status_code == 200, restored.text
        rows = (await client.get("/stats/regions")).json()
    assert next(r for r in rows if r["region"] == "lappi")["names"] == LAPPI


async def test_a_partner_sees_its_own_answer_to_the_round(system):
    year = date.today().year
    centre = system.token("kaikukeskus")
    async with system.client("cards", centre) as client:
        partner = await client.post("/organisations", json={
            "kind": "ticket_agent", "name": f"Lippupalvelu {uuid.uuid4().hex[:6]}",
            "municipality": "Imatra"})
        assert partner.status_code == 201, partner.text
        # Open if no one has yet (other tests in the session may have).
        opened = await client.post("/continuation-rounds", json={
            "year": year, "deadline": f"{year}-12-31"})
        assert opened.status_code in (201, 409), opened.text
    organisation_id = partner.json()["organisation_id"]
    token = system.token("ticket_agent", organisation_id=organisation_id)
    async with system.client("cards", token) as client:
        before = await client.get(f"/continuation-rounds/{year}/my-answer")
        assert before.status_code == 200, before.text
        assert before.json()["decision"] is None and before.json()["closed"] is False
        assert before.json()["organisation_id"] == organisation_id
        assert "answered" not in before.json()  # other partners' answers are not shown
        answered = await client.post(f"/continuation-rounds/{year}/answers",
                                     json={"decision": "continue"})
        assert answered.status_code == 200, answered.text
        after = (await client.get(f"/continuation-rounds/{year}/my-answer")).json()
        assert (after["year"], after["decision"], after["deadline"]) == (
            year, "continue", f"{year}-12-31")
        refused(await client.get(f"/continuation-rounds/{year + 1 + 50}/my-answer"), 404,
                "round-not-found")
        refused(await client.get(f"/continuation-rounds/{year}"), 403, "wrong-role")
    async with system.client("cards", centre) as client:
        refused(await client.get(f"/continuation-rounds/{year}/my-answer"), 403, "wrong-role")
    async with system.client("cards") as client:
        refused(await client.get(f"/continuation-rounds/{year}/my-answer"), 401,
                "unauthenticated")


async def test_the_partner_list_tells_pending_from_approved(system):
    from kaiku_dev.testing import eventually

    centre = system.token("kaikukeskus")
    tag = uuid.uuid4().hex[:6]
    async with system.client("cards", centre) as client:
        proposal = await client.post("/organisations", json={
            "kind": "distributor", "name": f"Ehdotettu jakaja {tag}",
            "municipality": "Imatra", "pending": True})
        direct = await client.post("/organisations", json={
            "kind": "venue", "name": f"Hyväksytty kohde {tag}", "municipality": "Imatra"})
    assert proposal.status_code == 201 and direct.status_code == 201
    pending_id = proposal.json()["organisation_id"]
    direct_id = direct.json()["organisation_id"]

    async def statuses():
        async with system.client("cards", centre) as client:
            rows = (await client.get("/organisations")).json()
        found = {r["organisation_id"]: r["status"] for r in rows}
        return found if {pending_id, direct_id} <= set(found) else None

    found = await eventually(statuses, timeout=60, message="both in the partner list")
    assert (found[pending_id], found[direct_id]) == ("pending", "approved")
    # From the event itself (OrganisationRegistered carries the status), not a
    # per-row lookup in the registry on every listing.
    conn = await system.database("cards")
    try:
        projected = {str(r["organisation_id"]): r["status"] for r in await conn.fetch(
            "SELECT organisation_id, status FROM organisation_view "
            "WHERE organisation_id = ANY($1::uuid[])", [pending_id, direct_id])}
    finally:
        await conn.close()
    assert projected == {pending_id: "pending", direct_id: "approved"}
    async with system.client("cards", centre) as client:
        approved = await client.post(f"/organisations/{pending_id}/approval", json={})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"

    async def now_approved():
        return (await statuses() or {}).get(pending_id) == "approved"

    await eventually(now_approved, timeout=60, message="the approval in the partner list")
