"""Venues use cases. Synchronous; called from async code through a thread."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from kaiku_shared.eventstore import KaikuApplication, retry_on_conflict

from ..domain.model import Offering, RuleViolation, Ticket, Venue


class NotFound(Exception):
    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


class Forbidden(Exception):
    pass


class VenuesApplication(KaikuApplication):
    name = "venues"

    def _get(self, aggregate_id: UUID, what: str):
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(what, f"No {what} {aggregate_id}.") from None

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    # --- venues and offering -------------------------------------------------

    def register_venue(self, *, venue_id: UUID, organisation_id: UUID, name: str, kind: str,
                       municipality: str, one_ticket_per_card: bool,
                       max_open_reservations: int | None, ticket_agents: list[UUID]) -> Venue:
        if self._exists(venue_id):
            return self.repository.get(venue_id)  # a retried request
        venue = Venue(id=venue_id, organisation_id=organisation_id, name=name, kind=kind,
                      municipality=municipality, one_ticket_per_card=one_ticket_per_card,
                      max_open_reservations=max_open_reservations,
                      ticket_agents=list(ticket_agents))
        self.save(venue)
        return venue

    def get_venue(self, venue_id: UUID) -> Venue:
        return self._get(venue_id, "venue")

    def venue_managed_by(self, venue_id: UUID, organisation_id: UUID | None,
                         role: str) -> Venue:
        venue = self.get_venue(venue_id)
        if role != "kaikukeskus" and venue.organisation_id != organisation_id:
            raise Forbidden(f"Venue {venue_id} belongs to another organisation.")
        return venue

    def publish_offering(self, *, offering_id: UUID, venue_id: UUID,
                         organisation_id: UUID | None, role: str, title: str, kind: str,
                         genres: list[str], subgenres: list[str], starts_at: datetime,
                         capacity: int, card_cap: int) -> Offering:
        if self._exists(offering_id):
            return self.repository.get(offering_id)
        venue = self.venue_managed_by(venue_id, organisation_id, role)
        offering = Offering.publish(offering_id=offering_id, venue=venue, title=title, kind=kind, genres=genres,
                                    subgenres=subgenres, starts_at=starts_at,
                                    capacity=capacity, card_cap=card_cap)
        self.save(offering)
        return offering

    def get_offering(self, offering_id: UUID) -> Offering:
        return self._get(offering_id, "offering")

    # --- tickets ---------------------------------------------------------------

    @retry_on_conflict()
    def register_ticket(self, *, ticket_id: UUID, offering_id: UUID, card_number: str,
                        children: int, channel: str, organisation_id: UUID, role: str,
                        now: datetime) -> Ticket:
        """Take places on the offering and create the ticket, atomically."""
        if self._exists(ticket_id):
            return self.repository.get(ticket_id)  # the same request, retried
        offering = self.get_offering(offering_id)
        venue = self.get_venue(offering.venue_id)
        if not venue.may_register_for(organisation_id, role):
            raise Forbidden("Only the venue's own staff or its ticket agents may register "
                            "tickets for this offering.")
        offering.take_places(ticket_id=ticket_id, card_number=card_number,
                             children=children, now=now)
        ticket = Ticket(id=ticket_id, offering_id=offering.id, offering_title=offering.title,
                        venue_id=venue.id, venue_name=venue.name,
                        municipality=offering.municipality, starts_at=offering.starts_at,
                        card_number=card_number, children=children, channel=channel,
                        registered_by=organisation_id)
        self.save(offering, ticket)
        return ticket

    def get_ticket(self, ticket_id: UUID) -> Ticket:
        return self._get(ticket_id, "ticket")

    @retry_on_conflict()
    def cancel_ticket(self, *, ticket_id: UUID, reason: str | None, now: datetime,
                      organisation_id: UUID | None = None, role: str | None = None,
                      requested_by_holder: bool = False,
                      card_number: str | None = None) -> Ticket:
        ticket = self.get_ticket(ticket_id)
        offering = self.get_offering(ticket.offering_id)
        if requested_by_holder:
            if ticket.card_number != card_number:
                raise Forbidden("This ticket belongs to another card.")
        else:
            venue = self.get_venue(ticket.venue_id)
            if not venue.may_register_for(organisation_id, role or ""):
                raise Forbidden("Only the venue's own staff may cancel its tickets.")
        ticket.cancel(reason=reason, requested_by_holder=requested_by_holder, now=now)
        offering.release_places(ticket.id)
        self.save(ticket, offering)
        return ticket


__all__ = ["Forbidden", "NotFound", "RuleViolation", "VenuesApplication"]
