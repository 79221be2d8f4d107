"""The holder's own export: what the event store knows that no table does —
the feedback the holder gave, which only omakaiku links to a ticket."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ..domain.model import SCORES, Feedback
from .app import OmaKaikuApplication


def feedback_by_ticket(app: OmaKaikuApplication, ticket_ids: list[UUID]
                       ) -> dict[str, dict[str, Any]]:
    """The answer given for each ticket that has one, by ticket id."""
    given: dict[str, dict[str, Any]] = {}
    for ticket_id in ticket_ids:
        try:
            feedback = app.repository.get(Feedback.create_id(ticket_id))
        except AggregateNotFoundError:
            continue
        if isinstance(feedback, Feedback):
            given[str(ticket_id)] = {
                **{score: getattr(feedback, score) for score in SCORES},
                "given_at": feedback.created_on}
    return given
