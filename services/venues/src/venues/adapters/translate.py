"""Domain events → integration contracts. Bookkeeping of places stays inside.

One translator per domain event that leaves venues (``TRANSLATORS``); any other
domain event (places taken, reservations counted) has none and is not published.
"""

from __future__ import annotations

from collections.abc import Callable
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

from kaiku_shared.contracts.events import VenueContact

from ..domain.model import LibraryFees, Offering, SwimmingSeries, Ticket, Venue

Envelope = dict[str, Any]
Translator = Callable[[Any, Envelope], IntegrationEvent]


def translate(event: Any, envelope: Envelope) -> IntegrationEvent | None:
    for cls in type(event).__mro__:  # a subclass is translated as its base
        translator = TRANSLATORS.get(cls)
        if translator is not None:
            return translator(event, envelope)
    return None


def _ticket_registered(event: Ticket.Registered, envelope: Envelope) -> IntegrationEvent:
    return TicketRegisteredV1.build(
        **envelope, ticket_id=event.originator_id, offering_id=event.offering_id,
        offering_title=event.offering_title, venue_id=event.venue_id,
        venue_name=event.venue_name, municipality=event.municipality,
        starts_at=event.starts_at, card_number=event.card_number,
        children=event.children, channel=event.channel, registered_by=event.registered_by,
        # as Offering.take_places counts them: the holder, the children, a companion
        places=1 + event.children + (1 if getattr(event, "companion", None) else 0),
    )


def _ticket_cancelled(event: Ticket.Cancelled, envelope: Envelope) -> IntegrationEvent:
    return TicketCancelledV1.build(
        **envelope, ticket_id=event.originator_id, offering_id=event.offering_id,
        venue_id=event.venue_id, card_number=event.card_number, children=event.children,
        reason=event.reason, requested_by_holder=event.requested_by_holder,
    )


def _ticket_cancellation_refused(event: Ticket.CancellationRefused,
                                 envelope: Envelope) -> IntegrationEvent:
    return TicketCancellationRefusedV1.build(
        **envelope, ticket_id=event.originator_id, account_id=event.account_id,
        card_number=event.card_number, rule=event.rule, detail=event.detail,
        request_event_id=event.request_id,
    )


def _offering_published(event: Offering.Published, envelope: Envelope) -> IntegrationEvent:
    return OfferingPublishedV1.build(
        **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
        venue_name=event.venue_name, title=event.title, kind=event.kind,
        genres=tuple(event.genres), subgenres=tuple(event.subgenres),
        starts_at=event.starts_at, municipality=event.municipality,
        capacity=event.capacity, card_cap=event.card_cap,
    )


def _offering_terms_published(event: Offering.TermsPublished,
                              envelope: Envelope) -> IntegrationEvent:
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


def _offering_changed(event: Offering.Changed, envelope: Envelope) -> IntegrationEvent:
    return OfferingChangedV1.build(
        **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
        title=event.title, starts_at=event.starts_at, capacity=event.capacity,
        card_cap=event.card_cap, sales_opens_at=event.sales_opens_at,
    )


def _offering_cancelled(event: Offering.Cancelled, envelope: Envelope) -> IntegrationEvent:
    return OfferingCancelledV1.build(
        **envelope, offering_id=event.originator_id, venue_id=event.venue_id,
        title=event.title, starts_at=event.starts_at, reason=event.reason,
        tickets_cancelled=len(event.ticket_ids),
    )


def _venue_registered(event: Venue.Registered, envelope: Envelope) -> IntegrationEvent:
    return VenueRegisteredV1.build(
        **envelope, venue_id=event.originator_id, organisation_id=event.organisation_id,
        name=event.name, kind=event.kind, municipality=event.municipality,
        contact=VenueContact(**event.contact) if getattr(event, "contact", None) else None,
    )


def _venue_ticket_agents_changed(event: Venue.TicketAgentsChanged,
                                 envelope: Envelope) -> IntegrationEvent:
    return VenueChangedV1.build(
        **envelope, venue_id=event.originator_id, organisation_id=event.organisation_id,
        changed=("ticket_agents",), ticket_agents=tuple(event.ticket_agents))


def _venue_profile_changed(event: Venue.ProfileChanged,
                           envelope: Envelope) -> IntegrationEvent:
    return VenueChangedV1.build(
        **envelope, venue_id=event.originator_id, organisation_id=event.organisation_id,
        changed=("name", "contact"), ticket_agents=tuple(event.ticket_agents),
        name=event.name, contact=VenueContact(**event.contact))


def _venue_limits_changed(event: Venue.LimitsChanged, envelope: Envelope) -> IntegrationEvent:
    # The limits themselves travel with each offering published from now on
    # (OfferingTermsPublished); readers of the venue re-read its profile.
    return VenueChangedV1.build(
        **envelope, venue_id=event.originator_id, organisation_id=event.organisation_id,
        changed=("limits",), ticket_agents=tuple(event.ticket_agents), name=event.name,
        contact=VenueContact(**event.contact))


def _swimming_visit_registered(event: SwimmingSeries.VisitRegistered,
                               envelope: Envelope) -> IntegrationEvent:
    return SwimmingVisitRegisteredV1.build(
        **envelope, venue_id=event.venue_id, card_number=event.card_number,
        year=event.year, children=event.children, visits=event.visits,
        visits_used=event.visits_used, visits_per_year=event.visits_per_year,
        registered_by=event.registered_by,
    )


def _library_fee_covered(event: LibraryFees.Covered, envelope: Envelope) -> IntegrationEvent:
    return LibraryFeeCoveredV1.build(
        **envelope, venue_id=event.venue_id, card_number=event.card_number,
        year=event.year, fee_type=event.fee_type, amount_cents=event.amount_cents,
        year_total_cents=event.year_total_cents, cap_cents=event.cap_cents,
        registered_by=event.registered_by,
    )


TRANSLATORS: dict[type, Translator] = {
    Ticket.Registered: _ticket_registered,
    Ticket.Cancelled: _ticket_cancelled,
    Ticket.CancellationRefused: _ticket_cancellation_refused,
    Offering.Published: _offering_published,
    Offering.TermsPublished: _offering_terms_published,
    Offering.Changed: _offering_changed,
    Offering.Cancelled: _offering_cancelled,
    Venue.Registered: _venue_registered,
    Venue.TicketAgentsChanged: _venue_ticket_agents_changed,
    Venue.ProfileChanged: _venue_profile_changed,
    Venue.LimitsChanged: _venue_limits_changed,
    SwimmingSeries.VisitRegistered: _swimming_visit_registered,
    LibraryFees.Covered: _library_fee_covered,
}
