"""Reads of cards' statistics read models (asyncpg), for the api and the rebuild's check.

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

DIMENSIONS = ("region", "municipality", "distributor", "venue", "month")
# Breakdowns fine enough to point at one person get small counts suppressed.
SUPPRESSED_DIMENSIONS = ("municipality", "distributor", "venue")
AGE_GROUPS = ((16, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 74), (75, 200))
HELSINKI = "Europe/Helsinki"

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
