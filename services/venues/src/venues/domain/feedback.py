"""What a venue may learn from its holders' feedback: averages that can be read
neither for one person nor by difference.

* An offering's answers are released only once its feedback window has closed
  (``FEEDBACK_WINDOW`` after it starts: omakaiku refuses later answers), plus a
  day for the last answers to travel. Released figures then never change, so
  two readings a day apart cannot be subtracted to reveal one new answer.
* A released offering with fewer than ``SUPPRESS_BELOW`` answers is withheld.
* The venue's overall averages count exactly the offerings shown, so overall
  minus the offerings shown is nothing.

Pure: the rows come from ``adapters.queries``, the time from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from kaiku_shared.contracts import FEEDBACK_WINDOW

# The statistics suppression threshold: cards suppresses counts and averages of
# fewer than 5 (KAIKU_CARDS_SUPPRESS_BELOW, default 5, a cards setting that
# venues cannot read); the same number here, so no figure anywhere in the
# system rests on fewer than 5 people's answers.
SUPPRESS_BELOW = 5
# An answer given at the last moment still has to be relayed and projected:
# release a day after the window closes (a relay outage longer than a day is an
# incident operators see: relay lag).
ARRIVAL_GRACE = timedelta(days=1)
CATEGORIES = ("accessibility", "meaning", "interest")


def releases_at(starts_at: datetime) -> datetime:
    """When an offering's feedback averages may be shown."""
    return starts_at + FEEDBACK_WINDOW + ARRIVAL_GRACE


def averages(answers: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Averages per category (rounded to 2 decimals; None when there are none)."""
    count = len(answers)
    return {"responses": count, **{
        category: round(sum(a[category] for a in answers) / count, 2) if count else None
        for category in CATEGORIES}}


def venue_feedback(rows: Iterable[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """``rows``: one per answer (offering_id, title, starts_at and the scores;
    title and starts_at None while the offering is unknown), in offering order.
    Returns overall, the offerings shown and those withheld with the reason."""
    by_offering: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_offering.setdefault(row["offering_id"], []).append(row)
    shown, withheld, counted = [], [], []
    for offering_id, answers in by_offering.items():
        first = answers[0]
        about = {"offering_id": offering_id, "title": first["title"],
                 "starts_at": first["starts_at"]}
        if first["starts_at"] is None or now < releases_at(first["starts_at"]):
            withheld.append({**about, "reason": "window-open", "releases_at": (
                releases_at(first["starts_at"]) if first["starts_at"] else None)})
        elif len(answers) < SUPPRESS_BELOW:
            withheld.append({**about, "reason": "too-few-responses", "releases_at": None})
        else:
            shown.append({**about, **averages(answers)})
            counted.extend(answers)
    return {"minimum_responses": SUPPRESS_BELOW, "window_days": FEEDBACK_WINDOW.days,
            "overall": averages(counted), "offerings": shown, "withheld": withheld}
