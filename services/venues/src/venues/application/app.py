"""Venues use cases. Synchronous; called from async code through a thread."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError

from kaiku_shared.eventstore import KaikuApplication, retry_on_conflict

from ..domain.model import (
    DEFAULT_TIMEZONE,
    CardReservations,
    LibraryFees,
    Offering,
    RuleViolation,
    SwimmingSeries,
    Ticket,
    Venue,
)


class NotFound(Exception):
    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


class Forbidden(Exception):
    pass


def _utcnow() -> datetime:
    return datetime.now(UTC)


class VenuesApplication(KaikuApplication):
    name = "venues"

    def _get(self, aggregate_id: UUID, what: str) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(what, f"No {what} {aggregate_id}.") from None

    def _get_or_none(self, aggregate_id: UUID) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    # --- venues and offering -------------------------------------------------

    def register_venue(self, *, venue_id: UUID, organisation_id: UUID, name: str, kind: str,
                       municipality: str, one_ticket_per_card: bool,
                       max_open_reservations: int | None, ticket_agents: list[UUID],
                       contact: dict[str, str] | None = None,
                       weekends_excluded: bool = False,
                       excluded_productions: list[str] | None = None,
                       series_visits_per_year: int | None = None,
                       library_fee_cap_cents: int | None = None,
                       timezone: str = DEFAULT_TIMEZONE) -> Venue:
        if self._exists(venue_id):
            return self.repository.get(venue_id)  # a retried request
        venue = Venue.register(
            venue_id=venue_id, organisation_id=organisation_id, name=name, kind=kind,
            municipality=municipality, one_ticket_per_card=one_ticket_per_card,
            max_open_reservations=max_open_reservations, ticket_agents=list(ticket_agents),
            contact=contact, weekends_excluded=weekends_excluded,
            excluded_productions=excluded_productions,
            series_visits_per_year=series_visits_per_year,
            library_fee_cap_cents=library_fee_cap_cents, timezone=timezone)
        self.save(venue)
        return venue

    def get_venue(self, venue_id: UUID) -> Venue:
        return self._get(venue_id, "venue")

    def venue_managed_by(self, venue_id: UUID, organisation_id: UUID | None,
                         role: str) -> Venue:
        venue = self.get_venue(venue_id)
        if role == "kaikukeskus":
            return venue
        if role != "venue" or venue.organisation_id != organisation_id:
            raise Forbidden(f"Venue {venue_id} belongs to another organisation.")
        return venue

    def publish_offering(self, *, offering_id: UUID, venue_id: UUID,
                         organisation_id: UUID | None, role: str, title: str, kind: str,
                         genres: list[str], subgenres: list[str], starts_at: datetime,
                         capacity: int, card_cap: int, production: str = "own",
                         sales_opens_at: datetime | None = None,
                         now: datetime | None = None) -> Offering:
        if self._exists(offering_id):
            return self.repository.get(offering_id)
        venue = self.venue_managed_by(venue_id, organisation_id, role)
        offering = Offering.publish(offering_id=offering_id, venue=venue, title=title,
                                    kind=kind, genres=genres, subgenres=subgenres,
                                    starts_at=starts_at, capacity=capacity, card_cap=card_cap,
                                    production=production, sales_opens_at=sales_opens_at,
                                    now=now or _utcnow())
        self.save(offering)
        return offering

    def get_offering(self, offering_id: UUID) -> Offering:
        return self._get(offering_id, "offering")

    def _offering_managed_by(self, offering_id: UUID, organisation_id: UUID | None,
                             role: str) -> Offering:
        offering = self.get_offering(offering_id)
        self.venue_managed_by(offering.venue_id, organisation_id, role)
        return offering

    @retry_on_conflict()
    def change_offering(self, *, offering_id: UUID, organisation_id: UUID | None, role: str,
                        now: datetime, **changes: Any) -> Offering:
        offering = self._offering_managed_by(offering_id, organisation_id, role)
        if offering.change(now=now, **changes):
            self.save(offering)
        return offering

    @retry_on_conflict()
    def cancel_offering(self, *, offering_id: UUID, organisation_id: UUID | None, role: str,
                        reason: str | None, now: datetime) -> tuple[Offering, list[Ticket]]:
        """Cancel the offering and every ticket on it, in one transaction."""
        offering = self._offering_managed_by(offering_id, organisation_id, role)
        ticket_ids = offering.cancel(reason=reason, now=now)
        tickets: list[Ticket] = []
        reservations: dict[UUID, CardReservations | None] = {}
        for ticket_id in ticket_ids:
            ticket = self.get_ticket(UUID(ticket_id))
            ticket.cancel(reason=reason or "offering cancelled", requested_by_holder=False,
                          now=now, starts_at=offering.starts_at)
            tickets.append(ticket)
            held_id = CardReservations.id_for(offering.venue_id, ticket.card_number)
            if held_id not in reservations:
                reservations[held_id] = self._get_or_none(held_id)
            held = reservations[held_id]
            if held is not None:
                held.release(ticket.id)
        self.save(offering, *tickets, *(r for r in reservations.values() if r is not None))
        return offering, tickets

    # --- tickets ---------------------------------------------------------------

    @retry_on_conflict()
    def register_ticket(self, *, ticket_id: UUID, offering_id: UUID, card_number: str,
                        children: int, channel: str, organisation_id: UUID, role: str,
                        now: datetime, companion: str | None = None) -> Ticket:
        """Take places on the offering, count the card's open reservations at the
        venue (when it limits them) and create the ticket: one transaction."""
        if self._exists(ticket_id):
            return self.repository.get(ticket_id)  # the same request, retried
        offering = self.get_offering(offering_id)
        venue = self.get_venue(offering.venue_id)
        if not venue.may_register_for(organisation_id, role):
            raise Forbidden("Only the venue's own staff or its ticket agents may register "
                            "tickets for this offering.")
        offering.take_places(ticket_id=ticket_id, card_number=card_number,
                             children=children, now=now, companion=companion)
        changed: list[Any] = [offering]
        # Only venues that chose the limit pay for the per-card aggregate (limits are
        # fixed when the venue registers; a future "change limits" must count from then).
        if venue.max_open_reservations is not None:
            reservations_id = CardReservations.id_for(venue.id, card_number)
            reservations = self._get_or_none(reservations_id) or CardReservations(
                id=reservations_id, venue_id=venue.id, card_number=card_number)
            reservations.reserve(ticket_id=ticket_id, starts_at=offering.starts_at,
                                 limit=venue.max_open_reservations, now=now)
            changed.append(reservations)
        ticket = Ticket(id=ticket_id, offering_id=offering.id, offering_title=offering.title,
                        venue_id=venue.id, venue_name=venue.name,
                        municipality=offering.municipality, starts_at=offering.starts_at,
                        card_number=card_number, children=children, channel=channel,
                        registered_by=organisation_id, companion=companion)
        self.save(*changed, ticket)
        return ticket

    def get_ticket(self, ticket_id: UUID) -> Ticket:
        return self._get(ticket_id, "ticket")

    def open_reservations(self, venue_id: UUID, card_number: str, now: datetime) -> int:
        held = self._get_or_none(CardReservations.id_for(venue_id, card_number))
        return held.open_count(now) if held else 0

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
        ticket.cancel(reason=reason, requested_by_holder=requested_by_holder, now=now,
                      starts_at=offering.starts_at)
        offering.release_places(ticket.id)
        changed: list[Any] = [ticket, offering]
        held = self._get_or_none(CardReservations.id_for(ticket.venue_id, ticket.card_number))
        if held is not None:
            held.release(ticket.id)
            changed.append(held)
        self.save(*changed)
        return ticket

    @retry_on_conflict()
    def refuse_holder_cancellation(self, *, ticket_id: UUID, request_id: str,
                                   account_id: UUID, rule: str, detail: str) -> bool:
        """Record the refusal so omakaiku can show it; once per request."""
        ticket = self._get_or_none(ticket_id)
        if ticket is None:
            return False
        if ticket.refuse_cancellation(request_id=request_id, account_id=account_id,
                                      rule=rule, detail=detail):
            self.save(ticket)
            return True
        return False

    # --- swimming halls and libraries ------------------------------------------------

    def _local_year(self, venue: Venue, now: datetime) -> int:
        return now.astimezone(ZoneInfo(venue.timezone)).year

    @retry_on_conflict()
    def register_swimming_visit(self, *, visit_id: UUID, venue_id: UUID, card_number: str,
                                children: int, organisation_id: UUID, role: str,
                                now: datetime) -> SwimmingSeries:
        venue = self.get_venue(venue_id)
        if not venue.may_register_for(organisation_id, role):
            raise Forbidden("Only the venue's own staff or its ticket agents register visits.")
        if venue.kind != "swimming_hall":
            raise RuleViolation("not-a-swimming-hall",
                                "Series visits are registered at swimming halls only.",
                                status=422)
        year = self._local_year(venue, now)
        series_id = SwimmingSeries.id_for(venue.id, card_number, year)
        series = self._get_or_none(series_id) or SwimmingSeries(
            id=series_id, venue_id=venue.id, card_number=card_number, year=year,
            visits_per_year=venue.series_visits_per_year)
        if series.register_visit(visit_id=visit_id, children=children,
                                 registered_by=organisation_id):
            self.save(series)
        return series

    @retry_on_conflict()
    def cover_library_fee(self, *, fee_id: UUID, venue_id: UUID, card_number: str,
                          fee_type: str, amount_cents: int, organisation_id: UUID, role: str,
                          now: datetime) -> LibraryFees:
        venue = self.get_venue(venue_id)
        if not venue.may_register_for(organisation_id, role):
            raise Forbidden("Only the library's own staff register covered fees.")
        if venue.kind != "library":
            raise RuleViolation("not-a-library", "Fees are covered at libraries only.",
                                status=422)
        year = self._local_year(venue, now)
        fees_id = LibraryFees.id_for(venue.id, card_number, year)
        fees = self._get_or_none(fees_id) or LibraryFees(
            id=fees_id, venue_id=venue.id, card_number=card_number, year=year,
            cap_cents=venue.library_fee_cap_cents)
        if fees.cover(fee_id=fee_id, fee_type=fee_type, amount_cents=amount_cents,
                      registered_by=organisation_id):
            self.save(fees)
        return fees


__all__ = ["Forbidden", "NotFound", "RuleViolation", "VenuesApplication"]
