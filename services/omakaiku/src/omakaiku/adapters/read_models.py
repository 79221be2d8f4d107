"""OmaKaiku's read models: the cards it may activate, and each card's history."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    CardClosedV1,
    CardIssuedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
)

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS card_view (
        card_number  text PRIMARY KEY,
        issuer       uuid,
        status       text NOT NULL,
        version      integer NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS history_view (
        ticket_id      uuid PRIMARY KEY,
        card_number    text NOT NULL,
        offering_id    uuid NOT NULL,
        offering_title text,
        venue_id       uuid NOT NULL,
        venue_name     text,
        starts_at      timestamptz,
        children       integer NOT NULL,
        status         text NOT NULL,
        registered_at  timestamptz,
        cancelled_at   timestamptz,
        version        integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS history_view_card ON history_view (card_number, starts_at)",
)

CARD_CONSUMER = "omakaiku-cards"
HISTORY_CONSUMER = "omakaiku-history"


def consumers() -> list[Consumer]:
    cards = Consumer(CARD_CONSUMER, "cards")
    history = Consumer(HISTORY_CONSUMER, "venues")

    @cards.on(CardIssuedV1)
    async def on_card_issued(event: CardIssuedV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO card_view (card_number, issuer, status, version) "
            "VALUES ($1, $2, 'open', $3) "
            "ON CONFLICT (card_number) DO UPDATE SET issuer = excluded.issuer",
            event.card_number, event.issuer_organisation_id, event.aggregate_version,
        )

    @cards.on(CardClosedV1)
    async def on_card_closed(event: CardClosedV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO card_view (card_number, status, version) VALUES ($1, 'closed', $2) "
            "ON CONFLICT (card_number) DO UPDATE SET status = 'closed'",
            event.card_number, event.aggregate_version,
        )

    @history.on(TicketRegisteredV1)
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

    @history.on(TicketCancelledV1)
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

    return [cards, history]


async def card(pool: asyncpg.Pool, card_number: str) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT * FROM card_view WHERE card_number = $1 AND issuer IS NOT NULL", card_number
        )


async def history(pool: asyncpg.Pool, card_number: str, *,
                  upcoming_after: datetime | None = None) -> list[asyncpg.Record]:
    query = "SELECT * FROM history_view WHERE card_number = $1"
    args: list[object] = [card_number]
    if upcoming_after is not None:
        query += " AND status = 'registered' AND starts_at > $2"
        args.append(upcoming_after)
    async with pool.acquire() as conn:
        return await conn.fetch(query + " ORDER BY starts_at DESC NULLS LAST", *args)


async def ticket(pool: asyncpg.Pool, ticket_id: object) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM history_view WHERE ticket_id = $1", ticket_id)
