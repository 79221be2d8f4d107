"""Read models and the consumers that keep them, by opaque ids only.

Holders appear as account ids (from omakaiku) or card numbers (from cards and
venues); organisations and venues by id. No names of people, e-mails or phones.

Fan-out is exactly once per (account, offering): the primary key of
``notification`` makes a redelivered or replayed OfferingPublished insert nothing
new, whichever worker replica handles it, and the whole fan-out is one
INSERT … SELECT in the transaction that records the event id.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid5

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    AccountActivatedV1,
    AccountErasedV1,
    CardChangedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    GenreSubscriptionsChangedV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OrganisationRegisteredV1,
    TicketCancellationRequestedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueRegisteredV1,
)

from . import regions

SCHEMA = (
    # One row per (genre or subgenre, account); ``region`` is the holder's optional
    # region filter, repeated on each row so the fan-out needs no join.
    """
    CREATE TABLE IF NOT EXISTS subscription_view (
        account_id  uuid NOT NULL,
        genre       text NOT NULL,
        version     integer NOT NULL,
        region      text,
        PRIMARY KEY (genre, account_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS subscription_by_account ON subscription_view (account_id)",
    """
    CREATE TABLE IF NOT EXISTS subscription_version (
        account_id  uuid PRIMARY KEY,
        version     integer NOT NULL
    )
    """,
    # Immediate e-mail or a daily digest: the holder chooses here (GET/PUT /me/preferences).
    """
    CREATE TABLE IF NOT EXISTS delivery_preference (
        account_id  uuid PRIMARY KEY,
        delivery    text NOT NULL CHECK (delivery IN ('immediate', 'daily_digest')),
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS account_view (
        account_id   uuid PRIMARY KEY,
        card_number  text NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS account_by_card ON account_view (card_number)",
    """
    CREATE TABLE IF NOT EXISTS card_view (
        card_number             text PRIMARY KEY,
        issuer_organisation_id  uuid NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS municipality_region_view (
        municipality  text PRIMARY KEY,
        region        text NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS organisation_view (
        organisation_id  uuid PRIMARY KEY,
        kind             text NOT NULL,
        name             text NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS venue_view (
        venue_id         uuid PRIMARY KEY,
        organisation_id  uuid NOT NULL,
        name             text NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ticket_view (
        ticket_id       uuid PRIMARY KEY,
        offering_id     uuid NOT NULL,
        offering_title  text NOT NULL,
        venue_id        uuid NOT NULL,
        card_number     text NOT NULL,
        starts_at       timestamptz NOT NULL,
        status          text NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS ticket_by_card ON ticket_view (card_number)",
    # In-app notifications. ``delivery`` is fixed when the row is made;
    # ``batch_id`` is set when the row is claimed for the hand-over to omakaiku.
    """
    CREATE TABLE IF NOT EXISTS notification (
        account_id    uuid NOT NULL,
        source_id     uuid NOT NULL,
        kind          text NOT NULL,
        title         text NOT NULL,
        payload       jsonb NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        read_at       timestamptz,
        delivery      text NOT NULL DEFAULT 'immediate',
        batch_id      uuid,
        PRIMARY KEY (account_id, source_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS notification_pending ON notification (delivery, source_id) "
    "WHERE batch_id IS NULL",
    "CREATE INDEX IF NOT EXISTS notification_by_batch ON notification (batch_id)",
    # The hand-over log: every batch or digest claimed, its attempts and outcome.
    """
    CREATE TABLE IF NOT EXISTS handover (
        handover_id      uuid PRIMARY KEY,
        kind             text NOT NULL CHECK (kind IN ('batch', 'digest')),
        source_kind      text,
        source_id        uuid,
        account_id       uuid,
        digest_date      date,
        template_key     text,
        params           jsonb,
        recipients       integer NOT NULL,
        state            text NOT NULL CHECK (state IN ('claimed', 'issued', 'failed')),
        attempts         integer NOT NULL DEFAULT 0,
        last_error       text,
        next_attempt_at  timestamptz NOT NULL DEFAULT now(),
        created_at       timestamptz NOT NULL DEFAULT now(),
        issued_at        timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS handover_due ON handover (next_attempt_at) "
    "WHERE state = 'claimed'",
    # Every inbox: owner is 'organisation:<id>', 'user:<id>', 'account:<id>' or
    # 'card:<number>' (a holder addressed by card number, read once they sign in).
    """
    CREATE TABLE IF NOT EXISTS inbox_item (
        owner        text NOT NULL,
        item_id      uuid NOT NULL,
        kind         text NOT NULL,
        sender       jsonb NOT NULL,
        subject      text NOT NULL,
        body         text NOT NULL,
        payload      jsonb NOT NULL DEFAULT '{}',
        in_reply_to  uuid,
        created_at   timestamptz NOT NULL DEFAULT now(),
        read_at      timestamptz,
        PRIMARY KEY (owner, item_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS inbox_by_item ON inbox_item (item_id)",
    # Who took part in a message, for the reply rule.
    """
    CREATE TABLE IF NOT EXISTS message_view (
        message_id  uuid PRIMARY KEY,
        sender      jsonb NOT NULL,
        recipient   jsonb NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS projection_position (
        name      text PRIMARY KEY,
        position  bigint NOT NULL
    )
    """,
)

SUBSCRIPTIONS_CONSUMER = "notifications-subscriptions"
FANOUT_CONSUMER = "notifications-offering-fanout"
VENUES_CONSUMER = "notifications-venues"
CARDS_CONSUMER = "notifications-cards"

CONSUMERS = (("omakaiku", SUBSCRIPTIONS_CONSUMER), ("venues", FANOUT_CONSUMER),
             ("venues", VENUES_CONSUMER), ("cards", CARDS_CONSUMER))


def template_key(kind: str) -> str:
    """Language-neutral: omakaiku renders ``notification.<kind>`` in the holder's language."""
    return f"notification.{kind}"


class NotYetKnown(LookupError):
    """An event refers to something another stream has not told us yet: retry later."""


async def fan_out_offering(conn: asyncpg.Connection, event: OfferingPublishedV1) -> int:
    """One notification per subscribed holder (region filter honoured); the count made."""
    region = await regions.region_for(conn, event.municipality)
    params = {"offering_id": str(event.offering_id), "title": event.title,
              "venue_name": event.venue_name, "starts_at": event.starts_at.isoformat(),
              "municipality": regions.municipality_code(event.municipality),
              "region": region or ""}
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
        event.offering_id, event.title, json.dumps(params),
        [*event.genres, *event.subgenres], region,
    )
    return int(status.split()[-1])


async def notify_accounts(conn: asyncpg.Connection, account_ids: list[UUID], source_id: UUID,
                          kind: str, title: str, params: dict[str, str]) -> None:
    await conn.execute(
        """
        INSERT INTO notification (account_id, source_id, kind, title, payload, delivery)
        SELECT a, $2::uuid, $3::text, $4::text, $5::jsonb, coalesce(p.delivery, 'immediate')
        FROM unnest($1::uuid[]) a LEFT JOIN delivery_preference p ON p.account_id = a
        ON CONFLICT (account_id, source_id) DO NOTHING
        """,
        account_ids, source_id, kind, title, json.dumps(params),
    )


def consumers() -> list[Consumer]:
    subscriptions = Consumer(SUBSCRIPTIONS_CONSUMER, "omakaiku")
    fanout = Consumer(FANOUT_CONSUMER, "venues")
    venues = Consumer(VENUES_CONSUMER, "venues")
    cards = Consumer(CARDS_CONSUMER, "cards")

    # --- omakaiku -------------------------------------------------------------

    @subscriptions.on(GenreSubscriptionsChangedV1)
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
        await conn.execute("DELETE FROM subscription_view WHERE account_id = $1",
                           event.account_id)
        region = event.region.strip().casefold() if event.region else None
        await conn.executemany(
            "INSERT INTO subscription_view (account_id, genre, version, region) "
            "VALUES ($1, $2, $3, $4)",
            [(event.account_id, g, event.aggregate_version, region)
             for g in sorted({*event.genres, *event.subgenres})],
        )

    @subscriptions.on(AccountActivatedV1)
    async def on_account_activated(event: AccountActivatedV1,
                                   conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO account_view (account_id, card_number) VALUES ($1, $2) "
            "ON CONFLICT (account_id) DO UPDATE SET card_number = excluded.card_number",
            event.account_id, event.card_number)

    @subscriptions.on(AccountErasedV1)
    async def on_account_erased(event: AccountErasedV1, conn: asyncpg.Connection) -> None:
        card_number = await conn.fetchval(
            "SELECT card_number FROM account_view WHERE account_id = $1", event.account_id)
        owners = [f"account:{event.account_id}"]
        if card_number:
            owners.append(f"card:{card_number}")
        for statement in ("DELETE FROM subscription_view WHERE account_id = $1",
                          "DELETE FROM subscription_version WHERE account_id = $1",
                          "DELETE FROM delivery_preference WHERE account_id = $1",
                          "DELETE FROM notification WHERE account_id = $1",
                          "DELETE FROM account_view WHERE account_id = $1"):
            await conn.execute(statement, event.account_id)
        await conn.execute("DELETE FROM inbox_item WHERE owner = ANY($1::text[])", owners)

    @subscriptions.on(TicketCancellationRequestedV1)
    async def on_ticket_cancellation_requested(event: TicketCancellationRequestedV1,
                                               conn: asyncpg.Connection) -> None:
        """The holder asked to cancel: the venue's organisation gets it in its inbox."""
        ticket = await conn.fetchrow(
            "SELECT t.offering_id, t.offering_title, t.starts_at, t.venue_id, v.organisation_id "
            "FROM ticket_view t JOIN venue_view v USING (venue_id) WHERE t.ticket_id = $1",
            event.ticket_id)
        if ticket is None:
            raise NotYetKnown(f"ticket {event.ticket_id} or its venue not seen yet")
        await conn.execute(
            """
            INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body, payload)
            VALUES ($1, $2, 'ticket_cancellation_request', $3::jsonb, $4, $5, $6::jsonb)
            ON CONFLICT DO NOTHING
            """,
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

    # --- venues ---------------------------------------------------------------

    @fanout.on(OfferingPublishedV1)
    async def on_offering_published(event: OfferingPublishedV1,
                                    conn: asyncpg.Connection) -> None:
        await fan_out_offering(conn, event)

    @venues.on(VenueRegisteredV1)
    async def on_venue_registered(event: VenueRegisteredV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO venue_view (venue_id, organisation_id, name) VALUES ($1, $2, $3) "
            "ON CONFLICT (venue_id) DO UPDATE SET organisation_id = excluded.organisation_id, "
            "name = excluded.name",
            event.venue_id, event.organisation_id, event.name)

    @venues.on(TicketRegisteredV1)
    async def on_ticket_registered(event: TicketRegisteredV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO ticket_view (ticket_id, offering_id, offering_title, venue_id, "
            "card_number, starts_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'registered') "
            "ON CONFLICT (ticket_id) DO NOTHING",
            event.ticket_id, event.offering_id, event.offering_title, event.venue_id,
            event.card_number, event.starts_at)

    @venues.on(TicketCancelledV1)
    async def on_ticket_cancelled(event: TicketCancelledV1, conn: asyncpg.Connection) -> None:
        """The ticket is cancelled: its holder hears it (in-app and by e-mail)."""
        title = await conn.fetchval(
            "UPDATE ticket_view SET status = 'cancelled' WHERE ticket_id = $1 "
            "RETURNING offering_title", event.ticket_id)
        accounts = [r["account_id"] for r in await conn.fetch(
            "SELECT account_id FROM account_view WHERE card_number = $1", event.card_number)]
        if accounts:
            await notify_accounts(
                conn, accounts, event.ticket_id, "ticket_cancelled",
                f"Ticket cancelled: {title}" if title else "Ticket cancelled",
                {"ticket_id": str(event.ticket_id), "offering_id": str(event.offering_id),
                 "offering_title": title or "", "reason": event.reason or "",
                 "requested_by_holder": "true" if event.requested_by_holder else "false"})

    async def ticket_holders(conn: asyncpg.Connection, offering_id: UUID,
                             statuses: tuple[str, ...]) -> list[UUID]:
        return [r["account_id"] for r in await conn.fetch(
            "SELECT DISTINCT a.account_id FROM ticket_view t JOIN account_view a "
            "USING (card_number) WHERE t.offering_id = $1 AND t.status = ANY($2::text[])",
            offering_id, list(statuses))]

    @venues.on(OfferingChangedV1)
    async def on_offering_changed(event: OfferingChangedV1, conn: asyncpg.Connection) -> None:
        """Holders with a ticket hear of the change; one notification per change."""
        await conn.execute("UPDATE ticket_view SET offering_title = $2, starts_at = $3 "
                           "WHERE offering_id = $1", event.offering_id, event.title,
                           event.starts_at)
        accounts = await ticket_holders(conn, event.offering_id, ("registered",))
        if accounts:
            await notify_accounts(
                conn, accounts, uuid5(event.offering_id, f"changed/{event.aggregate_version}"),
                "offering_changed", f"Changed: {event.title}",
                {"offering_id": str(event.offering_id), "title": event.title,
                 "starts_at": event.starts_at.isoformat()})

    # --- cards ----------------------------------------------------------------

    @cards.on(OrganisationRegisteredV1)
    async def on_organisation_registered(event: OrganisationRegisteredV1,
                                         conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO organisation_view (organisation_id, kind, name) VALUES ($1, $2, $3) "
            "ON CONFLICT (organisation_id) DO UPDATE SET kind = excluded.kind, "
            "name = excluded.name",
            event.organisation_id, event.kind, event.name)

    async def learn_region(conn: asyncpg.Connection, municipality: str, region: str) -> None:
        await conn.execute(
            "INSERT INTO municipality_region_view (municipality, region) VALUES ($1, $2) "
            "ON CONFLICT (municipality) DO UPDATE SET region = excluded.region",
            regions.municipality_code(municipality), region)

    @cards.on(CardIssuedV1)
    async def on_card_issued(event: CardIssuedV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO card_view (card_number, issuer_organisation_id) VALUES ($1, $2) "
            "ON CONFLICT (card_number) DO NOTHING",
            event.card_number, event.issuer_organisation_id)
        await learn_region(conn, event.municipality, event.region)

    @cards.on(CardRenewedV1)
    async def on_card_renewed(event: CardRenewedV1, conn: asyncpg.Connection) -> None:
        await learn_region(conn, event.municipality, event.region)

    @cards.on(CardChangedV1)
    async def on_card_changed(event: CardChangedV1, conn: asyncpg.Connection) -> None:
        await learn_region(conn, event.municipality, event.region)

    @cards.on(CardReplacedV1)
    async def on_card_replaced(event: CardReplacedV1, conn: asyncpg.Connection) -> None:
        """The holder's account, inbox and links follow the card to its new number."""
        await conn.execute(
            "INSERT INTO card_view (card_number, issuer_organisation_id) "
            "SELECT $2, issuer_organisation_id FROM card_view WHERE card_number = $1 "
            "ON CONFLICT (card_number) DO NOTHING",
            event.card_number, event.replacement_card_number)
        await conn.execute("UPDATE account_view SET card_number = $2 WHERE card_number = $1",
                           event.card_number, event.replacement_card_number)
        await conn.execute("UPDATE ticket_view SET card_number = $2 WHERE card_number = $1",
                           event.card_number, event.replacement_card_number)
        await conn.execute(
            "UPDATE inbox_item SET owner = $2 WHERE owner = $1 AND NOT EXISTS "
            "(SELECT 1 FROM inbox_item i WHERE i.owner = $2 AND i.item_id = inbox_item.item_id)",
            f"card:{event.card_number}", f"card:{event.replacement_card_number}")

    return [subscriptions, fanout, venues, cards]


# --- queries -------------------------------------------------------------------


async def for_account(pool: asyncpg.Pool, account_id: object) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT source_id, kind, title, payload::text AS payload, created_at, read_at, "
            "delivery, batch_id IS NOT NULL AS handed_over "
            "FROM notification WHERE account_id = $1 ORDER BY created_at DESC LIMIT 200",
            account_id,
        )


def holder_owners(account_id: UUID, card_number: str | None) -> list[str]:
    owners = [f"account:{account_id}"]
    if card_number:
        owners.append(f"card:{card_number}")
    return owners


async def card_of(conn: asyncpg.Connection, account_id: UUID) -> str | None:
    return await conn.fetchval("SELECT card_number FROM account_view WHERE account_id = $1",
                               account_id)


async def inbox(pool: asyncpg.Pool, owners: list[str], unread_only: bool) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT item_id, kind, sender::text AS sender, subject, body, payload::text AS "
            "payload, in_reply_to, created_at, read_at FROM inbox_item "
            "WHERE owner = ANY($1::text[]) AND (NOT $2 OR read_at IS NULL) "
            "ORDER BY created_at DESC LIMIT 500",
            owners, unread_only)
    return [{**dict(r), "sender": json.loads(r["sender"]), "payload": json.loads(r["payload"])}
            for r in rows]


async def mark_read(pool: asyncpg.Pool, owners: list[str], item_id: UUID) -> Any:
    """The first read time (reading again keeps it); None when not in these inboxes."""
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "UPDATE inbox_item SET read_at = coalesce(read_at, now()) "
            "WHERE owner = ANY($1::text[]) AND item_id = $2 RETURNING read_at",
            owners, item_id)
