"""Rules that keep published statistics from pointing at one person.

- Periods are whole calendar months, and only completed ones: two queries made a
  day apart see the same months, so differencing them reveals nothing.
- In a line of cells that adds up to a published total, a small count is hidden,
  and so many more cells as it takes that no hidden cell can be worked out by
  subtracting the shown cells from the total.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

WHOLE_MONTHS_HINT = ("Statistics cover whole calendar months: use from=2026-03 or "
                     "from=2026-03-01, and to=2026-05 or to=2026-05-31.")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class NotWholeMonths(ValueError):
    """A period that does not start and end on a month boundary."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


@dataclass(frozen=True)
class MonthPeriod:
    """``first``..``last`` inclusive; ``last`` never passes the last completed month."""

    first: date | None
    last: date


def last_day_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def last_completed_day(today: date) -> date:
    """The last day of the previous month: the current month is still filling up."""
    return today.replace(day=1) - timedelta(days=1)


def _parse_month_or_day(text: str) -> tuple[date, bool]:
    """The date, and whether only a month was given."""
    if month := _MONTH.fullmatch(text):
        return date(int(month[1]), int(month[2]), 1), True
    if day := _DAY.fullmatch(text):
        return date(int(day[1]), int(day[2]), int(day[3])), False
    raise ValueError(text)


def month_boundary(text: str, field: str, *, closing: bool) -> date:
    """``YYYY-MM``, or ``YYYY-MM-DD`` on the month's first (``from``) or last (``to``) day."""
    try:
        day, month_only = _parse_month_or_day(text)
    except ValueError:
        raise NotWholeMonths(field, f"'{field}={text}' is not a month. "
                             + WHOLE_MONTHS_HINT) from None
    boundary = last_day_of_month(day) if closing else day.replace(day=1)
    if not month_only and day != boundary:
        raise NotWholeMonths(field, f"'{field}={text}' is not the "
                             f"{'last' if closing else 'first'} day of a month. "
                             + WHOLE_MONTHS_HINT)
    return boundary


def whole_month_period(start: str | None, end: str | None, today: date) -> MonthPeriod:
    """The months asked for, cut at the last completed month (``today``'s month and
    later are left out, so the figures do not change from one day to the next)."""
    first = month_boundary(start, "from", closing=False) if start else None
    last = month_boundary(end, "to", closing=True) if end else None
    if first and last and first > last:
        raise NotWholeMonths("from", "'from' is after 'to'.")
    cut = last_completed_day(today)
    return MonthPeriod(first, min(last, cut) if last else cut)


def hidden_cells(line: Mapping[K, int | None], threshold: int) -> set[K]:
    """The cells to hide in a line whose total is published.

    Counts of 1..threshold-1 are hidden (primary suppression). If any is, the
    smallest other cells are hidden too until at least two are hidden and the
    hidden ones add up to at least ``threshold``: the total minus the shown cells
    then gives only a sum of several cells, itself no small count. Non-zero cells
    are taken before zeros. A line of one cell is its total and cannot be protected.
    """
    counts = {key: value or 0 for key, value in line.items()}
    hidden = {key for key, value in counts.items() if 0 < value < threshold}
    if not hidden:
        return hidden
    candidates = sorted((key for key in counts if key not in hidden),
                        key=lambda key: (counts[key] == 0, counts[key], str(key)))
    for key in candidates:
        if len(hidden) >= 2 and sum(counts[k] for k in hidden) >= threshold:
            break
        hidden.add(key)
    return hidden
