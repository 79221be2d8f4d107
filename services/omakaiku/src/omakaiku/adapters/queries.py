"""OmaKaiku's reads of its own tables (made in ``schema``, kept by ``projections``),
and the erasure of what it derived for an account."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import asyncpg

from kaiku_shared.kernel.text import fold

from .push import drop_devices


async def card(pool: asyncpg.Pool, card_number: str) -> asyncpg.Record | None:
    """A card cards issued (a row made only by a replacement, without its own
    CardIssued yet, has no issuer and does not count)."""
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT * FROM card_view WHERE card_number = $1 AND issuer IS NOT NULL", card_number
        )


async def history(pool: asyncpg.Pool, card_numbers: list[str], *,
                  upcoming_after: datetime | None = None) -> list[asyncpg.Record]:
    query = ("SELECT h.*, COALESCE(h.venue_name, v.name) AS venue_display_name "
             "FROM history_view h LEFT JOIN venue_view v ON v.venue_id = h.venue_id "
             "WHERE h.card_number = ANY($1::text[])")
    args: list[object] = [card_numbers]
    if upcoming_after is not None:
        query += " AND h.kind = 'ticket' AND h.status = 'registered' AND h.starts_at > $2"
        args.append(upcoming_after)
    async with pool.acquire() as conn:
        return await conn.fetch(query + " ORDER BY h.starts_at DESC NULLS LAST", *args)


async def ticket(pool: asyncpg.Pool, ticket_id: object) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM history_view WHERE ticket_id = $1 AND kind = 'ticket'",
                                   ticket_id)


# An offering with what a holder needs to get a ticket: the venue's name and
# contact as venues last published them, its terms, the card places left, and the
# municipality's and region's names (by language) from the network.
_OFFERING_DETAILS = """
    SELECT o.*, COALESCE(v.name, o.venue_name) AS venue_display_name,
           v.contact AS venue_contact, t.card_cap, t.sales_opens_at,
           t.card_tickets_excluded, t.limits,
           t.card_cap - COALESCE((SELECT sum(p.places) FROM offering_places p
                                  WHERE p.offering_id = o.offering_id AND NOT p.cancelled), 0)
               AS card_places_left,
           m.name AS municipality_names, r.name AS region_names
    FROM offering_view o
    LEFT JOIN venue_view v ON v.venue_id = o.venue_id
    LEFT JOIN offering_terms t ON t.offering_id = o.offering_id
    LEFT JOIN network_municipalities m ON m.code = o.municipality
    LEFT JOIN network_regions r ON r.code = o.region
"""


async def offering(pool: asyncpg.Pool, offering_id: UUID) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow(_OFFERING_DETAILS + " WHERE o.offering_id = $1",
                                   offering_id)


async def places(pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """The network's regions and its municipalities, with their names by language."""
    async with pool.acquire() as conn:
        regions = await conn.fetch("SELECT code, name, country FROM network_regions "
                                   "ORDER BY code")
        municipalities = await conn.fetch(
            "SELECT code, name, region, status FROM network_municipalities ORDER BY code")
    return list(regions), list(municipalities)


async def offerings(pool: asyncpg.Pool, *, genre: str | None = None,
                    subgenre: str | None = None, municipality: str | None = None,
                    region: str | None = None, date_from: date | None = None,
                    date_to: date | None = None, text: str | None = None,
                    now: datetime, limit: int = 100, offset: int = 0) -> list[asyncpg.Record]:
    clauses = ["o.starts_at >= $1"]
    args: list[object] = [now]

    def add(clause: str, value: object) -> None:
        args.append(value)
        clauses.append(clause.replace("?", f"${len(args)}"))

    if genre:
        add("? = ANY(o.genres)", genre)
    if subgenre:
        add("? = ANY(o.subgenres)", subgenre)
    if municipality:
        # By its code or any of its names; one the network does not know, folded.
        add("o.municipality = COALESCE((SELECT code FROM network_municipalities "
            "WHERE ? = ANY(folded_names) ORDER BY folded_names[1] = ? DESC, code LIMIT 1), ?)",
            fold(municipality))
    if region:
        add("o.region = ?", region)
    if date_from:
        add("(o.starts_at AT TIME ZONE 'Europe/Helsinki')::date >= ?", date_from)
    if date_to:
        add("(o.starts_at AT TIME ZONE 'Europe/Helsinki')::date <= ?", date_to)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        add("(o.title ILIKE ? OR o.venue_name ILIKE ? OR v.name ILIKE ?)", f"%{escaped}%")
    args.extend([limit, offset])
    query = (f"{_OFFERING_DETAILS} WHERE {' AND '.join(clauses)} "
             f"ORDER BY o.starts_at, o.title LIMIT ${len(args) - 1} OFFSET ${len(args)}")
    async with pool.acquire() as conn:
        return await conn.fetch(query, *args)


async def region_codes(pool: asyncpg.Pool) -> list[str]:
    """The network's regions as cards last published them; empty until the
    first NetworkChanged has arrived."""
    async with pool.acquire() as conn:
        return [row["code"] for row in await conn.fetch(
            "SELECT code FROM network_regions ORDER BY code")]


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
            await conn.execute("DELETE FROM retention_notices WHERE account_id = $1",
                               account_id)
            await conn.execute("DELETE FROM history_view WHERE card_number = ANY($1::text[])",
                               card_numbers)
            await drop_devices(conn, account_id)


async def vacuum_keys(pool: asyncpg.Pool) -> None:
    """Let Postgres reclaim deleted key rows now rather than at the next autovacuum."""
    async with pool.acquire() as conn:
        await conn.execute("VACUUM holder_keys")
