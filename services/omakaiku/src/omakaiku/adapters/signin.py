"""Password-free sign-in: one-time codes (typed) and links (welcome e-mail).

Secrets are stored only as keyed hashes; a code is bound to the e-mail's lookup
hash, expires, works once, and wrong guesses are limited per e-mail (across all
its codes) and per code. Requests for codes are limited per e-mail as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg


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
    max_requests: int
    max_attempts: int

    def _hash(self, lookup: bytes, secret: str) -> bytes:
        return hmac.new(self.secret_key, lookup + b"/" + secret.encode(), hashlib.sha256).digest()

    async def _count(self, conn: asyncpg.Connection, lookup: bytes, kind: str) -> int:
        return await conn.fetchval(
            "SELECT count(*) FROM signin_attempts WHERE email_lookup = $1 AND kind = $2 "
            "AND at > now() - make_interval(secs => $3)", lookup, kind, float(self.window))

    async def new_code(self, lookup: bytes, account_id: UUID | None) -> str:
        """A fresh 6-digit code; RateLimited after ``max_requests`` in the window.
        Counted even for unknown addresses, so answers never reveal an account."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))",
                               lookup.hex())
            # Housekeeping for this address: old attempts and dead codes go.
            await conn.execute(
                "DELETE FROM signin_attempts WHERE email_lookup = $1 "
                "AND at < now() - make_interval(secs => $2)", lookup, float(self.window))
            await conn.execute(
                "DELETE FROM signin_codes WHERE email_lookup = $1 AND kind = 'code' "
                "AND expires_at < now() - interval '1 day'", lookup)
            if await self._count(conn, lookup, "request") >= self.max_requests:
                raise RateLimited("Too many codes asked for this address; try again later.",
                                  self.window)
            await conn.execute(
                "INSERT INTO signin_attempts (email_lookup, kind) VALUES ($1, 'request')", lookup)
            code = f"{secrets.randbelow(1_000_000):06d}"
            if account_id is not None:
                await conn.execute(
                    "INSERT INTO signin_codes (email_lookup, kind, secret_hash, account_id, "
                    "expires_at) VALUES ($1, 'code', $2, $3, now() + make_interval(secs => $4)) "
                    "ON CONFLICT (secret_hash) DO NOTHING",
                    lookup, self._hash(lookup, code), account_id, float(self.code_ttl))
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
        """The account the code was sent for; marks it used. CodeRejected or RateLimited."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))",
                               lookup.hex())
            if await self._count(conn, lookup, "failure") >= self.max_attempts:
                raise RateLimited("Too many wrong codes for this address; wait and ask for "
                                  "a new code.", self.window)
            row = await conn.fetchrow(
                "SELECT id, account_id, expires_at, used_at, attempts FROM signin_codes "
                "WHERE email_lookup = $1 AND kind = 'code' AND secret_hash = $2",
                lookup, self._hash(lookup, code.strip()))
            now = datetime.now(UTC)
            if row is None or row["used_at"] is not None or row["expires_at"] <= now:
                await conn.execute(
                    "INSERT INTO signin_attempts (email_lookup, kind) VALUES ($1, 'failure')",
                    lookup)
                # Wrong guesses also count against every live code of the address.
                await conn.execute(
                    "UPDATE signin_codes SET attempts = attempts + 1, "
                    "used_at = CASE WHEN attempts + 1 >= $2 THEN now() ELSE used_at END "
                    "WHERE email_lookup = $1 AND used_at IS NULL AND kind = 'code'",
                    lookup, self.max_attempts)
                # Raised after the commit: the failure must count.
                if row is not None and row["used_at"] is not None:
                    rejection = "This code has been used already; ask for a new one."
                elif row is not None:
                    rejection = "This code has expired; ask for a new one."
                else:
                    rejection = "The code is not right; check it or ask for a new one."
            else:
                await conn.execute("UPDATE signin_codes SET used_at = now() WHERE id = $1",
                                   row["id"])
                return row["account_id"]
        raise CodeRejected(rejection)

    async def redeem_link(self, token: str) -> UUID:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "UPDATE signin_codes SET used_at = now() WHERE kind = 'link' AND "
                "secret_hash = $1 AND used_at IS NULL AND expires_at > now() "
                "RETURNING account_id", self._hash(b"link", token.strip()))
        if row is None:
            raise CodeRejected("This sign-in link is not valid any more; ask for a code.")
        return row["account_id"]


def expires_in_minutes(seconds: int) -> int:
    return max(1, int(timedelta(seconds=seconds).total_seconds() // 60))
