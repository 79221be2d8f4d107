"""Holders' cancellation requests from omakaiku, applied to venues' tickets.

A request venues refuses (the event has started, not the holder's ticket) is
recorded on the ticket, so the relay publishes TicketCancellationRefused and
omakaiku can tell the holder why.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import TicketCancellationRequestedV1
from kaiku_shared.eventstore import meta_scope
from kaiku_shared.kernel.errors import Forbidden, NotFound, RuleViolation

from ..application.app import VenuesApplication

log = logging.getLogger("venues.holder_requests")
CONSUMER = "venues-holder-cancellations"


def consumers(application: VenuesApplication) -> list[Consumer]:
    """``application`` is None in an audit, which only reads names and contracts."""
    requests = Consumer(CONSUMER, "omakaiku")

    @requests.on(TicketCancellationRequestedV1)
    async def apply(event: TicketCancellationRequestedV1, conn: asyncpg.Connection) -> None:
        await on_ticket_cancellation_requested(event, application)

    return [requests]


async def on_ticket_cancellation_requested(event: TicketCancellationRequestedV1,
                                           application: VenuesApplication) -> None:
    """Cancel the holder's ticket, or record why venues refuses to."""

    def cancel() -> None:
        # The cancellation's events are caused by the holder's request.
        with _caused_by(event):
            application.cancel_ticket(
                ticket_id=event.ticket_id, reason="holder cancelled",
                now=datetime.now(UTC), requested_by_holder=True,
                card_number=event.card_number)

    # Forbidden and NotFound are RuleViolations too: they are caught first.
    try:
        await asyncio.to_thread(cancel)
    except Forbidden:
        await _refuse(application, event, "not-your-ticket",
                      "This ticket belongs to another card.")
    except NotFound:
        log.warning("holder cancellation for an unknown ticket",
                    extra={"ticket_id": str(event.ticket_id)})
    except RuleViolation as refusal:
        if refusal.rule == "already-cancelled":
            # A repeated request (or the venue cancelled first): the ticket's
            # TicketCancelled already told omakaiku.
            log.info("holder cancellation already applied",
                     extra={"ticket_id": str(event.ticket_id)})
            return
        await _refuse(application, event, refusal.rule, str(refusal))


async def _refuse(application: VenuesApplication, event: TicketCancellationRequestedV1,
                  rule: str, detail: str) -> None:
    """Record the refusal on the ticket: the relay publishes it for omakaiku."""

    def record() -> None:
        with _caused_by(event):
            application.refuse_holder_cancellation(
                ticket_id=event.ticket_id, request_id=str(event.event_id),
                account_id=event.account_id, rule=rule, detail=detail)

    await asyncio.to_thread(record)
    log.info("holder cancellation refused",
             extra={"rule": rule, "ticket_id": str(event.ticket_id)})


def _caused_by(event: TicketCancellationRequestedV1) -> AbstractContextManager[None]:
    return meta_scope(causation_id=str(event.event_id), correlation_id=event.correlation_id,
                      traceparent=event.traceparent)
