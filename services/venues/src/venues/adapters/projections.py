"""Venues' projections: the events that keep its read models (``schema``).

``card_validity_view`` is fed only by Kaikukanta's card events: venues never
asks the registry synchronously, so a box office keeps working if it is down.
``mobile_card_key_view`` is fed only by omakaiku's MobileCardKeyPublished: the
mobile card is verified offline, without a call to omakaiku.

Each handler is a plain function of the event, a connection (the consumer's
transaction) and venues' own application — or None in an audit or a test,
which then stands for "no venue details to read". ``PROJECTIONS`` is the one
table of which durable consumer applies which contract with which handler.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from kaiku_shared.kernel.errors import NotYetKnown
from kaiku_shared.consumer import Consumer, Handler
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    FeedbackGivenV1,
    FeedbackGivenV2,
    IntegrationEvent,
    MobileCardKeyPublishedV1,
    OfferingCancelledV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OfferingTermsPublishedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueChangedV1,
    VenueRegisteredV1,
)

CARD_CONSUMER = "venues-card-validity"
OFFERING_CONSUMER = "venues-offering-list"
FEEDBACK_CONSUMER = "venues-feedback"
MOBILE_CARD_KEY_CONSUMER = "venues-mobile-card-keys"
# A durable of its own (not a handler on venues-offering-list): a new durable
# starts at the beginning of the stream, so venues registered before the list
# existed are listed too.
VENUE_CONSUMER = "venues-venue-list"
# The box office's list of card tickets per offering (its own durable: it starts
# at the stream's beginning, so tickets registered before the list are in it).
TICKET_CONSUMER = "venues-ticket-list"

# Venues' application (its ``get_venue``), or None where no venue is read.
Venues = Any
Projection = Callable[[Any, asyncpg.Connection, Venues], Awaitable[None]]


# NotYetKnown (kaiku_shared.kernel.errors): the consumer retries it, never dead-letters it.


# --- what venues knows of cards (Kaikukanta) ----------------------------------------


async def on_card_issued(event: CardIssuedV1, conn: asyncpg.Connection,
                         venues: Venues) -> None:
    # A renewal or change that arrived first keeps its newer validity and children.
    await conn.execute(
        """
        INSERT INTO card_validity_view (card_number, valid_from, valid_until, children,
            status, version)
        VALUES ($1, $2, $3, $4, 'open', $5)
        ON CONFLICT (card_number) DO UPDATE SET valid_from = excluded.valid_from,
            valid_until = coalesce(card_validity_view.valid_until, excluded.valid_until),
            children = coalesce(card_validity_view.children, excluded.children)
        """,
        event.card_number, event.valid_from, event.valid_until, event.children,
        event.aggregate_version,
    )


async def on_card_renewed(event: CardRenewedV1, conn: asyncpg.Connection,
                          venues: Venues) -> None:
    await _apply_card_state(conn, event.card_number, event.aggregate_version,
                            event.valid_until, event.children)


async def on_card_changed(event: CardChangedV1, conn: asyncpg.Connection,
                          venues: Venues) -> None:
    await _apply_card_state(conn, event.card_number, event.aggregate_version,
                            event.valid_until, event.children)


async def on_card_closed(event: CardClosedV1, conn: asyncpg.Connection,
                         venues: Venues) -> None:
    await conn.execute(
        """
        INSERT INTO card_validity_view (card_number, status, version) VALUES ($1, 'closed', $2)
        ON CONFLICT (card_number) DO UPDATE SET status = 'closed',
            version = greatest(card_validity_view.version, excluded.version)
        """,
        event.card_number, event.aggregate_version,
    )


async def _apply_card_state(conn: asyncpg.Connection, card_number: str, version: int,
                            valid_until: object, children: int) -> None:
    """Take the newer state; 'closed' is final, an early row waits for CardIssued."""
    await conn.execute(
        """
        INSERT INTO card_validity_view (card_number, valid_until, children, status, version)
        VALUES ($1, $2, $3, 'open', $4)
        ON CONFLICT (card_number) DO UPDATE SET
            valid_until = excluded.valid_until, children = excluded.children,
            version = excluded.version
        WHERE card_validity_view.version < excluded.version
        """,
        card_number, valid_until, children, version,
    )


# --- the offering list ---------------------------------------------------------------


async def on_offering_published(event: OfferingPublishedV1, conn: asyncpg.Connection,
                                venues: Venues) -> None:
    await conn.execute(
        """
        INSERT INTO offering_view (offering_id, venue_id, venue_name, title, kind, genres,
            subgenres, starts_at, municipality, capacity, card_cap, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (offering_id) DO NOTHING
        """,
        event.offering_id, event.venue_id, event.venue_name, event.title, event.kind,
        list(event.genres), list(event.subgenres), event.starts_at, event.municipality,
        event.capacity, event.card_cap, event.aggregate_version,
    )


async def on_offering_terms_published(event: OfferingTermsPublishedV1,
                                      conn: asyncpg.Connection, venues: Venues) -> None:
    venue = await _venue(venues, event.venue_id)
    contact = dict(getattr(venue, "contact", {}) or {}) if venue is not None else {}
    limits = {
        "one_ticket_per_card": event.one_ticket_per_card,
        "max_open_reservations": event.max_open_reservations,
        "weekends_excluded": event.weekends_excluded,
        "excluded_productions": list(event.excluded_productions),
    }
    status = await conn.execute(
        """
        UPDATE offering_view SET production = $2, venue_kind = $3, sales_opens_at = $4,
            card_tickets_excluded = $5, limits = $6::jsonb, contact = $7::jsonb
        WHERE offering_id = $1
        """,
        event.offering_id, event.production, event.venue_kind, event.sales_opens_at,
        event.card_tickets_excluded, json.dumps(limits), json.dumps(contact),
    )
    if _none_updated(status):
        raise NotYetKnown(f"offering {event.offering_id} not in the list yet")


async def on_offering_changed(event: OfferingChangedV1, conn: asyncpg.Connection,
                              venues: Venues) -> None:
    # Only a newer version moves the row; an older one is already overtaken.
    status = await conn.execute(
        """
        UPDATE offering_view SET title = $2, starts_at = $3, capacity = $4, card_cap = $5,
            sales_opens_at = $6, version = $7
        WHERE offering_id = $1 AND version < $7
        """,
        event.offering_id, event.title, event.starts_at, event.capacity, event.card_cap,
        event.sales_opens_at, event.aggregate_version,
    )
    if _none_updated(status) and not await _offering_listed(conn, event.offering_id):
        raise NotYetKnown(f"offering {event.offering_id} not in the list yet")


async def on_offering_cancelled(event: OfferingCancelledV1, conn: asyncpg.Connection,
                                venues: Venues) -> None:
    # Cancelled is final, whatever order the events come in.
    status = await conn.execute(
        "UPDATE offering_view SET status = 'cancelled', cancel_reason = $2 "
        "WHERE offering_id = $1",
        event.offering_id, event.reason,
    )
    if _none_updated(status):
        raise NotYetKnown(f"offering {event.offering_id} not in the list yet")


async def _offering_listed(conn: asyncpg.Connection, offering_id: object) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM offering_view WHERE offering_id = $1",
                                    offering_id))


def _none_updated(status: str) -> bool:
    """asyncpg's command tag, e.g. ``UPDATE 0``: no row matched."""
    return status.endswith(" 0")


# --- feedback and omakaiku's mobile-card keys ----------------------------------------


async def on_feedback_given(event: FeedbackGivenV2, conn: asyncpg.Connection,
                            venues: Venues) -> None:
    # One row per answer, by its own id (no ticket): a repeat counts once.
    await conn.execute(
        """
        INSERT INTO feedback_view (feedback_id, venue_id, offering_id, accessibility,
            meaning, interest)
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (feedback_id) DO NOTHING
        """,
        event.feedback_id, event.venue_id, event.offering_id, event.accessibility,
        event.meaning, event.interest,
    )


async def on_feedback_given_v1(event: FeedbackGivenV1, conn: asyncpg.Connection,
                               venues: Venues) -> None:
    # Published before V2 and still in the stream: the same answer, its ticket
    # id dropped here and never stored.
    await on_feedback_given(event.upcast(), conn, venues)


async def on_mobile_card_key_published(event: MobileCardKeyPublishedV1,
                                       conn: asyncpg.Connection, venues: Venues) -> None:
    # A kid names one key for good: the first row stays.
    await conn.execute(
        """
        INSERT INTO mobile_card_key_view (kid, algorithm, kty, crv, x, published_at)
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING
        """,
        event.kid, event.algorithm, event.kty, event.crv, event.x, event.published_at,
    )


# --- the venue list -------------------------------------------------------------------


async def on_venue_registered(event: VenueRegisteredV1, conn: asyncpg.Connection,
                              venues: Venues) -> None:
    # The contract names the venue; its ticket agents, contact and limits are
    # read from venues' own event store (they never change after registration).
    ticket_agents: list[Any] = []
    timezone, contact, limits = "Europe/Helsinki", {}, {}
    venue = await _venue(venues, event.venue_id)
    if venue is not None:
        ticket_agents = list(venue.ticket_agents)
        timezone = venue.timezone
        contact = dict(getattr(venue, "contact", {}) or {})
        limits = {**venue.limits, "ticket_agents": [str(a) for a in ticket_agents]}
    await conn.execute(
        """
        INSERT INTO venue_view (venue_id, organisation_id, name, kind, municipality,
            timezone, ticket_agents, contact, limits, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10)
        ON CONFLICT (venue_id) DO NOTHING
        """,
        event.venue_id, event.organisation_id, event.name, event.kind,
        event.municipality, timezone, ticket_agents, json.dumps(contact),
        json.dumps(limits), event.aggregate_version,
    )


async def on_venue_changed(event: VenueChangedV1, conn: asyncpg.Connection,
                           venues: Venues) -> None:
    # Only a newer version moves the row (a redelivered old change does not). A
    # name or contact absent (events from before they travelled) is unchanged;
    # changed limits are read from venues' own event store, as at registration.
    limits = None
    if "limits" in event.changed:
        venue = await _venue(venues, event.venue_id)
        if venue is not None:
            limits = {**venue.limits, "ticket_agents": [str(a) for a in event.ticket_agents]}
    contact = None if event.contact is None else event.contact.model_dump(exclude_none=True)
    await conn.execute(
        """
        UPDATE venue_view SET ticket_agents = $2,
               limits = coalesce($7::jsonb,
                                 limits || jsonb_build_object('ticket_agents', $3::jsonb)),
               name = coalesce($5, name), contact = coalesce($6::jsonb, contact),
               version = $4
         WHERE venue_id = $1 AND version < $4
        """,
        event.venue_id, list(event.ticket_agents),
        json.dumps([str(a) for a in event.ticket_agents]), event.aggregate_version,
        event.name, None if contact is None else json.dumps(contact),
        None if limits is None else json.dumps(limits))


# --- the box office's ticket list -----------------------------------------------------


async def on_ticket_registered(event: TicketRegisteredV1, conn: asyncpg.Connection,
                               venues: Venues) -> None:
    # A redelivery changes nothing; a cancellation already applied stays.
    await conn.execute(
        """
        INSERT INTO ticket_view (ticket_id, offering_id, venue_id, card_number, children,
            status, registered_at)
        VALUES ($1, $2, $3, $4, $5, 'registered', $6) ON CONFLICT (ticket_id) DO NOTHING
        """,
        event.ticket_id, event.offering_id, event.venue_id, event.card_number,
        event.children, event.occurred_at)


async def on_ticket_cancelled(event: TicketCancelledV1, conn: asyncpg.Connection,
                              venues: Venues) -> None:
    # Cancelled is final.
    status = await conn.execute(
        "UPDATE ticket_view SET status = 'cancelled', cancelled_at = $2 WHERE ticket_id = $1",
        event.ticket_id, event.occurred_at)
    if _none_updated(status):
        raise NotYetKnown(f"ticket {event.ticket_id} not in the list yet")


async def _venue(venues: Venues, venue_id: object) -> Any | None:
    """The venue from venues' own event store (a thread: eventsourcing is synchronous)."""
    if venues is None:
        return None
    return await asyncio.to_thread(venues.get_venue, venue_id)


# --- which durable applies what ------------------------------------------------------

PROJECTIONS: dict[str, dict[type[IntegrationEvent], Projection]] = {
    CARD_CONSUMER: {
        CardIssuedV1: on_card_issued,
        CardRenewedV1: on_card_renewed,
        CardChangedV1: on_card_changed,
        CardClosedV1: on_card_closed,
    },
    OFFERING_CONSUMER: {
        OfferingPublishedV1: on_offering_published,
        OfferingTermsPublishedV1: on_offering_terms_published,
        OfferingChangedV1: on_offering_changed,
        OfferingCancelledV1: on_offering_cancelled,
    },
    FEEDBACK_CONSUMER: {FeedbackGivenV1: on_feedback_given_v1,
                        FeedbackGivenV2: on_feedback_given},
    VENUE_CONSUMER: {
        VenueRegisteredV1: on_venue_registered,
        VenueChangedV1: on_venue_changed,
    },
    MOBILE_CARD_KEY_CONSUMER: {MobileCardKeyPublishedV1: on_mobile_card_key_published},
    TICKET_CONSUMER: {
        TicketRegisteredV1: on_ticket_registered,
        TicketCancelledV1: on_ticket_cancelled,
    },
}


def consumers(application: Venues = None) -> list[Consumer]:
    """The durable consumers of ``PROJECTIONS``; ``application`` is venues' own, to
    read a venue's contact and limits (None in an audit: only names and types)."""
    built = []
    for name, handlers in PROJECTIONS.items():
        # Each durable reads one stream: the producer of the contracts it applies.
        (source,) = {contract.PRODUCER for contract in handlers}
        consumer = Consumer(name, source)
        for contract, handler in handlers.items():
            consumer.on(contract)(_bound(handler, application))
        built.append(consumer)
    return built


def _bound(handler: Projection, application: Venues) -> Handler:
    async def apply(event: Any, conn: asyncpg.Connection) -> None:
        await handler(event, conn, application)

    apply.__name__ = handler.__name__
    return apply
