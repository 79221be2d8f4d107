"""Venues' read models: what venues knows of cards, and the public offering list.

``card_validity_view`` is fed only by Kaikukanta's card events: venues never
asks the registry synchronously, so a box office keeps working if it is down.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    OfferingPublishedV1,
)

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS card_validity_view (
        card_number  text PRIMARY KEY,
        valid_from   date,
        valid_until  date,
        children     integer,
        status       text NOT NULL,
        version      integer NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS offering_view (
        offering_id  uuid PRIMARY KEY,
        venue_id     uuid NOT NULL,
        venue_name   text NOT NULL,
        title        text NOT NULL,
        kind         text NOT NULL,
        genres       text[] NOT NULL,
        subgenres    text[] NOT NULL,
        starts_at    timestamptz NOT NULL,
        municipality text NOT NULL,
        capacity     integer NOT NULL,
        card_cap     integer NOT NULL,
        version      integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS offering_view_starts ON offering_view (starts_at)",
)

CARD_CONSUMER = "venues-card-validity"
OFFERING_CONSUMER = "venues-offering-list"


def consumers() -> list[Consumer]:
    cards = Consumer(CARD_CONSUMER, "cards")
    offerings = Consumer(OFFERING_CONSUMER, "venues")

    @cards.on(CardIssuedV1)
    async def on_card_issued(event: CardIssuedV1, conn: asyncpg.Connection) -> None:
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

    @cards.on(CardRenewedV1)
    async def on_card_renewed(event: CardRenewedV1, conn: asyncpg.Connection) -> None:
        await _apply_card_state(conn, event.card_number, event.aggregate_version,
                                event.valid_until, event.children)

    @cards.on(CardChangedV1)
    async def on_card_changed(event: CardChangedV1, conn: asyncpg.Connection) -> None:
        await _apply_card_state(conn, event.card_number, event.aggregate_version,
                                event.valid_until, event.children)

    @cards.on(CardClosedV1)
    async def on_card_closed(event: CardClosedV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO card_validity_view (card_number, status, version) VALUES ($1, 'closed', $2)
            ON CONFLICT (card_number) DO UPDATE SET status = 'closed',
                version = greatest(card_validity_view.version, excluded.version)
            """,
            event.card_number, event.aggregate_version,
        )

    @offerings.on(OfferingPublishedV1)
    async def on_offering_published(event: OfferingPublishedV1,
                                    conn: asyncpg.Connection) -> None:
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

    return [cards, offerings]


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


async def card_validity(pool: asyncpg.Pool, card_number: str) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT card_number, valid_from, valid_until, children, status "
            "FROM card_validity_view WHERE card_number = $1 AND valid_from IS NOT NULL",
            card_number,
        )


async def list_offerings(pool: asyncpg.Pool, *, genre: str | None, subgenre: str | None,
                         municipality: str | None, starts_from: datetime | None,
                         limit: int, offset: int) -> list[asyncpg.Record]:
    conditions, args = ["true"], []
    for column, value in (("genres", genre), ("subgenres", subgenre)):
        if value:
            args.append(value)
            conditions.append(f"${len(args)} = ANY({column})")
    if municipality:
        args.append(municipality.lower())
        conditions.append(f"lower(municipality) = ${len(args)}")
    if starts_from:
        args.append(starts_from)
        conditions.append(f"starts_at >= ${len(args)}")
    args += [limit, offset]
    async with pool.acquire() as conn:
        return await conn.fetch(
            f"SELECT * FROM offering_view WHERE {' AND '.join(conditions)} "
            f"ORDER BY starts_at, offering_id LIMIT ${len(args) - 1} OFFSET ${len(args)}",
            *args,
        )
