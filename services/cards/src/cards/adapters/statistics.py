"""Statistics read models (asyncpg), fed by the cards and venues streams.

Rows carry the aggregate version of the last fact applied, so a fact arriving
after a newer one for the same card or ticket never overwrites it.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
)

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS card_view (
        card_number   text PRIMARY KEY,
        issuer        uuid,
        birth_year    integer,
        valid_from    date,
        community     boolean,
        issued_at     timestamptz,
        valid_until   date,
        children      integer,
        municipality  text,
        region        text,
        status        text NOT NULL DEFAULT 'open',
        version       integer NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS usage_view (
        ticket_id     uuid PRIMARY KEY,
        card_number   text NOT NULL,
        venue_id      uuid,
        offering_id   uuid,
        venue_municipality text,
        starts_at     timestamptz,
        children      integer NOT NULL,
        status        text NOT NULL,
        version       integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS usage_view_card ON usage_view (card_number)",
)

STATISTICS_CONSUMER = "cards-statistics"
USAGE_CONSUMER = "cards-usage"


def consumers() -> list[Consumer]:
    cards = Consumer(STATISTICS_CONSUMER, "cards")
    usage = Consumer(USAGE_CONSUMER, "venues")

    @cards.on(CardIssuedV1)
    async def on_card_issued(event: CardIssuedV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO card_view (card_number, issuer, birth_year, valid_from, community,
                issued_at, valid_until, children, municipality, region, status, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11)
            ON CONFLICT (card_number) DO UPDATE SET
                issuer = excluded.issuer, birth_year = excluded.birth_year,
                valid_from = excluded.valid_from, community = excluded.community,
                issued_at = excluded.issued_at,
                -- a later event already set these unless they are still empty
                valid_until = coalesce(card_view.valid_until, excluded.valid_until),
                children = coalesce(card_view.children, excluded.children),
                municipality = coalesce(card_view.municipality, excluded.municipality),
                region = coalesce(card_view.region, excluded.region)
            """,
            event.card_number, event.issuer_organisation_id, event.birth_year,
            event.valid_from, event.community, event.occurred_at, event.valid_until,
            event.children, event.municipality, event.region, event.aggregate_version,
        )

    @cards.on(CardRenewedV1)
    async def on_card_renewed(event: CardRenewedV1, conn: asyncpg.Connection) -> None:
        await _upsert_card_state(conn, event.card_number, event.aggregate_version,
                                 valid_until=event.valid_until, children=event.children,
                                 municipality=event.municipality, region=event.region)

    @cards.on(CardChangedV1)
    async def on_card_changed(event: CardChangedV1, conn: asyncpg.Connection) -> None:
        await _upsert_card_state(conn, event.card_number, event.aggregate_version,
                                 valid_until=event.valid_until, children=event.children,
                                 municipality=event.municipality, region=event.region)

    @cards.on(CardClosedV1)
    async def on_card_closed(event: CardClosedV1, conn: asyncpg.Connection) -> None:
        await _upsert_card_state(conn, event.card_number, event.aggregate_version,
                                 status="closed")

    @usage.on(TicketRegisteredV1)
    async def on_ticket_registered(event: TicketRegisteredV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO usage_view (ticket_id, card_number, venue_id, offering_id,
                venue_municipality, starts_at, children, status, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 'registered', $8)
            ON CONFLICT (ticket_id) DO UPDATE SET
                venue_id = excluded.venue_id, offering_id = excluded.offering_id,
                venue_municipality = excluded.venue_municipality,
                starts_at = excluded.starts_at, children = excluded.children
            """,
            event.ticket_id, event.card_number, event.venue_id, event.offering_id,
            event.municipality, event.starts_at, event.children, event.aggregate_version,
        )

    @usage.on(TicketCancelledV1)
    async def on_ticket_cancelled(event: TicketCancelledV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO usage_view (ticket_id, card_number, venue_id, offering_id, children,
                status, version)
            VALUES ($1, $2, $3, $4, $5, 'cancelled', $6)
            ON CONFLICT (ticket_id) DO UPDATE SET status = 'cancelled', version = excluded.version
            WHERE usage_view.version < excluded.version
            """,
            event.ticket_id, event.card_number, event.venue_id, event.offering_id,
            event.children, event.aggregate_version,
        )

    return [cards, usage]


async def _upsert_card_state(conn: asyncpg.Connection, card_number: str, version: int,
                             **changes: object) -> None:
    """Apply a newer card state; 'closed' is final whatever order facts arrive in."""
    columns = list(changes)
    assignments = ", ".join(
        "status = 'closed'" if c == "status" else
        f"{c} = CASE WHEN card_view.version < excluded.version "
        f"THEN excluded.{c} ELSE card_view.{c} END"
        for c in columns
    )
    placeholders = ", ".join(f"${i + 3}" for i in range(len(columns)))
    await conn.execute(
        f"""
        INSERT INTO card_view (card_number, version, {', '.join(columns)})
        VALUES ($1, $2, {placeholders})
        ON CONFLICT (card_number) DO UPDATE SET {assignments},
            version = greatest(card_view.version, excluded.version)
        """,
        card_number, version, *changes.values(),
    )


async def national(pool: asyncpg.Pool, today: date) -> dict[str, int]:
    async with pool.acquire() as conn:
        cards = await conn.fetchrow(
            "SELECT count(*) AS issued, "
            "count(*) FILTER (WHERE status = 'open' AND valid_until >= $1) AS active "
            "FROM card_view WHERE issuer IS NOT NULL", today,
        )
        uses = await conn.fetchrow(
            "SELECT count(*) AS uses, coalesce(sum(children), 0) AS child_tickets, "
            "count(*) FILTER (WHERE children > 0) AS uses_with_children "
            "FROM usage_view WHERE status = 'registered'"
        )
    return {
        "cards_issued": cards["issued"],
        "active_cards": cards["active"],
        "uses": uses["uses"],
        "child_tickets": int(uses["child_tickets"]),
        "uses_with_children": uses["uses_with_children"],
    }


async def by_region(pool: asyncpg.Pool, today: date) -> list[dict[str, object]]:
    """Per region of the card's municipality; uses counted where the holder lives."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT c.region,
                   count(DISTINCT c.card_number) AS cards_issued,
                   count(DISTINCT c.card_number) FILTER (
                       WHERE c.status = 'open' AND c.valid_until >= $1) AS active_cards,
                   count(u.ticket_id) FILTER (WHERE u.status = 'registered') AS uses,
                   coalesce(sum(u.children) FILTER (WHERE u.status = 'registered'), 0)
                       AS child_tickets
            FROM card_view c LEFT JOIN usage_view u ON u.card_number = c.card_number
            WHERE c.issuer IS NOT NULL
            GROUP BY c.region ORDER BY c.region
            """,
            today,
        )
    return [dict(row) for row in rows]
