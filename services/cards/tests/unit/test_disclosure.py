"""Statistics that cannot be differenced: whole, completed months only, and small
counts hidden with complements so that no hidden cell can be worked out from the
shown cells and the published total."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards.adapters.queries import _suppress_columns, zero_figures
from cards.domain.disclosure import NotWholeMonths, hidden_cells, whole_month_period

TODAY = date(2026, 12, 5)


@pytest.mark.parametrize(("start", "end", "first", "last"), [
    ("2026-03", "2026-05", date(2026, 3, 1), date(2026, 5, 31)),
    ("2026-03-01", "2026-05-31", date(2026, 3, 1), date(2026, 5, 31)),
    ("2024-02", "2024-02-29", date(2024, 2, 1), date(2024, 2, 29)),
    (None, None, None, date(2026, 11, 30)),  # every completed month
    ("2026-01", "2100-12", date(2026, 1, 1), date(2026, 11, 30)),  # cut at November
    ("2026-12", None, date(2026, 12, 1), date(2026, 11, 30)),  # nothing completed yet
])
def test_whole_months_are_accepted_and_cut_at_the_last_completed_month(
        start, end, first, last):
    period = whole_month_period(start, end, TODAY)
    assert (period.first, period.last) == (first, last)


@pytest.mark.parametrize(("start", "end", "field"), [
    ("2026-03-02", None, "from"),  # not a month's first day
    (None, "2026-05-30", "to"),  # not a month's last day
    ("2026-03-31", None, "from"),
    (None, "2026-05-01", "to"),
    ("2026-13", None, "from"),
    ("2026-02-30", None, "from"),
    ("march", None, "from"),
    ("2026-05", "2026-03", "from"),  # backwards
])
def test_anything_else_is_refused_with_a_hint(start, end, field):
    with pytest.raises(NotWholeMonths) as refused:
        whole_month_period(start, end, TODAY)
    assert refused.value.field == field
    assert "after" in str(refused.value) or "from=2026-03" in str(refused.value)


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 30)))
def test_two_days_in_the_same_month_see_the_same_months(day):
    tomorrow = day + timedelta(days=1)
    if tomorrow.month != day.month:
        return
    assert whole_month_period(None, None, day) == whole_month_period(None, None, tomorrow)
    assert whole_month_period("2020-01", "2030-12", day) == whole_month_period(
        "2020-01", "2030-12", tomorrow)


def feasible_values(line: dict, hidden: set, key) -> tuple[int, float]:
    """What an attacker can tell about a hidden cell from the shown cells and the
    published total, knowing only that counts are not negative: (lowest, highest)."""
    residual = sum(line.values()) - sum(v for k, v in line.items() if k not in hidden)
    if hidden == {key}:
        return residual, residual
    return 0, residual


def assert_protected(line: dict, hidden: set, threshold: int) -> None:
    assert {k for k, v in line.items() if 0 < v < threshold} <= hidden
    if not hidden:
        return
    if len(line) == 1:
        return  # a single cell is its total: nothing else to hide
    for key in hidden:
        lowest, highest = feasible_values(line, hidden, key)
        assert lowest < highest, (line, hidden, key)
    if any(line[k] for k in line if k not in hidden):
        # the hidden cells add up to no small count (unless nothing else was left)
        assert sum(line[k] for k in hidden) >= threshold, (line, hidden)


lines = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3),
                        st.integers(0, 40), min_size=2, max_size=12)


@given(lines, st.integers(2, 10))
def test_no_hidden_cell_can_be_worked_out_from_a_line(line, threshold):
    assert_protected(line, hidden_cells(line, threshold), threshold)


@given(lines, st.integers(2, 10))
def test_large_cells_are_shown_when_no_small_cell_needs_them(line, threshold):
    hidden = hidden_cells(line, threshold)
    if not any(0 < v < threshold for v in line.values()):
        assert hidden == set()


def test_the_next_smallest_cell_is_hidden_with_a_lone_small_one():
    assert hidden_cells({"a": 3, "b": 0, "c": 7, "d": 40}, 5) == {"a", "c"}
    # two small ones that add up to a small count take a third
    assert hidden_cells({"a": 1, "b": 2, "c": 9, "d": 40}, 5) == {"a", "b", "c"}
    assert hidden_cells({"a": 2, "b": 4, "c": 9}, 5) == {"a", "b"}
    assert hidden_cells({"a": 6, "b": 9}, 5) == set()


figure_rows = st.lists(st.fixed_dictionaries(
    {field: st.integers(0, 30) for field in ("cards_issued", "uses", "child_tickets")}),
    min_size=2, max_size=10)


@given(figure_rows, st.integers(2, 8))
def test_no_hidden_cell_in_any_column_of_a_breakdown(rows, threshold):
    """A breakdown (by municipality, distributor, venue, month): each figure's
    column adds up to the published total of that figure."""
    original = [dict(row, key=i) for i, row in enumerate(rows)]
    shown = _suppress_columns([dict(row) for row in original], threshold)
    for field in ("cards_issued", "uses", "child_tickets"):
        line = {row["key"]: row[field] for row in original}
        hidden = {row["key"] for row in shown if row[field] is None}
        assert hidden == {row["key"] for row in shown if field in row["suppressed"]}
        assert_protected(line, hidden, threshold)
        assert all(row[field] == line[row["key"]] for row in shown if row[field] is not None)
    assert set(zero_figures()) >= {"cards_issued", "uses", "child_tickets"}
