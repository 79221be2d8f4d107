"""The revocation projection on a real Postgres: what a redelivered or late event
does, what an api process reloads, and that erased accounts leave no id behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from kaiku_shared import revocation
from kaiku_shared.auth import Principal
from kaiku_shared.contracts import (
    AccountErasedV1,
    OrganisationStatusChangedV1,
    StaffAccessRevokedV1,
)
from kaiku_shared.db import apply_schema, create_pool, ensure_database
from kaiku_dev.testing import Namespace, unique_namespace


@pytest.fixture
async def pool(servers):
    ns = Namespace(unique_namespace("rv"), servers)
    await ensure_database(ns.settings, "venues")
    pool = await create_pool(ns.settings, "venues", size=2)
    await apply_schema(pool, revocation.SCHEMA)
    yield pool
    await pool.close()
    await ns.drop()


def envelope(when: datetime) -> dict:
    return {"event_id": uuid4(), "occurred_at": when, "aggregate_id": uuid4(),
            "aggregate_version": 1}


def staff(user: str, at: float, **claims) -> Principal:
    return Principal("distributor", user, uuid4(), issued_at=at, expires_at=at + 3600, **claims)


async def apply(pool, handler, event) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handler(event, conn)


async def test_a_later_revocation_moves_forward_and_an_old_one_never_back(pool) -> None:
    user, now = str(uuid4()), datetime.now(UTC)
    revoked = revocation.RevocationList()
    first = StaffAccessRevokedV1.build(**envelope(now), scope="user", target=user,
                                       not_before=now, reason="password_changed")
    later = StaffAccessRevokedV1.build(**envelope(now + timedelta(seconds=10)), scope="user",
                                       target=user, not_before=now + timedelta(seconds=10),
                                       reason="deactivated")
    await apply(pool, revocation.on_staff_access_revoked, first)
    assert await revoked.reload(pool) == 1
    between = now.timestamp() + 5
    assert revoked.refusal(staff(user, between)) is None
    await apply(pool, revocation.on_staff_access_revoked, later)
    await apply(pool, revocation.on_staff_access_revoked, first)  # redelivered, late
    assert await revoked.reload(pool) == 1  # only the move forward is new
    assert "deactivated" in revoked.refusal(staff(user, between))
    assert await revoked.reload(pool) == 0


async def test_an_organisation_that_left_refuses_its_earlier_tokens(pool) -> None:
    org, now = uuid4(), datetime.now(UTC)
    await apply(pool, revocation.on_organisation_status_changed,
                OrganisationStatusChangedV1.build(**envelope(now), organisation_id=org,
                                                  status="approved"))
    revoked = revocation.RevocationList()
    assert await revoked.reload(pool) == 0  # an approval revokes nothing
    await apply(pool, revocation.on_organisation_status_changed,
                OrganisationStatusChangedV1.build(**envelope(now), organisation_id=org,
                                                  status="left"))
    await revoked.reload(pool)
    before = Principal("venue", str(org), org, issued_at=now.timestamp() - 1)
    assert "left the Kaikukortti network" in revoked.refusal(before)


async def test_an_erased_account_leaves_no_id_and_its_row_goes_when_no_token_can_remain(
        pool) -> None:
    account, now = uuid4(), datetime.now(UTC)
    await apply(pool, revocation.on_account_erased,
                AccountErasedV1.build(**envelope(now), account_id=account))
    async with pool.acquire() as conn:
        rows = [dict(r) for r in await conn.fetch("SELECT * FROM token_revocations")]
    assert str(account) not in repr(rows) and account.hex not in repr(rows)
    assert rows[0]["expires_at"] == pytest.approx(now.timestamp() + 13 * 3600)
    revoked = revocation.RevocationList()
    await revoked.reload(pool)
    holder = Principal("holder", str(account), account_id=account,
                       issued_at=now.timestamp() - 1)
    assert "erased" in revoked.refusal(holder)
    # Long after: the next revocation with an expiry purges the stale row.
    old = datetime.now(UTC) - timedelta(days=2)
    await apply(pool, revocation.on_account_erased,
                AccountErasedV1.build(**envelope(old), account_id=uuid4()))
    async with pool.acquire() as conn:
        left = await conn.fetchval("SELECT count(*) FROM token_revocations")
    assert left == 1, "the erasure of two days ago is purged at once; today's stays"
