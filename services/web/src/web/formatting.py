"""Numbers, shares, months and moments written the way each language writes them.

Finnish and Swedish group thousands with a narrow no-break space (U+202F, as the
Finnish standard SFS 4175 and the Swedish language council advise) and write a
decimal comma; English groups with a comma and writes a decimal point. A
percentage has a no-break space before the sign in Finnish and Swedish.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

HELSINKI = ZoneInfo("Europe/Helsinki")
NARROW_NBSP = "\u202f"
NBSP = "\u00a0"

MONTHS = {
    "fi": ("tammikuu", "helmikuu", "maaliskuu", "huhtikuu", "toukokuu", "kesäkuu",
           "heinäkuu", "elokuu", "syyskuu", "lokakuu", "marraskuu", "joulukuu"),
    "sv": ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti",
           "september", "oktober", "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}


def number(value: int | float | None, lang: str, decimals: int = 0) -> str:
    """``12345`` → ``12 345`` (fi, sv; a narrow no-break space) or ``12,345`` (en)."""
    if value is None:
        return ""
    text = f"{value:,.{decimals}f}"
    if lang == "en":
        return text
    return text.replace(",", NARROW_NBSP).replace(".", ",")


def percent(share: float | None, lang: str, decimals: int = 0) -> str:
    """A share (0.355) as a percentage: ``36 %`` (fi, sv) or ``36%`` (en)."""
    if share is None:
        return ""
    figure = number(share * 100, lang, decimals)
    return f"{figure}%" if lang == "en" else f"{figure}{NBSP}%"


def signed_percent(change: float | None, lang: str) -> str:
    """A change as a signed percentage: ``+12 %``, ``−3 %`` (a real minus sign)."""
    if change is None:
        return ""
    rounded = round(change * 100)
    sign = "+" if rounded > 0 else ("\u2212" if rounded < 0 else "±")
    return sign + percent(abs(rounded) / 100, lang)


def month_name(month: str | None, lang: str) -> str:
    """``2026-03`` → ``maaliskuu 2026`` / ``mars 2026`` / ``March 2026``."""
    year, number_ = _year_and_month(month)
    if not year:
        return month or ""
    return f"{MONTHS[lang][number_ - 1]} {year}"


def month_names_span(year: int, months: int, lang: str) -> str:
    """The first ``months`` months of ``year``: ``tammikuu–marraskuu 2026``
    (each name whole: easier to read aloud than ``tammi–marraskuu``)."""
    names = MONTHS[lang]
    if months <= 1:
        return f"{names[0]} {year}"
    return f"{names[0]}\u2013{names[months - 1]} {year}"


def moment(value: datetime | None, lang: str) -> str:
    """A moment in Finnish time: ``6.12.2026 klo 5.24`` / ``6.12.2026 kl. 5.24`` /
    ``6 December 2026 at 05:24``."""
    if value is None:
        return ""
    local = value.astimezone(HELSINKI)
    if lang == "en":
        return f"{local.day} {MONTHS['en'][local.month - 1]} {local.year} at {local:%H:%M}"
    word = "klo" if lang == "fi" else "kl."
    return f"{local.day}.{local.month}.{local.year} {word} {local.hour}.{local:%M}"


def _year_and_month(month: str | None) -> tuple[int | None, int]:
    try:
        year, number_ = (int(part) for part in str(month).split("-"))
    except (TypeError, ValueError):
        return None, 0
    return (year, number_) if 1 <= number_ <= 12 else (None, 0)
