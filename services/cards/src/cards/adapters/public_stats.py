"""The public statistics document (``kaiku_shared.public_stats``), built from the
statistics read models with the staff statistics' own queries and suppression.

- The national headline is live and all-time (``queries.figures`` with no period);
  ``by_month`` gives the national figures of every completed month (national
  totals, always shown: each is also that month's own document's national figure).
- The breakdowns (regions, municipalities, venue kinds, genres) are of one whole
  completed month: the document's are those of ``months_through``, and each
  earlier month has its own document. A figure below the national level is never
  published over more than one month (a running total of a municipality, read a
  month apart, would give that month's cell, however small).
- Each line of cells that adds up to a published total has its small cells hidden
  with complements (``queries._suppress_columns``, i.e. ``disclosure.hidden_cells``):
  regions, venue kinds and genres add up to the month's national figures; each
  region's municipalities add up to the region's. A region's cell that is hidden
  hides that figure for all its municipalities too, so shown municipalities never
  rebuild a hidden region (and, from the national total, the small one beside it).

The pure parts (lines, suppression, growth, the ETag, CSV) are plain functions;
``build``/``build_month`` read; ``store``/``load`` keep the one ``public_stats`` row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from kaiku_shared.public_stats import (
    GenreFigures,
    Growth,
    MonthFigures,
    MunicipalityFigures,
    PublicMonthStatsV1,
    PublicStatsV1,
    RegionFigures,
    VenueKindFigures,
)

from ..domain.disclosure import last_completed_day, last_day_of_month
from . import queries

USE_FIELDS = ("uses", "child_tickets", "swimming_visits", "library_fees")
CARD_AND_USE_FIELDS = ("cards_issued", *USE_FIELDS)
REGION_FIELDS = (*CARD_AND_USE_FIELDS, "active_cards")
GENRE_FIELDS = ("uses", "child_tickets")
HEADLINE = ("cards_issued", "active_cards", *USE_FIELDS)
# The worker NOTIFYs this when it has written a new document (the api reloads).
DOCUMENT_CHANGED = "cards_public_stats"
HELSINKI = ZoneInfo("Europe/Helsinki")


# --- pure parts -----------------------------------------------------------------------


def line(grouped: Mapping[Any, Mapping[str, int]], fields: Iterable[str], key: str,
         threshold: int, keys: Iterable[Any] | None = None) -> list[dict[str, Any]]:
    """One line of cells (``key`` → figures), small cells and their complements
    hidden per figure (None, named in ``suppressed``). ``keys``: every cell of the
    line in order (zeros included); else the grouped keys, sorted."""
    wanted = tuple(fields)
    order = list(keys) if keys is not None else sorted(k for k in grouped if k is not None)
    rows = [{key: k, **{f: int((grouped.get(k) or {}).get(f, 0)) for f in wanted}}
            for k in order]
    return queries._suppress_columns(rows, threshold)


def hide_under_hidden_regions(regions: list[dict[str, Any]],
                              municipalities: list[dict[str, Any]]) -> None:
    """A figure hidden for a region is hidden for each of its municipalities."""
    hidden = {row["region"]: set(row["suppressed"]) for row in regions}
    for row in municipalities:
        for field in sorted(hidden.get(row["region"], ())):
            if field in row and field not in row["suppressed"]:
                row[field] = None
                row["suppressed"].append(field)


def growth(months: Mapping[str, Mapping[str, int]], today: date) -> Growth:
    """The year's completed months against the same months a year earlier
    (unsuppressed national sums: totals of many months)."""
    completed = today.month - 1

    def total(year: int, field: str) -> int:
        return sum(int(months.get(f"{year}-{m:02d}", {}).get(field, 0))
                   for m in range(1, completed + 1))

    return Growth(year=today.year, months=completed, uses=total(today.year, "uses"),
                  uses_previous_year=total(today.year - 1, "uses"),
                  cards_issued=total(today.year, "cards_issued"),
                  cards_issued_previous_year=total(today.year - 1, "cards_issued"))


def etag_of(document: PublicStatsV1 | PublicMonthStatsV1) -> str:
    """A digest of the figures (``updated_at`` left out: it follows them)."""
    figures = document.model_dump(mode="json", exclude={"updated_at"})
    digest = hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()
    return digest[:32]


CSV_HEADER = ("dimension", "key", "name", "month", "figure", "value")


def _csv_cells(dimension: str, key: str, name: str, month: str, row: Mapping[str, Any],
               fields: Iterable[str]) -> Iterable[tuple[Any, ...]]:
    for field in fields:
        value = row.get(field)
        yield dimension, key, name, month, field, "" if value is None else value


def csv_text(document: PublicStatsV1 | PublicMonthStatsV1) -> str:
    """The document's figures in long format, one figure a line; a hidden cell's
    value is empty. ``month`` is the month a figure covers; empty for the live,
    all-time headline."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    whole = document.model_dump()
    if isinstance(document, PublicMonthStatsV1):
        period = document.month
        writer.writerows(_csv_cells("national", "", "", period, whole, CARD_AND_USE_FIELDS))
    else:
        period = document.months_through or ""  # the breakdowns' month
        writer.writerows(_csv_cells("national", "", "", "", whole, HEADLINE))
        for row in whole["by_month"]:
            writer.writerows(_csv_cells("month", row["month"], "", row["month"], row,
                                        CARD_AND_USE_FIELDS))
    for row in whole["by_region"]:
        writer.writerows(_csv_cells("region", row["region"], row["name"], period, row,
                                    REGION_FIELDS))
    for row in whole["by_municipality"]:
        writer.writerows(_csv_cells("municipality", row["municipality"], "", period, row,
                                    CARD_AND_USE_FIELDS))
    for row in whole["by_venue_kind"]:
        writer.writerows(_csv_cells("venue_kind", row["venue_kind"], "", period, row,
                                    USE_FIELDS))
    for row in whole["by_genre"]:
        writer.writerows(_csv_cells("genre", row["genre"], "", period, row, GENRE_FIELDS))
    return out.getvalue()


def month_text(day: date) -> str:
    return day.isoformat()[:7]


def today() -> date:
    """Today in Finland: months turn by Helsinki's calendar."""
    return datetime.now(HELSINKI).date()


def region_names(network: Any) -> dict[str, str]:
    """Every region of the network by code, with its (Finnish) name, as /stats/regions."""
    return {code: region["name"]["fi"] for code, region in network.regions.items()}


# --- reading the read models ----------------------------------------------------------


@dataclass(frozen=True)
class Breakdowns:
    """The suppressed breakdowns of one period."""

    by_region: tuple[RegionFigures, ...]
    by_municipality: tuple[MunicipalityFigures, ...]
    by_venue_kind: tuple[VenueKindFigures, ...]
    by_genre: tuple[GenreFigures, ...]


async def breakdowns(conn: asyncpg.Connection, period: queries.Period,
                     region_names: Mapping[str, str], threshold: int) -> Breakdowns:
    regions = line(await queries.figures(conn, period, by="region"), REGION_FIELDS,
                   "region", threshold, keys=sorted(region_names))
    by_place = await queries.figures(conn, period, by="region_municipality")
    municipalities: list[dict[str, Any]] = []
    for code in sorted(region_names):
        prefix = f"{code}/"
        own = {k[len(prefix):]: v for k, v in by_place.items()
               if k is not None and k.startswith(prefix)}
        for row in line(own, CARD_AND_USE_FIELDS, "municipality", threshold):
            municipalities.append({**row, "region": code})
    hide_under_hidden_regions(regions, municipalities)
    kinds = line(await queries.venue_kind_figures(conn, period), USE_FIELDS, "venue_kind",
                 threshold)
    genres = line(await queries.genre_figures(conn, period), GENRE_FIELDS, "genre", threshold)
    return Breakdowns(
        by_region=tuple(RegionFigures(**row, name=region_names[row["region"]])
                        for row in regions),
        by_municipality=tuple(MunicipalityFigures(**row) for row in municipalities),
        by_venue_kind=tuple(VenueKindFigures(**row) for row in kinds),
        by_genre=tuple(GenreFigures(**row) for row in genres))


async def build(conn: asyncpg.Connection, region_names: Mapping[str, str], threshold: int,
                today: date, updated_at: datetime) -> PublicStatsV1:
    """The whole document as the read models stand now. Its breakdowns are those
    of the last completed month (the same as that month's own document): no
    figure below the national level is ever published over more than one month,
    so neither comparing documents a month apart nor adding up the months'
    documents gives a cell that one of them hides."""
    live = (await queries.figures(conn, queries.Period(None, None, today)))[None]
    through = last_completed_day(today)
    months = await queries.figures(conn, queries.Period(None, through, today), by="month")
    # National monthly totals: each is also its month's document's national figure.
    by_month = [{"month": key, **{f: int(months[key][f]) for f in CARD_AND_USE_FIELDS},
                 "suppressed": []} for key in sorted(k for k in months if k is not None)]
    last_month = queries.Period(through.replace(day=1), through, today)
    parts = await breakdowns(conn, last_month, region_names, threshold)
    return PublicStatsV1(
        updated_at=updated_at, **{field: live[field] for field in HEADLINE},
        months_through=month_text(through), suppression_threshold=threshold,
        by_month=tuple(MonthFigures(**row) for row in by_month),
        by_region=parts.by_region, by_municipality=parts.by_municipality,
        by_venue_kind=parts.by_venue_kind, by_genre=parts.by_genre,
        growth=growth({k: v for k, v in months.items() if k is not None}, today))


async def build_month(conn: asyncpg.Connection, region_names: Mapping[str, str],
                      threshold: int, first_day: date, today: date) -> PublicMonthStatsV1:
    """One completed month (``first_day`` its first day)."""
    period = queries.Period(first_day, last_day_of_month(first_day), today)
    national = (await queries.figures(conn, period))[None]
    parts = await breakdowns(conn, period, region_names, threshold)
    return PublicMonthStatsV1(
        month=month_text(first_day), **{f: national[f] for f in CARD_AND_USE_FIELDS},
        suppression_threshold=threshold, by_region=parts.by_region,
        by_municipality=parts.by_municipality, by_venue_kind=parts.by_venue_kind,
        by_genre=parts.by_genre)


# --- the stored document --------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    document: str  # PublicStatsV1 as JSON
    etag: str
    updated_at: datetime


async def load(db: asyncpg.Pool | asyncpg.Connection) -> Stored | None:
    row = await db.fetchrow("SELECT document, etag, updated_at FROM public_stats WHERE id = 1")
    return Stored(row["document"], row["etag"], row["updated_at"]) if row else None


async def store(conn: asyncpg.Connection, document: PublicStatsV1) -> Stored | None:
    """Write the document unless its figures are those stored already; then tell
    the api processes (NOTIFY, on commit). The stored row, or None if unchanged."""
    etag = etag_of(document)
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT etag FROM public_stats WHERE id = 1 FOR UPDATE")
        if current is not None and current["etag"] == etag:
            return None
        updated_at = await conn.fetchval("SELECT now()")
        text = document.model_copy(update={"updated_at": updated_at}).model_dump_json()
        await conn.execute(
            "INSERT INTO public_stats (id, document, etag, updated_at) VALUES (1, $1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document, "
            "etag = EXCLUDED.etag, updated_at = EXCLUDED.updated_at", text, etag, updated_at)
        await conn.execute(f"NOTIFY {DOCUMENT_CHANGED}")
    return Stored(text, etag, updated_at)


async def refresh(conn: asyncpg.Connection, region_names: Mapping[str, str], threshold: int,
                  today: date) -> Stored | None:
    """Recompute and store if a figure changed (the refresher, the rebuild)."""
    document = await build(conn, region_names, threshold, today, datetime.now(HELSINKI))
    return await store(conn, document)


__all__ = ["DOCUMENT_CHANGED", "Stored", "build", "build_month", "csv_text", "etag_of",
           "growth", "hide_under_hidden_regions", "line", "load", "refresh", "store"]
