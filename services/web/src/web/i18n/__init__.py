"""The message catalogues: one JSON file per language (fi, sv, en), same keys.

``translator(lang)`` gives ``t(key, **values)``; a key missing from a catalogue
falls back to Finnish and then to the key itself, so a gap shows, never crashes.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = ("fi", "sv", "en")
DEFAULT_LANGUAGE = "fi"
LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}


@cache
def catalogue(lang: str) -> dict[str, str]:
    return json.loads((Path(__file__).parent / f"{lang}.json").read_text(encoding="utf-8"))


def translator(lang: str):
    own, fallback = catalogue(lang), catalogue(DEFAULT_LANGUAGE)

    def t(key: str, **values: object) -> str:
        text = own.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t
