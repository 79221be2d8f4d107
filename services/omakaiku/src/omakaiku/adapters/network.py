"""The network's municipalities and regions, for browsing and subscriptions.

A copy of the reference list cards keeps (reference/network.json, from the seed):
omakaiku only reads it to place an offering's municipality in a region. When the
list changes, both copies change (a shared reference module would be better).
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib import resources


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace(" ", "-")


@cache
def _data() -> dict:
    return json.loads(resources.files("omakaiku").joinpath("reference/network.json")
                      .read_text(encoding="utf-8"))


@cache
def _municipalities() -> dict[str, dict]:
    index: dict[str, dict] = {}
    for municipality in _data()["municipalities"]:
        index[fold(municipality["code"])] = municipality
        for name in municipality["name"].values():
            index.setdefault(fold(name), municipality)
    return index


def municipality_code(name_or_code: str | None) -> str | None:
    if not name_or_code:
        return None
    found = _municipalities().get(fold(name_or_code))
    return found["code"] if found else fold(name_or_code)


def region_of(name_or_code: str | None) -> str | None:
    if not name_or_code:
        return None
    found = _municipalities().get(fold(name_or_code))
    return found["region"] if found else None


def is_region(code: str) -> bool:
    return any(region["code"] == code for region in _data()["regions"])


def region_codes() -> list[str]:
    return [region["code"] for region in _data()["regions"]]
