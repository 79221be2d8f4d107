"""The staff sign-in throttle: password attempts per user and client address.

An attempt is reserved (counted) under a row lock *before* its password is
checked, so parallel guesses never get more than the limit evaluated; a success
resets the count. The count is kept per username *and* address: a guesser locks
out only their own address, never the user elsewhere. The attempt that reaches
the limit locks the pair for ``lock_seconds``; once a lock has passed, each
further attempt locks it twice as long as the one before, up to a cap. After a
quiet day the pair's count is forgotten.

Only SHA-256 hashes of the normalised username and of the address are stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil

import asyncpg

# Its table is in adapters/schema.py (LOGIN_THROTTLE).


@dataclass(frozen=True)
class ThrottlePolicy:
    """The limits, from the cards settings (KAIKU_CARDS_LOGIN_*)."""

    limit: int
    lock_seconds: int
    max_lock_seconds: int
    forget_seconds: int

    def lock_for(self, attempts: int) -> int:
        """Seconds the pair is locked once its ``attempts``-th attempt is reserved."""
        if attempts < self.limit:
            return 0
        excess = min(attempts - self.limit, 40)  # 2**40 is past any cap; no huge ints
        return min(self.max_lock_seconds, self.lock_seconds * 2 ** excess)


@dataclass(frozen=True)
class Attempts:
    """What is stored for one (username, address) pair."""

    count: int = 0
    locked_until: datetime | None = None
    last_at: datetime | None = None


def reserve_attempt(state: Attempts, now: datetime,
                    policy: ThrottlePolicy) -> tuple[Attempts, int]:
    """The pair's state with one more attempt counted and 0; or, while it is
    locked, the state unchanged and the whole seconds until the lock ends."""
    if state.locked_until is not None and state.locked_until > now:
        return state, max(1, ceil((state.locked_until - now).total_seconds()))
    quiet = state.last_at is None or now - state.last_at >= timedelta(
        seconds=policy.forget_seconds)
    count = (0 if quiet else state.count) + 1
    lock = policy.lock_for(count)
    return Attempts(count, now + timedelta(seconds=lock) if lock else None, now), 0


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"locked for {retry_after} s")
        self.retry_after = retry_after


def username_hash(username: str) -> bytes:
    # The same key for every spelling /auth/login accepts ("Aino.J " = "aino.j").
    name = username.strip().lower()
    return hashlib.sha256(b"kaikukanta-login-user/" + name.encode("utf-8", "surrogatepass")
                          ).digest()


def address_hash(address: str) -> bytes:
    return hashlib.sha256(b"kaikukanta-login-address/" + address.encode("utf-8", "surrogatepass")
                          ).digest()


@dataclass
class LoginThrottle:
    pool: asyncpg.Pool
    policy: ThrottlePolicy

    async def reserve(self, username: str, address: str) -> None:
        """Count one attempt for the pair, or raise TooManyAttempts while it is locked."""
        key = (username_hash(username), address_hash(address))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO login_throttle (username_hash, address_hash) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING", *key)
            # The row lock makes parallel attempts of one pair take their turns here.
            row = await conn.fetchrow(
                "SELECT attempts, locked_until, last_attempt_at FROM login_throttle "
                "WHERE username_hash = $1 AND address_hash = $2 FOR UPDATE", *key)
            state = Attempts(row["attempts"], row["locked_until"], row["last_attempt_at"])
            reserved, wait = reserve_attempt(state, datetime.now(UTC), self.policy)
            if wait:
                raise TooManyAttempts(wait)
            await conn.execute(
                "UPDATE login_throttle SET attempts = $3, locked_until = $4, "
                "last_attempt_at = $5 WHERE username_hash = $1 AND address_hash = $2",
                *key, reserved.count, reserved.locked_until, reserved.last_at)

    async def reset(self, username: str, address: str) -> None:
        """The password was right: the pair starts afresh. Long-quiet pairs of
        anyone are dropped on the way, so the table keeps only recent guessing."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM login_throttle WHERE (username_hash = $1 AND address_hash = $2) "
                "OR (last_attempt_at < now() - make_interval(secs => $3) "
                "AND (locked_until IS NULL OR locked_until < now()))",
                username_hash(username), address_hash(address),
                float(self.policy.forget_seconds))
