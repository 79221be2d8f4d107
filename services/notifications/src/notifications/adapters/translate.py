"""Domain events → integration contracts, for the relay."""

from __future__ import annotations

from typing import Any

from kaiku_shared.contracts import (
    BulletinPublishedV1,
    IntegrationEvent,
    MessageSentV1,
    NotificationBatchIssuedV1,
    NotificationDigestIssuedV1,
)

from ..domain.model import Bulletin, Message, NotificationBatch, NotificationDigest


def translate(event: Any, envelope: dict[str, Any]) -> IntegrationEvent | None:
    if isinstance(event, NotificationBatch.Issued):
        return NotificationBatchIssuedV1.build(
            **envelope, batch_id=event.originator_id, kind=event.kind,
            source_id=event.source_id, template_key=event.template_key, params=event.params,
            account_ids=tuple(event.account_ids))
    if isinstance(event, NotificationDigest.Issued):
        return NotificationDigestIssuedV1.build(
            **envelope, digest_id=event.originator_id, account_id=event.account_id,
            digest_date=event.digest_date, items=tuple(event.items))
    if isinstance(event, Message.Sent):
        sender, recipient = event.sender, event.recipient
        return MessageSentV1.build(
            **envelope, message_id=event.originator_id,
            sender_kind=sender["kind"], sender_organisation_id=sender["organisation_id"],
            sender_account_id=sender["account_id"], sender_user_id=sender["user_id"],
            recipient_kind=recipient["kind"],
            recipient_organisation_id=recipient["organisation_id"],
            recipient_account_id=recipient["account_id"],
            recipient_card_number=recipient["card_number"],
            recipient_user_id=recipient["user_id"])
    if isinstance(event, Bulletin.Published):
        return BulletinPublishedV1.build(**envelope, bulletin_id=event.originator_id,
                                         title=event.title, body=event.body)
    return None
