"""Notifications' aggregates. Holders appear only as opaque account ids."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event


class Bulletin(Aggregate):
    """A message from Kaikukeskus to every organisation and holder."""

    @event("Published")
    def __init__(self, id: UUID, title: str, body: str, published_by: UUID | None  # noqa: A002
                 ) -> None:
        self.title = title
        self.body = body
        self.published_by = published_by
