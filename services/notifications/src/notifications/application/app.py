"""Notifications use cases. Synchronous; called from async code through a thread."""

from __future__ import annotations

from uuid import UUID

from kaiku_shared.eventstore import KaikuApplication

from ..domain.model import Bulletin


class NotificationsApplication(KaikuApplication):
    name = "notifications"

    def publish_bulletin(self, bulletin_id: UUID, title: str, body: str,
                         published_by: UUID | None) -> Bulletin:
        bulletin = Bulletin(id=bulletin_id, title=title, body=body, published_by=published_by)
        self.save(bulletin)
        return bulletin
