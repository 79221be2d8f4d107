"""Sign-in codes are asked for through a queue, so asking reveals nothing.

The api does the same work for every address (``CodeRequests``): it counts the
request against three fixed-window limits — per e-mail, per client address and
overall — and queues it under the e-mail's keyed lookup hash, never the address
itself. Nothing in that path depends on whether an account exists, so neither
the answer nor its timing can tell.

The worker's ``CodeSender`` takes each queued request exactly once
(``FOR UPDATE SKIP LOCKED``: any number of workers may run), finds the account
by the hash and only then creates and e-mails a code. A request for an address
without an account is simply deleted. The api wakes the senders with NOTIFY;
they also poll, so a lost notification costs at most the poll interval. A
request not handled in time (the workers were down) expires unsent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from .mail import Mailer, record_mail, render
from .signin import RateLimited, SignIn

log = logging.getLogger("omakaiku.signin_queue")

CHANNEL = "kaiku_signin_requests"
HOUSEKEEPING_SECONDS = 60.0

# One row per (limit, subject, window); a request adds one to each of its three.
# Windows are aligned to the epoch, so every api replica counts in the same row.
_COUNT = """
    INSERT INTO signin_rate AS r (scope, subject, window_seconds, window_start, hits)
    SELECT scope, subject, seconds,
           to_timestamp(floor(extract(epoch FROM now()) / seconds) * seconds), 1
    FROM unnest($1::text[], $2::bytea[], $3::integer[]) AS l(scope, subject, seconds)
    ON CONFLICT (scope, subject, window_seconds, window_start)
    DO UPDATE SET hits = r.hits + 1
    RETURNING r.scope, r.hits,
              extract(epoch FROM r.window_start + make_interval(secs => r.window_seconds)
                                 - now())::float8 AS seconds_left
"""
_QUEUE = f"""
    WITH queued AS (
        INSERT INTO signin_requests (email_lookup, language, expires_at)
        VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING id)
    SELECT pg_notify('{CHANNEL}', '') FROM queued
"""
# Taking a request deletes it in the same transaction that stores its code.
_CLAIM = """
    DELETE FROM signin_requests WHERE id = (
        SELECT id FROM signin_requests WHERE expires_at > now()
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING email_lookup, language
"""


@dataclass(frozen=True)
class Limit:
    scope: str
    max_requests: int
    window_seconds: int
    refusal: str  # the 429's detail


@dataclass
class CodeRequests:
    """The api's side: count the request and queue it — the same work for every address."""

    pool: asyncpg.Pool
    secret_key: bytes
    per_address: Limit
    per_client: Limit
    overall: Limit
    request_ttl: int

    def client_hash(self, client: str) -> bytes:
        # Client addresses are personal data too: only a keyed hash is stored.
        return hmac.new(self.secret_key, b"client/" + client.encode(), hashlib.sha256).digest()

    async def enqueue(self, lookup: bytes, client: str, language: str | None) -> None:
        """Queue a code for the address behind ``lookup``; RateLimited over a limit.
        A refused request is rolled back, so it counts against no limit."""
        counted = ((self.per_address, lookup), (self.per_client, self.client_hash(client)),
                   (self.overall, b""))
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_COUNT, [limit.scope for limit, _ in counted],
                                    [subject for _, subject in counted],
                                    [limit.window_seconds for limit, _ in counted])
            hits = {row["scope"]: row for row in rows}
            for limit, _ in counted:
                row = hits[limit.scope]
                if row["hits"] > limit.max_requests:
                    raise RateLimited(limit.refusal, max(1, math.ceil(row["seconds_left"])))
            await conn.execute(_QUEUE, lookup, language, float(self.request_ttl))


class CodeSender:
    """The worker's side: each queued request is handled once, by whichever sender
    takes it. ``holder_for`` (a blocking use case) gives the profile of the account
    a code goes to, or None when the address has none."""

    def __init__(self, pool: asyncpg.Pool, conninfo: str, signin: SignIn, mailer: Mailer,
                 holder_for: Callable[[bytes], Any], *, code_minutes: int,
                 poll_seconds: float, lanes: int = 4) -> None:
        self.pool = pool
        self.conninfo = conninfo
        self.signin = signin
        self.mailer = mailer
        self.holder_for = holder_for
        self.code_minutes = code_minutes
        self.poll_seconds = poll_seconds
        self.lanes = lanes
        self._wake = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Send until ``stop()``; an outage is waited out, never fatal."""
        loop = asyncio.get_running_loop()
        listener: asyncpg.Connection | None = None
        next_housekeeping = 0.0
        try:
            while not self._stopping:
                listener = await self._listening(listener)
                self._wake.clear()
                try:
                    await self.drain()
                    if loop.time() >= next_housekeeping:
                        await self.housekeeping()
                        next_housekeeping = loop.time() + HOUSEKEEPING_SECONDS
                except Exception as error:  # noqa: BLE001 - a database or mail outage
                    # Only the type: a message might quote data. The request stays
                    # queued (its transaction rolled back) and is tried again.
                    log.warning("sign-in codes: not sent now, retrying",
                                extra={"error": type(error).__name__})
                if not self._stopping:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    except TimeoutError:
                        pass
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _listening(self, listener: asyncpg.Connection | None) -> asyncpg.Connection | None:
        """The LISTEN connection, reopened when it was lost; None while it cannot be."""
        if listener is not None and not listener.is_closed():
            return listener
        try:
            listener = await asyncpg.connect(self.conninfo, timeout=5)
            await listener.add_listener(CHANNEL, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as error:
            log.warning("sign-in codes: no LISTEN connection, polling",
                        extra={"error": type(error).__name__})
            return None
        return listener

    async def drain(self) -> int:
        """Handle every queued request, ``lanes`` at a time; how many were handled."""
        async def lane() -> int:
            handled = 0
            while not self._stopping and await self.handle_next():
                handled += 1
            return handled

        return sum(await asyncio.gather(*(lane() for _ in range(self.lanes))))

    async def handle_next(self) -> bool:
        """Take one queued request and, if its address has an account, send a code.
        False when the queue is empty."""
        async with self.pool.acquire() as conn, conn.transaction():
            request = await conn.fetchrow(_CLAIM)
            if request is None:
                return False
            holder = await asyncio.to_thread(self.holder_for, request["email_lookup"])
            if holder is None:
                return True  # no account: the request just goes
            code = await self.signin.store_code(conn, request["email_lookup"],
                                                holder.account.id)
        # Committed first: the code works by the time the e-mail can be read.
        await self._send(holder, code, request["language"] or holder.account.language)
        return True

    async def _send(self, holder: Any, code: str, language: str) -> None:
        subject, text = render("signin_code", language, code=code, minutes=self.code_minutes)
        # To the address on the account, whatever case the holder typed.
        outcome = await self.mailer.send(holder.personal.email, subject, text,
                                         language=language)
        await record_mail(self.pool, holder.account.id, "signin_code", outcome)

    async def housekeeping(self) -> None:
        """Expired requests, past windows, old failures and dead codes go."""
        async with self.pool.acquire() as conn:
            expired = await conn.fetchval(
                "WITH gone AS (DELETE FROM signin_requests WHERE expires_at <= now() "
                "RETURNING 1) SELECT count(*) FROM gone")
            await conn.execute(
                "DELETE FROM signin_rate "
                "WHERE window_start + make_interval(secs => window_seconds) < now()")
            await self.signin.forget_stale(conn)
        if expired:
            log.warning("sign-in codes: requests expired unsent", extra={"count": expired})
