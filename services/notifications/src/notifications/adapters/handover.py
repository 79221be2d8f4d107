"""The hand-over to omakaiku for e-mail: notification rows → batch/digest events.

Why batches and not one event per notification: a fan-out to 100,000 holders is
one INSERT … SELECT of 100,000 in-app rows; writing 100,000 events to the event
store (~600 saves/s through the library's table lock) and pushing 100,000 NATS
messages would take minutes and multiply the relay's work. Instead the in-app
rows stay the fan-out's result, and this loop hands them over in batches of at
most ``BATCH_SIZE`` accounts (one ``NotificationBatch`` event each → the relay
publishes ``NotificationBatchIssuedV1``): 100 events for 100,000 holders.

Exactly once, in two steps:
1. **claim**: in one transaction, give pending rows a ``batch_id`` and record the
   batch in ``handover`` (state ``claimed``). Claims are serialised by an advisory
   lock, so two worker replicas never claim the same row.
2. **issue**: save the batch through the Application under the claimed id, then
   mark it ``issued``. A crash in between re-saves the same id next time; the
   event store refuses the duplicate (``_save_once``), so it is issued once. The
   relay publishes it with ``Nats-Msg-Id = event_id``; omakaiku dedupes by it.

Failures of step 2 that belong to the batch are recorded on the row —
``attempts``, ``last_error``, ``next_attempt_at`` with exponential backoff — and
after ``MAX_ATTEMPTS`` the batch is parked as ``failed`` for an operator, never
retried in a hot loop. The database being unavailable is not the batch's fault:
it spends no attempt, and the loop waits quietly until the database is back.

Holders who chose a daily digest are not in batches: once a day their rows from
the previous day become one ``NotificationDigest`` per holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

import asyncpg

from kaiku_shared.db import OutageWatch, is_database_unavailable
from kaiku_shared.metrics import FANOUT_PENDING

log = logging.getLogger("notifications.handover")

BATCH_SIZE = 1000
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = (1.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
HANDOVER_NAMESPACE = UUID("0b7f6c2e-4d1a-5e83-9c6b-2a8f1d4e7c39")
# Digests cover the previous calendar day in Finland and go out from this hour on.
DIGEST_ZONE = ZoneInfo("Europe/Helsinki")
DIGEST_HOUR = 7


def template_key(kind: str) -> str:
    """Language-neutral: omakaiku renders ``notification.<kind>`` in the holder's language."""
    return f"notification.{kind}"


def backoff(attempts: int) -> float:
    return BACKOFF_SECONDS[min(attempts - 1, len(BACKOFF_SECONDS) - 1)]


async def claim_batches(pool: asyncpg.Pool, max_sources: int = 20) -> int:
    """Claim every pending immediate notification into batches; how many batches."""
    claimed = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('notifications-claim'))")
        for _ in range(max_sources):
            source = await conn.fetchrow(
                "SELECT source_id, kind, title, payload::text AS payload FROM notification "
                "WHERE batch_id IS NULL AND delivery = 'immediate' LIMIT 1")
            if source is None:
                break
            accounts = [r["account_id"] for r in await conn.fetch(
                "SELECT account_id FROM notification WHERE source_id = $1 "
                "AND batch_id IS NULL AND delivery = 'immediate' ORDER BY account_id",
                source["source_id"])]
            params = {k: str(v) for k, v in json.loads(source["payload"]).items()}
            for start in range(0, len(accounts), BATCH_SIZE):
                chunk = accounts[start:start + BATCH_SIZE]
                batch_id = uuid5(HANDOVER_NAMESPACE, f"batch/{source['source_id']}/{chunk[0]}")
                await conn.execute(
                    "UPDATE notification SET batch_id = $1 WHERE source_id = $2 "
                    "AND account_id = ANY($3::uuid[])",
                    batch_id, source["source_id"], chunk)
                await conn.execute(
                    "INSERT INTO handover (handover_id, kind, source_kind, source_id, "
                    "template_key, params, recipients, state) "
                    "VALUES ($1, 'batch', $2, $3, $4, $5::jsonb, $6, 'claimed')",
                    batch_id, source["kind"], source["source_id"], template_key(source["kind"]),
                    json.dumps(params), len(chunk))
                claimed += 1
    return claimed


def digest_window(now: datetime) -> tuple[datetime, date] | None:
    """(cutoff, digest date) when today's digest is due, else None."""
    local = now.astimezone(DIGEST_ZONE)
    if local.hour < DIGEST_HOUR:
        return None
    midnight = datetime.combine(local.date(), time(0), tzinfo=DIGEST_ZONE)
    return midnight, local.date() - timedelta(days=1)


async def claim_digests(pool: asyncpg.Pool, cutoff: datetime, digest_date: date) -> int:
    """One digest per holder for their digest rows created before ``cutoff``."""
    claimed = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('notifications-claim'))")
        rows = await conn.fetch(
            "SELECT account_id, array_agg(source_id ORDER BY created_at, source_id) AS sources "
            "FROM notification WHERE delivery = 'daily_digest' AND batch_id IS NULL "
            "AND created_at < $1 GROUP BY account_id LIMIT 5000", cutoff)
        for row in rows:
            digest_id = uuid5(HANDOVER_NAMESPACE,
                              f"digest/{row['account_id']}/{digest_date}/{row['sources'][0]}")
            await conn.execute(
                "UPDATE notification SET batch_id = $1 WHERE account_id = $2 "
                "AND source_id = ANY($3::uuid[])", digest_id, row["account_id"], row["sources"])
            await conn.execute(
                "INSERT INTO handover (handover_id, kind, account_id, digest_date, recipients, "
                "state) VALUES ($1, 'digest', $2, $3, 1, 'claimed')",
                digest_id, row["account_id"], digest_date)
            claimed += 1
    return claimed


async def issue_due(pool: asyncpg.Pool, application: Any, limit: int = 50) -> int:
    """Save claimed hand-overs that are due through the Application; how many issued.

    ``FOR UPDATE SKIP LOCKED``: two replicas never work on the same hand-over.
    """
    issued = 0
    async with pool.acquire() as conn:
        for _ in range(limit):
            async with conn.transaction():
                row = await conn.fetchrow(
                    "SELECT handover_id, kind, source_kind, source_id, account_id, digest_date, "
                    "template_key, params::text AS params, attempts FROM handover "
                    "WHERE state = 'claimed' AND next_attempt_at <= now() "
                    "ORDER BY next_attempt_at, created_at LIMIT 1 FOR UPDATE SKIP LOCKED")
                if row is None:
                    break
                try:
                    await _issue(conn, application, row)
                except Exception as error:  # noqa: BLE001 - recorded, retried with backoff
                    if is_database_unavailable(error):
                        raise  # the database, not the batch: no attempt is spent
                    attempts = row["attempts"] + 1
                    failed = attempts >= MAX_ATTEMPTS
                    await conn.execute(
                        "UPDATE handover SET attempts = $2, last_error = $3, state = $4, "
                        # clock_timestamp, not now() (the transaction's start): the
                        # failed save may itself have taken longer than the backoff.
                        "next_attempt_at = clock_timestamp() + make_interval(secs => $5) "
                        "WHERE handover_id = $1",
                        row["handover_id"], attempts, f"{type(error).__name__}: {error}"[:1000],
                        "failed" if failed else "claimed", backoff(attempts))
                    log.warning("hand-over failed", extra={
                        "handover_id": str(row["handover_id"]), "attempts": attempts,
                        "error": type(error).__name__, "parked": failed})
                    continue
                await conn.execute(
                    "UPDATE handover SET state = 'issued', attempts = attempts + 1, "
                    "issued_at = now(), last_error = NULL WHERE handover_id = $1",
                    row["handover_id"])
                issued += 1
    return issued


def _uuid(value: Any) -> UUID | None:
    """asyncpg's own UUID type → uuid.UUID, which the event store's transcoder knows."""
    return None if value is None else UUID(str(value))


async def _issue(conn: asyncpg.Connection, application: Any, row: asyncpg.Record) -> None:
    handover_id = _uuid(row["handover_id"])
    if row["kind"] == "batch":
        accounts = [str(r["account_id"]) for r in await conn.fetch(
            "SELECT account_id FROM notification WHERE batch_id = $1 ORDER BY account_id",
            row["handover_id"])]
        if not accounts:
            return  # every holder of the batch erased their account meanwhile
        await asyncio.to_thread(
            application.issue_batch, handover_id, row["source_kind"], _uuid(row["source_id"]),
            row["template_key"], json.loads(row["params"]), accounts)
        return
    items = [{"kind": r["kind"], "source_id": str(r["source_id"]),
              "template_key": template_key(r["kind"]),
              "params": {k: str(v) for k, v in json.loads(r["payload"]).items()}}
             for r in await conn.fetch(
                 "SELECT kind, source_id, payload::text AS payload FROM notification "
                 "WHERE batch_id = $1 ORDER BY created_at, source_id", row["handover_id"])]
    if items:
        await asyncio.to_thread(application.issue_digest, handover_id,
                                _uuid(row["account_id"]), row["digest_date"], items)


async def run_handover(pool: asyncpg.Pool, application: Any, stop: asyncio.Event, *,
                       poll: float = 0.2, clock: Callable[[], datetime] | None = None) -> None:
    clock = clock or (lambda: datetime.now(DIGEST_ZONE))
    reported = 0.0
    watch = OutageWatch("hand-over")
    while not stop.is_set():
        wait = poll
        now = asyncio.get_running_loop().time()
        if now - reported > 2.0:  # fan-out progress for the dashboard
            reported = now
            with contextlib.suppress(Exception):
                async with pool.acquire() as conn:
                    FANOUT_PENDING.labels("notifications").set(await conn.fetchval(
                        "SELECT count(*) FROM notification WHERE batch_id IS NULL "
                        "AND delivery = 'immediate'"))
        try:
            while await claim_batches(pool):
                await issue_due(pool, application)
            window = digest_window(clock())
            if window:
                await claim_digests(pool, *window)
            await issue_due(pool, application)
            watch.succeeded()
        except Exception as error:  # noqa: BLE001 - keep handing over; OutageWatch logs it
            wait = watch.failed(error)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
