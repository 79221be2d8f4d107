"""How long an account outlives its card, and when its holder is warned.

An account whose card has ended — closed, or past its last valid day — is kept
``keep_months`` (24 by default: long enough for a holder to come back on a
renewed card within a normal two-year renewal round, and for the distributor to
answer questions about past uses) and then erased. The holder is told by e-mail
``notice`` before; an account is never erased sooner than ``notice`` after its
holder was told, even when it was due long ago (the first run after this rule
arrived, or mail that failed for a while).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

# A card is valid through its last day in Finland.
FINLAND = ZoneInfo("Europe/Helsinki")


class Step(Enum):
    WAIT = "wait"
    NOTIFY = "notify"
    ERASE = "erase"


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def card_ended_at(*, status: str, closed_at: datetime | None,
                  valid_until: date | None) -> datetime | None:
    """When the card stopped being usable: the earlier of its closing and the
    end of its last valid day; None while it is open and valid."""
    ends = []
    if status == "closed" and closed_at is not None:
        ends.append(closed_at)
    if valid_until is not None:
        ends.append(datetime.combine(valid_until + timedelta(days=1), time(), FINLAND))
    return min(ends) if ends else None


@dataclass(frozen=True)
class RetentionPolicy:
    keep_months: int = 24
    notice: timedelta = timedelta(days=30)
    # Tests only (refused in production): keep this long instead of keep_months.
    keep_exactly: timedelta | None = None

    def erase_after(self, ended_at: datetime) -> datetime:
        if self.keep_exactly is not None:
            return ended_at + self.keep_exactly
        return add_months(ended_at, self.keep_months)

    def notify_after(self, ended_at: datetime) -> datetime:
        return self.erase_after(ended_at) - self.notice

    def ended_before(self, now: datetime) -> datetime:
        """Cards that ended after this need nothing yet (a bound for a query,
        with a day to spare for month arithmetic; ``step`` decides)."""
        horizon = now + self.notice
        if self.keep_exactly is not None:
            return horizon - self.keep_exactly
        return add_months(horizon, -self.keep_months) + timedelta(days=1)

    def step(self, *, ended_at: datetime, now: datetime,
             notified_at: datetime | None) -> Step:
        """What is due for an account whose card ended at ``ended_at``;
        ``notified_at``: when its holder was told about this same end, if yet."""
        if notified_at is None:
            return Step.NOTIFY if now >= self.notify_after(ended_at) else Step.WAIT
        if now >= self.erase_after(ended_at) and now >= notified_at + self.notice:
            return Step.ERASE
        return Step.WAIT

    def erase_on(self, ended_at: datetime, notified_at: datetime) -> datetime:
        """The moment the holder is told the account goes (never sooner than
        ``notice`` after the telling)."""
        return max(self.erase_after(ended_at), notified_at + self.notice)
