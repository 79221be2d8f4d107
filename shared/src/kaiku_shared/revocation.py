"""Token revocation, carried by events and honoured by every service within 2 s.

The issuers publish what ends a token: cards a user's deactivation or password
change, an organisation leaving the network and a staff sign-out; omakaiku a
holder's sign-out and an account's erasure. Every service's worker projects
them into ``token_revocations`` (one row per user, organisation, account or
token: the time before which its tokens no longer count), and every api process
reloads what is new there every ``revocation_refresh_seconds`` into memory, so a
request is checked against a dictionary, never a synchronous call.

Rows name their subject by a SHA-256 of it, not the id itself: an erased
account's id is gone from every service once its erasure is projected, yet its
tokens stay refused until the longest of them has expired, when the row goes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from datetime import datetime, timedelta

import asyncpg

from .auth import STAFF_ONLY_SERVICES, Principal
from .consumer import Consumer
from .db import baseline
from .contracts import (
    AccountErasedV1,
    HolderAccessRevokedV1,
    OrganisationStatusChangedV1,
    StaffAccessRevokedV1,
)

log = logging.getLogger("kaiku.revocation")

SCHEMA = baseline("kaiku-revocations", (
    "CREATE SEQUENCE IF NOT EXISTS token_revocations_seq",
    """CREATE TABLE IF NOT EXISTS token_revocations (
        scope       text NOT NULL,   -- user | organisation | account | token
        subject     text NOT NULL,   -- SHA-256 of its id (a token's jti)
        not_before  double precision NOT NULL,  -- tokens issued before: refused
        expires_at  double precision,           -- the row is void (and purged) after this
        reason      text NOT NULL,
        seq         bigint NOT NULL DEFAULT nextval('token_revocations_seq'),
        PRIMARY KEY (scope, subject)
    )""",
    "CREATE INDEX IF NOT EXISTS token_revocations_by_seq ON token_revocations (seq)",
))

# A later revocation of the same subject moves its time forward, never back
# (a replay of an old event changes nothing), and gets a new seq so that every
# api process reloads it.
_UPSERT = """
    INSERT INTO token_revocations (scope, subject, not_before, expires_at, reason)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (scope, subject) DO UPDATE
       SET not_before = EXCLUDED.not_before, expires_at = EXCLUDED.expires_at,
           reason = EXCLUDED.reason, seq = nextval('token_revocations_seq')
     WHERE token_revocations.not_before < EXCLUDED.not_before"""
_FORGET_EXPIRED = "DELETE FROM token_revocations WHERE expires_at < $1"
# An erased account's tokens: none outlives the longest holder token.
ACCOUNT_REVOCATION_KEPT = timedelta(hours=13)

REASONS = {
    "deactivated": "this user has been deactivated",
    "password_changed": "the password was changed after this token was issued",
    "signed_out": "this token was signed out",
    "left": "the organisation has left the Kaikukortti network",
    "erased": "this account has been erased",
}


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def hashed(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()


async def _revoke(conn: asyncpg.Connection, scope: str, subject: str, not_before: datetime,
                  reason: str, expires_at: datetime | None = None) -> None:
    await conn.execute(_UPSERT, scope, hashed(subject), _epoch(not_before),
                       _epoch(expires_at), reason)
    if expires_at is not None:
        await conn.execute(_FORGET_EXPIRED, time.time() - 60)


async def on_staff_access_revoked(event: StaffAccessRevokedV1, conn: asyncpg.Connection) -> None:
    await _revoke(conn, event.scope, event.target, event.not_before, event.reason,
                  event.expires_at)


async def on_holder_access_revoked(event: HolderAccessRevokedV1,
                                   conn: asyncpg.Connection) -> None:
    await _revoke(conn, event.scope, event.target, event.not_before, event.reason,
                  event.expires_at)


async def on_organisation_status_changed(event: OrganisationStatusChangedV1,
                                         conn: asyncpg.Connection) -> None:
    if event.status == "left":
        await _revoke(conn, "organisation", str(event.organisation_id), event.occurred_at,
                      "left")


async def on_account_erased(event: AccountErasedV1, conn: asyncpg.Connection) -> None:
    await _revoke(conn, "account", str(event.account_id), event.occurred_at, "erased",
                  event.occurred_at + ACCOUNT_REVOCATION_KEPT)


def consumers(service: str) -> list[Consumer]:
    """The durables a service's worker runs for revocations: staff ones from cards
    in every service, holder ones from omakaiku where holder tokens are trusted."""
    staff = Consumer(f"{service}-staff-revocations", "cards")
    staff.on(StaffAccessRevokedV1)(on_staff_access_revoked)
    staff.on(OrganisationStatusChangedV1)(on_organisation_status_changed)
    if service in STAFF_ONLY_SERVICES:
        return [staff]
    holders = Consumer(f"{service}-holder-revocations", "omakaiku")
    holders.on(HolderAccessRevokedV1)(on_holder_access_revoked)
    holders.on(AccountErasedV1)(on_account_erased)
    return [staff, holders]


class RevocationList:
    """What an api process knows of revocations: reloaded from its database."""

    def __init__(self) -> None:
        self._not_before: dict[tuple[str, str], tuple[float, str]] = {}
        self._seq = 0

    def refusal(self, principal: Principal) -> str | None:
        if not self._not_before:
            return None
        if principal.token_id and (
                entry := self._not_before.get(("token", hashed(principal.token_id)))):
            return _refused(entry[1])
        subjects = [("account", str(principal.account_id)) if principal.role == "holder"
                    else ("user", principal.subject)]
        if principal.organisation_id is not None:
            subjects.append(("organisation", str(principal.organisation_id)))
        for scope, subject in subjects:
            entry = self._not_before.get((scope, hashed(subject)))
            if entry is not None and principal.issued_at < entry[0]:
                return _refused(entry[1])
        return None

    async def reload(self, pool: asyncpg.Pool) -> int:
        """Take in what was projected since the last reload; how many rows."""
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT scope, subject, not_before, reason, seq FROM token_revocations "
                "WHERE seq > $1 ORDER BY seq", self._seq)
        for row in rows:
            self._not_before[(row["scope"], row["subject"])] = (row["not_before"], row["reason"])
            self._seq = row["seq"]
        return len(rows)

    async def follow(self, pool: asyncpg.Pool, every: float) -> None:
        """Reload forever; a database outage only delays it (the api answers 503
        for its own use cases meanwhile)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.reload(pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    asyncio.TimeoutError) as error:
                log.warning("cannot reload revocations", extra={"error": type(error).__name__})


def _refused(reason: str) -> str:
    return f"{REASONS.get(reason, 'this token was revoked')}; sign in again"


@contextlib.asynccontextmanager
async def followed(revocations: RevocationList, pool: asyncpg.Pool, every: float):
    """Load every revocation, then keep reloading while the api runs."""
    await revocations.reload(pool)
    task = asyncio.create_task(revocations.follow(pool, every))
    try:
        yield revocations
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
