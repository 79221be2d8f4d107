"""OmaKaiku's projections: what each event it consumes does to its tables.

Each handler is a module-level function ``(event, conn)``; ``PROJECTIONS`` says,
for each durable consumer, which contract goes to which handler, and
``consumers`` builds the consumers from it. The tables are in ``schema``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from kaiku_shared.consumer import Consumer, Handler
from kaiku_shared.kernel.text import fold
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    IntegrationEvent,
    LibraryFeeCoveredV1,
    NetworkChangedV1,
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

CARD_CONSUMER = "omakaiku-cards"
HISTORY_CONSUMER = "omakaiku-history"
OFFERING_CONSUMER = "omakaiku-offering"
NETWORK_CONSUMER = "omakaiku-network"
# Its own durable so that, new, it reads venues' stream from the start and fills
# the details of offerings published before it existed.
DETAILS_CONSUMER = "omakaiku-offering-details"

# The worker's use case that moves an account to a replacement card.
MoveCard = Callable[[str, str], Awaitable[Any]]


# --- cards: the cards a distributor may activate ----------------------------------


async def on_card_issued(event: CardIssuedV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO card_view (card_number, issuer, status, version, valid_until, "
        "children, region) VALUES ($1, $2, 'open', $3, $4, $5, $6) "
        "ON CONFLICT (card_number) DO UPDATE SET issuer = excluded.issuer, "
        "valid_until = COALESCE(card_view.valid_until, excluded.valid_until), "
        "children = COALESCE(card_view.children, excluded.children), "
        "region = COALESCE(card_view.region, excluded.region)",
        event.card_number, event.issuer_organisation_id, event.aggregate_version,
        event.valid_until, event.children, event.region,
    )


async def on_card_updated(event: CardRenewedV1 | CardChangedV1,
                          conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO card_view (card_number, status, version, valid_until, children, region) "
        "VALUES ($1, 'open', $2, $3, $4, $5) "
        "ON CONFLICT (card_number) DO UPDATE SET valid_until = excluded.valid_until, "
        "children = excluded.children, region = excluded.region, version = excluded.version "
        "WHERE card_view.version < excluded.version",
        event.card_number, event.aggregate_version, event.valid_until, event.children,
        event.region,
    )


async def on_card_closed(event: CardClosedV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO card_view (card_number, status, version, closed_at) "
        "VALUES ($1, 'closed', $2, $3) ON CONFLICT (card_number) DO UPDATE SET "
        "status = 'closed', closed_at = COALESCE(card_view.closed_at, excluded.closed_at)",
        event.card_number, event.aggregate_version, event.occurred_at,
    )


async def on_card_replaced(event: CardReplacedV1, conn: asyncpg.Connection) -> None:
    """The replacement inherits the lost card's issuer, children and region. Its
    own CardIssued may come before or after this."""
    await conn.execute(
        "INSERT INTO card_view (card_number, issuer, status, version, valid_until, children, "
        "region) SELECT $2, issuer, 'open', 1, $3, children, region FROM card_view "
        "WHERE card_number = $1 "
        "ON CONFLICT (card_number) DO UPDATE SET valid_until = excluded.valid_until, "
        "issuer = COALESCE(card_view.issuer, excluded.issuer), "
        "children = COALESCE(card_view.children, excluded.children), "
        "region = COALESCE(card_view.region, excluded.region)",
        event.card_number, event.replacement_card_number, event.valid_until)


def moving_the_account(move_card: MoveCard) -> Handler:
    """``on_card_replaced``, then the account (if any) moves to the new number."""

    async def on_card_replaced_and_moved(event: CardReplacedV1,
                                         conn: asyncpg.Connection) -> None:
        await on_card_replaced(event, conn)
        await move_card(event.card_number, event.replacement_card_number)

    return on_card_replaced_and_moved


# --- venues: each card's tickets ----------------------------------------------------


async def on_ticket_registered(event: TicketRegisteredV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO history_view (ticket_id, card_number, offering_id, offering_title,
            venue_id, venue_name, starts_at, children, status, registered_at, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'registered', $9, $10)
        ON CONFLICT (ticket_id) DO UPDATE SET
            offering_title = excluded.offering_title, venue_name = excluded.venue_name,
            starts_at = excluded.starts_at, registered_at = excluded.registered_at
        """,
        event.ticket_id, event.card_number, event.offering_id, event.offering_title,
        event.venue_id, event.venue_name, event.starts_at, event.children,
        event.occurred_at, event.aggregate_version,
    )


async def on_ticket_cancelled(event: TicketCancelledV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO history_view (ticket_id, card_number, offering_id, venue_id, children,
            status, cancelled_at, version)
        VALUES ($1, $2, $3, $4, $5, 'cancelled', $6, $7)
        ON CONFLICT (ticket_id) DO UPDATE SET status = 'cancelled',
            cancelled_at = excluded.cancelled_at, version = excluded.version
        WHERE history_view.version < excluded.version
        """,
        event.ticket_id, event.card_number, event.offering_id, event.venue_id,
        event.children, event.occurred_at, event.aggregate_version,
    )


async def on_cancellation_refused(event: TicketCancellationRefusedV1,
                                  conn: asyncpg.Connection) -> None:
    # Venues said no (e.g. the event had started): the holder sees why.
    await conn.execute(
        "UPDATE history_view SET cancellation_refused = $2 "
        "WHERE ticket_id = $1 AND status = 'registered'",
        event.ticket_id, event.detail or event.rule,
    )


async def on_offering_changed_in_history(event: OfferingChangedV1,
                                         conn: asyncpg.Connection) -> None:
    await conn.execute(
        "UPDATE history_view SET offering_title = $2, starts_at = $3 WHERE offering_id = $1",
        event.offering_id, event.title, event.starts_at)


async def on_swimming_visit(event: SwimmingVisitRegisteredV1,
                            conn: asyncpg.Connection) -> None:
    await _record_use(conn, event, "swimming_visit", event.children, {
        "visits": event.visits, "visits_used": event.visits_used,
        "visits_per_year": event.visits_per_year, "year": event.year})


async def on_library_fee(event: LibraryFeeCoveredV1, conn: asyncpg.Connection) -> None:
    await _record_use(conn, event, "library_fee", 0, {
        "fee_type": event.fee_type, "amount_cents": event.amount_cents,
        "year_total_cents": event.year_total_cents, "cap_cents": event.cap_cents,
        "year": event.year})


async def _record_use(conn: asyncpg.Connection,
                      event: SwimmingVisitRegisteredV1 | LibraryFeeCoveredV1,
                      kind: str, children: int, detail: dict[str, Any]) -> None:
    """A use of the card that is not a ticket, in the holder's history (the row
    is keyed by the event, so a redelivery changes nothing)."""
    await conn.execute(
        """
        INSERT INTO history_view (ticket_id, card_number, venue_id, venue_name, starts_at,
            children, status, registered_at, version, kind, detail)
        VALUES ($1, $2, $3, (SELECT name FROM venue_view WHERE venue_id = $3), $4, $5,
                'used', $4, $6, $7, $8::jsonb)
        ON CONFLICT (ticket_id) DO NOTHING
        """,
        event.event_id, event.card_number, event.venue_id, event.occurred_at, children,
        event.aggregate_version, kind, json.dumps(detail))


# --- venues: what a holder needs to get a card ticket -------------------------------


async def on_venue_registered(event: VenueRegisteredV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO venue_view (venue_id, name, kind, municipality, contact, version) "
        "VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (venue_id) DO UPDATE SET "
        "name = excluded.name, kind = excluded.kind, municipality = excluded.municipality, "
        "contact = excluded.contact, version = excluded.version "
        "WHERE venue_view.version < excluded.version",
        event.venue_id, event.name, event.kind, event.municipality,
        _contact(event.contact), event.aggregate_version)


async def on_venue_changed(event: VenueChangedV1, conn: asyncpg.Connection) -> None:
    """Absent name or contact means unchanged (events from before they travelled)."""
    await conn.execute(
        "UPDATE venue_view SET name = COALESCE($2, name), "
        "contact = COALESCE($3::jsonb, contact), version = $4 "
        "WHERE venue_id = $1 AND version < $4",
        event.venue_id, event.name,
        None if event.contact is None else _contact(event.contact), event.aggregate_version)


def _contact(contact: Any) -> str:
    return json.dumps({} if contact is None else contact.model_dump(exclude_none=True))


async def on_offering_cap(event: OfferingPublishedV1 | OfferingChangedV1,
                          conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO offering_terms (offering_id, card_cap, cap_version) VALUES ($1, $2, $3) "
        "ON CONFLICT (offering_id) DO UPDATE SET card_cap = excluded.card_cap, "
        "cap_version = excluded.cap_version "
        "WHERE offering_terms.cap_version < excluded.cap_version",
        event.offering_id, event.card_cap, event.aggregate_version)


async def on_offering_terms(event: OfferingTermsPublishedV1, conn: asyncpg.Connection) -> None:
    limits = {"one_ticket_per_card": event.one_ticket_per_card,
              "max_open_reservations": event.max_open_reservations,
              "weekends_excluded": event.weekends_excluded,
              "excluded_productions": list(event.excluded_productions)}
    await conn.execute(
        "INSERT INTO offering_terms (offering_id, venue_kind, production, sales_opens_at, "
        "card_tickets_excluded, limits) VALUES ($1, $2, $3, $4, $5, $6::jsonb) "
        "ON CONFLICT (offering_id) DO UPDATE SET venue_kind = excluded.venue_kind, "
        "production = excluded.production, sales_opens_at = excluded.sales_opens_at, "
        "card_tickets_excluded = excluded.card_tickets_excluded, limits = excluded.limits",
        event.offering_id, event.venue_kind, event.production, event.sales_opens_at,
        event.card_tickets_excluded, json.dumps(limits))


async def on_sales_opening_changed(event: OfferingChangedV1, conn: asyncpg.Connection) -> None:
    await on_offering_cap(event, conn)
    await conn.execute(
        "UPDATE offering_terms SET sales_opens_at = $2 WHERE offering_id = $1 "
        "AND cap_version = $3", event.offering_id, event.sales_opens_at,
        event.aggregate_version)


async def on_places_taken(event: TicketRegisteredV1, conn: asyncpg.Connection) -> None:
    """The places the ticket takes; a cancellation that came first stays."""
    await conn.execute(
        "INSERT INTO offering_places (ticket_id, offering_id, places) VALUES ($1, $2, $3) "
        "ON CONFLICT (ticket_id) DO UPDATE SET places = excluded.places",
        event.ticket_id, event.offering_id,
        event.places if event.places is not None else 1 + event.children)


async def on_places_released(event: TicketCancelledV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO offering_places (ticket_id, offering_id, places, cancelled) "
        "VALUES ($1, $2, $3, true) ON CONFLICT (ticket_id) DO UPDATE SET cancelled = true",
        event.ticket_id, event.offering_id, 1 + event.children)


# --- venues: the published offering -------------------------------------------------


async def on_offering_published(event: OfferingPublishedV1, conn: asyncpg.Connection) -> None:
    """The municipality by its code, placed in its region; one the network does
    not know (yet) is kept folded, without a region, until ``on_network_changed``."""
    await conn.execute(
        """
        WITH place AS (SELECT code, region FROM network_municipalities
                       WHERE $10 = ANY(folded_names)
                       ORDER BY folded_names[1] = $10 DESC, code LIMIT 1)
        INSERT INTO offering_view (offering_id, venue_id, venue_name, title, kind, genres,
            subgenres, starts_at, municipality, region, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                COALESCE((SELECT code FROM place), $10), (SELECT region FROM place), $9)
        ON CONFLICT (offering_id) DO UPDATE SET venue_name = excluded.venue_name,
            title = excluded.title, kind = excluded.kind, genres = excluded.genres,
            subgenres = excluded.subgenres, starts_at = excluded.starts_at,
            municipality = excluded.municipality, region = excluded.region,
            version = excluded.version
        WHERE offering_view.version < excluded.version
        """,
        event.offering_id, event.venue_id, event.venue_name, event.title, event.kind,
        list(event.genres), list(event.subgenres), event.starts_at,
        event.aggregate_version, fold(event.municipality),
    )


async def on_offering_changed(event: OfferingChangedV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "UPDATE offering_view SET title = $2, starts_at = $3, version = $4 "
        "WHERE offering_id = $1 AND version < $4",
        event.offering_id, event.title, event.starts_at, event.aggregate_version)


async def on_offering_cancelled(event: OfferingCancelledV1, conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM offering_view WHERE offering_id = $1", event.offering_id)


# --- cards: the network's regions and municipalities ---------------------------------


async def on_network_changed(event: NetworkChangedV1, conn: asyncpg.Connection) -> None:
    """Upsert what the event gives (an older change arriving late changes nothing),
    then place the offerings already here in their municipality's region."""
    await conn.executemany(
        "INSERT INTO network_regions (code, name, country, changed_at) "
        "VALUES ($1, $2::jsonb, $3, $4) ON CONFLICT (code) DO UPDATE SET "
        "name = excluded.name, country = excluded.country, changed_at = excluded.changed_at "
        "WHERE network_regions.changed_at <= excluded.changed_at",
        [(region.code, json.dumps(region.name), region.country, event.occurred_at)
         for region in event.regions])
    await conn.executemany(
        "INSERT INTO network_municipalities (code, name, region, status, country, "
        "folded_names, changed_at) VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7) "
        "ON CONFLICT (code) DO UPDATE SET name = excluded.name, region = excluded.region, "
        "status = excluded.status, country = excluded.country, "
        "folded_names = excluded.folded_names, changed_at = excluded.changed_at "
        "WHERE network_municipalities.changed_at <= excluded.changed_at",
        [(m.code, json.dumps(m.name), m.region, m.status, m.country,
          [fold(m.code), *(fold(name) for name in m.name.values())], event.occurred_at)
         for m in event.municipalities])
    await conn.execute(
        "UPDATE offering_view o SET municipality = m.code, region = m.region "
        "FROM network_municipalities m WHERE m.code = ANY($1::text[]) "
        "AND o.municipality = ANY(m.folded_names) "
        "AND (o.municipality, o.region) IS DISTINCT FROM (m.code, m.region)",
        [m.code for m in event.municipalities])


# --- the table ------------------------------------------------------------------------

Projection = dict[type[IntegrationEvent], Handler]

# durable consumer → (the stream it reads, contract → handler)
PROJECTIONS: dict[str, tuple[str, Projection]] = {
    CARD_CONSUMER: ("cards", {
        CardIssuedV1: on_card_issued,
        CardRenewedV1: on_card_updated,
        CardChangedV1: on_card_updated,
        CardClosedV1: on_card_closed,
        CardReplacedV1: on_card_replaced,
    }),
    HISTORY_CONSUMER: ("venues", {
        TicketRegisteredV1: on_ticket_registered,
        TicketCancelledV1: on_ticket_cancelled,
        TicketCancellationRefusedV1: on_cancellation_refused,
        OfferingChangedV1: on_offering_changed_in_history,
        SwimmingVisitRegisteredV1: on_swimming_visit,
        LibraryFeeCoveredV1: on_library_fee,
    }),
    OFFERING_CONSUMER: ("venues", {
        OfferingPublishedV1: on_offering_published,
        OfferingChangedV1: on_offering_changed,
        OfferingCancelledV1: on_offering_cancelled,
    }),
    NETWORK_CONSUMER: ("cards", {
        NetworkChangedV1: on_network_changed,
    }),
    DETAILS_CONSUMER: ("venues", {
        VenueRegisteredV1: on_venue_registered,
        VenueChangedV1: on_venue_changed,
        OfferingPublishedV1: on_offering_cap,
        OfferingTermsPublishedV1: on_offering_terms,
        OfferingChangedV1: on_sales_opening_changed,
        TicketRegisteredV1: on_places_taken,
        TicketCancelledV1: on_places_released,
    }),
}


def consumers(move_card: MoveCard | None = None) -> list[Consumer]:
    """The durable consumers of ``PROJECTIONS``. With ``move_card`` (the worker)
    a replaced card's account moves too; without it (an audit, the readiness
    check) only names and contracts are read."""
    built = []
    for name, (source, projection) in PROJECTIONS.items():
        consumer = Consumer(name, source)
        for contract, handler in projection.items():
            if contract is CardReplacedV1 and move_card is not None:
                handler = moving_the_account(move_card)
            consumer.on(contract)(handler)
        built.append(consumer)
    return built
