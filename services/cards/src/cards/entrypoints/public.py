"""The public statistics, open data (no token): ``/public/stats`` and its relatives.

The document is computed by the worker (``bootstrap.refresh_public_stats`` with
``adapters/public_stats_loops.follow``) and held here in memory, ready to send
(``PublicStatsCache``, kept current by ``follow_document``): a request reads no
database. Per-month documents are computed on demand and kept until the main
document's figures change. See docs/open-data.md.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from datetime import date
from email.utils import format_datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic.json_schema import models_json_schema

from kaiku_shared.db import is_database_unavailable
from kaiku_shared.http import Problem
from kaiku_shared.public_stats import LICENCE_URL, PublicMonthStatsV1, PublicStatsV1

from ..adapters import public_stats
from ..adapters.public_stats_loops import follow

router = APIRouter(tags=["public statistics"])

# Five seconds: a browser or a cache in front may answer from its copy that long
# (the figures move within seconds of a use anyway), and revalidates with the
# ETag after that: an unchanged document costs a 304 with no body.
CACHE_CONTROL = "public, max-age=5"
OPEN_DATA_HEADERS = {
    "Access-Control-Allow-Origin": "*",  # open data: any page may read it
    "Access-Control-Expose-Headers": "ETag, Last-Modified, Link",
    "Link": f'<{LICENCE_URL}>; rel="license"',
}
JSON = "application/json"
CSV = "text/csv; charset=utf-8"
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MonthPath = Annotated[str, Path(max_length=20, description="a completed month, YYYY-MM",
                                examples=["2026-03"])]


@dataclass(frozen=True)
class Served:
    """One stored document, encoded once for every request that reads it."""

    document: PublicStatsV1
    body: bytes
    csv: bytes
    etag: str  # quoted, strong
    headers: dict[str, str]

    @classmethod
    def of(cls, stored: public_stats.Stored) -> Served:
        document = PublicStatsV1.model_validate_json(stored.document)
        etag = f'"{stored.etag}"'
        return cls(document, stored.document.encode(),
                   public_stats.csv_text(document).encode(), etag,
                   {**OPEN_DATA_HEADERS, "ETag": etag, "Cache-Control": CACHE_CONTROL,
                    "Last-Modified": format_datetime(stored.updated_at, usegmt=True)})


@dataclass
class PublicStatsCache:
    """The api's copy of the stored document (reloaded when the worker writes a
    new one), and the months asked for since (kept while its ETag stands)."""

    pool: asyncpg.Pool
    threshold: int
    region_names: Any  # async () -> {code: name}
    current: Served | None = None
    months: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    computing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one month at a time

    async def reload(self) -> None:
        stored = await public_stats.load(self.pool)
        if stored is None:
            # The worker has not written one yet (a fresh system): make it here.
            async with self.pool.acquire() as conn:
                stored = await public_stats.refresh(conn, await self.region_names(),
                                                    self.threshold, public_stats.today())
            stored = stored or await public_stats.load(self.pool)
        if stored is not None and (self.current is None
                                   or self.current.etag != f'"{stored.etag}"'):
            self.current, self.months = Served.of(stored), {}

    async def served(self) -> Served:
        if self.current is None:
            try:
                await self.reload()
            except Exception as error:
                if not is_database_unavailable(error):
                    raise
        if self.current is None:
            raise Problem(503, "Service unavailable", "The public statistics are not "
                          "available just now (the database cannot be reached). Try again "
                          "in a moment.", kind="database-unavailable",
                          headers={"Retry-After": "5", **OPEN_DATA_HEADERS})
        return self.current


def _cache(request: Request) -> PublicStatsCache:
    return request.app.state.public_stats


def not_modified(request: Request, etag: str) -> bool:
    """If-None-Match names this ETag (weak comparison, as RFC 9110 asks), or '*'."""
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    return "*" in tags or etag in tags


def _answer(request: Request, served: Served, body: bytes, media_type: str,
            extra: dict[str, str] | None = None) -> Response:
    headers = {**served.headers, **(extra or {})}
    if not_modified(request, served.etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/public/stats", response_model=PublicStatsV1,
            responses={304: {"description": "not modified (If-None-Match)"}})
async def public_statistics(request: Request) -> Response:
    """The national Kaikukortti statistics, open data (CC BY 4.0), no sign-in.
    The headline is live; breakdowns are whole completed months with small cells
    hidden. Revalidate with If-None-Match (ETag); see docs/open-data.md."""
    served = await _cache(request).served()
    return _answer(request, served, served.body, JSON)


@router.get("/public/stats.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
async def public_statistics_csv(request: Request) -> Response:
    """The same figures as CSV, one figure a line (dimension,key,name,month,figure,value;
    a hidden cell's value is empty)."""
    served = await _cache(request).served()
    return _answer(request, served, served.csv, CSV, {
        "Content-Disposition": 'attachment; filename="kaikukortti-tilastot.csv"'})


def schema_document() -> dict[str, Any]:
    """The JSON Schema of both documents (from their pydantic models)."""
    refs, defs = models_json_schema([(PublicStatsV1, "serialization"),
                                     (PublicMonthStatsV1, "serialization")],
                                    ref_template="#/$defs/{model}")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Kaikukortti public statistics",
            "description": "GET /public/stats is a PublicStatsV1; "
                           "GET /public/stats/months/{YYYY-MM} is a PublicMonthStatsV1. "
                           "Licence: CC BY 4.0.",
            "anyOf": [refs[(PublicStatsV1, "serialization")],
                      refs[(PublicMonthStatsV1, "serialization")]],
            **defs}


SCHEMA_BODY = json.dumps(schema_document(), ensure_ascii=False).encode()


@router.get("/public/stats/schema.json", response_class=Response,
            responses={200: {"content": {"application/schema+json": {}}}})
async def public_statistics_schema() -> Response:
    """The JSON Schema of the public documents."""
    return Response(SCHEMA_BODY, media_type="application/schema+json",
                    headers={**OPEN_DATA_HEADERS, "Cache-Control": "public, max-age=3600"})


def chosen_month(text: str, document: PublicStatsV1) -> date:
    """The completed month asked for; 422 for what is not a month, 404 for a month
    outside the published ones (the problem says which exist)."""
    first = document.by_month[0].month if document.by_month else None
    last = document.months_through or ""
    match = _MONTH.fullmatch(text)
    if first is None:
        raise Problem(404, "Month not found", f"There are no published figures for {text}: "
                      "no month has figures yet.", kind="public-month-not-found",
                      headers=OPEN_DATA_HEADERS)
    if match is None:
        raise Problem(422, "Invalid request", f"'{text}' is not a month: use YYYY-MM, e.g. "
                      f"2026-03. Months with figures: {first} to {last}.",
                      kind="public-month", errors=[{"field": "month", "message": "YYYY-MM"}],
                      headers=OPEN_DATA_HEADERS)
    if not first <= text <= last:
        raise Problem(404, "Month not found", f"There are no published figures for {text}: "
                      f"a month is published once it is over. Months with figures: {first} "
                      f"to {last}.", kind="public-month-not-found", headers=OPEN_DATA_HEADERS)
    return date(int(match[1]), int(match[2]), 1)


async def month_bodies(request: Request, month: str) -> tuple[Served, bytes, bytes]:
    """(the document whose ETag it carries, the month's JSON, its CSV): computed
    once (one request computes, others asking meanwhile wait for it), then kept
    until the document changes."""
    cache = _cache(request)
    served = await cache.served()
    first_day = chosen_month(month, served.document)
    if month not in cache.months:
        async with cache.computing:
            if month not in cache.months or cache.current is not served:
                async with cache.pool.acquire() as conn:
                    document = await public_stats.build_month(
                        conn, await cache.region_names(), cache.threshold, first_day,
                        public_stats.today())
                bodies = (document.model_dump_json().encode(),
                          public_stats.csv_text(document).encode())
                if cache.current is not served:  # replaced meanwhile: not kept
                    return served, *bodies
                cache.months[month] = bodies
    # The months kept are always the current document's.
    return cache.current or served, *cache.months[month]


@router.get("/public/stats/months/{month}.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
async def public_month_csv(month: MonthPath, request: Request) -> Response:
    """One completed month as CSV (a stable URL)."""
    served, _, body = await month_bodies(request, month)
    return _answer(request, served, body, CSV, {
        "Content-Disposition": f'attachment; filename="kaikukortti-{month}.csv"'})


@router.get("/public/stats/months/{month}", response_model=PublicMonthStatsV1)
async def public_month(month: MonthPath, request: Request) -> Response:
    """One completed month's national figures and breakdowns (a stable URL)."""
    served, body, _ = await month_bodies(request, month)
    return _answer(request, served, body, JSON)


async def follow_document(cache: PublicStatsCache, conninfo: str, stop: asyncio.Event
                          ) -> None:
    """Reload on the worker's NOTIFY, and every half minute as a fallback."""
    await follow("public statistics (api)", conninfo, public_stats.DOCUMENT_CHANGED,
                 cache.reload, stop, every=30.0)


__all__ = ["PublicStatsCache", "follow_document", "router"]
