"""Notifications use cases. Synchronous; called from async code through a thread.

Creations take ids derived by the caller (from an Idempotency-Key, or claimed in
the read model for hand-overs); saving an id that exists already means the use
case ran before, so it returns what is stored instead of acting twice.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from kaiku_shared.eventstore import KaikuApplication

from ..domain.model import (
    Bulletin,
    Message,
    NotificationBatch,
    NotificationDigest,
    Party,
    Sealer,
)

A = TypeVar("A", bound=Aggregate)


class NotificationsApplication(KaikuApplication):
    name = "notifications"

    def _save_once(self, aggregate: A) -> A:
        try:
            self.save(aggregate)
        except IntegrityError:
            return self.repository.get(aggregate.id)  # done before: same id, same facts
        return aggregate

    def publish_bulletin(self, bulletin_id: UUID, title: str, body: str,
                         published_by: UUID | None, today: date,
                         valid_until: date | None = None) -> Bulletin:
        last_day = Bulletin.last_day(today, valid_until)
        return self._save_once(
            Bulletin(id=bulletin_id, title=title, body=body, published_by=published_by,
                     valid_until=last_day.isoformat()))

    def send_message(self, message_id: UUID, sender: Party, recipient: Party, subject: str,
                     body: str, in_reply_to: UUID | None = None,
                     seal: Sealer | None = None) -> Message:
        return self._save_once(
            Message.send(message_id, sender, recipient, subject, body, in_reply_to, seal))

    def issue_batch(self, batch_id: UUID, kind: str, source_id: UUID, template_key: str,
                    params: dict[str, str], account_ids: list[str]) -> NotificationBatch:
        return self._save_once(NotificationBatch(
            id=batch_id, kind=kind, source_id=source_id, template_key=template_key,
            params=params, account_ids=account_ids))

    def issue_digest(self, digest_id: UUID, account_id: UUID, digest_date: date,
                     items: list[dict[str, Any]]) -> NotificationDigest:
        return self._save_once(NotificationDigest(
            id=digest_id, account_id=account_id, digest_date=digest_date, items=items))
