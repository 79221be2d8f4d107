"""What other services' events do to notifications' read models.

One table, ``HANDLERS``, says which function handles which contract; the durable
consumers are built from it (``consumers``). Each handler runs in the
transaction that records the event id, so a redelivery or a replay changes
nothing. Where a handler has something to decide, the decision is a pure
function beside it (``*_rows``, ``*_notice``), tested without a database.

Fan-out is exactly once per (account, offering): the primary key of
``notification`` makes a redelivered or replayed OfferingPublished insert nothing
new, whichever worker replica handles it, and the fan-out is one INSERT … SELECT.

Regions come from cards' network (``NetworkChangedV1`` → ``network_municipality``).
An offering whose municipality the network does not name (yet: the network may
arrive after the offering) reaches holders without a region filter at once, and
waits in ``fanout_awaiting_network`` for the rest; the network event that names
its municipality completes the fan-out. Nothing is dropped, nothing retried hot.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any
from uuid import UUID, uuid5

import asyncpg

from kaiku_shared.kernel.errors import NotYetKnown
from kaiku_shared.consumer import Consumer, Handler
from kaiku_shared.db import purge_idempotency
from kaiku_shared.eventstore import events_table
from kaiku_shared.contracts import (
    AccountActivatedV1,
    AccountErasedV1,
    CardIssuedV1,
    CardReplacedV1,
    GenreSubscriptionsChangedV1,
    IntegrationEvent,
    NetworkChangedV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OrganisationRegisteredV1,
    TicketCancellationRequestedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueRegisteredV1,
)

from ..config import SERVICE
from . import message_keys, queries
from .queries import Place

log = logging.getLogger("notifications.projections")

SUBSCRIPTIONS_CONSUMER = "notifications-subscriptions"
FANOUT_CONSUMER = "notifications-offering-fanout"
VENUES_CONSUMER = "notifications-venues"
CARDS_CONSUMER = "notifications-cards"
NETWORK_CONSUMER = "notifications-network"

# A fan-out takes this lock shared, the network projection exclusively: an offering
# parked for want of its municipality is always seen by the network event that
# names it (never parked just after that event looked).
NETWORK_LOCK = "SELECT pg_advisory_xact_lock{}(hashtext('notifications-network'))"


# NotYetKnown (kaiku_shared.kernel.errors): the consumer retries it, never dead-letters it.


def normalise(name: str) -> str:
    """A municipality as venues may write it: code or name, any case, any language."""
    return unicodedata.normalize("NFC", name.strip()).casefold()


# --- omakaiku ------------------------------------------------------------------------


def subscription_rows(event: GenreSubscriptionsChangedV1) -> list[tuple[Any, ...]]:
    """(account, genre, version, region filter): one row per genre or subgenre."""
    region = event.region.strip().casefold() if event.region else None
    return [(event.account_id, genre, event.aggregate_version, region)
            for genre in sorted({*event.genres, *event.subgenres})]


async def on_genre_subscriptions_changed(event: GenreSubscriptionsChangedV1,
                                         conn: asyncpg.Connection) -> None:
    current = await conn.fetchval(
        "SELECT version FROM subscription_version WHERE account_id = $1 FOR UPDATE",
        event.account_id)
    if current is not None and current >= event.aggregate_version:
        return  # an older choice arriving late
    await conn.execute(
        "INSERT INTO subscription_version (account_id, version) VALUES ($1, $2) "
        "ON CONFLICT (account_id) DO UPDATE SET version = excluded.version",
        event.account_id, event.aggregate_version)
    await conn.execute("DELETE FROM subscription_view WHERE account_id = $1", event.account_id)
    await conn.executemany(
        "INSERT INTO subscription_view (account_id, genre, version, region) "
        "VALUES ($1, $2, $3, $4)", subscription_rows(event))


async def on_account_activated(event: AccountActivatedV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO account_view (account_id, card_number) VALUES ($1, $2) "
        "ON CONFLICT (account_id) DO UPDATE SET card_number = excluded.card_number",
        event.account_id, event.card_number)
    await deliver_current_bulletins(conn, account_id=event.account_id)


async def on_account_erased(event: AccountErasedV1, conn: asyncpg.Connection) -> None:
    card_number = await queries.card_of(conn, event.account_id)
    owners = queries.holder_owners(event.account_id, card_number)
    await message_keys.redact_unsealed(conn, events_table(SERVICE), event.account_id,
                                       card_number)
    for statement in ("DELETE FROM subscription_view WHERE account_id = $1",
                      "DELETE FROM subscription_version WHERE account_id = $1",
                      "DELETE FROM delivery_preference WHERE account_id = $1",
                      "DELETE FROM notification WHERE account_id = $1",
                      "DELETE FROM account_view WHERE account_id = $1"):
        await conn.execute(statement, event.account_id)
    await conn.execute("DELETE FROM inbox_item WHERE owner = ANY($1::text[]) "
                       "OR sealed_for = ANY($1::text[])", owners)
    # What the holder wrote and received, wherever a copy is (the event store,
    # other inboxes, dumps, backups), cannot be opened without these keys.
    await message_keys.shred(conn, owners)
    await purge_idempotency(conn, f"holder:{event.account_id}")


def cancellation_request_item(event: TicketCancellationRequestedV1,
                              ticket: dict[str, Any]) -> tuple[Any, ...]:
    """(owner, item id, sender, subject, body, payload) of the venue's inbox item."""
    return (
        f"organisation:{ticket['organisation_id']}", event.event_id,
        json.dumps({"kind": "holder", "card_number": event.card_number}),
        f"Cancellation request: {ticket['offering_title']}",
        f"The holder of card {event.card_number} asks to cancel ticket {event.ticket_id} "
        f"for {ticket['offering_title']} on {ticket['starts_at'].isoformat()}. "
        "Confirm it with POST /tickets/{ticket_id}/cancellation in venues.",
        json.dumps({"ticket_id": str(event.ticket_id), "card_number": event.card_number,
                    "offering_id": str(ticket["offering_id"]),
                    "venue_id": str(ticket["venue_id"])}),
    )


async def on_ticket_cancellation_requested(event: TicketCancellationRequestedV1,
                                           conn: asyncpg.Connection) -> None:
    """The holder asked to cancel: the venue's organisation gets it in its inbox."""
    ticket = await queries.ticket_with_venue(conn, event.ticket_id)
    if ticket is None:
        raise NotYetKnown(f"ticket {event.ticket_id} or its venue not seen yet")
    await conn.execute(
        """
        INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body, payload)
        VALUES ($1, $2, 'ticket_cancellation_request', $3::jsonb, $4, $5, $6::jsonb)
        ON CONFLICT DO NOTHING
        """, *cancellation_request_item(event, dict(ticket)))


# --- venues ----------------------------------------------------------------------------


async def notify_accounts(conn: asyncpg.Connection, account_ids: list[UUID], source_id: UUID,
                          kind: str, title: str, params: dict[str, str],
                          sealed_for: str | None = None) -> None:
    """In-app notifications (each with the holder's delivery choice), once per source.
    ``sealed_for``: the holder key the title is sealed with (a message's subject)."""
    await conn.execute(
        """
        INSERT INTO notification (account_id, source_id, kind, title, payload, delivery,
                                  sealed_for)
        SELECT a, $2::uuid, $3::text, $4::text, $5::jsonb, coalesce(p.delivery, 'immediate'),
               $6::text
        FROM unnest($1::uuid[]) a LEFT JOIN delivery_preference p ON p.account_id = a
        ON CONFLICT (account_id, source_id) DO NOTHING
        """,
        account_ids, source_id, kind, title, json.dumps(params), sealed_for,
    )


BULLETIN_SENDER = json.dumps({"kind": "organisation", "organisation_id": None,
                              "role": "kaikukeskus"})


async def deliver_current_bulletins(conn: asyncpg.Connection, *,
                                    organisation_id: UUID | None = None,
                                    account_id: UUID | None = None) -> None:
    """Bulletins still current reach an organisation or account that joined after
    they were published (once: the keys make a redelivery insert nothing)."""
    if organisation_id is not None:
        await conn.execute(
            "INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body, created_at) "
            "SELECT 'organisation:' || $1::text, bulletin_id, 'bulletin', $2::jsonb, title, "
            "body, published_at FROM bulletin_view WHERE valid_until > now() "
            "ON CONFLICT DO NOTHING", str(organisation_id), BULLETIN_SENDER)
    if account_id is not None:
        await conn.execute(
            """
            INSERT INTO notification (account_id, source_id, kind, title, payload, delivery)
            SELECT $1::uuid, b.bulletin_id, 'bulletin', b.title,
                   jsonb_build_object('bulletin_id', b.bulletin_id::text, 'title', b.title,
                                      'body', b.body),
                   coalesce((SELECT delivery FROM delivery_preference WHERE account_id = $1),
                            'immediate')
            FROM bulletin_view b WHERE b.valid_until > now()
            ON CONFLICT (account_id, source_id) DO NOTHING
            """, account_id)


def offering_params(event: OfferingPublishedV1, place: Place | None) -> dict[str, str]:
    return {"offering_id": str(event.offering_id), "title": event.title,
            "venue_name": event.venue_name, "starts_at": event.starts_at.isoformat(),
            "municipality": place.code if place else normalise(event.municipality),
            "region": place.region if place else ""}


async def fan_out_offering(conn: asyncpg.Connection, event: OfferingPublishedV1,
                           place: Place | None) -> int:
    """One notification per subscribed holder whose region filter (if any) is the
    offering's region; without a place, only holders without a filter. The count made."""
    status = await conn.execute(
        """
        INSERT INTO notification (account_id, source_id, kind, title, payload, delivery)
        SELECT s.account_id, $1::uuid, 'new_offering', $2::text, $3::jsonb,
               coalesce(p.delivery, 'immediate')
        FROM (SELECT DISTINCT ON (account_id) account_id, region FROM subscription_view
              WHERE genre = ANY($4::text[])) s
        LEFT JOIN delivery_preference p ON p.account_id = s.account_id
        WHERE s.region IS NULL OR s.region = $5::text
        ON CONFLICT (account_id, source_id) DO NOTHING
        """,
        event.offering_id, event.title, json.dumps(offering_params(event, place)),
        [*event.genres, *event.subgenres], place.region if place else None,
    )
    return int(status.split()[-1])


async def on_offering_published(event: OfferingPublishedV1, conn: asyncpg.Connection) -> None:
    await conn.execute(NETWORK_LOCK.format("_shared"))
    place = await queries.place_of(conn, normalise(event.municipality))
    await fan_out_offering(conn, event, place)
    if place is None:
        await conn.execute(
            "INSERT INTO fanout_awaiting_network (offering_id, municipality, starts_at, event) "
            "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING",
            event.offering_id, normalise(event.municipality), event.starts_at,
            event.to_json().decode())
        log.warning("municipality not in cards' network (yet): holders with a region "
                    "filter get the offering once the network names it",
                    extra={"offering_id": str(event.offering_id),
                           "municipality": event.municipality})


async def on_venue_registered(event: VenueRegisteredV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO venue_view (venue_id, organisation_id, name) VALUES ($1, $2, $3) "
        "ON CONFLICT (venue_id) DO UPDATE SET organisation_id = excluded.organisation_id, "
        "name = excluded.name",
        event.venue_id, event.organisation_id, event.name)


async def on_ticket_registered(event: TicketRegisteredV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO ticket_view (ticket_id, offering_id, offering_title, venue_id, "
        "card_number, starts_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'registered') "
        "ON CONFLICT (ticket_id) DO NOTHING",
        event.ticket_id, event.offering_id, event.offering_title, event.venue_id,
        event.card_number, event.starts_at)


def ticket_cancelled_notice(event: TicketCancelledV1, title: str | None
                            ) -> tuple[str, dict[str, str]]:
    """The holder's notification title and params; ``title`` is the offering's, if known."""
    return (f"Ticket cancelled: {title}" if title else "Ticket cancelled",
            {"ticket_id": str(event.ticket_id), "offering_id": str(event.offering_id),
             "offering_title": title or "", "reason": event.reason or "",
             "requested_by_holder": "true" if event.requested_by_holder else "false"})


async def on_ticket_cancelled(event: TicketCancelledV1, conn: asyncpg.Connection) -> None:
    """The ticket is cancelled: its holder hears it (in-app and by e-mail)."""
    title = await conn.fetchval(
        "UPDATE ticket_view SET status = 'cancelled' WHERE ticket_id = $1 "
        "RETURNING offering_title", event.ticket_id)
    accounts = await queries.accounts_of_card(conn, event.card_number)
    if accounts:
        await notify_accounts(conn, accounts, event.ticket_id, "ticket_cancelled",
                              *ticket_cancelled_notice(event, title))


def offering_changed_notice(event: OfferingChangedV1) -> tuple[UUID, str, dict[str, str]]:
    """(source id, title, params): one notification per change of the offering."""
    return (uuid5(event.offering_id, f"changed/{event.aggregate_version}"),
            f"Changed: {event.title}",
            {"offering_id": str(event.offering_id), "title": event.title,
             "starts_at": event.starts_at.isoformat()})


async def on_offering_changed(event: OfferingChangedV1, conn: asyncpg.Connection) -> None:
    """Holders with a ticket hear of the change; one notification per change."""
    await conn.execute("UPDATE ticket_view SET offering_title = $2, starts_at = $3 "
                       "WHERE offering_id = $1", event.offering_id, event.title,
                       event.starts_at)
    accounts = await queries.ticket_holders(conn, event.offering_id, ("registered",))
    if accounts:
        source_id, title, params = offering_changed_notice(event)
        await notify_accounts(conn, accounts, source_id, "offering_changed", title, params)


# --- cards -------------------------------------------------------------------------------


async def on_organisation_registered(event: OrganisationRegisteredV1,
                                     conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO organisation_view (organisation_id, kind, name) VALUES ($1, $2, $3) "
        "ON CONFLICT (organisation_id) DO UPDATE SET kind = excluded.kind, "
        "name = excluded.name",
        event.organisation_id, event.kind, event.name)
    await deliver_current_bulletins(conn, organisation_id=event.organisation_id)


async def on_card_issued(event: CardIssuedV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO card_view (card_number, issuer_organisation_id) VALUES ($1, $2) "
        "ON CONFLICT (card_number) DO NOTHING",
        event.card_number, event.issuer_organisation_id)


async def on_card_replaced(event: CardReplacedV1, conn: asyncpg.Connection) -> None:
    """The holder's account, inbox and links follow the card to its new number."""
    old, new = event.card_number, event.replacement_card_number
    await conn.execute(
        "INSERT INTO card_view (card_number, issuer_organisation_id) "
        "SELECT $2, issuer_organisation_id FROM card_view WHERE card_number = $1 "
        "ON CONFLICT (card_number) DO NOTHING", old, new)
    await conn.execute("UPDATE account_view SET card_number = $2 WHERE card_number = $1",
                       old, new)
    await conn.execute("UPDATE ticket_view SET card_number = $2 WHERE card_number = $1",
                       old, new)
    # The card's message key follows it (the wrapping is not bound to the name).
    await conn.execute(
        "UPDATE message_key SET holder = $2 WHERE holder = $1 AND NOT EXISTS "
        "(SELECT 1 FROM message_key k WHERE k.holder = $2)", f"card:{old}", f"card:{new}")
    for table in ("inbox_item", "notification"):
        await conn.execute(f"UPDATE {table} SET sealed_for = $2 WHERE sealed_for = $1",
                           f"card:{old}", f"card:{new}")
    await conn.execute(
        "UPDATE inbox_item SET owner = $2 WHERE owner = $1 AND NOT EXISTS "
        "(SELECT 1 FROM inbox_item i WHERE i.owner = $2 AND i.item_id = inbox_item.item_id)",
        f"card:{old}", f"card:{new}")


def network_region_rows(event: NetworkChangedV1) -> list[tuple[Any, ...]]:
    """(code, names, country, changed at) of each region the event gives."""
    return [(r.code, json.dumps(r.name, ensure_ascii=False), r.country, event.occurred_at)
            for r in event.regions]


def network_municipality_rows(event: NetworkChangedV1) -> list[tuple[Any, ...]]:
    """(code, region, names, status, country, lookup keys, changed at) of each
    municipality; the keys are its code and names as ``normalise`` writes them."""
    return [(m.code, m.region, json.dumps(m.name, ensure_ascii=False), m.status, m.country,
             sorted({normalise(m.code), *(normalise(n) for n in m.name.values() if n)}),
             event.occurred_at)
            for m in event.municipalities]


async def on_network_changed(event: NetworkChangedV1, conn: asyncpg.Connection) -> None:
    """Cards' regions and municipalities as now given (upserts; an older change
    arriving late never overwrites a newer one); then the fan-outs that waited."""
    await conn.execute(NETWORK_LOCK.format(""))
    await conn.executemany(
        "INSERT INTO network_region (code, name, country, changed_at) "
        "VALUES ($1, $2::jsonb, $3, $4) ON CONFLICT (code) DO UPDATE SET "
        "name = excluded.name, country = excluded.country, changed_at = excluded.changed_at "
        "WHERE network_region.changed_at <= excluded.changed_at",
        network_region_rows(event))
    await conn.executemany(
        "INSERT INTO network_municipality (code, region, name, status, country, lookup_keys, "
        "changed_at) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) ON CONFLICT (code) DO UPDATE "
        "SET region = excluded.region, name = excluded.name, status = excluded.status, "
        "country = excluded.country, lookup_keys = excluded.lookup_keys, "
        "changed_at = excluded.changed_at "
        "WHERE network_municipality.changed_at <= excluded.changed_at",
        network_municipality_rows(event))
    await complete_awaiting_fan_outs(conn)


async def complete_awaiting_fan_outs(conn: asyncpg.Connection) -> int:
    """Fan out, to holders with a region filter, the offerings whose municipality
    the network now names; how many were completed. Holders without a filter got
    them already (the primary key keeps them from a second one). An offering that
    has begun is no news to anyone: it stops waiting, so the table stays small."""
    await conn.execute("DELETE FROM fanout_awaiting_network WHERE starts_at < now()")
    completed = 0
    for row in await conn.fetch("SELECT offering_id, municipality, event::text AS event "
                                "FROM fanout_awaiting_network ORDER BY offering_id"):
        place = await queries.place_of(conn, row["municipality"])
        if place is None:
            continue
        await fan_out_offering(conn, OfferingPublishedV1.model_validate_json(row["event"]),
                               place)
        await conn.execute("DELETE FROM fanout_awaiting_network WHERE offering_id = $1",
                           row["offering_id"])
        completed += 1
    return completed


# --- the table and the consumers built from it ----------------------------------------------

HANDLERS: dict[type[IntegrationEvent], Handler] = {
    GenreSubscriptionsChangedV1: on_genre_subscriptions_changed,
    AccountActivatedV1: on_account_activated,
    AccountErasedV1: on_account_erased,
    TicketCancellationRequestedV1: on_ticket_cancellation_requested,
    OfferingPublishedV1: on_offering_published,
    VenueRegisteredV1: on_venue_registered,
    TicketRegisteredV1: on_ticket_registered,
    TicketCancelledV1: on_ticket_cancelled,
    OfferingChangedV1: on_offering_changed,
    OrganisationRegisteredV1: on_organisation_registered,
    CardIssuedV1: on_card_issued,
    CardReplacedV1: on_card_replaced,
    NetworkChangedV1: on_network_changed,
}

# One durable consumer per source stream, except two with their own: the fan-out
# (a burst of ticket events never delays it) and cards' network (a backlog of card
# events never delays the reference data the fan-out may be waiting for).
OWN_DURABLE: dict[type[IntegrationEvent], str] = {
    OfferingPublishedV1: FANOUT_CONSUMER,
    NetworkChangedV1: NETWORK_CONSUMER,
}
DURABLE_OF_SOURCE = {"omakaiku": SUBSCRIPTIONS_CONSUMER, "venues": VENUES_CONSUMER,
                     "cards": CARDS_CONSUMER}


def durable_for(contract: type[IntegrationEvent]) -> str:
    return OWN_DURABLE.get(contract) or DURABLE_OF_SOURCE[contract.PRODUCER]


def consumers(application: Any = None) -> list[Consumer]:
    """The worker's durable consumers, from ``HANDLERS`` (the application is not needed:
    every handler writes read models only)."""
    built: dict[str, Consumer] = {}
    for contract, handler in HANDLERS.items():
        name = durable_for(contract)
        consumer = built.setdefault(name, Consumer(name, contract.PRODUCER))
        consumer.on(contract)(handler)
    return list(built.values())
