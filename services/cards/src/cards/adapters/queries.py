"""Reads of cards' statistics read models (asyncpg), for the api and the rebuild's check.

Where a figure is counted (see services/cards/README.md):
- cards: by the card's region/municipality and issuing distributor, in the month
  it was issued (``valid_from``); a replacement for a lost card is not a new card.
- uses: registered minus cancelled tickets, in the month of the event, by the
  card's region/municipality/distributor, or by the venue.
- swimming visits and covered library fees (``desk_use_view``): apart from the
  tickets, in the month they were registered, grouped the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from ..domain.disclosure import hidden_cells

DIMENSIONS = ("region", "municipality", "distributor", "venue", "month")
# Breakdowns fine enough to point at one person get small counts suppressed, with
# complementary cells (domain.disclosure). Regions are not: their figures are the
# published totals the breakdowns add up to.
SUPPRESSED_DIMENSIONS = ("municipality", "distributor", "venue", "month")
AGE_GROUPS = ((16, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 74), (75, 200))
HELSINKI = "Europe/Helsinki"
# Sums of money, hidden together with the count they add up (not counts themselves).
AMOUNTS = {"library_fees_cents": "library_fees"}

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


# A municipality within the region its cards were issued under ("region/municipality"):
# the public breakdown's lines, each adding up to its region's total.
_REGION_MUNICIPALITY = "c.region || '/' || c.municipality"
_CARD_GROUP = {
    "region": "c.region",
    "municipality": "c.municipality",
    "region_municipality": _REGION_MUNICIPALITY,
    "distributor": "c.issuer::text",
    "month": "to_char(c.valid_from, 'YYYY-MM')",
}
_USE_GROUP = {
    "region": "c.region",
    "municipality": "c.municipality",
    "region_municipality": _REGION_MUNICIPALITY,
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


_DESK_GROUP = {**_USE_GROUP, "venue": "d.venue_id::text",
               "month": f"to_char(d.used_at AT TIME ZONE '{HELSINKI}', 'YYYY-MM')"}


def _use_filter(period: Period, region: str | None,
                moment: str = "u.starts_at") -> tuple[str, list[Any]]:
    clauses, args = [], []
    if period.start:
        args.append(period.start)
        clauses.append(f"({moment} AT TIME ZONE '{HELSINKI}')::date >= ${len(args)}")
    if period.end:
        args.append(period.end)
        clauses.append(f"({moment} AT TIME ZONE '{HELSINKI}')::date <= ${len(args)}")
    if region:
        args.append(region)
        clauses.append(f"c.region = ${len(args)}")
    return "".join(f" AND {c}" for c in clauses), args


def zero_figures() -> dict[str, int]:
    return {"cards_issued": 0, "active_cards": 0, "community_cards": 0,
            "replacement_cards": 0, "uses": 0, "child_tickets": 0, "uses_with_children": 0,
            "swimming_visits": 0, "swimming_children": 0, "library_fees": 0,
            "library_fees_cents": 0}


async def _desk_figures(conn: asyncpg.Connection, period: Period, by: str | None,
                        region: str | None) -> list[asyncpg.Record]:
    """Swimming visits (children along apart) and covered library fees (their sum
    apart), grouped as the tickets are; counted apart from them."""
    where, args = _use_filter(period, region, "d.used_at")
    return await conn.fetch(
        f"""
        SELECT {_DESK_GROUP[by] if by else 'NULL'} AS key,
               count(*) FILTER (WHERE d.kind = 'swimming_visit') AS swimming_visits,
               coalesce(sum(d.children) FILTER (WHERE d.kind = 'swimming_visit'), 0)
                   AS swimming_children,
               count(*) FILTER (WHERE d.kind = 'library_fee') AS library_fees,
               coalesce(sum(d.amount_cents) FILTER (WHERE d.kind = 'library_fee'), 0)
                   AS library_fees_cents
        FROM desk_use_view d LEFT JOIN card_view c ON c.card_number = d.card_number
        WHERE true{where} GROUP BY 1
        """, *args)


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
    for record in await _desk_figures(conn, period, by, region):
        figures_ = row(record["key"])
        for field in ("swimming_visits", "swimming_children", "library_fees",
                      "library_fees_cents"):
            figures_[field] = int(record[field])
    if by is None:
        row(None)
    return results


async def venue_kind_figures(conn: asyncpg.Connection, period: Period
                             ) -> dict[str, dict[str, int]]:
    """Uses by the kind of venue: tickets by their venue's kind, swimming visits and
    library fees by the desk's venue (a swimming hall, a library). Imported uses
    and venues not (yet) known count under 'other'."""
    results: dict[str, dict[str, int]] = {}
    where, args = _use_filter(period, None)
    for record in await conn.fetch(
        f"""
        SELECT coalesce(v.kind, 'other') AS key, count(*) AS uses,
               coalesce(sum(u.children), 0) AS child_tickets
        FROM usage_view u LEFT JOIN venue_view v ON v.venue_id = u.venue_id
        WHERE u.status = 'registered'{where} GROUP BY 1
        """, *args):
        results[record["key"]] = {**zero_figures(), "uses": record["uses"],
                                  "child_tickets": int(record["child_tickets"])}
    where, args = _use_filter(period, None, "d.used_at")
    for record in await conn.fetch(
        f"""
        SELECT coalesce(v.kind, CASE d.kind WHEN 'swimming_visit' THEN 'swimming_hall'
                                            ELSE 'library' END) AS key,
               count(*) FILTER (WHERE d.kind = 'swimming_visit') AS swimming_visits,
               count(*) FILTER (WHERE d.kind = 'library_fee') AS library_fees
        FROM desk_use_view d LEFT JOIN venue_view v ON v.venue_id = d.venue_id
        WHERE true{where} GROUP BY 1
        """, *args):
        row = results.setdefault(record["key"], zero_figures())
        row["swimming_visits"] = record["swimming_visits"]
        row["library_fees"] = record["library_fees"]
    return results


async def genre_figures(conn: asyncpg.Connection, period: Period
                        ) -> dict[str, dict[str, int]]:
    """Tickets by their offering's first genre (offerings without one left out)."""
    where, args = _use_filter(period, None)
    return {record["key"]: {"uses": record["uses"],
                            "child_tickets": int(record["child_tickets"])}
            for record in await conn.fetch(
                f"""
                SELECT o.genres[1] AS key, count(*) AS uses,
                       coalesce(sum(u.children), 0) AS child_tickets
                FROM usage_view u JOIN offering_view o ON o.offering_id = u.offering_id
                WHERE u.status = 'registered' AND cardinality(o.genres) > 0{where}
                GROUP BY 1
                """, *args)}


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
                # Swimming halls and libraries with no tickets: the venue's own name.
                for record in await conn.fetch(
                    "SELECT venue_id::text AS id, name FROM venue_view WHERE name IS NOT NULL"):
                    names.setdefault(record["id"], record["name"])
    rows = []
    for key, values in sorted(grouped.items(), key=lambda item: str(item[0])):
        if key is None:
            continue
        out: dict[str, Any] = {by: key}
        if names is not None:
            out["name"] = names.get(key, "historical import" if key == "imported" else None)
        out.update(values)
        if by == "venue":
            for field in ("cards_issued", "active_cards", "community_cards",
                          "replacement_cards"):
                out.pop(field, None)
        if by == "month":
            out.pop("active_cards", None)  # a day's figure, not a month's
        rows.append(out)
    return _suppress_columns(rows, threshold) if by in SUPPRESSED_DIMENSIONS else [
        {**row, "suppressed": []} for row in rows]


def _suppress_columns(rows: list[dict[str, Any]], threshold: int) -> list[dict[str, Any]]:
    """Each figure's column adds up to a published total: hide its small cells and
    their complements (set to None, named in the row's ``suppressed``)."""
    for row in rows:
        row["suppressed"] = []
    figures_ = [f for f in (rows[0] if rows else {}) if f in zero_figures()
                and f not in AMOUNTS]
    for field in figures_:
        for index in hidden_cells({i: row[field] for i, row in enumerate(rows)}, threshold):
            rows[index][field] = None
            rows[index]["suppressed"].append(field)
    # An amount is hidden with the count it sums: a small group's sum is theirs.
    for amount, count in AMOUNTS.items():
        for row in rows:
            if amount in row and count in row["suppressed"]:
                row[amount] = None
                row["suppressed"].append(amount)
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
    groups = {f"{low}+" if high >= 200 else f"{low}–{high}":
              sum(n for age, n in counts.items() if low <= age <= high)
              for low, high in AGE_GROUPS}
    # The groups add up to the cards issued less community cards, which is shown.
    hidden = hidden_cells(groups, threshold)
    return [{"age_group": label, "cards": None if label in hidden else count,
             "suppressed": label in hidden} for label, count in groups.items()]


async def wellbeing(pool: Db, period: Period, *, region: str | None,
                    threshold: int) -> dict[str, Any]:
    """Averages at issuing vs at renewal, with answer and no-answer counts.

    Answers are pooled by region and month, and a region's month with fewer than
    ``threshold`` answers to a question is left out of that question's figures
    (counted in ``left_out``). Any two periods or regions then differ by whole
    region-months of at least ``threshold`` answers each, so differencing two
    averages never isolates one holder's answer."""
    where, args = _wellbeing_filter(period, region)
    async with _connection(pool) as conn:
        cells = await conn.fetch(
            f"""
            SELECT w.occasion, w.region, date_trunc('month', w.answered_on) AS month,
                   sum(w.life_satisfaction) AS ls_sum,
                   count(w.life_satisfaction) AS ls_answers,
                   count(*) FILTER (WHERE w.life_satisfaction IS NULL) AS ls_no_answer,
                   sum(w.wellbeing_impact) AS wi_sum,
                   count(w.wellbeing_impact) AS wi_answers,
                   count(*) FILTER (WHERE w.wellbeing_impact IS NULL) AS wi_no_answer
            FROM wellbeing_view w JOIN card_view c ON c.card_number = w.card_number
            WHERE c.replaces IS NULL AND NOT coalesce(c.community, false){where}
            GROUP BY 1, 2, 3
            """, *args)
    result: dict[str, Any] = {"threshold": threshold}
    for occasion, name in (("issue", "at_issue"), ("renewal", "at_renewal")):
        mine = [cell for cell in cells if cell["occasion"] == occasion]
        entry = {"life_satisfaction": _pooled(mine, "ls", threshold)}
        if occasion == "renewal":
            entry["wellbeing_impact"] = _pooled(mine, "wi", threshold)
        result[name] = entry
    return result


def _wellbeing_filter(period: Period, region: str | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for clause, value in (("w.answered_on >= ${}", period.start),
                          ("w.answered_on <= ${}", period.end), ("w.region = ${}", region)):
        if value:
            args.append(value)
            clauses.append(clause.format(len(args)))
    return "".join(f" AND {c}" for c in clauses), args


def _pooled(cells: list[Any], question: str, threshold: int) -> dict[str, Any]:
    """One question's figures from the region-months with enough answers."""
    kept = [c for c in cells if c[f"{question}_answers"] >= threshold]
    small = [c for c in cells if c[f"{question}_answers"] < threshold]
    answers = sum(c[f"{question}_answers"] for c in kept)
    total = sum(c[f"{question}_sum"] or 0 for c in kept)
    left_out = sum(c[f"{question}_answers"] + c[f"{question}_no_answer"] for c in small)
    return {
        "average": round(float(total) / answers, 2) if answers else None,
        "answers": answers,
        "no_answer": sum(c[f"{question}_no_answer"] for c in kept),
        "left_out": left_out,
        "suppressed": left_out > 0,
    }


CASELOAD_STATUSES = {
    "open": "c.status = 'open'",
    "closed": "c.status = 'closed'",
    "active": "c.status = 'open' AND c.valid_from <= $1 AND c.valid_until >= $1",
    "expired": "c.status = 'open' AND c.valid_until < $1",
}


async def caseload(pool: Db, *, today: date, issuer: UUID | None, status: str | None,
                   expiring_before: date | None, after: str | None, limit: int
                   ) -> list[dict[str, Any]]:
    """Cards in card-number order after ``after`` (a page and one more, to tell
    whether another page follows); only ``issuer``'s when given. Expiring: open
    cards valid until a day before ``expiring_before``."""
    clauses, args = ["c.issuer IS NOT NULL"], [today]
    for clause, value in (("c.issuer = ${}", issuer),
                          ("c.status = 'open' AND c.valid_until < ${}", expiring_before),
                          ("c.card_number > ${}", after)):
        if value is not None:
            args.append(value)
            clauses.append(clause.format(len(args)))
    if status:
        clauses.append(CASELOAD_STATUSES[status])
    args.append(limit + 1)
    async with _connection(pool) as conn:
        return [dict(r) for r in await conn.fetch(
            f"""
            SELECT c.card_number, c.valid_from, c.valid_until, c.status, c.children,
                   c.municipality, c.region, coalesce(c.community, false) AS community,
                   (c.status = 'open' AND c.valid_from <= $1 AND c.valid_until >= $1)
                       AS active
            FROM card_view c WHERE {" AND ".join(clauses)}
            ORDER BY c.card_number LIMIT ${len(args)}
            """, *args)]


async def partner_organisations(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    async with _connection(pool) as conn:
        return [dict(r) for r in await conn.fetch(
            "SELECT organisation_id, kind, name, municipality, status FROM organisation_view "
            "WHERE kind IN ('distributor', 'venue', 'ticket_agent') "
            "AND coalesce(status, '') <> 'left' ORDER BY kind, name")]
