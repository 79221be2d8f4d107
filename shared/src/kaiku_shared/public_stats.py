"""The public statistics document (``GET /public/stats`` on cards), declared once.

Cards builds it from its statistics read models and serves it to anyone; the web
renders ``/tilastot`` from it; its JSON Schema is published as open data
(``GET /public/stats/schema.json``). Fields are added, never renamed.

What it shows, and why it cannot point at a person:
- The national headline (``cards_issued`` … ``library_fees``) is live: every use
  moves it within seconds. National totals are always shown.
- Every breakdown covers whole calendar months only, through ``months_through``
  (the last completed month): asking twice a day apart gives the same cells.
  ``by_month`` holds the national figures of each completed month (national
  totals: shown). The breakdowns by region, municipality, venue kind and genre
  are those of the month ``months_through`` (the same as its own
  ``PublicMonthStatsV1``): no figure below the national level is a running total
  over months, which read a month apart would give that month's cell. A
  breakdown cell below ``suppression_threshold`` is hidden, with complementary
  cells so that it cannot be recovered from the line's total (``null`` in the
  figure, the figure's name in ``suppressed``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

LICENCE_NAME = "CC BY 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
ATTRIBUTION = "Kaikukortti, Kulttuuria kaikille -palvelu (Kaikukanta)"


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Licence(_Document):
    name: str = LICENCE_NAME
    url: str = LICENCE_URL
    attribution: str = ATTRIBUTION


class UseFigures(_Document):
    """Uses in one cell. A ticket is one use whatever the number of children on it
    (``child_tickets`` counts the children's tickets apart); swimming visits and
    library fees are counted apart from tickets. ``None``: hidden (suppressed)."""

    uses: int | None = None
    child_tickets: int | None = None
    swimming_visits: int | None = None
    library_fees: int | None = None
    suppressed: tuple[str, ...] = ()


class CardAndUseFigures(UseFigures):
    cards_issued: int | None = None


class MonthFigures(CardAndUseFigures):
    month: str = Field(pattern=r"^\d{4}-\d{2}$")  # YYYY-MM, Europe/Helsinki


class RegionFigures(CardAndUseFigures):
    region: str  # the network's region code
    name: str  # the region's name as the network gives it
    active_cards: int | None = None  # on the last day of months_through


class MunicipalityFigures(CardAndUseFigures):
    municipality: str
    region: str


class VenueKindFigures(UseFigures):
    venue_kind: str  # performing_arts, museum, festival, …, library, swimming_hall, other


class GenreFigures(_Document):
    """Tickets by the offering's first genre (so the column adds up to the tickets
    whose offering has a genre); swimming and library uses have none."""

    genre: str  # a taxonomy genre code
    uses: int | None = None
    child_tickets: int | None = None
    suppressed: tuple[str, ...] = ()


class Growth(_Document):
    """The year so far against the same months a year earlier (whole months)."""

    year: int
    months: int  # completed months of ``year`` compared (0 in January)
    uses: int
    uses_previous_year: int
    cards_issued: int
    cards_issued_previous_year: int


class PublicStatsV1(_Document):
    updated_at: datetime  # when a figure last changed
    # The live national headline, all time (``active_cards``: valid today).
    cards_issued: int
    active_cards: int
    uses: int
    child_tickets: int
    swimming_visits: int
    library_fees: int
    # The breakdowns: whole months through this one, small cells suppressed.
    months_through: str | None = Field(pattern=r"^\d{4}-\d{2}$")
    suppression_threshold: int
    by_month: tuple[MonthFigures, ...]
    by_region: tuple[RegionFigures, ...]
    by_municipality: tuple[MunicipalityFigures, ...]
    by_venue_kind: tuple[VenueKindFigures, ...]
    by_genre: tuple[GenreFigures, ...]
    growth: Growth
    licence: Licence = Licence()


def children_share(child_tickets: int | None, uses: int | None) -> float | None:
    """The children's share of all card tickets (a use is the holder's ticket plus
    its children's)."""
    if child_tickets is None or uses is None or uses + child_tickets == 0:
        return None
    return child_tickets / (uses + child_tickets)


class PublicMonthStatsV1(_Document):
    """One completed month (``GET /public/stats/months/{YYYY-MM}``, a stable URL):
    the month's national figures and its breakdowns, suppressed the same way."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    cards_issued: int
    uses: int
    child_tickets: int
    swimming_visits: int
    library_fees: int
    suppression_threshold: int
    by_region: tuple[RegionFigures, ...]  # active_cards on the month's last day
    by_municipality: tuple[MunicipalityFigures, ...]
    by_venue_kind: tuple[VenueKindFigures, ...]
    by_genre: tuple[GenreFigures, ...]
    licence: Licence = Licence()
