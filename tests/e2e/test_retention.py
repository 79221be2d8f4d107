"""Retention with real processes: an account whose card was closed is announced to
its holder by e-mail (in the holder's language) and then erased by the omakaiku
worker's retention job — key row and stored answers gone — and Kaikukeskus's
erasure audit lists it without any personal data. Holder and distributor
erasures reach the same audit.

A second omakaiku worker runs beside the system's, with the test-only short
retention (seconds instead of months; production refuses these settings), and
mails the system's SMTP sink.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime

import pytest

from kaiku_dev.supervisor import ProcessSpec, Supervisor
from kaiku_dev.testing import eventually

from .test_omakaiku_mail import mailbox, unique_email

pytestmark = pytest.mark.e2e

KEEP_SECONDS, NOTICE_SECONDS = 8, 4


@pytest.fixture(scope="module")
def retention_worker(system, tmp_path_factory):
    supervisor = Supervisor(system.supervisor.base_env, tmp_path_factory.mktemp("retention"))
    supervisor.add(ProcessSpec("omakaiku-worker-retention",
                               [sys.executable, "-m", "omakaiku", "worker"], {
        "KAIKU_OMAKAIKU_RETENTION_TEST_KEEP_SECONDS": str(KEEP_SECONDS),
        "KAIKU_OMAKAIKU_RETENTION_TEST_NOTICE_SECONDS": str(NOTICE_SECONDS),
        "KAIKU_OMAKAIKU_RETENTION_CHECK_SECONDS": "0.3",
    }))
    supervisor.start_all()
    try:
        yield supervisor
    finally:
        supervisor.stop_all()


async def audit(world) -> list[dict]:
    async with world.system.client("omakaiku", world.centre_token) as client:
        response = await client.get("/erasures", params={"limit": 500})
    assert response.status_code == 200, response.text
    return response.json()


async def key_row(system, account_id: str) -> bool:
    conn = await system.database("omakaiku")
    try:
        return bool(await conn.fetchval("SELECT 1 FROM holder_keys WHERE account_id = $1",
                                        uuid.UUID(account_id)))
    finally:
        await conn.close()


async def stored_answers(system, key: str) -> int:
    conn = await system.database("omakaiku")
    try:
        return await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key)
    finally:
        await conn.close()


async def test_an_account_of_a_closed_card_is_announced_then_erased(world, retention_worker):
    system = world.system
    card = (await world.issue_card())["card_number"]
    email, key = unique_email("retention"), f"activation-{uuid.uuid4()}"
    body = {"card_number": card, "first_name": "Ragnhild", "last_name": "Canarysson",
            "email": email, "municipality": "Imatra", "language": "sv"}
    async with system.client("omakaiku", world.distributor_token) as client:
        created = await client.post("/accounts", json=body, headers={"Idempotency-Key": key})
    assert created.status_code == 201, created.text
    account_id = created.json()["account_id"]
    assert await stored_answers(system, key) == 1
    before = {row["erasure_id"] for row in await audit(world)}

    async with system.client("cards", world.distributor_token) as client:
        closed = await client.post(f"/cards/{card}/closure", json={"reason": "moved"})
    assert closed.status_code == 200, closed.text
    closed_at = datetime.now(UTC)

    # The warning comes first, in Swedish, while the account still works.
    async def warned():
        return [m for m in mailbox(system.mail_dir, email) if "raderas" in m["Subject"]]

    (notice,) = await eventually(warned, timeout=30, message="the retention notice")
    warned_at = datetime.now(UTC)
    assert "Ragnhild" in notice.get_content() and "Hej" in notice.get_content()
    async with system.client("omakaiku", world.holder_token(account_id)) as client:
        assert (await client.get("/me")).status_code == 200

    async def erased():
        return not await key_row(system, account_id)

    await eventually(erased, timeout=30, message="the retention job to erase the account")
    erased_at = datetime.now(UTC)
    # Never sooner than the retention after closing, nor the notice after the e-mail.
    assert (erased_at - closed_at).total_seconds() >= KEEP_SECONDS - 1
    assert (erased_at - warned_at).total_seconds() >= NOTICE_SECONDS - 1
    async with system.client("omakaiku", world.holder_token(account_id)) as client:
        assert (await client.get("/me")).status_code in (401, 404)
    assert await stored_answers(system, key) == 0
    assert len(await warned()) == 1  # told once

    new = [row for row in await audit(world) if row["erasure_id"] not in before]
    assert len(new) == 1, new
    (entry,) = new
    assert entry["erased_by"] == "retention" and entry["reason"] == "retention-card-closed"
    assert entry["completed_at"] and entry["staff_user_id"] is None
    text = repr(new)
    for personal in (account_id, card, email, "Ragnhild", "Canarysson", "Imatra"):
        assert personal not in text


async def test_holder_and_distributor_erasures_are_audited_by_whom(world):
    system = world.system
    mine = await world.activate_account((await world.issue_card())["card_number"],
                                        email=unique_email())
    theirs_card = (await world.issue_card())["card_number"]
    await world.activate_account(theirs_card, email=unique_email())
    before = {row["erasure_id"] for row in await audit(world)}

    async with system.client("omakaiku", world.holder_token(mine)) as client:
        assert (await client.delete("/me")).status_code == 202
    staff_user = str(uuid.uuid4())
    token = system.token("distributor", organisation_id=world.distributor_id,
                         subject=staff_user)
    async with system.client("omakaiku", token) as client:
        erased = await client.post("/accounts/erasure", json={"card_number": theirs_card})
    assert erased.status_code == 202, erased.text

    new = {row["erased_by"]: row for row in await audit(world)
           if row["erasure_id"] not in before}
    assert set(new) == {"holder", "distributor"}
    assert new["holder"]["reason"] == "holder-request"
    assert new["holder"]["staff_user_id"] is None
    assert new["distributor"]["staff_user_id"] == staff_user
    assert new["distributor"]["organisation_id"] == world.distributor_id
    assert mine not in repr(new) and theirs_card not in repr(new)

    async with system.client("omakaiku", world.distributor_token) as client:
        refused = await client.get("/erasures")
    assert refused.status_code == 403
