"""OmaKaiku's read models: the cards it may activate (and show on the mobile card),
each card's history, the published offering for browsing, and the tables of
sign-in codes, e-mail outcomes and holder keys. Only ``holder_keys`` links an
account to an e-mail — by a keyed hash — and erasure removes that row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    OfferingCancelledV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    TicketCancellationRefusedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
)

from . import network
from .vault import KEY_INDEX, KEY_TABLE

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS card_view (
        card_number  text PRIMARY KEY,
        issuer       uuid,
        status       text NOT NULL,
        version      integer NOT NULL
    )
    """,
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS valid_until date",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS children integer",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS region text",
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
    "ALTER TABLE history_view ADD COLUMN IF NOT EXISTS cancellation_refused text",
    "CREATE INDEX IF NOT EXISTS history_view_card ON history_view (card_number, starts_at)",
    """
    CREATE TABLE IF NOT EXISTS offering_view (
        offering_id   uuid PRIMARY KEY,
        venue_id      uuid NOT NULL,
        venue_name    text NOT NULL,
        title         text NOT NULL,
        kind          text NOT NULL,
        genres        text[] NOT NULL,
        subgenres     text[] NOT NULL,
        starts_at     timestamptz NOT NULL,
        municipality  text NOT NULL,
        region        text,
        version       integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS offering_view_starts ON offering_view (starts_at)",
    KEY_TABLE,
    KEY_INDEX,
    """
    CREATE TABLE IF NOT EXISTS signin_codes (
        id            bigserial PRIMARY KEY,
        email_lookup  bytea NOT NULL,
        kind          text NOT NULL,           -- 'code' (typed) or 'link' (welcome e-mail)
        secret_hash   bytea NOT NULL,
        account_id    uuid,
        expires_at    timestamptz NOT NULL,
        used_at       timestamptz,
        attempts      integer NOT NULL DEFAULT 0,
        created_at    timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS signin_codes_lookup ON signin_codes (email_lookup, created_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS signin_codes_secret ON signin_codes (secret_hash)",
    """
    CREATE TABLE IF NOT EXISTS signin_attempts (
        email_lookup  bytea NOT NULL,
        kind          text NOT NULL,           -- 'failure' ('request': before signin_rate)
        at            timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS signin_attempts_lookup ON signin_attempts (email_lookup, at)",
    """
    CREATE TABLE IF NOT EXISTS mail_deliveries (
        id            bigserial PRIMARY KEY,
        account_id    uuid NOT NULL,
        kind          text NOT NULL,
        reference     text,
        outcome       text NOT NULL,           -- sent | failed | not_configured | no_key
        detail        text,
        at            timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS mail_deliveries_account ON mail_deliveries (account_id)",
)

CARD_CONSUMER = "omakaiku-cards"
HISTORY_CONSUMER = "omakaiku-history"
OFFERING_CONSUMER = "omakaiku-offering"

def consumers(move_card: Callable[[str, str], Awaitable[Any]] | None = None
              ) -> list[Consumer]:
    """``move_card`` (the worker's use case) moves an account to a replacement card."""
    cards = Consumer(CARD_CONSUMER, "cards")
    history = Consumer(HISTORY_CONSUMER, "venues")
    offering = Consumer(OFFERING_CONSUMER, "venues")

    @cards.on(CardIssuedV1)
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

    cards.on(CardRenewedV1)(on_card_updated)
    cards.on(CardChangedV1)(on_card_updated)

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

    @history.on(TicketCancellationRefusedV1)
    async def on_cancellation_refused(event: TicketCancellationRefusedV1,
                                      conn: asyncpg.Connection) -> None:
        # Venues said no (e.g. the event had started): the holder sees why.
        await conn.execute(
            "UPDATE history_view SET cancellation_refused = $2 "
            "WHERE ticket_id = $1 AND status = 'registered'",
            event.ticket_id, event.detail or event.rule,
        )

    @history.on(OfferingChangedV1)
    async def on_offering_changed_history(event: OfferingChangedV1,
                                          conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE history_view SET offering_title = $2, starts_at = $3 WHERE offering_id = $1",
            event.offering_id, event.title, event.starts_at)

    @offering.on(OfferingPublishedV1)
    async def on_offering_published(event: OfferingPublishedV1,
                                    conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO offering_view (offering_id, venue_id, venue_name, title, kind, genres,
                subgenres, starts_at, municipality, region, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (offering_id) DO UPDATE SET venue_name = excluded.venue_name,
                title = excluded.title, kind = excluded.kind, genres = excluded.genres,
                subgenres = excluded.subgenres, starts_at = excluded.starts_at,
                municipality = excluded.municipality, region = excluded.region,
                version = excluded.version
            WHERE offering_view.version < excluded.version
            """,
            event.offering_id, event.venue_id, event.venue_name, event.title, event.kind,
            list(event.genres), list(event.subgenres), event.starts_at,
            network.municipality_code(event.municipality), network.region_of(event.municipality),
            event.aggregate_version,
        )

    @offering.on(OfferingChangedV1)
    async def on_offering_changed(event: OfferingChangedV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE offering_view SET title = $2, starts_at = $3, version = $4 "
            "WHERE offering_id = $1 AND version < $4",
            event.offering_id, event.title, event.starts_at, event.aggregate_version)

    @offering.on(OfferingCancelledV1)
    async def on_offering_cancelled(event: OfferingCancelledV1,
                                    conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM offering_view WHERE offering_id = $1", event.offering_id)

    @cards.on(CardReplacedV1)
    async def on_card_replaced(event: CardReplacedV1, conn: asyncpg.Connection) -> None:
        # The new number's own CardIssued may come before or after this.
        await conn.execute(
            "INSERT INTO card_view (card_number, issuer, status, version, valid_until, children, "
            "region) SELECT $2, issuer, 'open', 1, $3, children, region FROM card_view "
            "WHERE card_number = $1 "
            "ON CONFLICT (card_number) DO UPDATE SET valid_until = excluded.valid_until, "
            "issuer = COALESCE(card_view.issuer, excluded.issuer), "
            "children = COALESCE(card_view.children, excluded.children), "
            "region = COALESCE(card_view.region, excluded.region)",
            event.card_number, event.replacement_card_number, event.valid_until)
        if move_card is not None:
            await move_card(event.card_number, event.replacement_card_number)

    return [cards, history, offering]


# --- queries --------------------------------------------------------------------


async def card(pool: asyncpg.Pool, card_number: str) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT * FROM card_view WHERE card_number = $1 AND issuer IS NOT NULL", card_number
        )


async def history(pool: asyncpg.Pool, card_numbers: list[str], *,
                  upcoming_after: datetime | None = None) -> list[asyncpg.Record]:
    query = "SELECT * FROM history_view WHERE card_number = ANY($1::text[])"
    args: list[object] = [card_numbers]
    if upcoming_after is not None:
        query += " AND status = 'registered' AND starts_at > $2"
        args.append(upcoming_after)
    async with pool.acquire() as conn:
        return await conn.fetch(query + " ORDER BY starts_at DESC NULLS LAST", *args)


async def ticket(pool: asyncpg.Pool, ticket_id: object) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM history_view WHERE ticket_id = $1", ticket_id)


async def offerings(pool: asyncpg.Pool, *, genre: str | None = None,
                    subgenre: str | None = None, municipality: str | None = None,
                    region: str | None = None, date_from: date | None = None,
                    date_to: date | None = None, text: str | None = None,
                    now: datetime, limit: int = 100, offset: int = 0) -> list[asyncpg.Record]:
    clauses = ["starts_at >= $1"]
    args: list[object] = [now]

    def add(clause: str, value: object) -> None:
        args.append(value)
        clauses.append(clause.replace("?", f"${len(args)}"))

    if genre:
        add("? = ANY(genres)", genre)
    if subgenre:
        add("? = ANY(subgenres)", subgenre)
    if municipality:
        add("municipality = ?", network.municipality_code(municipality))
    if region:
        add("region = ?", region)
    if date_from:
        add("(starts_at AT TIME ZONE 'Europe/Helsinki')::date >= ?", date_from)
    if date_to:
        add("(starts_at AT TIME ZONE 'Europe/Helsinki')::date <= ?", date_to)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        add("(title ILIKE ? OR venue_name ILIKE ?)", f"%{escaped}%")
    args.extend([limit, offset])
    query = (f"SELECT * FROM offering_view WHERE {' AND '.join(clauses)} "
             f"ORDER BY starts_at, title LIMIT ${len(args) - 1} OFFSET ${len(args)}")
    async with pool.acquire() as conn:
        return await conn.fetch(query, *args)


async def drop_account_data(pool: asyncpg.Pool, account_id: UUID,
                            card_numbers: list[str]) -> None:
    """Erasure: every datum omakaiku derived for the account goes, in one
    transaction. Runs before the use case shreds the key (the e-mail's lookup
    hash, needed here to find sign-in rows, lives in the key's row) and again after."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            lookup = await conn.fetchval(
                "SELECT email_lookup FROM holder_keys WHERE account_id = $1", account_id)
            if lookup is not None:
                await conn.execute("DELETE FROM signin_codes WHERE email_lookup = $1", lookup)
                await conn.execute("DELETE FROM signin_attempts WHERE email_lookup = $1",
                                   lookup)
                await conn.execute("DELETE FROM signin_requests WHERE email_lookup = $1",
                                   lookup)
            await conn.execute("DELETE FROM signin_codes WHERE account_id = $1", account_id)
            await conn.execute("DELETE FROM mail_deliveries WHERE account_id = $1", account_id)
            await conn.execute("DELETE FROM history_view WHERE card_number = ANY($1::text[])",
                               card_numbers)


async def vacuum_keys(pool: asyncpg.Pool) -> None:
    """Let Postgres reclaim deleted key rows now rather than at the next autovacuum."""
    async with pool.acquire() as conn:
        await conn.execute("VACUUM holder_keys")
