"""The card number's one written form, shared by every service that reads one.

Kaikukanta issues numbers as three letters, a hyphen and five digits
(``KXA-12345``). People type them as ``kxa 12345`` or ``KXA12345``; all are
the same card. Each service turns the error into its own 422.
"""

from __future__ import annotations

import re

FORMAT_HINT = "A card number is three letters and five digits, e.g. KXA-12345."
# [0-9] and [A-Z], not \d and \w: those also match Arabic-Indic digits and Ä.
_CARD_NUMBER = re.compile(r"^[A-Z]{3}-[0-9]{5}$")


class CardNumberFormatError(ValueError):
    def __init__(self) -> None:
        super().__init__(FORMAT_HINT)


def normalise_card_number(raw: str) -> str:
    """``KXA-12345`` from any spacing, hyphenation or case; else CardNumberFormatError."""
    compact = re.sub(r"[\s-]", "", raw).upper()
    number = f"{compact[:3]}-{compact[3:]}"
    if not _CARD_NUMBER.match(number):
        raise CardNumberFormatError
    return number


__all__ = ["FORMAT_HINT", "CardNumberFormatError", "normalise_card_number"]
