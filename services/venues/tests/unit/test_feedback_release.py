"""What a venue may read of its feedback (domain.feedback): nothing of an
offering whose feedback window is open, nothing of one with fewer answers than
the statistics threshold, and an overall over exactly the offerings shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from kaiku_shared.contracts import FEEDBACK_WINDOW
from venues.domain.feedback import ARRIVAL_GRACE, SUPPRESS_BELOW, releases_at, venue_feedback

STARTS = datetime(2026, 3, 1, 18, tzinfo=UTC)
CLOSED = STARTS + FEEDBACK_WINDOW + ARRIVAL_GRACE


def answers(offering, n, score, starts_at=STARTS, title="Konsertti"):
    return [{"offering_id": offering, "title": title, "starts_at": starts_at,
             "accessibility": score, "meaning": score, "interest": score}
            for _ in range(n)]


def test_the_window_is_30_days_and_release_a_day_later() -> None:
    assert FEEDBACK_WINDOW == timedelta(days=30) and SUPPRESS_BELOW == 5
    assert releases_at(STARTS) == STARTS + timedelta(days=31)


def test_nothing_is_shown_while_the_window_is_open() -> None:
    offering = uuid4()
    rows = answers(offering, 8, 4)
    early = venue_feedback(rows, CLOSED - timedelta(seconds=1))
    assert early["offerings"] == []
    assert early["overall"] == {"responses": 0, "accessibility": None, "meaning": None,
                                "interest": None}
    (withheld,) = early["withheld"]
    assert (withheld["offering_id"], withheld["reason"], withheld["releases_at"]) == (
        offering, "window-open", CLOSED)
    assert "responses" not in withheld
    late = venue_feedback(rows, CLOSED)
    assert late["withheld"] == []
    (shown,) = late["offerings"]
    assert (shown["responses"], shown["accessibility"]) == (8, 4.0)
    assert late["overall"] == {"responses": 8, "accessibility": 4.0, "meaning": 4.0,
                               "interest": 4.0}


def test_fewer_answers_than_the_threshold_are_withheld_and_left_out_of_overall() -> None:
    big, small = uuid4(), uuid4()
    rows = answers(big, SUPPRESS_BELOW, 4) + answers(small, SUPPRESS_BELOW - 1, 0)
    feedback = venue_feedback(rows, CLOSED)
    assert [o["offering_id"] for o in feedback["offerings"]] == [big]
    assert [(w["offering_id"], w["reason"]) for w in feedback["withheld"]] == [
        (small, "too-few-responses")]
    # Overall minus the offerings shown is nothing: the small one cannot be derived.
    assert feedback["overall"] == {"responses": SUPPRESS_BELOW, "accessibility": 4.0,
                                   "meaning": 4.0, "interest": 4.0}


def test_overall_counts_exactly_the_released_offerings() -> None:
    old, recent, unknown = uuid4(), uuid4(), uuid4()
    rows = (answers(old, 5, 2) + answers(old, 1, 5)
            + answers(recent, 9, 1, starts_at=STARTS + timedelta(days=20))
            + answers(unknown, 6, 3, starts_at=None, title=None))
    feedback = venue_feedback(rows, CLOSED)
    (shown,) = feedback["offerings"]
    assert (shown["offering_id"], shown["responses"], shown["accessibility"]) == (
        old, 6, 2.5)
    assert feedback["overall"]["responses"] == 6
    assert feedback["overall"]["accessibility"] == 2.5
    reasons = {w["offering_id"]: (w["reason"], w["releases_at"]) for w in feedback["withheld"]}
    assert reasons == {recent: ("window-open", releases_at(STARTS + timedelta(days=20))),
                       unknown: ("window-open", None)}
    # Once the recent one is released too, overall is the weighted mean of both.
    later = venue_feedback(rows, releases_at(STARTS + timedelta(days=20)))
    assert later["overall"]["responses"] == 15
    assert later["overall"]["accessibility"] == round((6 * 2.5 + 9 * 1) / 15, 2)
    assert sum(o["responses"] for o in later["offerings"]) == 15
