"""The one way an account is erased: ``DELETE /me``, a distributor's
``POST /accounts/erasure`` and the retention job all call ``Eraser.erase``, so
each has the same effect — and each leaves one row in the erasure audit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from ..adapters import queries
from ..adapters import retention as tables
from ..application.app import OmaKaikuApplication


@dataclass(frozen=True)
class ErasedBy:
    """Who erased, for the audit: ``holder``, ``distributor`` (a staff user of
    the issuing distributor) or ``retention`` (the worker's job)."""

    kind: str
    reason: str
    staff_user_id: UUID | None = None
    organisation_id: UUID | None = None


HOLDER = ErasedBy("holder", "holder-request")


def by_retention(reason: str) -> ErasedBy:
    return ErasedBy("retention", f"retention-{reason}")


def by_distributor(staff_user_id: UUID | None, organisation_id: UUID | None) -> ErasedBy:
    return ErasedBy("distributor", "distributor-request", staff_user_id, organisation_id)


class Eraser:
    def __init__(self, pool: asyncpg.Pool, application: OmaKaikuApplication,
                 audit_key: bytes) -> None:
        self.pool = pool
        self.application = application
        self.audit_key = audit_key

    async def erase(self, account_id: UUID, by: ErasedBy) -> None:
        """Idempotent: a retry after a crash finishes what the first began.
        Raises the application's NotFound for an account that never existed."""
        app, pool = self.application, self.pool
        account = await asyncio.to_thread(app.load_account, account_id)
        pseudonym = tables.account_pseudonym(self.audit_key, account_id)
        await tables.begin_erasure(pool, pseudonym, erased_by=by.kind, reason=by.reason,
                                   staff_user_id=by.staff_user_id,
                                   organisation_id=by.organisation_id)
        # Before the key goes: the sign-in rows are found by the lookup hash in its row.
        await queries.drop_account_data(pool, account_id, account.card_numbers)
        await asyncio.to_thread(app.erase_account, account_id, by=by.kind)
        await queries.drop_account_data(pool, account_id, account.card_numbers)
        await tables.purge_idempotency(pool, account_id, account.activated_by)
        await tables.complete_erasure(pool, pseudonym)
        await queries.vacuum_keys(pool)
