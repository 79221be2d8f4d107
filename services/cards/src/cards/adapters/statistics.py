"""Statistics read models (asyncpg), fed by the cards and venues streams.

Rows carry the aggregate version of the last fact applied, so a fact arriving
after a newer one for the same card or ticket never overwrites it. Every handler
gives the same rows whatever order the facts arrive in, so a rebuild from the
event store gives exactly what the live consumers built.

Where a figure is counted (see services/cards/README.md):
- cards: by the card's region/municipality and issuing distributor, in the month
  it was issued (``valid_from``); a replacement for a lost card is not a new card.
- uses: registered minus cancelled tickets, in the month of the event, by the
  card's region/municipality/distributor, or by the venue.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    CardUsesImportedV1,
    OrganisationRegisteredV1,
    OrganisationStatusChangedV1,
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
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS replaces text",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS closed_on date",
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
    "ALTER TABLE usage_view ADD COLUMN IF NOT EXISTS venue_name text",
    "CREATE INDEX IF NOT EXISTS usage_view_card ON usage_view (card_number)",
    """
    CREATE TABLE IF NOT EXISTS wellbeing_view (
        card_number        text    NOT NULL,
        version            integer NOT NULL,
        occasion           text    NOT NULL,   -- issue | renewal
        answered_on        date    NOT NULL,
        region             text    NOT NULL,
        municipality       text    NOT NULL,
        life_satisfaction  integer,            -- NULL: the holder gave no answer
        wellbeing_impact   integer,            -- asked at renewal only
        PRIMARY KEY (card_number, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS organisation_view (
        organisation_id uuid PRIMARY KEY,
        kind            text,
        name            text,
        municipality    text,
        status          text,
        version         integer NOT NULL
    )
    """,
)

READ_MODEL_TABLES = ("card_view", "usage_view", "wellbeing_view", "organisation_view")
STATISTICS_CONSUMER = "cards-statistics"
USAGE_CONSUMER = "cards-usage"
DIMENSIONS = ("region", "municipality", "distributor", "venue", "month")
# Breakdowns fine enough to point at one person get small counts suppressed.
SUPPRESSED_DIMENSIONS = ("municipality", "distributor", "venue")
AGE_GROUPS = ((16, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 74), (75, 200))
HELSINKI = "Europe/Helsinki"


def consumers() -> list[Consumer]:
    cards = Consumer(STATISTICS_CONSUMER, "cards")
    usage = Consumer(USAGE_CONSUMER, "venues")
    for contract, handler in CARD_HANDLERS.items():
        cards.on(contract)(handler)
    for contract, handler in USAGE_HANDLERS.items():
        usage.on(contract)(handler)
    return [cards, usage]


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
    await _record_answer(conn, event.card_number, event.aggregate_version, "issue",
                         event.valid_from, event.region, event.municipality,
                         event.life_satisfaction, None)


async def on_card_renewed(event: CardRenewedV1, conn: asyncpg.Connection) -> None:
    await _upsert_card_state(conn, event.card_number, event.aggregate_version,
                             valid_until=event.valid_until, children=event.children,
                             municipality=event.municipality, region=event.region)
    answered_on = event.occurred_at.date()
    await _record_answer(conn, event.card_number, event.aggregate_version, "renewal",
                         answered_on, event.region, event.municipality,
                         event.life_satisfaction, event.wellbeing_impact)


async def on_card_changed(event: CardChangedV1, conn: asyncpg.Connection) -> None:
    await _upsert_card_state(conn, event.card_number, event.aggregate_version,
                             valid_until=event.valid_until, children=event.children,
                             municipality=event.municipality, region=event.region)


async def on_card_closed(event: CardClosedV1, conn: asyncpg.Connection) -> None:
    await _upsert_card_state(conn, event.card_number, event.aggregate_version,
                             status="closed", closed_on=event.occurred_at.date())


async def on_card_replaced(event: CardReplacedV1, conn: asyncpg.Connection) -> None:
    # Marks the replacement card (whichever of its facts arrives first): it is the
    # same holder's card under a new number, not a new card.
    await conn.execute(
        """
        INSERT INTO card_view (card_number, replaces, version) VALUES ($1, $2, 0)
        ON CONFLICT (card_number) DO UPDATE SET replaces = excluded.replaces
        """,
        event.replacement_card_number, event.card_number,
    )


async def on_card_uses_imported(event: CardUsesImportedV1, conn: asyncpg.Connection) -> None:
    """Historical uses (before this system) become ordinary usage rows."""
    await conn.executemany(
        """
        INSERT INTO usage_view (ticket_id, card_number, venue_municipality, starts_at,
            children, status, version)
        VALUES ($1, $2, $3, $4, $5, 'registered', 1)
        ON CONFLICT (ticket_id) DO NOTHING
        """,
        [(use.use_id, event.card_number, use.venue_municipality, use.used_at, use.children)
         for use in event.uses],
    )


async def on_organisation_registered(event: OrganisationRegisteredV1,
                                     conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO organisation_view (organisation_id, kind, name, municipality, status,
            version)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (organisation_id) DO UPDATE SET kind = excluded.kind,
            name = excluded.name, municipality = excluded.municipality,
            status = coalesce(organisation_view.status, excluded.status)
        """,
        event.organisation_id, event.kind, event.name, event.municipality, event.status,
        event.aggregate_version,
    )


async def on_organisation_status_changed(event: OrganisationStatusChangedV1,
                                         conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO organisation_view (organisation_id, status, version) VALUES ($1, $2, $3)
        ON CONFLICT (organisation_id) DO UPDATE SET
            status = CASE WHEN organisation_view.version < excluded.version
                          THEN excluded.status ELSE organisation_view.status END,
            version = greatest(organisation_view.version, excluded.version)
        """,
        event.organisation_id, event.status, event.aggregate_version,
    )


async def on_ticket_registered(event: TicketRegisteredV1, conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO usage_view (ticket_id, card_number, venue_id, offering_id,
            venue_municipality, starts_at, children, status, version, venue_name)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'registered', $8, $9)
        ON CONFLICT (ticket_id) DO UPDATE SET
            venue_id = excluded.venue_id, offering_id = excluded.offering_id,
            venue_municipality = excluded.venue_municipality,
            starts_at = excluded.starts_at, children = excluded.children,
            venue_name = excluded.venue_name
        """,
        event.ticket_id, event.card_number, event.venue_id, event.offering_id,
        event.municipality, event.starts_at, event.children, event.aggregate_version,
        event.venue_name,
    )


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


CARD_HANDLERS = {
    CardIssuedV1: on_card_issued,
    CardRenewedV1: on_card_renewed,
    CardChangedV1: on_card_changed,
    CardClosedV1: on_card_closed,
    CardReplacedV1: on_card_replaced,
    CardUsesImportedV1: on_card_uses_imported,
    OrganisationRegisteredV1: on_organisation_registered,
    OrganisationStatusChangedV1: on_organisation_status_changed,
}
USAGE_HANDLERS = {
    TicketRegisteredV1: on_ticket_registered,
    TicketCancelledV1: on_ticket_cancelled,
}


async def _record_answer(conn: asyncpg.Connection, card_number: str, version: int,
                         occasion: str, answered_on: date, region: str, municipality: str,
                         life_satisfaction: int | None, wellbeing_impact: int | None) -> None:
    await conn.execute(
        """
        INSERT INTO wellbeing_view (card_number, version, occasion, answered_on, region,
            municipality, life_satisfaction, wellbeing_impact)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING
        """,
        card_number, version, occasion, answered_on, region, municipality,
        life_satisfaction, wellbeing_impact,
    )


async def _upsert_card_state(conn: asyncpg.Connection, card_number: str, version: int,
                             **changes: object) -> None:
    """Apply a newer card state; 'closed' is final whatever order facts arrive in."""
    columns = list(changes)
    assignments = ", ".join(
        "status = 'closed'" if c == "status" else
        "closed_on = coalesce(card_view.closed_on, excluded.closed_on)" if c == "closed_on" else
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


# --- queries -------------------------------------------------------------------------

Db = asyncpg.Pool | asyncpg.Connection


@contextlib.asynccontextmanager
async def _connection(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """Queries take a pool (the api) or a connection (rebuild checks, tests)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


@dataclass(frozen=True)
class Period:
    """``from``/``to`` (inclusive dates); ``at`` is the day 'active' is judged on."""

    start: date | None
    end: date | None
    today: date

    @property
    def at(self) -> date:
        return min(self.end, self.today) if self.end else self.today


def suppress(value: int | None, threshold: int) -> int | None:
    """A count of 1..threshold-1 could point at one person: shown as null."""
    if value is None or value == 0 or value >= threshold:
        return value
    return None


_CARD_GROUP = {
    "region": "c.region",
    "municipality": "c.municipality",
    "distributor": "c.issuer::text",
    "month": "to_char(c.valid_from, 'YYYY-MM')",
}
_USE_GROUP = {
    "region": "c.region",
    "municipality": "c.municipality",
    "distributor": "c.issuer::text",
    "venue": "coalesce(u.venue_id::text, 'imported')",
    "month": f"to_char(u.starts_at AT TIME ZONE '{HELSINKI}', 'YYYY-MM')",
}


def _card_filter(period: Period, region: str | None, first: int) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if period.start:
        args.append(period.start)
        clauses.append(f"c.valid_from >= ${first + len(args) - 1}")
    if period.end:
        args.append(period.end)
        clauses.append(f"c.valid_from <= ${first + len(args) - 1}")
    if region:
        args.append(region)
        clauses.append(f"c.region = ${first + len(args) - 1}")
    return "".join(f" AND {c}" for c in clauses), args


def _use_filter(period: Period, region: str | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if period.start:
        args.append(period.start)
        clauses.append(f"(u.starts_at AT TIME ZONE '{HELSINKI}')::date >= ${len(args)}")
    if period.end:
        args.append(period.end)
        clauses.append(f"(u.starts_at AT TIME ZONE '{HELSINKI}')::date <= ${len(args)}")
    if region:
        args.append(region)
        clauses.append(f"c.region = ${len(args)}")
    return "".join(f" AND {c}" for c in clauses), args


def zero_figures() -> dict[str, int]:
    return {"cards_issued": 0, "active_cards": 0, "community_cards": 0,
            "replacement_cards": 0, "uses": 0, "child_tickets": 0, "uses_with_children": 0}


async def figures(conn: asyncpg.Connection, period: Period, *, by: str | None = None,
                  region: str | None = None) -> dict[str | None, dict[str, int]]:
    """cards_issued, active_cards, … grouped ``by`` a dimension (None: one total)."""
    results: dict[str | None, dict[str, int]] = {}

    def row(key: str | None) -> dict[str, int]:
        return results.setdefault(key, zero_figures())

    if by != "venue":
        group = _CARD_GROUP[by] if by else "NULL"
        where, args = _card_filter(period, region, 1)
        for record in await conn.fetch(
            f"""
            SELECT {group} AS key,
                   count(*) FILTER (WHERE c.replaces IS NULL) AS cards_issued,
                   count(*) FILTER (WHERE c.replaces IS NULL AND c.community) AS community,
                   count(*) FILTER (WHERE c.replaces IS NOT NULL) AS replacements
            FROM card_view c WHERE c.issuer IS NOT NULL{where} GROUP BY 1
            """, *args,
        ):
            figures_ = row(record["key"])
            figures_["cards_issued"] = record["cards_issued"]
            figures_["community_cards"] = record["community"]
            figures_["replacement_cards"] = record["replacements"]
        # Active on a day: whatever month the card was issued in.
        active_group = "NULL" if by in (None, "month") else _CARD_GROUP[by]
        where, args = _card_filter(Period(None, None, period.today), region, 2)
        for record in await conn.fetch(
            f"""
            SELECT {active_group} AS key, count(*) AS active FROM card_view c
            WHERE c.issuer IS NOT NULL AND c.valid_from <= $1 AND c.valid_until >= $1
              AND (c.closed_on IS NULL OR c.closed_on > $1){where}
            GROUP BY 1
            """, period.at, *args,
        ):
            if by == "month":
                continue  # 'active' is a day's figure, not a month's
            row(record["key"])["active_cards"] = record["active"]
    where, args = _use_filter(period, region)
    for record in await conn.fetch(
        f"""
        SELECT {_USE_GROUP[by] if by else 'NULL'} AS key, count(*) AS uses,
               coalesce(sum(u.children), 0) AS child_tickets,
               count(*) FILTER (WHERE u.children > 0) AS with_children
        FROM usage_view u LEFT JOIN card_view c ON c.card_number = u.card_number
        WHERE u.status = 'registered'{where} GROUP BY 1
        """, *args,
    ):
        figures_ = row(record["key"])
        figures_["uses"] = record["uses"]
        figures_["child_tickets"] = int(record["child_tickets"])
        figures_["uses_with_children"] = record["with_children"]
    if by is None:
        row(None)
    return results


async def national(pool: Db, period: Period) -> dict[str, int]:
    async with _connection(pool) as conn:
        return (await figures(conn, period))[None]


async def breakdown(pool: Db, period: Period, by: str, *, region: str | None,
                    threshold: int, names: dict[str, str] | None = None
                    ) -> list[dict[str, Any]]:
    """Rows for one dimension, small counts suppressed where they could identify."""
    async with _connection(pool) as conn:
        grouped = await figures(conn, period, by=by, region=region)
        if by in ("distributor", "venue"):
            names = dict(names or {})
            if by == "distributor":
                for record in await conn.fetch(
                    "SELECT organisation_id::text AS id, name FROM organisation_view"):
                    names[record["id"]] = record["name"]
            else:
                for record in await conn.fetch(
                    "SELECT DISTINCT ON (venue_id) venue_id::text AS id, venue_name AS name "
                    "FROM usage_view WHERE venue_id IS NOT NULL AND venue_name IS NOT NULL"):
                    names[record["id"]] = record["name"]
    rows = []
    for key, values in sorted(grouped.items(), key=lambda item: str(item[0])):
        if key is None:
            continue
        out: dict[str, Any] = {by: key}
        if names is not None:
            out["name"] = names.get(key, "historical import" if key == "imported" else None)
        hidden = []
        for field, value in values.items():
            if by in SUPPRESSED_DIMENSIONS:
                shown = suppress(value, threshold)
                if shown is None and value:
                    hidden.append(field)
                value = shown
            out[field] = value
        if by == "venue":
            for field in ("cards_issued", "active_cards", "community_cards",
                          "replacement_cards"):
                out.pop(field, None)
        if by == "month":
            out.pop("active_cards", None)  # a day's figure, not a month's
        out["suppressed"] = hidden
        rows.append(out)
    return rows


async def age_groups(pool: Db, period: Period, *, region: str | None,
                     threshold: int) -> list[dict[str, Any]]:
    """Holders' age at issuing, from birth years (community cards excluded)."""
    where, args = _card_filter(period, region, 1)
    async with _connection(pool) as conn:
        counts = {r["age"]: r["n"] for r in await conn.fetch(
            f"""
            SELECT extract(year FROM c.valid_from)::int - c.birth_year AS age, count(*) AS n
            FROM card_view c
            WHERE c.issuer IS NOT NULL AND c.replaces IS NULL AND NOT c.community{where}
            GROUP BY 1
            """, *args)}
    rows = []
    for low, high in AGE_GROUPS:
        count = sum(n for age, n in counts.items() if low <= age <= high)
        label = f"{low}+" if high >= 200 else f"{low}–{high}"
        shown = suppress(count, threshold)
        rows.append({"age_group": label, "cards": shown,
                     "suppressed": shown is None and count > 0})
    return rows


async def wellbeing(pool: Db, period: Period, *, region: str | None,
                    threshold: int) -> dict[str, Any]:
    """Averages at issuing vs at renewal, with answer and no-answer counts."""
    clauses, args = [], []
    if period.start:
        args.append(period.start)
        clauses.append(f"w.answered_on >= ${len(args)}")
    if period.end:
        args.append(period.end)
        clauses.append(f"w.answered_on <= ${len(args)}")
    if region:
        args.append(region)
        clauses.append(f"w.region = ${len(args)}")
    where = "".join(f" AND {c}" for c in clauses)
    async with _connection(pool) as conn:
        records = {r["occasion"]: r for r in await conn.fetch(
            f"""
            SELECT w.occasion,
                   avg(w.life_satisfaction) AS ls_avg,
                   count(w.life_satisfaction) AS ls_answers,
                   count(*) FILTER (WHERE w.life_satisfaction IS NULL) AS ls_no_answer,
                   avg(w.wellbeing_impact) AS wi_avg,
                   count(w.wellbeing_impact) AS wi_answers,
                   count(*) FILTER (WHERE w.wellbeing_impact IS NULL) AS wi_no_answer
            FROM wellbeing_view w JOIN card_view c ON c.card_number = w.card_number
            WHERE c.replaces IS NULL AND NOT coalesce(c.community, false){where}
            GROUP BY 1
            """, *args)}

    def average(value: Any, answers: int) -> float | None:
        if value is None or answers < threshold:
            return None
        return round(float(value), 2)

    result: dict[str, Any] = {"threshold": threshold}
    for occasion in ("issue", "renewal"):
        r = records.get(occasion)
        ls_answers = r["ls_answers"] if r else 0
        entry: dict[str, Any] = {
            "life_satisfaction": {
                "average": average(r["ls_avg"] if r else None, ls_answers),
                "answers": ls_answers,
                "no_answer": r["ls_no_answer"] if r else 0,
                "suppressed": 0 < ls_answers < threshold,
            }
        }
        if occasion == "renewal":
            wi_answers = r["wi_answers"] if r else 0
            entry["wellbeing_impact"] = {
                "average": average(r["wi_avg"] if r else None, wi_answers),
                "answers": wi_answers,
                "no_answer": r["wi_no_answer"] if r else 0,
                "suppressed": 0 < wi_answers < threshold,
            }
        result["at_issue" if occasion == "issue" else "at_renewal"] = entry
    return result


async def partner_organisations(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    async with _connection(pool) as conn:
        return [dict(r) for r in await conn.fetch(
            "SELECT organisation_id, kind, name, municipality, status FROM organisation_view "
            "WHERE kind IN ('distributor', 'venue', 'ticket_agent') "
            "AND coalesce(status, '') <> 'left' ORDER BY kind, name")]


async def clear(conn: asyncpg.Connection) -> None:
    """Empty every statistics read model and forget what its consumers applied."""
    await conn.execute(f"TRUNCATE {', '.join(READ_MODEL_TABLES)}")
    await conn.execute("DELETE FROM processed_events WHERE consumer = ANY($1::text[])",
                       [STATISTICS_CONSUMER, USAGE_CONSUMER])
