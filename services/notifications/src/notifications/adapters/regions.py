"""Municipality → region, to filter the fan-out by a holder's chosen region.

Cards owns the network's regions and municipalities. Services never read each
other's files, and cards publishes no reference-data event yet, so this service
keeps two sources, in this order:
1. what it learns from cards' events (``CardIssued``/``CardRenewed``/``CardChanged``
   each carry a municipality code and its region) — ``municipality_region_view``;
2. a build-time copy of the mapping, ``reference/municipalities.json`` (copied from
   cards' network.json; a known duplication until cards publishes its reference data).
Venues may name a municipality by code or by its Finnish/Swedish/English name.
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib import resources

import asyncpg


def normalise(name: str) -> str:
    return unicodedata.normalize("NFC", name.strip()).casefold()


@cache
def _reference() -> dict[str, tuple[str, str]]:
    """Every code and name (casefolded) → (municipality code, region code)."""
    data = json.loads(resources.files("notifications").joinpath(
        "reference/municipalities.json").read_text(encoding="utf-8"))
    index: dict[str, tuple[str, str]] = {}
    for code, entry in data["municipalities"].items():
        for key in (code, *entry["names"]):
            index[normalise(key)] = (code, entry["region"])
    return index


def municipality_code(name: str) -> str:
    found = _reference().get(normalise(name))
    return found[0] if found else normalise(name)


async def region_for(conn: asyncpg.Connection, municipality: str) -> str | None:
    code = municipality_code(municipality)
    learned = await conn.fetchval(
        "SELECT region FROM municipality_region_view WHERE municipality = $1", code)
    if learned:
        return learned
    found = _reference().get(code)
    return found[1] if found else None
