"""Domain events → integration contracts. Offering's place bookkeeping stays inside."""

from __future__ import annotations

from typing import Any

from kaiku_shared.contracts import (
    IntegrationEvent,
    OfferingPublishedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueRegisteredV1,
)

from ..domain.model import Offering, Ticket, Venue


def translate(event: Any, envelope: dict[str, Any]) -> IntegrationEvent | None:
    if isinstance(event, Ticket.Registered):
        return TicketRegisteredV1.build(
            **envelope, ticket_id=event.originator_id, offering_id=event.offering_id,
            offering_title=event.offering_title, venue_id=event.venue_id,
            venue_name=event.venue_name, municipality=event.municipality,
            starts_at=event.starts_at, card_number=event.card_number,
            children=event.children, channel=event.channel, registered_by=event.registered_by,
        )
    if isinstance(event, Ticket.Cancelled):
        return TicketCancelledV1.build(
            **envelope, ticket_id=event.originator_id, offering_id=event.offering_id,
            venue_id=event.venue_id, card_number=event.card_number, children=event.children,
            reason=event.reason, requested_by_holder=event.requested_by_holder,
        )
    if isinstance(event, Offering.Published):
        return OfferingPublishedV1.build(
            **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
            venue_name=event.venue_name, title=event.title, kind=event.kind,
            genres=tuple(event.genres), subgenres=tuple(event.subgenres),
            starts_at=event.starts_at, municipality=event.municipality,
            capacity=event.capacity, card_cap=event.card_cap,
        )
    if isinstance(event, Venue.Registered):
        return VenueRegisteredV1.build(
            **envelope, venue_id=event.originator_id, organisation_id=event.organisation_id,
            name=event.name, kind=event.kind, municipality=event.municipality,
        )
    return None
