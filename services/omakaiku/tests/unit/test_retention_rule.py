"""The retention rule: when an account whose card ended is announced and erased."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from omakaiku.domain.retention import (
    FINLAND,
    RetentionPolicy,
    Step,
    add_months,
    card_ended_at,
)

POLICY = RetentionPolicy(keep_months=24, notice=timedelta(days=30))
ENDED = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)


def test_months_are_calendar_months_clamped_to_the_shorter_month() -> None:
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 24) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 3, 15, tzinfo=UTC), -24) == datetime(2024, 3, 15,
                                                                          tzinfo=UTC)


def test_an_open_valid_card_has_not_ended() -> None:
    assert card_ended_at(status="open", closed_at=None, valid_until=None) is None


def test_a_card_ends_at_its_closing_or_after_its_last_valid_day_whichever_is_first() -> None:
    expired = card_ended_at(status="open", closed_at=None, valid_until=date(2024, 12, 31))
    assert expired == datetime(2025, 1, 1, tzinfo=FINLAND)
    closed_early = card_ended_at(status="closed", closed_at=ENDED,
                                 valid_until=date(2024, 12, 31))
    assert closed_early == ENDED
    closed_after_expiry = card_ended_at(status="closed", closed_at=datetime(2025, 6, 1,
                                                                           tzinfo=UTC),
                                        valid_until=date(2024, 12, 31))
    assert closed_after_expiry == expired


def test_nothing_is_due_before_the_notice_period_starts() -> None:
    just_before = datetime(2026, 2, 13, 11, 59, tzinfo=UTC)  # 24 months - 30 days - 1 min
    assert POLICY.step(ended_at=ENDED, now=just_before, notified_at=None) is Step.WAIT


def test_the_holder_is_told_30_days_before_the_24_months_are_over() -> None:
    notice_time = datetime(2026, 2, 13, 12, 0, tzinfo=UTC)
    assert POLICY.notify_after(ENDED) == notice_time
    assert POLICY.step(ended_at=ENDED, now=notice_time, notified_at=None) is Step.NOTIFY


def test_an_account_is_erased_once_24_months_are_over_and_the_holder_was_told() -> None:
    told = datetime(2026, 2, 13, 12, 0, tzinfo=UTC)
    due = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    assert POLICY.step(ended_at=ENDED, now=due - timedelta(seconds=1),
                       notified_at=told) is Step.WAIT
    assert POLICY.step(ended_at=ENDED, now=due, notified_at=told) is Step.ERASE


def test_a_holder_never_told_is_told_first_however_long_ago_the_card_ended() -> None:
    long_after = datetime(2030, 1, 1, tzinfo=UTC)
    assert POLICY.step(ended_at=ENDED, now=long_after, notified_at=None) is Step.NOTIFY


def test_a_late_notice_still_gives_the_whole_notice_period() -> None:
    told_late = datetime(2027, 1, 1, tzinfo=UTC)
    assert POLICY.erase_on(ENDED, told_late) == told_late + timedelta(days=30)
    assert POLICY.step(ended_at=ENDED, now=told_late + timedelta(days=29),
                       notified_at=told_late) is Step.WAIT
    assert POLICY.step(ended_at=ENDED, now=told_late + timedelta(days=30),
                       notified_at=told_late) is Step.ERASE


def test_the_query_bound_includes_every_card_whose_notice_is_due() -> None:
    now = datetime(2026, 2, 13, 12, 0, tzinfo=UTC)
    assert ENDED <= POLICY.ended_before(now)
    assert POLICY.ended_before(now) - ENDED <= timedelta(days=1)


def test_a_test_policy_counts_in_seconds() -> None:
    quick = RetentionPolicy(notice=timedelta(seconds=2), keep_exactly=timedelta(seconds=5))
    assert quick.erase_after(ENDED) == ENDED + timedelta(seconds=5)
    assert quick.step(ended_at=ENDED, now=ENDED + timedelta(seconds=3),
                      notified_at=None) is Step.NOTIFY
