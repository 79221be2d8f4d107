"""The sign-in throttle's arithmetic (delays, forgetting) and the client address
it is kept for: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


from cards.adapters.login_throttle import (
    Attempts,
    ThrottlePolicy,
    address_hash,
    reserve_attempt,
    username_hash,
)

POLICY = ThrottlePolicy(limit=5, lock_seconds=60, max_lock_seconds=3600, forget_seconds=86400)
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_no_lock_below_the_limit_then_doubling_up_to_the_cap() -> None:
    assert [POLICY.lock_for(n) for n in range(1, 5)] == [0, 0, 0, 0]
    assert [POLICY.lock_for(n) for n in range(5, 13)] == [
        60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert POLICY.lock_for(10**9) == 3600  # no overflow, no huge numbers


def test_the_attempt_reaching_the_limit_locks_and_later_ones_wait() -> None:
    state, waits = Attempts(), []
    for _ in range(5):
        state, wait = reserve_attempt(state, NOON, POLICY)
        waits.append(wait)
    assert waits == [0] * 5
    assert (state.count, state.locked_until) == (5, NOON + timedelta(seconds=60))
    same, wait = reserve_attempt(state, NOON + timedelta(seconds=20.5), POLICY)
    assert (same, wait) == (state, 40)  # whole seconds, rounded up


def test_each_attempt_after_a_lock_doubles_the_next_lock() -> None:
    state = Attempts(5, NOON + timedelta(seconds=60), NOON)
    locks = []
    moment = NOON
    for _ in range(4):
        moment = state.locked_until + timedelta(seconds=1)
        state, wait = reserve_attempt(state, moment, POLICY)
        assert wait == 0
        locks.append((state.locked_until - moment).total_seconds())
    assert locks == [120, 240, 480, 960]
    assert state.count == 9 and state.last_at == moment


def test_a_quiet_day_forgets_the_attempts() -> None:
    state = Attempts(7, NOON + timedelta(minutes=8), NOON)
    later = NOON + timedelta(days=1)
    fresh, wait = reserve_attempt(state, later, POLICY)
    assert (wait, fresh.count, fresh.locked_until) == (0, 1, None)
    kept, _ = reserve_attempt(state, later - timedelta(minutes=1), POLICY)
    assert kept.count == 8


def test_only_hashes_are_kept_and_spellings_of_a_username_meet() -> None:
    assert username_hash(" Aino.Jakaja ") == username_hash("aino.jakaja")
    assert username_hash("aino.jakaja") != address_hash("aino.jakaja")
    assert len(username_hash("\ud800")) == 32  # odd input still hashes
