"""Password-free sign-in: one-time codes (typed) and links (welcome e-mail).

Secrets are stored only as keyed hashes; a code is bound to the e-mail's lookup
hash, expires, works once, and dies after a few wrong guesses. Wrong guesses are
also limited per e-mail across all its codes. Every refusal of a code reads the
same — no account, no code, a wrong, used or expired one — so a refusal never
tells whether an address holds a card. Codes are asked for through the queue
in ``signin_queue``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg

CODE_REFUSED = ("The code is not right, or it has expired or been used already. "
                "Check it or ask for a new code.")


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CodeRejected(Exception):
    pass


@dataclass
class SignIn:
    pool: asyncpg.Pool
    secret_key: bytes
    code_ttl: int
    link_ttl: int
    window: int
    max_attempts: int        # wrong codes per e-mail per window, then 429
    code_max_tries: int = 5  # wrong codes that void the e-mail's live codes

    def _hash(self, lookup: bytes, secret: str) -> bytes:
        return hmac.new(self.secret_key, lookup + b"/" + secret.encode(), hashlib.sha256).digest()

    async def _failures(self, conn: asyncpg.Connection, lookup: bytes) -> int:
        return await conn.fetchval(
            "SELECT count(*) FROM signin_attempts WHERE email_lookup = $1 AND kind = 'failure' "
            "AND at > now() - make_interval(secs => $2)", lookup, float(self.window))

    async def store_code(self, conn: asyncpg.Connection, lookup: bytes,
                         account_id: UUID) -> str:
        """A fresh 6-digit code for the account, stored (hashed) on ``conn``."""
        while True:
            code = f"{secrets.randbelow(1_000_000):06d}"
            # The same six digits may still be on file for this address: draw again.
            if await conn.fetchval(
                    "INSERT INTO signin_codes (email_lookup, kind, secret_hash, account_id, "
                    "expires_at) VALUES ($1, 'code', $2, $3, now() + make_interval(secs => $4)) "
                    "ON CONFLICT (secret_hash) DO NOTHING RETURNING id",
                    lookup, self._hash(lookup, code), account_id, float(self.code_ttl)):
                return code

    async def new_link(self, account_id: UUID) -> str:
        token = secrets.token_urlsafe(32)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO signin_codes (email_lookup, kind, secret_hash, account_id, "
                "expires_at) VALUES ($1, 'link', $2, $3, now() + make_interval(secs => $4))",
                b"link", self._hash(b"link", token), account_id, float(self.link_ttl))
        return token

    async def redeem_code(self, lookup: bytes, code: str) -> UUID:
        """The account the code was sent for; marks it used. Otherwise CodeRejected
        (always CODE_REFUSED), or RateLimited after too many wrong codes."""
        presented = self._hash(lookup, code.strip())
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))",
                               lookup.hex())
            if await self._failures(conn, lookup) >= self.max_attempts:
                raise RateLimited("Too many wrong codes for this address; wait and ask for "
                                  "a new code.", self.window)
            live = await conn.fetch(
                "SELECT id, secret_hash, account_id FROM signin_codes WHERE email_lookup = $1 "
                "AND kind = 'code' AND used_at IS NULL AND expires_at > now()", lookup)
            match = matching_code(live, presented)
            if match is not None:
                await conn.execute("UPDATE signin_codes SET used_at = now() WHERE id = $1",
                                   match["id"])
                return match["account_id"]
            await conn.execute(
                "INSERT INTO signin_attempts (email_lookup, kind) VALUES ($1, 'failure')", lookup)
            # A wrong guess counts against every live code of the address.
            await conn.execute(
                "UPDATE signin_codes SET attempts = attempts + 1, "
                "used_at = CASE WHEN attempts + 1 >= $2 THEN now() ELSE used_at END "
                "WHERE email_lookup = $1 AND used_at IS NULL AND kind = 'code'",
                lookup, self.code_max_tries)
        # Raised after the commit: the failure must count.
        raise CodeRejected(CODE_REFUSED)

    async def redeem_link(self, token: str) -> UUID:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "UPDATE signin_codes SET used_at = now() WHERE kind = 'link' AND "
                "secret_hash = $1 AND used_at IS NULL AND expires_at > now() "
                "RETURNING account_id", self._hash(b"link", token.strip()))
        if row is None:
            raise CodeRejected("This sign-in link is not valid any more; ask for a code.")
        return row["account_id"]

    async def forget_stale(self, conn: asyncpg.Connection) -> None:
        """Housekeeping: failures older than the window, codes and links a day dead."""
        await conn.execute("DELETE FROM signin_attempts "
                           "WHERE at < now() - make_interval(secs => $1)", float(self.window))
        await conn.execute("DELETE FROM signin_codes WHERE expires_at < now() - interval '1 day'")


def matching_code(live: Sequence[asyncpg.Record | dict], presented: bytes):
    """The live code whose hash is ``presented``, or None. Every hash is compared,
    in constant time, so the time taken does not depend on which one matched."""
    match = None
    for row in live:
        if hmac.compare_digest(bytes(row["secret_hash"]), presented):
            match = row
    return match


def expires_in_minutes(seconds: int) -> int:
    return max(1, int(timedelta(seconds=seconds).total_seconds() // 60))
