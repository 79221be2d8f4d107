"""Holders' cancellation requests from omakaiku, applied to venues' tickets."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import TicketCancellationRequestedV1
from kaiku_shared.eventstore import meta_scope

from ..application.app import Forbidden, NotFound, RuleViolation, VenuesApplication

log = logging.getLogger("venues.holder_requests")
CONSUMER = "venues-holder-cancellations"


def consumers(application: VenuesApplication) -> list[Consumer]:
    requests = Consumer(CONSUMER, "omakaiku")

    @requests.on(TicketCancellationRequestedV1)
    async def on_ticket_cancellation_requested(
        event: TicketCancellationRequestedV1, conn: asyncpg.Connection
    ) -> None:
        def cancel() -> None:
            # The cancellation's events are caused by the holder's request.
            with meta_scope(causation_id=str(event.event_id),
                            correlation_id=event.correlation_id,
                            traceparent=event.traceparent):
                application.cancel_ticket(
                    ticket_id=event.ticket_id, reason="holder cancelled",
                    now=datetime.now(UTC), requested_by_holder=True,
                    card_number=event.card_number)

        try:
            await asyncio.to_thread(cancel)
        except RuleViolation as refusal:
            # Already cancelled (a redelivery) or too late: nothing to do here;
            # omakaiku shows the ticket's real status from venues' events.
            log.info("holder cancellation not applied",
                     extra={"rule": refusal.rule, "ticket_id": str(event.ticket_id)})
        except (NotFound, Forbidden) as refusal:
            log.warning("holder cancellation refused",
                        extra={"reason": type(refusal).__name__,
                               "ticket_id": str(event.ticket_id)})

    return [requests]
