"""What each fact does to the statistics rows: the one definition, pure, no I/O.

Each handled contract becomes a list of ``Upsert``s, one per row it touches:
insert these values (the table's defaults for the other columns), or, when the
row is already there, replace it with ``on_conflict(current, values)`` (``None``:
leave it as it is). Two places apply them, and neither adds a rule of its own:

- the live consumers (``projections.apply_upserts``): read each row an event
  touches FOR UPDATE, fold, write it back, in the consumer's transaction;
- the rebuild (``rebuild.Accumulator``): fold the whole history into rows held
  in memory, then write each table once, in bulk.

Facts may arrive out of order (replicas, retries), and every fold gives the same
rows whatever the order (tests/unit/test_statistics_fold.py checks it on histories
made by the domain). Rows carry the aggregate version of the last fact that
carried the card's, the ticket's or the organisation's state, so an older fact
arriving after a newer one never overwrites it. 'Closed' is final.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Any, NamedTuple

from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    CardUsesImportedV1,
    IntegrationEvent,
    LibraryFeeCoveredV1,
    OrganisationRegisteredV1,
    OfferingPublishedV1,
    OrganisationStatusChangedV1,
    SwimmingVisitRegisteredV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueChangedV1,
    VenueRegisteredV1,
)

Row = dict[str, Any]


@dataclass(frozen=True, eq=False)
class Table:
    """A read-model table as the fold sees it; its DDL is ``schema.SCHEMA``."""

    name: str
    key: tuple[str, ...]
    key_types: tuple[str, ...]  # Postgres types of the key columns
    columns: tuple[str, ...]  # every column, in the order rows are written
    defaults: Row = field(default_factory=dict)  # columns an insert leaves out; else NULL
    _empty: Row = field(init=False, repr=False)
    _record: Callable[[Row], tuple] = field(init=False, repr=False)
    _key: Callable[[Row], Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_empty", {**dict.fromkeys(self.columns), **self.defaults})
        object.__setattr__(self, "_record", itemgetter(*self.columns))
        object.__setattr__(self, "_key", itemgetter(*self.key))

    def new_row(self, values: Row) -> Row:
        """The row an insert of ``values`` makes."""
        return {**self._empty, **values}

    def record(self, row: Row) -> tuple:
        """The row as a tuple in column order (the rebuild keeps tuples)."""
        return self._record(row)

    def key_of(self, row: Row) -> Any:
        """The row's key: the value itself for a one-column key, else a tuple."""
        return self._key(row)


CARD = Table(
    "card_view", ("card_number",), ("text",),
    ("card_number", "issuer", "birth_year", "valid_from", "community", "issued_at",
     "valid_until", "children", "municipality", "region", "status", "version", "replaces",
     "closed_on"),
    {"status": "open"},
)
USAGE = Table(
    "usage_view", ("ticket_id",), ("uuid",),
    ("ticket_id", "card_number", "venue_id", "offering_id", "venue_municipality",
     "starts_at", "children", "status", "version", "venue_name"),
)
WELLBEING = Table(
    "wellbeing_view", ("card_number", "version"), ("text", "integer"),
    ("card_number", "version", "occasion", "answered_on", "region", "municipality",
     "life_satisfaction", "wellbeing_impact"),
)
ORGANISATION = Table(
    "organisation_view", ("organisation_id",), ("uuid",),
    ("organisation_id", "kind", "name", "municipality", "status", "version"),
)
# Swimming visits and covered library fees: one row per fact, never changed.
DESK_USE = Table(
    "desk_use_view", ("event_id",), ("uuid",),
    ("event_id", "kind", "card_number", "venue_id", "used_at", "children", "amount_cents"),
)
# Each venue's kind and name, each offering's genres (uses by venue kind and genre).
VENUE = Table("venue_view", ("venue_id",), ("uuid",),
              ("venue_id", "kind", "name", "municipality", "version"), {"version": 0})
OFFERING = Table("offering_view", ("offering_id",), ("uuid",),
                 ("offering_id", "venue_id", "genres"), {"genres": []})
TABLES = (CARD, USAGE, WELLBEING, ORGANISATION, DESK_USE, VENUE, OFFERING)

Merge = Callable[[Row, Row], "Row | None"]


class Upsert(NamedTuple):
    """Insert ``values`` (the table's defaults for the other columns); when the row
    is there already, it becomes ``on_conflict(current, values)`` (None: as it is)."""

    table: Table
    values: Row
    on_conflict: Merge

    def apply(self, current: Row | None) -> Row | None:
        """The row after this change; None when the current row stays as it is."""
        if current is None:
            return self.table.new_row(self.values)
        return self.on_conflict(current, self.values)


def _coalesce(current: Any, new: Any) -> Any:
    return new if current is None else current


def keep(current: Row, values: Row) -> None:
    """An existing row stays as it is (ON CONFLICT DO NOTHING)."""
    return None


# --- card_view -------------------------------------------------------------------------

def _issued_over(current: Row, values: Row) -> Row:
    # The issuing facts are the issued card's own; a later event already set the
    # state columns unless they are still empty.
    row = dict(current)
    for column in ("issuer", "birth_year", "valid_from", "community", "issued_at"):
        row[column] = values[column]
    for column in ("valid_until", "children", "municipality", "region"):
        row[column] = _coalesce(current[column], values[column])
    row["version"] = max(current["version"], values["version"])
    return row


def _newer_state(current: Row, values: Row) -> Row:
    """A newer card state (renewed, changed: each carries the whole state) wins."""
    row = dict(current)
    if current["version"] < values["version"]:
        row.update(values)
    return row


def _closes(current: Row, values: Row) -> Row:
    """'Closed' is final, the first closing day stays. A closure carries no state,
    so it leaves the version alone: an older renewal or change arriving after it
    still sets the state it carries."""
    return {**current, "status": "closed",
            "closed_on": _coalesce(current["closed_on"], values["closed_on"])}


def _replaces(current: Row, values: Row) -> Row:
    return {**current, "replaces": values["replaces"]}


def _card_state(card_number: str, version: int, **state: Any) -> Upsert:
    return Upsert(CARD, {"card_number": card_number, "version": version, **state},
                  _newer_state)


def _answer(card_number: str, version: int, occasion: str, answered_on: date, region: str,
            municipality: str, life_satisfaction: int | None,
            wellbeing_impact: int | None) -> Upsert:
    return Upsert(WELLBEING, {
        "card_number": card_number, "version": version, "occasion": occasion,
        "answered_on": answered_on, "region": region, "municipality": municipality,
        "life_satisfaction": life_satisfaction, "wellbeing_impact": wellbeing_impact,
    }, keep)


def card_issued(event: CardIssuedV1) -> list[Upsert]:
    return [
        Upsert(CARD, {
            "card_number": event.card_number, "issuer": event.issuer_organisation_id,
            "birth_year": event.birth_year, "valid_from": event.valid_from,
            "community": event.community, "issued_at": event.occurred_at,
            "valid_until": event.valid_until, "children": event.children,
            "municipality": event.municipality, "region": event.region, "status": "open",
            "version": event.aggregate_version,
        }, _issued_over),
        _answer(event.card_number, event.aggregate_version, "issue", event.valid_from,
                event.region, event.municipality, event.life_satisfaction, None),
    ]


def card_renewed(event: CardRenewedV1) -> list[Upsert]:
    return [
        _card_state(event.card_number, event.aggregate_version,
                    valid_until=event.valid_until, children=event.children,
                    municipality=event.municipality, region=event.region),
        _answer(event.card_number, event.aggregate_version, "renewal",
                event.occurred_at.date(), event.region, event.municipality,
                event.life_satisfaction, event.wellbeing_impact),
    ]


def card_changed(event: CardChangedV1) -> list[Upsert]:
    return [_card_state(event.card_number, event.aggregate_version,
                        valid_until=event.valid_until, children=event.children,
                        municipality=event.municipality, region=event.region)]


def card_closed(event: CardClosedV1) -> list[Upsert]:
    # version 0: no state of the card's yet, whichever of its facts comes next.
    return [Upsert(CARD, {"card_number": event.card_number, "version": 0, "status": "closed",
                          "closed_on": event.occurred_at.date()}, _closes)]


def card_replaced(event: CardReplacedV1) -> list[Upsert]:
    # Marks the replacement card (whichever of its facts arrives first): it is the
    # same holder's card under a new number, not a new card.
    return [Upsert(CARD, {"card_number": event.replacement_card_number,
                          "replaces": event.card_number, "version": 0}, _replaces)]


def card_uses_imported(event: CardUsesImportedV1) -> list[Upsert]:
    """Historical uses (before this system) become ordinary usage rows."""
    return [Upsert(USAGE, {
        "ticket_id": use.use_id, "card_number": event.card_number,
        "venue_municipality": use.venue_municipality, "starts_at": use.used_at,
        "children": use.children, "status": "registered", "version": 1,
    }, keep) for use in event.uses]


# --- organisation_view -----------------------------------------------------------------

def _registration_over(current: Row, values: Row) -> Row:
    # A status change that arrived first is newer than the registration's status.
    status = current["status"] if current["status"] is not None else values["status"]
    return {**current, "kind": values["kind"], "name": values["name"],
            "municipality": values["municipality"], "status": status}


def _newer_status(current: Row, values: Row) -> Row:
    newer = current["version"] < values["version"]
    return {**current, "status": values["status"] if newer else current["status"],
            "version": max(current["version"], values["version"])}


def organisation_registered(event: OrganisationRegisteredV1) -> list[Upsert]:
    return [Upsert(ORGANISATION, {
        "organisation_id": event.organisation_id, "kind": event.kind, "name": event.name,
        "municipality": event.municipality, "status": event.status,
        "version": event.aggregate_version,
    }, _registration_over)]


def organisation_status_changed(event: OrganisationStatusChangedV1) -> list[Upsert]:
    return [Upsert(ORGANISATION, {
        "organisation_id": event.organisation_id, "status": event.status,
        "version": event.aggregate_version,
    }, _newer_status)]


# --- usage_view: venues' tickets -------------------------------------------------------

def _registration_details(current: Row, values: Row) -> Row:
    # A cancellation may have come first: the registration fills in the details
    # and leaves the status and version alone.
    row = dict(current)
    for column in ("venue_id", "offering_id", "venue_municipality", "starts_at", "children",
                   "venue_name"):
        row[column] = values[column]
    return row


def _newer_cancellation(current: Row, values: Row) -> Row | None:
    if current["version"] < values["version"]:
        return {**current, "status": "cancelled", "version": values["version"]}
    return None


def ticket_registered(event: TicketRegisteredV1) -> list[Upsert]:
    return [Upsert(USAGE, {
        "ticket_id": event.ticket_id, "card_number": event.card_number,
        "venue_id": event.venue_id, "offering_id": event.offering_id,
        "venue_municipality": event.municipality, "starts_at": event.starts_at,
        "children": event.children, "status": "registered",
        "version": event.aggregate_version, "venue_name": event.venue_name,
    }, _registration_details)]


def ticket_cancelled(event: TicketCancelledV1) -> list[Upsert]:
    return [Upsert(USAGE, {
        "ticket_id": event.ticket_id, "card_number": event.card_number,
        "venue_id": event.venue_id, "offering_id": event.offering_id,
        "children": event.children, "status": "cancelled",
        "version": event.aggregate_version,
    }, _newer_cancellation)]


# --- desk_use_view: swimming halls' and libraries' uses of the card ---------------------

def swimming_visit_registered(event: SwimmingVisitRegisteredV1) -> list[Upsert]:
    return [Upsert(DESK_USE, {
        "event_id": event.event_id, "kind": "swimming_visit", "card_number": event.card_number,
        "venue_id": event.venue_id, "used_at": event.occurred_at, "children": event.children,
        "amount_cents": 0,
    }, keep)]


def library_fee_covered(event: LibraryFeeCoveredV1) -> list[Upsert]:
    return [Upsert(DESK_USE, {
        "event_id": event.event_id, "kind": "library_fee", "card_number": event.card_number,
        "venue_id": event.venue_id, "used_at": event.occurred_at, "children": 0,
        "amount_cents": event.amount_cents,
    }, keep)]


# --- venue_view, offering_view: what the venues publish of themselves -------------------
# A venue's kind and municipality never change; only its name does. Rows carry the
# venue's aggregate version of the last name set, so a registration or an older
# change arriving after a newer change never puts an older name back.


def _registered_under(current: Row, values: Row) -> Row:
    newer = current["version"] < values["version"]
    return {**current, "kind": values["kind"], "municipality": values["municipality"],
            "name": values["name"] if newer else current["name"],
            "version": max(current["version"], values["version"])}


def _renamed(current: Row, values: Row) -> Row | None:
    if current["version"] < values["version"]:
        return {**current, "name": values["name"], "version": values["version"]}
    return None


def venue_registered(event: VenueRegisteredV1) -> list[Upsert]:
    return [Upsert(VENUE, {"venue_id": event.venue_id, "kind": event.kind,
                           "name": event.name, "municipality": event.municipality,
                           "version": event.aggregate_version}, _registered_under)]


def venue_changed(event: VenueChangedV1) -> list[Upsert]:
    if "name" not in event.changed or not event.name:
        return []
    return [Upsert(VENUE, {"venue_id": event.venue_id, "name": event.name,
                           "version": event.aggregate_version}, _renamed)]


def offering_published(event: OfferingPublishedV1) -> list[Upsert]:
    """The genres as published (OfferingChanged carries none: they never change)."""
    return [Upsert(OFFERING, {"offering_id": event.offering_id, "venue_id": event.venue_id,
                              "genres": list(event.genres)}, keep)]


CARD_FOLDS: dict[type[IntegrationEvent], Callable[[Any], list[Upsert]]] = {
    CardIssuedV1: card_issued,
    CardRenewedV1: card_renewed,
    CardChangedV1: card_changed,
    CardClosedV1: card_closed,
    CardReplacedV1: card_replaced,
    CardUsesImportedV1: card_uses_imported,
    OrganisationRegisteredV1: organisation_registered,
    OrganisationStatusChangedV1: organisation_status_changed,
}
USAGE_FOLDS: dict[type[IntegrationEvent], Callable[[Any], list[Upsert]]] = {
    TicketRegisteredV1: ticket_registered,
    TicketCancelledV1: ticket_cancelled,
}
DESK_FOLDS: dict[type[IntegrationEvent], Callable[[Any], list[Upsert]]] = {
    SwimmingVisitRegisteredV1: swimming_visit_registered,
    LibraryFeeCoveredV1: library_fee_covered,
}
VENUE_FOLDS: dict[type[IntegrationEvent], Callable[[Any], list[Upsert]]] = {
    VenueRegisteredV1: venue_registered,
    VenueChangedV1: venue_changed,
    OfferingPublishedV1: offering_published,
}
FOLDS = {**CARD_FOLDS, **USAGE_FOLDS, **DESK_FOLDS, **VENUE_FOLDS}


__all__ = ["CARD_FOLDS", "DESK_FOLDS", "FOLDS", "VENUE_FOLDS", "TABLES", "USAGE_FOLDS", "Row", "Table", "Upsert", "keep"]
