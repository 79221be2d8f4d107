"""How names typed by people are compared: one fold for every service."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """'Mänttä-Vilppula', 'mantta vilppula' and ' MÄNTTÄ-VILPPULA ' fold alike:
    lower case, accents dropped, spaces as hyphens."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace(" ", "-")
