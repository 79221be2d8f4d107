"""Domain events → integration contracts. Bookkeeping of places stays inside."""

from __future__ import annotations

from typing import Any

from kaiku_shared.contracts import (
    IntegrationEvent,
    LibraryFeeCoveredV1,
    OfferingCancelledV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OfferingTermsPublishedV1,
    SwimmingVisitRegisteredV1,
    TicketCancellationRefusedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueChangedV1,
    VenueRegisteredV1,
)

from ..domain.model import LibraryFees, Offering, SwimmingSeries, Ticket, Venue


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
    if isinstance(event, Ticket.CancellationRefused):
        return TicketCancellationRefusedV1.build(
            **envelope, ticket_id=event.originator_id, account_id=event.account_id,
            card_number=event.card_number, rule=event.rule, detail=event.detail,
            request_event_id=event.request_id,
        )
    if isinstance(event, Offering.Published):
        return OfferingPublishedV1.build(
            **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
            venue_name=event.venue_name, title=event.title, kind=event.kind,
            genres=tuple(event.genres), subgenres=tuple(event.subgenres),
            starts_at=event.starts_at, municipality=event.municipality,
            capacity=event.capacity, card_cap=event.card_cap,
        )
    if isinstance(event, Offering.TermsPublished):
        limits = event.limits
        return OfferingTermsPublishedV1.build(
            **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
            venue_kind=event.venue_kind, production=event.production,
            sales_opens_at=event.sales_opens_at,
            card_tickets_excluded=event.card_tickets_excluded,
            one_ticket_per_card=bool(limits.get("one_ticket_per_card")),
            max_open_reservations=limits.get("max_open_reservations"),
            weekends_excluded=bool(limits.get("weekends_excluded")),
            excluded_productions=tuple(limits.get("excluded_productions") or ()),
        )
    if isinstance(event, Offering.Changed):
        return OfferingChangedV1.build(
            **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
            title=event.title, starts_at=event.starts_at, capacity=event.capacity,
            card_cap=event.card_cap, sales_opens_at=event.sales_opens_at,
        )
    if isinstance(event, Offering.Cancelled):
        return OfferingCancelledV1.build(
            **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
            title=event.title, starts_at=event.starts_at, reason=event.reason,
            tickets_cancelled=len(event.ticket_ids),
        )
    if isinstance(event, Venue.Registered):
        return VenueRegisteredV1.build(
            **envelope, venue_id=event.originator_id, organisation_id=event.organisation_id,
            name=event.name, kind=event.kind, municipality=event.municipality,
        )
    if isinstance(event, Venue.TicketAgentsChanged):
        return VenueChangedV1.build(
            **envelope, venue_id=event.originator_id, organisation_id=event.organisation_id,
            changed=("ticket_agents",), ticket_agents=tuple(event.ticket_agents))
    if isinstance(event, SwimmingSeries.VisitRegistered):
        return SwimmingVisitRegisteredV1.build(
            **envelope, venue_id=event.venue_id, card_number=event.card_number,
            year=event.year, children=event.children, visits=event.visits,
            visits_used=event.visits_used, visits_per_year=event.visits_per_year,
            registered_by=event.registered_by,
        )
    if isinstance(event, LibraryFees.Covered):
        return LibraryFeeCoveredV1.build(
            **envelope, venue_id=event.venue_id, card_number=event.card_number,
            year=event.year, fee_type=event.fee_type, amount_cents=event.amount_cents,
            year_total_cents=event.year_total_cents, cap_cents=event.cap_cents,
            registered_by=event.registered_by,
        )
    return None
