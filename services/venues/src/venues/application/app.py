"""Venues use cases. Synchronous; called from async code through a thread."""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from kaiku_shared.eventstore import KaikuApplication, retry_on_conflict
from kaiku_shared.kernel.errors import Forbidden, NotFound

from ..domain.model import (
    DEFAULT_TIMEZONE,
    CardReservations,
    CardStanding,
    LibraryFees,
    Offering,
    RuleViolation,
    SwimmingSeries,
    Ticket,
    Venue,
)


class CardNotKnownYet(Exception):
    """The card is not in venues' copy of Kaikukanta (perhaps not *yet*)."""


class LatestAggregates:
    """The last saved state of the aggregates a registration decides on.

    A box office must not wait for its offering's whole history to be read
    again for every ticket. Each command decides on a *copy* of the state this
    process last saved or loaded. The copy may be stale — another process may
    have written since — but then the event store's version check turns the
    save into a conflict, the entry is dropped, and ``retry_on_conflict``
    decides again on state read afresh: a stale copy costs a retry, never a
    wrong ticket. Bounded (least recently used out first).
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self._entries: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def copy_of(self, aggregate_id: UUID) -> Any | None:
        with self._lock:
            entry = self._entries.get(aggregate_id)
            if entry is None:
                return None
            self._entries.move_to_end(aggregate_id)
        return copy.deepcopy(entry)

    def remember(self, aggregate: Aggregate) -> None:
        """Keep ``aggregate`` as saved; the caller must not change it afterwards."""
        with self._lock:
            self._entries[aggregate.id] = aggregate
            self._entries.move_to_end(aggregate.id)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def shared(self, aggregate_id: UUID) -> Any | None:
        """The entry itself, not a copy: only to read, never to decide on and save."""
        with self._lock:
            return self._entries.get(aggregate_id)

    def forget(self, aggregate_id: UUID) -> None:
        with self._lock:
            self._entries.pop(aggregate_id, None)


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

    # --- deciding on the latest known state --------------------------------------

    @property
    def latest(self) -> LatestAggregates:
        if not hasattr(self, "_latest"):
            self._latest = LatestAggregates()
            self._venue_read_at: dict[UUID, float] = {}
        return self._latest

    def _for_decision(self, aggregate_id: UUID, what: str) -> Any:
        """A private copy of the aggregate to decide on (see LatestAggregates)."""
        aggregate = self.latest.copy_of(aggregate_id)
        if aggregate is None:
            aggregate = self._get(aggregate_id, what)
            self.latest.remember(copy.deepcopy(aggregate))
        return aggregate

    def _for_decision_or_none(self, aggregate_id: UUID) -> Any | None:
        try:
            return self._for_decision(aggregate_id, "aggregate")
        except NotFound:
            return None

    # A venue read for registrations is used for this long before it is read
    # again: a change made in another api process (a ticket agent removed) is
    # honoured here within this time; one made in this process at once.
    VENUE_FRESH_SECONDS = 1.0

    def _venue(self, venue_id: UUID) -> Venue:
        # Only read, never saved from here: the cached one is shared, not copied.
        venue = self.latest.shared(venue_id)
        read_at = self._venue_read_at.get(venue_id, 0.0)
        if venue is None or time.monotonic() - read_at > self.VENUE_FRESH_SECONDS:
            venue = self.get_venue(venue_id)
            self.latest.remember(venue)
            self._venue_read_at[venue_id] = time.monotonic()
        return venue

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Save; then remember what was saved for the next decision — or, when
        the save failed (a conflict), forget it so the retry reads afresh."""
        try:
            recordings = super().save(*objs, **kwargs)
        except BaseException:
            for obj in objs:
                if isinstance(obj, Aggregate):
                    self.latest.forget(obj.id)
            raise
        for obj in objs:
            if isinstance(obj, (Offering, CardReservations)):
                self.latest.remember(copy.deepcopy(obj))
        return recordings

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

    @retry_on_conflict()
    def change_venue(self, venue_id: UUID, organisation_id: UUID | None, role: str, *,
                     name: str | None = None, contact: dict[str, str] | None = None,
                     limits: dict[str, Any] | None = None,
                     ticket_agents: list[UUID] | None = None) -> tuple[Venue, list[str]]:
        """Change the venue's profile, limits and ticket agents in one transaction:
        one event per part that changes. Returns the venue and what changed."""
        venue = self.venue_managed_by(venue_id, organisation_id, role)
        changed: list[str] = []
        if (name is not None or contact is not None) and \
                venue.change_profile(name=name, contact=contact):
            changed.append("profile")
        if limits and venue.change_limits(**limits):
            changed.append("limits")
        if ticket_agents is not None and venue.change_ticket_agents(ticket_agents):
            changed.append("ticket_agents")
        if changed:
            self.save(venue)
            self.latest.forget(venue_id)  # this process's registrations read it afresh
        return venue, changed

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
                        card: CardStanding | None, children: int, channel: str,
                        organisation_id: UUID, role: str, now: datetime,
                        companion: str | None = None, may_be_retry: bool = True) -> Ticket:
        """Take places on the offering, count the card's open reservations at the
        venue (when it limits them) and create the ticket: one transaction.

        Checked in this order: who registers (another venue learns nothing about
        the card), the card on the event date, then the offering's rules.
        ``may_be_retry`` is false when the ticket id is new (no Idempotency-Key),
        which saves looking for an earlier answer that cannot exist.
        """
        if may_be_retry and self._exists(ticket_id):
            return self.repository.get(ticket_id)  # the same request, retried
        # A refusal must come from the current state, not from a copy that another
        # process has overtaken (a place freed there): refused on a cached copy,
        # decide once more on state read afresh.
        cached = self.latest.shared(offering_id)
        try:
            return self._take_places_and_save(
                ticket_id=ticket_id, offering_id=offering_id, card_number=card_number,
                card=card, children=children, channel=channel,
                organisation_id=organisation_id, role=role, now=now, companion=companion)
        except (Forbidden, NotFound):
            raise  # not the offering's rules: deciding afresh would not change them
        except RuleViolation:
            if cached is None:
                raise
        self.latest.forget(offering_id)
        self.latest.forget(CardReservations.id_for(cached.venue_id, card_number))
        return self._take_places_and_save(
            ticket_id=ticket_id, offering_id=offering_id, card_number=card_number, card=card,
            children=children, channel=channel, organisation_id=organisation_id, role=role,
            now=now, companion=companion)

    def _take_places_and_save(self, *, ticket_id: UUID, offering_id: UUID, card_number: str,
                              card: CardStanding | None, children: int, channel: str,
                              organisation_id: UUID, role: str, now: datetime,
                              companion: str | None) -> Ticket:
        offering: Offering = self._for_decision(offering_id, "offering")
        venue = self._venue(offering.venue_id)
        if not venue.may_register_for(organisation_id, role):
            raise Forbidden("Only the venue's own staff or its ticket agents may register "
                            "tickets for this offering.")
        if card is None:
            raise CardNotKnownYet(card_number)
        card.check(offering.event_day, children)
        offering.take_places(ticket_id=ticket_id, card_number=card_number,
                             children=children, now=now, companion=companion)
        changed: list[Any] = [offering]
        # Only offerings whose venue chose the limit pay for the per-card aggregate.
        # The limit is the one the offering was published with: a venue's changed
        # limit counts for offerings published from then on, never against a ticket held.
        limit = offering.limits["max_open_reservations"] \
            if "max_open_reservations" in offering.limits else venue.max_open_reservations
        if limit is not None:
            reservations_id = CardReservations.id_for(venue.id, card_number)
            reservations = self._for_decision_or_none(reservations_id) or CardReservations(
                id=reservations_id, venue_id=venue.id, card_number=card_number)
            reservations.reserve(ticket_id=ticket_id, starts_at=offering.starts_at,
                                 limit=limit, now=now)
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


__all__ = ["CardNotKnownYet", "Forbidden", "LatestAggregates", "NotFound", "RuleViolation",
           "VenuesApplication"]
