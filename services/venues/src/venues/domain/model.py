"""Venues' aggregates: venue, offering (the card cap lives here), ticket, and the
per-card aggregates that hold the per-card limits.

Registering a ticket changes up to three aggregates saved in one transaction:
the offering (places taken, cards holding a ticket: the "max per course"), the
card's reservations at that venue when the venue limits them (open
reservations: the "max per student", as in eventsourcing's course-booking
example) and the new ticket.
Optimistic concurrency on every aggregate's version means two box offices can
never both take the last place, nor both give one card its last allowed
reservation: the loser reloads and decides again.

Public methods check rules and compute; the private ``@event`` methods only
change state, so replaying old events never re-checks today's rules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate, event

from kaiku_shared.kernel.errors import RuleViolation

VENUE_KINDS = (
    "performing_arts", "museum", "festival", "cinema", "adult_education", "library",
    "swimming_hall", "sports", "other",
)
OFFERING_KINDS = ("performance", "course", "exhibition", "event")
# What kind of production an offering is: venues may exclude all but their own.
PRODUCTIONS = ("own", "visiting", "gala", "premiere")
EXCLUDABLE_PRODUCTIONS = ("visiting", "gala", "premiere")
CHANNELS = ("box_office", "phone", "email", "web", "ticket_agent")
COMPANIONS = ("assistant", "interpreter")
LIBRARY_FEE_TYPES = ("interlibrary_loan", "late_fee", "copying")

GUIDELINE_MIN_SHARE = 0.03
MASS_EVENT_CAPACITY = 1000
MASS_EVENT_MIN_CAP = 20
VISITING_CAP_MIN, VISITING_CAP_MAX = 2, 10
SALES_LEAD = timedelta(days=7)
SWIMMING_SERIES_MIN_VISITS = 30
DEFAULT_TIMEZONE = "Europe/Helsinki"
# What a venue limits (``Venue.limits``); ticket agents are changed apart.
LIMIT_FIELDS = ("one_ticket_per_card", "max_open_reservations", "weekends_excluded",
                "excluded_productions", "series_visits_per_year", "library_fee_cap_cents")


@dataclass(frozen=True)
class CardStanding:
    """A card as venues knows it from Kaikukanta's events (no person in it)."""

    card_number: str
    status: str
    valid_from: date
    valid_until: date
    children: int

    def check(self, day: date, children: int) -> None:
        """Open, valid on ``day`` and covering the children along: else a 422."""
        if self.status == "closed":
            raise RuleViolation("card-closed", f"Card {self.card_number} is closed.",
                                status=422, field="card_number")
        if not self.valid_from <= day <= self.valid_until:
            raise RuleViolation(
                "card-not-valid-on-event-date",
                f"Card {self.card_number} is valid {self.valid_from} – {self.valid_until}, "
                f"not on the event date {day}.", status=422, field="card_number")
        if children > self.children:
            raise RuleViolation(
                "too-many-children",
                f"Card {self.card_number} covers at most {self.children} children.",
                status=422, field="children")


def card_cap_guideline(capacity: int, kind: str) -> tuple[int, str]:
    """The national guideline's smallest allowed card cap for an offering, and
    which part of the guideline gave it: "course" (at least one place),
    "share" (3 % rounded up) or "mass-event" (20 places suffice over 1,000)."""
    if kind == "course":
        return 1, "course"
    # Integer arithmetic: 3 % of 700 is exactly 21, never 21.000000000000004 → 22.
    share = -(-capacity * round(GUIDELINE_MIN_SHARE * 100) // 100)
    if capacity > MASS_EVENT_CAPACITY and share > MASS_EVENT_MIN_CAP:
        return MASS_EVENT_MIN_CAP, "mass-event"
    return max(1, share), "share"


def minimum_card_cap(capacity: int, kind: str) -> int:
    """The national guideline's smallest allowed card cap for an offering."""
    return card_cap_guideline(capacity, kind)[0]


def per_card_id(kind: str, venue_id: UUID, card_number: str, year: int | None = None) -> UUID:
    """Deterministic id of one card's aggregate at one venue (and year)."""
    suffix = f"/{year}" if year is not None else ""
    return uuid5(NAMESPACE_URL, f"/venues/{venue_id}/cards/{card_number}/{kind}{suffix}")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleViolation("timezone", f"Unknown time zone {name!r}.", status=422,
                            field="timezone") from None


def check_venue_limits(*, kind: str, max_open_reservations: int | None,
                       excluded_productions: list[str] | None,
                       series_visits_per_year: int | None,
                       library_fee_cap_cents: int | None) -> list[str]:
    """The guideline's bounds on what a venue may limit; the excluded productions,
    sorted and without repeats, when they pass."""
    excluded = sorted(set(excluded_productions or ()))
    if any(p not in EXCLUDABLE_PRODUCTIONS for p in excluded):
        raise RuleViolation(
            "own-productions-included",
            "Only visiting productions, galas and premieres may be excluded; "
            "the venue's own productions must be included.",
            status=422, field="limits.excluded_productions")
    if max_open_reservations is not None and max_open_reservations < 1:
        raise RuleViolation("open-reservation-limit-shape",
                            "max_open_reservations is at least 1 when set.", status=422,
                            field="limits.max_open_reservations")
    if series_visits_per_year is not None:
        if kind != "swimming_hall":
            raise RuleViolation("swimming-series-only-for-swimming-halls",
                                "Only swimming halls give series of visits.", status=422,
                                field="limits.series_visits_per_year")
        if series_visits_per_year < SWIMMING_SERIES_MIN_VISITS:
            raise RuleViolation(
                "swimming-series-below-guideline",
                f"The national guideline requires a series of at least "
                f"{SWIMMING_SERIES_MIN_VISITS} visits a year.", status=422,
                field="limits.series_visits_per_year")
    if library_fee_cap_cents is not None:
        if kind != "library":
            raise RuleViolation("library-fees-only-for-libraries",
                                "Only libraries cover fees with the card.", status=422,
                                field="limits.library_fee_cap_cents")
        if library_fee_cap_cents < 0:
            raise RuleViolation("library-fee-cap-shape", "The fee cap cannot be negative.",
                                status=422, field="limits.library_fee_cap_cents")
    return excluded


class Venue(Aggregate):
    """A venue's profile and the limits it chose within the guideline."""

    @classmethod
    def register(cls, *, venue_id: UUID, organisation_id: UUID, name: str, kind: str,
                 municipality: str, one_ticket_per_card: bool,
                 max_open_reservations: int | None, ticket_agents: list[UUID],
                 contact: dict[str, str] | None = None, weekends_excluded: bool = False,
                 excluded_productions: list[str] | None = None,
                 series_visits_per_year: int | None = None,
                 library_fee_cap_cents: int | None = None,
                 timezone: str = DEFAULT_TIMEZONE) -> Venue:
        if kind not in VENUE_KINDS:
            raise RuleViolation("venue-kind", f"kind must be one of {VENUE_KINDS}",
                                status=422, field="kind")
        _zone(timezone)
        excluded = check_venue_limits(
            kind=kind, max_open_reservations=max_open_reservations,
            excluded_productions=excluded_productions,
            series_visits_per_year=series_visits_per_year,
            library_fee_cap_cents=library_fee_cap_cents)
        return cls(id=venue_id, organisation_id=organisation_id, name=name, kind=kind,
                   municipality=municipality, one_ticket_per_card=one_ticket_per_card,
                   max_open_reservations=max_open_reservations,
                   ticket_agents=list(ticket_agents), contact=dict(contact or {}),
                   weekends_excluded=weekends_excluded, excluded_productions=excluded,
                   series_visits_per_year=series_visits_per_year,
                   library_fee_cap_cents=library_fee_cap_cents, timezone=timezone)

    @event("Registered")
    def __init__(self, id: UUID, organisation_id: UUID, name: str, kind: str,  # noqa: A002
                 municipality: str,
                 one_ticket_per_card: bool, max_open_reservations: int | None,
                 ticket_agents: list[UUID], contact: dict[str, str] | None = None,
                 weekends_excluded: bool = False,
                 excluded_productions: list[str] | None = None,
                 series_visits_per_year: int | None = None,
                 library_fee_cap_cents: int | None = None,
                 timezone: str = DEFAULT_TIMEZONE) -> None:
        self.organisation_id = organisation_id
        self.name = name
        self.kind = kind
        self.municipality = municipality
        self.one_ticket_per_card = one_ticket_per_card
        self.max_open_reservations = max_open_reservations
        self.ticket_agents = list(ticket_agents)
        self.contact = dict(contact or {})
        self.weekends_excluded = weekends_excluded
        self.excluded_productions = list(excluded_productions or [])
        self.series_visits_per_year = series_visits_per_year
        self.library_fee_cap_cents = library_fee_cap_cents
        self.timezone = timezone

    @property
    def limits(self) -> dict[str, Any]:
        """The limits as published with every offering, so holders see them."""
        return {
            "one_ticket_per_card": self.one_ticket_per_card,
            "max_open_reservations": self.max_open_reservations,
            "weekends_excluded": self.weekends_excluded,
            "excluded_productions": list(self.excluded_productions),
            "series_visits_per_year": self.series_visits_per_year,
            "library_fee_cap_cents": self.library_fee_cap_cents,
        }

    def change_ticket_agents(self, ticket_agents: list[UUID]) -> bool:
        """Name the ticket agents that register for this venue; False if unchanged.
        A removed agent's registrations are refused from the next request on."""
        agents = list(dict.fromkeys(ticket_agents))
        if agents == self.ticket_agents:
            return False
        self._ticket_agents_changed(ticket_agents=agents, organisation_id=self.organisation_id)
        return True

    @event("TicketAgentsChanged")
    def _ticket_agents_changed(self, ticket_agents: list[UUID], organisation_id: UUID) -> None:
        # organisation_id rides along for the contract; it does not change here.
        self.ticket_agents = list(ticket_agents)

    def change_profile(self, *, name: str | None = None,
                       contact: dict[str, str] | None = None) -> bool:
        """A new name and/or public contact (the whole contact: a part left out is
        removed); False if nothing changes."""
        new_name = self.name if name is None else name.strip()
        if not new_name:
            raise RuleViolation("venue-name-empty", "The venue's name cannot be empty.",
                                status=422, field="name")
        new_contact = dict(self.contact) if contact is None else \
            {part: value.strip() for part, value in contact.items() if value and value.strip()}
        if (new_name, new_contact) == (self.name, self.contact):
            return False
        self._profile_changed(name=new_name, contact=new_contact,
                              organisation_id=self.organisation_id,
                              ticket_agents=list(self.ticket_agents))
        return True

    @event("ProfileChanged")
    def _profile_changed(self, name: str, contact: dict[str, str], organisation_id: UUID,
                         ticket_agents: list[UUID]) -> None:
        # organisation_id and ticket_agents ride along for the contract (whole state).
        self.name = name
        self.contact = dict(contact)

    def change_limits(self, **changes: Any) -> bool:
        """Change some of the limits (``LIMIT_FIELDS``); False if nothing changes.
        Offerings keep the limits they were published with: a new limit applies to
        offerings published from now on, so no ticket already held is broken."""
        unknown = sorted(set(changes) - set(LIMIT_FIELDS))
        if unknown:
            raise RuleViolation("unknown-limit", f"Unknown limit(s): {', '.join(unknown)}.",
                                status=422, field=f"limits.{unknown[0]}")
        new = {**self.limits, **changes}
        # A flag or list sent as null is off or empty, not unknown.
        for flag in ("one_ticket_per_card", "weekends_excluded"):
            new[flag] = bool(new[flag])
        new["excluded_productions"] = check_venue_limits(
            kind=self.kind, max_open_reservations=new["max_open_reservations"],
            excluded_productions=new["excluded_productions"],
            series_visits_per_year=new["series_visits_per_year"],
            library_fee_cap_cents=new["library_fee_cap_cents"])
        if new == self.limits:
            return False
        self._limits_changed(limits=new, organisation_id=self.organisation_id,
                             name=self.name, contact=dict(self.contact),
                             ticket_agents=list(self.ticket_agents))
        return True

    @event("LimitsChanged")
    def _limits_changed(self, limits: dict[str, Any], organisation_id: UUID, name: str,
                        contact: dict[str, str], ticket_agents: list[UUID]) -> None:
        # The rest rides along for the contract (whole state after the change).
        self.one_ticket_per_card = bool(limits["one_ticket_per_card"])
        self.max_open_reservations = limits["max_open_reservations"]
        self.weekends_excluded = bool(limits["weekends_excluded"])
        self.excluded_productions = list(limits["excluded_productions"])
        self.series_visits_per_year = limits["series_visits_per_year"]
        self.library_fee_cap_cents = limits["library_fee_cap_cents"]

    def may_register_for(self, organisation_id: UUID | None, role: str) -> bool:
        if role == "venue":
            return organisation_id == self.organisation_id
        if role == "ticket_agent":
            return organisation_id in self.ticket_agents
        return False


def check_offering_terms(*, kind: str, production: str, capacity: int, card_cap: int,
                         starts_at: datetime, sales_opens_at: datetime | None,
                         now: datetime) -> None:
    """The guideline's rules for what an offering gives card holders."""
    if kind not in OFFERING_KINDS:
        raise RuleViolation("offering-kind", f"kind must be one of {OFFERING_KINDS}",
                            status=422, field="kind")
    if production not in PRODUCTIONS:
        raise RuleViolation("production", f"production must be one of {PRODUCTIONS}",
                            status=422, field="production")
    if capacity < 1:
        raise RuleViolation("capacity", "capacity must be at least 1", status=422,
                            field="capacity")
    if card_cap > capacity:
        raise RuleViolation("card-cap-over-capacity",
                            "card_cap cannot exceed capacity.", status=422, field="card_cap")
    if production == "visiting":
        if not VISITING_CAP_MIN <= card_cap <= VISITING_CAP_MAX:
            raise RuleViolation(
                "visiting-producer-cap",
                f"A visiting producer joins with a card cap of {VISITING_CAP_MIN}–"
                f"{VISITING_CAP_MAX} tickets per performance; {card_cap} asked.",
                status=422, field="card_cap")
    else:
        minimum = minimum_card_cap(capacity, kind)
        if card_cap < minimum:
            if kind == "course":
                detail = "A course offers card holders at least 1 place."
            else:
                detail = (f"The national guideline requires a card cap of at least {minimum} "
                          f"for capacity {capacity} (3 % rounded up"
                          + ("; events over 1,000 may cap at 20"
                             if capacity > MASS_EVENT_CAPACITY else "") + ").")
            raise RuleViolation("card-cap-below-guideline", detail, status=422,
                                field="card_cap")
    # Card tickets must be obtainable at least a week before the event: a venue
    # may open card sales later than publication, but never later than that.
    if sales_opens_at is not None and sales_opens_at > now and \
            sales_opens_at > starts_at - SALES_LEAD:
        raise RuleViolation(
            "sales-opening-too-late",
            f"Card tickets must be obtainable at least 7 days before the event: open sales "
            f"by {(starts_at - SALES_LEAD).isoformat()} at the latest.",
            status=422, field="sales_opens_at")


class Offering(Aggregate):
    """A performance, course, exhibition or event, and its card places."""

    @classmethod
    def publish(cls, *, offering_id: UUID, venue: Venue, title: str, kind: str,
                genres: list[str], subgenres: list[str], starts_at: datetime, capacity: int,
                card_cap: int, production: str = "own",
                sales_opens_at: datetime | None = None,
                now: datetime | None = None) -> Offering:
        excluded = None
        if production in venue.excluded_productions:
            excluded = "production-excluded"
        elif venue.weekends_excluded and \
                starts_at.astimezone(_zone(venue.timezone)).weekday() >= 5:
            excluded = "weekend-excluded"
        if excluded:
            # No card tickets at all: the guideline's caps do not apply; the offering
            # is still listed so holders see clearly why the card does not cover it.
            card_cap = 0
            if kind not in OFFERING_KINDS:
                raise RuleViolation("offering-kind", f"kind must be one of {OFFERING_KINDS}",
                                    status=422, field="kind")
        else:
            check_offering_terms(kind=kind, production=production, capacity=capacity,
                                 card_cap=card_cap, starts_at=starts_at,
                                 sales_opens_at=sales_opens_at,
                                 # no clock given: judge against the event only
                                 now=now if now is not None else starts_at - SALES_LEAD)
        offering = cls(id=offering_id, venue_id=venue.id, venue_name=venue.name,
                       municipality=venue.municipality, title=title, kind=kind,
                       genres=list(genres), subgenres=list(subgenres), starts_at=starts_at,
                       capacity=capacity, card_cap=card_cap,
                       one_ticket_per_card=venue.one_ticket_per_card)
        offering._terms_published(
            venue_id=venue.id, production=production, sales_opens_at=sales_opens_at,
            venue_kind=venue.kind,
            contact=dict(venue.contact), limits=venue.limits, card_tickets_excluded=excluded,
            timezone=venue.timezone)
        return offering

    @event("Published")
    def __init__(self, id: UUID, venue_id: UUID,  # noqa: A002
                 venue_name: str, municipality: str, title: str, kind: str,
                 genres: list[str], subgenres: list[str], starts_at: datetime,
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
        self.production = "own"
        self.sales_opens_at: datetime | None = None
        self.venue_kind = ""
        self.contact: dict[str, str] = {}
        self.limits: dict[str, Any] = {}
        self.card_tickets_excluded: str | None = None
        self.timezone = DEFAULT_TIMEZONE
        self.status = "published"
        self.cancel_reason: str | None = None

    @event("TermsPublished")
    def _terms_published(self, venue_id: UUID, production: str, sales_opens_at: datetime | None,
                         venue_kind: str, contact: dict[str, str], limits: dict[str, Any],
                         card_tickets_excluded: str | None, timezone: str) -> None:
        self.production = production
        self.sales_opens_at = sales_opens_at
        self.venue_kind = venue_kind
        self.contact = dict(contact)
        self.limits = dict(limits)
        self.card_tickets_excluded = card_tickets_excluded
        self.timezone = timezone

    def __deepcopy__(self, memo: dict[int, Any]) -> Offering:
        # The application decides on a copy of its cached offering (see
        # application.LatestAggregates). Ticket entries are immutable tuples, so
        # one dict copy replaces a deep copy of thousands of them.
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            clone.__dict__[name] = dict(value) if name == "tickets" else \
                copy.deepcopy(value, memo)
        return clone

    @property
    def event_day(self) -> date:
        """The event's date where it happens: what a card must be valid on."""
        return self.starts_at.astimezone(_zone(self.timezone)).date()

    # --- tickets --------------------------------------------------------------

    def take_places(self, *, ticket_id: UUID, card_number: str, children: int,
                    now: datetime, companion: str | None = None) -> int:
        if self.status == "cancelled":
            raise RuleViolation("offering-cancelled", "This offering has been cancelled.")
        if now >= self.starts_at:
            raise RuleViolation("event-started", "The event has already started.",
                                status=422)
        if self.card_tickets_excluded == "production-excluded":
            raise RuleViolation(
                "production-excluded",
                f"The venue has excluded {self.production} productions from the card.")
        if self.card_tickets_excluded == "weekend-excluded":
            raise RuleViolation("weekend-excluded",
                                "The venue has excluded weekend events from the card.")
        if self.sales_opens_at is not None and now < self.sales_opens_at:
            raise RuleViolation(
                "sales-not-open",
                f"Card tickets for this offering are obtainable from "
                f"{self.sales_opens_at.isoformat()}.")
        # The holder, the children along and an assistant/interpreter all take a place.
        places = 1 + children + (1 if companion else 0)
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
        return places

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

    # --- changing and cancelling -----------------------------------------------------

    def change(self, *, now: datetime, title: str | None = None,
               starts_at: datetime | None = None, capacity: int | None = None,
               card_cap: int | None = None, sales_opens_at: datetime | None = None) -> bool:
        """Change what was published; the guideline is checked again. False: no change."""
        if self.status == "cancelled":
            raise RuleViolation("offering-cancelled", "A cancelled offering cannot change.")
        if now >= self.starts_at:
            raise RuleViolation("event-started",
                                "The event has started; it can no longer be changed.")
        new = {
            "title": self.title if title is None else title,
            "starts_at": self.starts_at if starts_at is None else starts_at,
            "capacity": self.capacity if capacity is None else capacity,
            "card_cap": self.card_cap if card_cap is None else card_cap,
            "sales_opens_at": self.sales_opens_at if sales_opens_at is None
            else sales_opens_at,
        }
        if new["starts_at"] <= now:
            raise RuleViolation("starts-in-past", "An offering cannot be moved to the past.",
                                status=422, field="starts_at")
        if self.card_tickets_excluded is None and self.limits.get("weekends_excluded") and \
                new["starts_at"].astimezone(_zone(self.timezone)).weekday() >= 5:
            raise RuleViolation(
                "weekend-excluded",
                "The venue excludes weekend events from the card: publish the weekend "
                "date as a new offering instead of moving this one.",
                status=422, field="starts_at")
        if self.card_tickets_excluded is None:
            check_offering_terms(kind=self.kind, production=self.production,
                                 capacity=new["capacity"], card_cap=new["card_cap"],
                                 starts_at=new["starts_at"],
                                 sales_opens_at=new["sales_opens_at"], now=now)
        elif new["card_cap"] != 0:
            raise RuleViolation(self.card_tickets_excluded,
                                "This offering gives no card tickets.", status=422,
                                field="card_cap")
        if new["card_cap"] < self.places_taken:
            raise RuleViolation(
                "card-cap-below-taken",
                f"{self.places_taken} card places are already taken; cancel tickets before "
                f"lowering the card cap below that.")
        current = {"title": self.title, "starts_at": self.starts_at,
                   "capacity": self.capacity, "card_cap": self.card_cap,
                   "sales_opens_at": self.sales_opens_at}
        if new == current:
            return False
        self._changed(venue_id=self.venue_id, **new)
        return True

    @event("Changed")
    def _changed(self, venue_id: UUID, title: str, starts_at: datetime, capacity: int,
                 card_cap: int,
                 sales_opens_at: datetime | None) -> None:
        self.title = title
        self.starts_at = starts_at
        self.capacity = capacity
        self.card_cap = card_cap
        self.sales_opens_at = sales_opens_at

    def cancel(self, *, reason: str | None, now: datetime) -> list[str]:
        """Cancel the offering; returns the ids of the tickets the caller must cancel."""
        if self.status == "cancelled":
            raise RuleViolation("offering-already-cancelled",
                                "This offering is already cancelled.")
        if now >= self.starts_at:
            raise RuleViolation("event-started",
                                "The event has started; it can no longer be cancelled.")
        tickets = sorted(self.tickets)
        self._cancelled(venue_id=self.venue_id, title=self.title, starts_at=self.starts_at,
                        reason=reason, ticket_ids=tickets)
        return tickets

    @event("Cancelled")
    def _cancelled(self, venue_id: UUID, title: str, starts_at: datetime,
                   reason: str | None, ticket_ids: list[str]) -> None:
        self.status = "cancelled"
        self.cancel_reason = reason
        for ticket_id in ticket_ids:
            self.tickets.pop(ticket_id, None)
        self.places_taken = sum(places for _, places in self.tickets.values())


class CardReservations(Aggregate):
    """One card's open reservations at one venue: the simultaneous-reservation limit.

    Saved in the same transaction as the offering and the ticket, so two
    concurrent bookings for one card cannot both take its last allowed place.
    """

    @staticmethod
    def id_for(venue_id: UUID, card_number: str) -> UUID:
        return per_card_id("reservations", venue_id, card_number)

    @event("Started")
    def __init__(self, id: UUID, venue_id: UUID, card_number: str) -> None:  # noqa: A002
        self.venue_id = venue_id
        self.card_number = card_number
        self.open: dict[str, datetime] = {}  # ticket id → event start

    def open_count(self, now: datetime) -> int:
        return sum(1 for starts_at in self.open.values() if starts_at > now)

    def reserve(self, *, ticket_id: UUID, starts_at: datetime, limit: int | None,
                now: datetime) -> None:
        if limit is not None and self.open_count(now) >= limit:
            raise RuleViolation(
                "open-reservation-limit",
                f"Card {self.card_number} already has {self.open_count(now)} open "
                f"reservation(s) at this venue; the venue allows {limit} at a time.")
        self._reserved(ticket_id=str(ticket_id), starts_at=starts_at, now=now)

    @event("Reserved")
    def _reserved(self, ticket_id: str, starts_at: datetime, now: datetime) -> None:
        # Past events no longer count: forget them, deterministically on replay.
        self.open = {t: s for t, s in self.open.items() if s > now}
        self.open[ticket_id] = starts_at

    def release(self, ticket_id: UUID) -> None:
        if str(ticket_id) in self.open:
            self._released(ticket_id=str(ticket_id))

    @event("Released")
    def _released(self, ticket_id: str) -> None:
        self.open.pop(ticket_id, None)


class Ticket(Aggregate):
    """One registered use of a card: what the holder's history and stats show."""

    @event("Registered")
    def __init__(self, id: UUID, offering_id: UUID, offering_title: str,  # noqa: A002
                 venue_id: UUID, venue_name: str, municipality: str, starts_at: datetime,
                 card_number: str, children: int, channel: str, registered_by: UUID,
                 companion: str | None = None) -> None:
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
        self.companion = companion
        self.status = "registered"
        self.refused_requests: list[str] = []

    def cancel(self, *, reason: str | None, requested_by_holder: bool, now: datetime,
               starts_at: datetime | None = None) -> None:
        """``starts_at``: the offering's current start (it may have been moved)."""
        if self.status == "cancelled":
            raise RuleViolation("already-cancelled", "This ticket is already cancelled.")
        if now >= (starts_at or self.starts_at):
            raise RuleViolation("event-started",
                                "The event has started; the ticket can no longer be cancelled.")
        self._cancelled(offering_id=self.offering_id, venue_id=self.venue_id,
                        card_number=self.card_number, children=self.children,
                        reason=reason, requested_by_holder=requested_by_holder)

    @event("Cancelled")
    def _cancelled(self, offering_id: UUID, venue_id: UUID, card_number: str, children: int,
                   reason: str | None, requested_by_holder: bool) -> None:
        self.status = "cancelled"

    def refuse_cancellation(self, *, request_id: str, account_id: UUID, rule: str,
                            detail: str) -> bool:
        """Record that a holder's cancellation request was refused (once per request)."""
        if request_id in self.refused_requests:
            return False
        self._cancellation_refused(request_id=request_id, account_id=account_id,
                                   card_number=self.card_number, rule=rule, detail=detail)
        return True

    @event("CancellationRefused")
    def _cancellation_refused(self, request_id: str, account_id: UUID, card_number: str,
                              rule: str, detail: str) -> None:
        self.refused_requests.append(request_id)


class SwimmingSeries(Aggregate):
    """One card's yearly series of visits at one swimming hall."""

    @staticmethod
    def id_for(venue_id: UUID, card_number: str, year: int) -> UUID:
        return per_card_id("swimming-series", venue_id, card_number, year)

    @event("Started")
    def __init__(self, id: UUID, venue_id: UUID, card_number: str, year: int,  # noqa: A002
                 visits_per_year: int | None) -> None:
        self.venue_id = venue_id
        self.card_number = card_number
        self.year = year
        self.visits_per_year = visits_per_year
        self.visits_used = 0
        self.visit_ids: list[str] = []

    @property
    def visits_left(self) -> int | None:
        if self.visits_per_year is None:
            return None
        return self.visits_per_year - self.visits_used

    def register_visit(self, *, visit_id: UUID, children: int, registered_by: UUID) -> bool:
        if str(visit_id) in self.visit_ids:
            return False  # the same request, retried
        visits = 1 + children  # children along consume visits from the same series
        left = self.visits_left
        if left is not None and visits > left:
            raise RuleViolation(
                "swimming-series-used-up",
                f"Card {self.card_number} has {left} visit(s) left of its "
                f"{self.visits_per_year} this year; {visits} asked.")
        self._visit_registered(visit_id=str(visit_id), venue_id=self.venue_id,
                               card_number=self.card_number, year=self.year,
                               children=children, visits=visits,
                               visits_used=self.visits_used + visits,
                               visits_per_year=self.visits_per_year,
                               registered_by=registered_by)
        return True

    @event("VisitRegistered")
    def _visit_registered(self, visit_id: str, venue_id: UUID, card_number: str, year: int,
                          children: int, visits: int, visits_used: int,
                          visits_per_year: int | None, registered_by: UUID) -> None:
        self.visits_used = visits_used
        self.visit_ids.append(visit_id)


class LibraryFees(Aggregate):
    """Fees one card had covered at one library in a year, with the optional cap."""

    @staticmethod
    def id_for(venue_id: UUID, card_number: str, year: int) -> UUID:
        return per_card_id("library-fees", venue_id, card_number, year)

    @event("Started")
    def __init__(self, id: UUID, venue_id: UUID, card_number: str, year: int,  # noqa: A002
                 cap_cents: int | None) -> None:
        self.venue_id = venue_id
        self.card_number = card_number
        self.year = year
        self.cap_cents = cap_cents
        self.total_cents = 0
        self.fee_ids: list[str] = []

    def cover(self, *, fee_id: UUID, fee_type: str, amount_cents: int,
              registered_by: UUID) -> bool:
        if str(fee_id) in self.fee_ids:
            return False
        if fee_type not in LIBRARY_FEE_TYPES:
            raise RuleViolation("library-fee-type", f"fee_type is one of {LIBRARY_FEE_TYPES}",
                                status=422, field="fee_type")
        if amount_cents < 1:
            raise RuleViolation("library-fee-amount", "The amount is at least 1 cent.",
                                status=422, field="amount_cents")
        if self.cap_cents is not None and self.total_cents + amount_cents > self.cap_cents:
            left = self.cap_cents - self.total_cents
            raise RuleViolation(
                "library-fee-cap-reached",
                f"The library covers at most {self.cap_cents} cents a year per card; "
                f"{left} cents left, {amount_cents} asked.")
        self._covered(fee_id=str(fee_id), venue_id=self.venue_id,
                      card_number=self.card_number, year=self.year, fee_type=fee_type,
                      amount_cents=amount_cents,
                      year_total_cents=self.total_cents + amount_cents,
                      cap_cents=self.cap_cents, registered_by=registered_by)
        return True

    @event("Covered")
    def _covered(self, fee_id: str, venue_id: UUID, card_number: str, year: int,
                 fee_type: str, amount_cents: int, year_total_cents: int,
                 cap_cents: int | None, registered_by: UUID) -> None:
        self.total_cents = year_total_cents
        self.fee_ids.append(fee_id)
