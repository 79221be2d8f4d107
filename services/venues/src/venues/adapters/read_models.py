"""Venues' read models: what venues knows of cards, the public offering list, the
list of venues (by organisation and by ticket agent), feedback averages and
omakaiku's mobile-card keys.

``card_validity_view`` is fed only by Kaikukanta's card events: venues never
asks the registry synchronously, so a box office keeps working if it is down.
``mobile_card_key_view`` is fed only by omakaiku's MobileCardKeyPublished: the
mobile card is verified offline, without a call to omakaiku.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    FeedbackGivenV1,
    MobileCardKeyPublishedV1,
    OfferingCancelledV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OfferingTermsPublishedV1,
    VenueChangedV1,
    VenueRegisteredV1,
)

from ..domain.model import CardStanding

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
    # Added with the guideline's terms; ADD COLUMN keeps older databases working.
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS status text NOT NULL "
    "DEFAULT 'published'",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS cancel_reason text",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS production text NOT NULL "
    "DEFAULT 'own'",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS venue_kind text",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS sales_opens_at timestamptz",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS card_tickets_excluded text",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS limits jsonb NOT NULL "
    "DEFAULT '{}'::jsonb",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS contact jsonb NOT NULL "
    "DEFAULT '{}'::jsonb",
    # One row per answer, so a redelivered or repeated FeedbackGiven counts once;
    # only averages over at least MIN_FEEDBACK_RESPONSES answers ever leave.
    """
    CREATE TABLE IF NOT EXISTS feedback_view (
        ticket_id     uuid PRIMARY KEY,
        venue_id      uuid NOT NULL,
        offering_id   uuid NOT NULL,
        accessibility smallint NOT NULL,
        meaning       smallint NOT NULL,
        interest      smallint NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS feedback_view_venue ON feedback_view (venue_id)",
    # omakaiku's public keys for mobile cards, by kid; several at once (rotation).
    """
    CREATE TABLE IF NOT EXISTS mobile_card_key_view (
        kid          text PRIMARY KEY,
        algorithm    text NOT NULL,
        kty          text NOT NULL,
        crv          text NOT NULL,
        x            text NOT NULL,
        published_at timestamptz NOT NULL
    )
    """,
    # Venues by organisation and by the ticket agents they list (GET /venues). A
    # venue's profile and limits are fixed when it is registered, so one row per
    # VenueRegistered is the whole story.
    """
    CREATE TABLE IF NOT EXISTS venue_view (
        venue_id        uuid PRIMARY KEY,
        organisation_id uuid NOT NULL,
        name            text NOT NULL,
        kind            text NOT NULL,
        municipality    text NOT NULL,
        timezone        text NOT NULL,
        ticket_agents   uuid[] NOT NULL DEFAULT '{}',
        contact         jsonb NOT NULL DEFAULT '{}'::jsonb,
        limits          jsonb NOT NULL DEFAULT '{}'::jsonb,
        version         integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS venue_view_organisation ON venue_view (organisation_id)",
    "CREATE INDEX IF NOT EXISTS venue_view_agents ON venue_view USING gin (ticket_agents)",
)

MIN_FEEDBACK_RESPONSES = 3
CATEGORIES = ("accessibility", "meaning", "interest")

CARD_CONSUMER = "venues-card-validity"
OFFERING_CONSUMER = "venues-offering-list"
FEEDBACK_CONSUMER = "venues-feedback"
MOBILE_CARD_KEY_CONSUMER = "venues-mobile-card-keys"
VENUE_CONSUMER = "venues-venue-list"


class NotYetKnown(Exception):
    """An update for a row whose creating event has not been applied yet: retry later."""


def consumers(application: Any = None) -> list[Consumer]:
    """``application``: venues' own, to look up a venue's public contact for the list."""
    cards = Consumer(CARD_CONSUMER, "cards")
    offerings = Consumer(OFFERING_CONSUMER, "venues")
    feedback = Consumer(FEEDBACK_CONSUMER, "omakaiku")
    mobile_card_keys = Consumer(MOBILE_CARD_KEY_CONSUMER, "omakaiku")
    # A durable of its own (not a handler on venues-offering-list): a new durable
    # starts at the beginning of the stream, so venues registered before the
    # list existed are listed too.
    venue_list = Consumer(VENUE_CONSUMER, "venues")

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

    @offerings.on(OfferingTermsPublishedV1)
    async def on_offering_terms_published(event: OfferingTermsPublishedV1,
                                          conn: asyncpg.Connection) -> None:
        contact: dict[str, str] = {}
        if application is not None:
            venue = await asyncio.to_thread(application.get_venue, event.venue_id)
            contact = dict(getattr(venue, "contact", {}) or {})
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
        if status.endswith(" 0"):
            raise NotYetKnown(f"offering {event.offering_id} not in the list yet")

    @offerings.on(OfferingChangedV1)
    async def on_offering_changed(event: OfferingChangedV1, conn: asyncpg.Connection) -> None:
        status = await conn.execute(
            """
            UPDATE offering_view SET title = $2, starts_at = $3, capacity = $4, card_cap = $5,
                sales_opens_at = $6, version = $7
            WHERE offering_id = $1 AND version < $7
            """,
            event.offering_id, event.title, event.starts_at, event.capacity, event.card_cap,
            event.sales_opens_at, event.aggregate_version,
        )
        if status.endswith(" 0") and not await _offering_listed(conn, event.offering_id):
            raise NotYetKnown(f"offering {event.offering_id} not in the list yet")

    @offerings.on(OfferingCancelledV1)
    async def on_offering_cancelled(event: OfferingCancelledV1,
                                    conn: asyncpg.Connection) -> None:
        # Cancelled is final, whatever order the events come in.
        status = await conn.execute(
            "UPDATE offering_view SET status = 'cancelled', cancel_reason = $2 "
            "WHERE offering_id = $1",
            event.offering_id, event.reason,
        )
        if status.endswith(" 0"):
            raise NotYetKnown(f"offering {event.offering_id} not in the list yet")

    @feedback.on(FeedbackGivenV1)
    async def on_feedback_given(event: FeedbackGivenV1, conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO feedback_view (ticket_id, venue_id, offering_id, accessibility,
                meaning, interest)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticket_id) DO NOTHING
            """,
            event.ticket_id, event.venue_id, event.offering_id, event.accessibility,
            event.meaning, event.interest,
        )

    @mobile_card_keys.on(MobileCardKeyPublishedV1)
    async def on_mobile_card_key_published(event: MobileCardKeyPublishedV1,
                                           conn: asyncpg.Connection) -> None:
        # A kid names one key for good: the first row stays.
        await conn.execute(
            """
            INSERT INTO mobile_card_key_view (kid, algorithm, kty, crv, x, published_at)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING
            """,
            event.kid, event.algorithm, event.kty, event.crv, event.x, event.published_at,
        )

    @venue_list.on(VenueRegisteredV1)
    async def on_venue_registered(event: VenueRegisteredV1, conn: asyncpg.Connection) -> None:
        # The contract names the venue; its ticket agents, contact and limits are
        # read from venues' own event store (they never change after registration).
        ticket_agents: list[Any] = []
        timezone, contact, limits = "Europe/Helsinki", {}, {}
        if application is not None:
            venue = await asyncio.to_thread(application.get_venue, event.venue_id)
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

    @venue_list.on(VenueChangedV1)
    async def on_venue_changed(event: VenueChangedV1, conn: asyncpg.Connection) -> None:
        # Only a newer version moves the row (a redelivered old change does not).
        await conn.execute(
            """
            UPDATE venue_view SET ticket_agents = $2,
                   limits = limits || jsonb_build_object('ticket_agents', $3::jsonb),
                   version = $4
             WHERE venue_id = $1 AND version < $4
            """,
            event.venue_id, list(event.ticket_agents),
            json.dumps([str(a) for a in event.ticket_agents]), event.aggregate_version)

    return [cards, offerings, feedback, venue_list, mobile_card_keys]


async def _offering_listed(conn: asyncpg.Connection, offering_id: object) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM offering_view WHERE offering_id = $1",
                                    offering_id))


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


def _averages(rows: list[asyncpg.Record]) -> dict[str, Any]:
    """Averages per category over the rows, or only the count below the minimum."""
    responses = len(rows)
    shown = responses >= MIN_FEEDBACK_RESPONSES
    out: dict[str, Any] = {"responses": responses}
    for category in CATEGORIES:
        out[category] = (round(sum(r[category] for r in rows) / responses, 2)
                         if shown else None)
    return out


async def feedback_averages(pool: asyncpg.Pool, venue_id: object) -> dict[str, Any]:
    """Per venue and per offering; no average over fewer than 3 answers.

    The venue's overall average would give away a small offering's answers by
    difference (overall minus the offerings shown), so it is shown only when the
    answers of the offerings kept hidden are none, or themselves at least 3.
    """
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT f.offering_id, f.accessibility, f.meaning, f.interest, o.title, "
            "o.starts_at FROM feedback_view f "
            "LEFT JOIN offering_view o ON o.offering_id = f.offering_id "
            "WHERE f.venue_id = $1 ORDER BY o.starts_at NULLS LAST, f.offering_id",
            venue_id,
        )
    by_offering: dict[Any, list[asyncpg.Record]] = {}
    for row in rows:
        by_offering.setdefault(row["offering_id"], []).append(row)
    offerings = []
    hidden = 0
    for offering_id, answers in by_offering.items():
        averages = _averages(answers)
        if averages["responses"] < MIN_FEEDBACK_RESPONSES:
            hidden += averages["responses"]
        offerings.append({"offering_id": offering_id, "title": answers[0]["title"],
                          "starts_at": answers[0]["starts_at"], **averages})
    overall = _averages(rows)
    if 0 < hidden < MIN_FEEDBACK_RESPONSES:
        overall.update({category: None for category in CATEGORIES})
    return {"venue_id": venue_id, "minimum_responses": MIN_FEEDBACK_RESPONSES,
            "overall": overall, "offerings": offerings}
