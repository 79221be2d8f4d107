"""Venues' aggregates: venue, offering (the card cap lives here) and ticket.

Registering a ticket changes two aggregates saved in one transaction: the
offering (places taken, cards holding a ticket) and the new ticket. Optimistic
concurrency on the offering's version means two box offices can never both
take the last place: the loser reloads and decides again.
"""

from __future__ import annotations

import math
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

VENUE_KINDS = (
    "performing_arts", "museum", "festival", "cinema", "adult_education", "library",
    "swimming_hall", "sports", "other",
)
OFFERING_KINDS = ("performance", "course", "exhibition", "event")
CHANNELS = ("box_office", "phone", "email", "web", "ticket_agent")
GUIDELINE_MIN_SHARE = 0.03
MASS_EVENT_CAPACITY = 1000
MASS_EVENT_MIN_CAP = 20


class RuleViolation(Exception):
    """A rule refused the command; ``rule`` names it, ``status`` 409 or 422."""

    def __init__(self, rule: str, message: str, *, status: int = 409,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.status = status
        self.field = field


def minimum_card_cap(capacity: int, kind: str) -> int:
    """The national guideline's smallest allowed card cap for an offering."""
    if kind == "course":
        return 1
    share = math.ceil(capacity * GUIDELINE_MIN_SHARE)
    if capacity > MASS_EVENT_CAPACITY:
        return min(share, MASS_EVENT_MIN_CAP)
    return max(1, share)


class Venue(Aggregate):
    @event("Registered")
    def __init__(self, id: UUID, organisation_id: UUID, name: str, kind: str,  # noqa: A002
                 municipality: str,
                 one_ticket_per_card: bool, max_open_reservations: int | None,
                 ticket_agents: list[UUID]) -> None:
        self.organisation_id = organisation_id
        self.name = name
        self.kind = kind
        self.municipality = municipality
        self.one_ticket_per_card = one_ticket_per_card
        self.max_open_reservations = max_open_reservations
        self.ticket_agents = list(ticket_agents)

    def may_register_for(self, organisation_id: UUID | None, role: str) -> bool:
        if role == "venue":
            return organisation_id == self.organisation_id
        if role == "ticket_agent":
            return organisation_id in self.ticket_agents
        return False


class Offering(Aggregate):
    @classmethod
    def publish(cls, *, offering_id: UUID, venue: Venue, title: str, kind: str, genres: list[str],
                subgenres: list[str], starts_at: datetime, capacity: int,
                card_cap: int) -> Offering:
        if kind not in OFFERING_KINDS:
            raise RuleViolation("offering-kind", f"kind must be one of {OFFERING_KINDS}",
                                status=422, field="kind")
        if capacity < 1:
            raise RuleViolation("capacity", "capacity must be at least 1", status=422,
                                field="capacity")
        if card_cap > capacity:
            raise RuleViolation("card-cap-over-capacity",
                                "card_cap cannot exceed capacity.", status=422, field="card_cap")
        minimum = minimum_card_cap(capacity, kind)
        if card_cap < minimum:
            raise RuleViolation(
                "card-cap-below-guideline",
                f"The national guideline requires a card cap of at least {minimum} for "
                f"capacity {capacity} (3 % rounded up"
                + ("; events over 1,000 may cap at 20" if capacity > MASS_EVENT_CAPACITY else "")
                + ").",
                status=422, field="card_cap",
            )
        return cls(id=offering_id, venue_id=venue.id, venue_name=venue.name, municipality=venue.municipality,
                   title=title, kind=kind, genres=list(genres), subgenres=list(subgenres),
                   starts_at=starts_at, capacity=capacity, card_cap=card_cap,
                   one_ticket_per_card=venue.one_ticket_per_card)

    @event("Published")
    def __init__(self, id: UUID, venue_id: UUID,  # noqa: A002
                 venue_name: str, municipality: str, title: str, kind: str, genres: list[str], subgenres: list[str], starts_at: datetime,
                 capacity: int, card_cap: int, one_ticket_per_card: bool) -> None:
        self.venue_id = venue_id
        self.venue_name = venue_name
        self.municipality = municipality
        self.title = title
        self.kind = kind
        self.genres = list(genres)
        self.subgenres = list(subgenres)
        self.starts_at = starts_at
        self.capacity = capacity
        self.card_cap = card_cap
        self.one_ticket_per_card = one_ticket_per_card
        self.places_taken = 0
        self.tickets: dict[str, tuple[str, int]] = {}  # ticket id → (card, places)

    def take_places(self, *, ticket_id: UUID, card_number: str, children: int,
                    now: datetime) -> None:
        if now >= self.starts_at:
            raise RuleViolation("event-started", "The event has already started.",
                                status=422)
        places = 1 + children  # the holder and the children along all count
        if self.places_taken + places > self.card_cap:
            left = self.card_cap - self.places_taken
            raise RuleViolation(
                "card-cap-reached",
                f"The card cap of {self.card_cap} is reached: {left} card place(s) left, "
                f"{places} asked.",
            )
        if self.one_ticket_per_card and any(
            card == card_number for card, _ in self.tickets.values()
        ):
            raise RuleViolation(
                "one-ticket-per-card",
                f"Card {card_number} already holds a ticket for this performance.",
            )
        self._places_taken(ticket_id=str(ticket_id), card_number=card_number, places=places)

    @event("PlacesTaken")
    def _places_taken(self, ticket_id: str, card_number: str, places: int) -> None:
        self.places_taken += places
        self.tickets[ticket_id] = (card_number, places)

    def release_places(self, ticket_id: UUID) -> None:
        if str(ticket_id) in self.tickets:
            self._places_released(ticket_id=str(ticket_id))

    @event("PlacesReleased")
    def _places_released(self, ticket_id: str) -> None:
        _, places = self.tickets.pop(ticket_id)
        self.places_taken -= places


class Ticket(Aggregate):
    """One registered use of a card: what the holder's history and stats show."""

    @event("Registered")
    def __init__(self, id: UUID, offering_id: UUID, offering_title: str,  # noqa: A002
                 venue_id: UUID, venue_name: str, municipality: str, starts_at: datetime, card_number: str,
                 children: int, channel: str, registered_by: UUID) -> None:
        self.offering_id = offering_id
        self.offering_title = offering_title
        self.venue_id = venue_id
        self.venue_name = venue_name
        self.municipality = municipality
        self.starts_at = starts_at
        self.card_number = card_number
        self.children = children
        self.channel = channel
        self.registered_by = registered_by
        self.status = "registered"

    def cancel(self, *, reason: str | None, requested_by_holder: bool, now: datetime) -> None:
        if self.status == "cancelled":
            raise RuleViolation("already-cancelled", "This ticket is already cancelled.")
        if now >= self.starts_at:
            raise RuleViolation("event-started",
                                "The event has started; the ticket can no longer be cancelled.")
        self._cancelled(offering_id=self.offering_id, venue_id=self.venue_id,
                        card_number=self.card_number, children=self.children,
                        reason=reason, requested_by_holder=requested_by_holder)

    @event("Cancelled")
    def _cancelled(self, offering_id: UUID, venue_id: UUID, card_number: str, children: int,
                   reason: str | None, requested_by_holder: bool) -> None:
        self.status = "cancelled"
