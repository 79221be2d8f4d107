"""Domain events → integration contracts. Personal fields are never copied out."""

from __future__ import annotations

from typing import Any

from kaiku_shared.contracts import (
    AccountActivatedV1,
    IntegrationEvent,
    TicketCancellationRequestedV1,
)

from ..domain.model import Account


def translate(event: Any, envelope: dict[str, Any]) -> IntegrationEvent | None:
    if isinstance(event, Account.Activated):
        return AccountActivatedV1.build(**envelope, account_id=event.originator_id,
                                        card_number=event.card_number,
                                        activated_by=event.activated_by)
    if isinstance(event, Account.CancellationRequested):
        return TicketCancellationRequestedV1.build(**envelope, account_id=event.originator_id,
                                                   ticket_id=event.ticket_id,
                                                   card_number=event.card_number)
    return None
