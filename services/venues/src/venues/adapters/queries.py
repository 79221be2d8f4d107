"""Venues' reads of its read models: what venues knows of a card, the keys of
omakaiku's mobile cards, the offering and venue lists, and feedback averages.

The tables are declared in ``schema`` and kept by ``projections``; the API
reads them only through these functions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..domain import feedback
from ..domain.model import CardStanding


async def card_standing(pool: asyncpg.Pool, card_number: str) -> CardStanding | None:
    """The card as Kaikukanta's events described it; None until its issue arrives."""
    row = await pool.fetchrow(
        "SELECT card_number, valid_from, valid_until, children, status "
        "FROM card_validity_view WHERE card_number = $1 AND valid_from IS NOT NULL",
        card_number,
    )
    if row is None:
        return None
    return CardStanding(card_number=row["card_number"], status=row["status"],
                        valid_from=row["valid_from"], valid_until=row["valid_until"],
                        children=row["children"] or 0)


async def mobile_card_keys(pool: asyncpg.Pool) -> dict[str, dict[str, str]]:
    """Every mobile-card key venues knows: kid → its JWK members."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT kid, algorithm, kty, crv, x FROM mobile_card_key_view")
    return {row["kid"]: dict(row) for row in rows}


async def list_offerings(pool: asyncpg.Pool, *, genre: str | None, subgenre: str | None,
                         municipality: str | None, starts_from: datetime | None,
                         starts_before: datetime | None = None, venue_id: object = None,
                         include_cancelled: bool = False, limit: int,
                         offset: int) -> tuple[list[asyncpg.Record], int]:
    """One page of the offering, in start order, and the total that matches."""
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
    if starts_before:
        args.append(starts_before)
        conditions.append(f"starts_at < ${len(args)}")
    if venue_id:
        args.append(venue_id)
        conditions.append(f"venue_id = ${len(args)}")
    if not include_cancelled:
        conditions.append("status = 'published'")
    where = " AND ".join(conditions)
    async with pool.acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM offering_view WHERE {where}", *args)
        rows = await conn.fetch(
            f"SELECT * FROM offering_view WHERE {where} "
            f"ORDER BY starts_at, offering_id LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
            *args, limit, offset,
        )
    return rows, total


async def list_venues(pool: asyncpg.Pool, *, organisation_id: object = None,
                      agent_organisation_id: object = None, limit: int,
                      offset: int) -> tuple[list[asyncpg.Record], int]:
    """One page of venues in name order, and the total that matches."""
    conditions, args = ["true"], []
    if organisation_id:
        args.append(organisation_id)
        conditions.append(f"organisation_id = ${len(args)}")
    if agent_organisation_id:
        args.append(agent_organisation_id)
        conditions.append(f"${len(args)} = ANY(ticket_agents)")
    where = " AND ".join(conditions)
    async with pool.acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM venue_view WHERE {where}", *args)
        rows = await conn.fetch(
            f"SELECT * FROM venue_view WHERE {where} "
            f"ORDER BY lower(name), venue_id LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
            *args, limit, offset,
        )
    return rows, total


async def feedback_averages(pool: asyncpg.Pool, venue_id: object,
                            now: datetime | None = None) -> dict[str, Any]:
    """The venue's feedback as it may be shown (``domain.feedback``): per offering
    once its window has closed and it has enough answers, overall over exactly
    those offerings."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT f.offering_id, f.accessibility, f.meaning, f.interest, o.title, "
            "o.starts_at FROM feedback_view f "
            "LEFT JOIN offering_view o ON o.offering_id = f.offering_id "
            "WHERE f.venue_id = $1 ORDER BY o.starts_at NULLS LAST, f.offering_id",
            venue_id,
        )
    return {"venue_id": venue_id,
            **feedback.venue_feedback(rows, now or datetime.now(UTC))}


async def offering_tickets(pool: asyncpg.Pool, offering_id: object,
                           status: str | None) -> list[asyncpg.Record]:
    """The card tickets of one offering, in registration order (the box office's list)."""
    args: list[Any] = [offering_id]
    condition = ""
    if status:
        args.append(status)
        condition = " AND status = $2"
    return await pool.fetch(
        "SELECT ticket_id, card_number, children, status, registered_at FROM ticket_view "
        f"WHERE offering_id = $1{condition} ORDER BY registered_at, ticket_id", *args)
