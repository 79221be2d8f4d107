"""Retention's and erasure's tables: ended cards, notices sent, the erasure audit,
and the stored HTTP answers that must go with an account (schema migration 3)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import asyncpg

# One retention round at a time in a database, however many workers run.
_ROUND_LOCK = "omakaiku-retention"
# When a card stopped being usable: its closing, or the end of its last valid
# day in Finland, whichever came first (domain.retention.card_ended_at).
_ENDED_AT = ("LEAST(CASE WHEN status = 'closed' THEN closed_at END, "
             "(valid_until + 1)::timestamp AT TIME ZONE 'Europe/Helsinki')")


@contextlib.asynccontextmanager
async def exclusive_round(pool: asyncpg.Pool) -> AsyncIterator[bool]:
    """True when this process holds the round's lock (released on leaving)."""
    async with pool.acquire() as conn:
        mine = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", _ROUND_LOCK)
        try:
            yield bool(mine)
        finally:
            if mine:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", _ROUND_LOCK)


async def ended_cards(pool: asyncpg.Pool, ended_before: datetime,
                      batch: int = 500) -> AsyncIterator[asyncpg.Record]:
    """Cards that ended before ``ended_before`` and are not settled for that end,
    oldest end first, read in batches (a card waiting out its notice stays)."""
    after: tuple[datetime, str] | None = None
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT * FROM (SELECT card_number, status, closed_at, valid_until, "
                f"{_ENDED_AT} AS ended_at, retention_settled_for FROM card_view) c "
                "WHERE ended_at <= $1 AND retention_settled_for IS DISTINCT FROM ended_at "
                "AND ($2::timestamptz IS NULL OR (ended_at, card_number) > ($2, $3)) "
                "ORDER BY ended_at, card_number LIMIT $4",
                ended_before, after and after[0], after and after[1], batch)
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = (rows[-1]["ended_at"], rows[-1]["card_number"])


async def settle(pool: asyncpg.Pool, card_number: str, ended_at: datetime) -> None:
    """Nothing (left) to do for this card's end: no live account is on it."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE card_view SET retention_settled_for = $2 "
                           "WHERE card_number = $1", card_number, ended_at)


async def unsettle(pool: asyncpg.Pool, card_number: str) -> None:
    """An account was activated on the card: look at it again when it ends."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE card_view SET retention_settled_for = NULL "
                           "WHERE card_number = $1", card_number)


async def notice(pool: asyncpg.Pool, account_id: UUID) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM retention_notices WHERE account_id = $1",
                                   account_id)


async def record_notice(pool: asyncpg.Pool, account_id: UUID, *, card_ended_at: datetime,
                        erase_after: datetime, notified_at: datetime, outcome: str) -> None:
    """The holder was told about this card end (a later end needs a new notice)."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO retention_notices (account_id, card_ended_at, erase_after, "
            "notified_at, outcome) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) "
            "DO UPDATE SET card_ended_at = excluded.card_ended_at, "
            "erase_after = excluded.erase_after, notified_at = excluded.notified_at, "
            "outcome = excluded.outcome",
            account_id, card_ended_at, erase_after, notified_at, outcome)


# --- the erasure audit ------------------------------------------------------------


def account_pseudonym(key: bytes, account_id: UUID) -> bytes:
    """Keyed, so that the audit can tell one erasure from another without naming
    the account to anyone who reads it."""
    return hmac.new(key, b"erasure-audit:" + account_id.bytes, hashlib.sha256).digest()


async def begin_erasure(pool: asyncpg.Pool, pseudonym: bytes, *, erased_by: str, reason: str,
                        staff_user_id: UUID | None, organisation_id: UUID | None) -> None:
    """Recorded before the key is shredded, so no erasure goes unrecorded; the
    first request for an account is the one that counts."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO erasures (erasure_id, account_pseudonym, erased_by, reason, "
            "staff_user_id, organisation_id) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (account_pseudonym) DO NOTHING",
            uuid4(), pseudonym, erased_by, reason, staff_user_id, organisation_id)


async def complete_erasure(pool: asyncpg.Pool, pseudonym: bytes) -> None:
    async with pool.acquire() as conn:
        await conn.execute("UPDATE erasures SET completed_at = now() "
                           "WHERE account_pseudonym = $1 AND completed_at IS NULL", pseudonym)


async def erasures(pool: asyncpg.Pool, *, limit: int, offset: int) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT erasure_id, requested_at, completed_at, erased_by, staff_user_id, "
            "organisation_id, reason FROM erasures ORDER BY requested_at DESC, erasure_id "
            "LIMIT $1 OFFSET $2", limit, offset)


# --- stored HTTP answers ---------------------------------------------------------------


async def purge_idempotency(pool: asyncpg.Pool, account_id: UUID,
                            activated_by: UUID) -> int:
    """Every stored request and answer that belongs to the account: the holder's
    own (principal ``holder:<id>``), the distributor's ``POST /accounts`` that
    made it (its id derives from the Idempotency-Key; the stored row keeps a hash
    of the personal body) and any answer that names it (``/accounts/erasure``)."""
    distributor = f"distributor:{activated_by}"
    async with pool.acquire() as conn, conn.transaction():
        keys = await conn.fetch(
            "SELECT key FROM idempotency_keys WHERE principal = $1 AND path = '/accounts'",
            distributor)
        made_it = [row["key"] for row in keys
                   if uuid5(NAMESPACE_URL, f"/accounts/{distributor}/{row['key']}")
                   == account_id]
        status = await conn.execute(
            "DELETE FROM idempotency_keys WHERE principal = $1 "
            "OR (principal = $2 AND key = ANY($3::text[])) "
            "OR position(convert_to($4, 'UTF8') IN response_body) > 0",
            f"holder:{account_id}", distributor, made_it, str(account_id))
    return int(status.split()[-1])
