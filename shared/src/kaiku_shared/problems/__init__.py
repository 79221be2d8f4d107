"""Problem messages in the reader's language: Finnish, Swedish or English.

Every problem is written in English where it is raised; ``kind`` (the ``type``
suffix) names it. A reply in Finnish or Swedish takes its title and detail from
the catalogue beside this module (``fi.json``, ``sv.json``), keyed by kind:

    "card-closed": {"title": "...", "detail": "...",
                    "details": [{"en": "^Card (?P<card>\\S+) is closed\\.$",
                                 "detail": "... {card} ..."}]}

``detail`` needs no values (the request and ``type`` identify them); an entry of
``details`` whose ``en`` pattern matches the whole English detail gives a more
specific sentence, filled from the pattern's named groups. A kind missing from
the catalogue is answered in English, and says so in Content-Language
(tests/unit/test_problem_catalogue.py keeps that from happening).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("fi", "sv", "en")
DEFAULT_LANGUAGE = "en"
# Enough for any real browser; a longer header is read no further.
_MAX_RANGES = 32
_QUALITY = re.compile(r"^q=(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$")


def negotiate(accept_language: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The language to answer in, by RFC 9110 ``Accept-Language``: the supported
    language (fi, sv, en) with the highest quality, a region subtag ignored
    (sv-FI is sv); on a tie the one listed first; ``default`` (English) when none
    is acceptable."""
    if not accept_language:
        return default
    best, best_quality = default, 0.0
    for item in accept_language.split(",", _MAX_RANGES)[:_MAX_RANGES]:
        tag, quality = _range(item)
        if tag is None:
            continue
        language = default if tag == "*" else tag.split("-", 1)[0]
        if language in LANGUAGES and quality > best_quality:
            best, best_quality = language, quality
    return best


def _range(item: str) -> tuple[str | None, float]:
    """One ``language-range;q=…`` of the header; (None, 0) when it is malformed."""
    tag, *params = (part.strip() for part in item.split(";"))
    tag = tag.lower()
    if not tag or not re.fullmatch(r"\*|[a-z]{1,8}(-[a-z0-9]{1,8})*", tag):
        return None, 0.0
    quality = 1.0
    for param in params:
        match = _QUALITY.match(param.lower().replace(" ", ""))
        if match is None:
            return None, 0.0
        quality = float(match.group(1))
    return tag, quality


def header_language(headers: Any) -> str:
    """The language for a request's headers: a Starlette ``Headers``, a dict of
    lower-case names, or an ASGI scope's list of byte pairs."""
    if isinstance(headers, list):
        value = next((v.decode("latin-1") for k, v in headers if k == b"accept-language"),
                     None)
    else:
        value = headers.get("accept-language")
    return negotiate(value)


@cache
def catalogue(language: str) -> dict[str, dict[str, Any]]:
    """The kind → {title, detail, details} entries of one language (not English)."""
    text = resources.files(__package__).joinpath(f"{language}.json").read_text("utf-8")
    return json.loads(text)


def translated(kind: str, language: str, english_detail: str) -> tuple[str, str] | None:
    """(title, detail) of ``kind`` in ``language``; None when the catalogue lacks it."""
    entry = catalogue(language).get(kind) if language != DEFAULT_LANGUAGE else None
    if entry is None:
        return None
    for variant in entry.get("details", ()):
        match = re.fullmatch(variant["en"], english_detail, flags=re.DOTALL)
        if match is not None:
            return entry["title"], variant["detail"].format(**match.groupdict())
    return entry["title"], entry["detail"]
