"""What `/tilastot` shows, worked out from cards' public document in the reader's
language: the headline, the charts (web.charts) and the rows of each table.

Kept apart from the route so that the page can be tested from a PublicStatsV1
built in the test, without any service. A hidden (suppressed) cell stays
``None`` here; the template draws it as a dash with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kaiku_shared import taxonomy
from kaiku_shared.public_stats import (
    MonthFigures,
    PublicStatsV1,
    RegionFigures,
    children_share,
)

from . import charts
from .formatting import month_name, month_names_span, moment, number, percent, signed_percent
from .i18n import catalogue, translator

CHART_MONTHS = 12  # the uses-per-month chart shows the last year of whole months
HEADLINE = ("cards_issued", "active_cards", "uses", "child_tickets", "swimming_visits",
            "library_fees")


@dataclass(frozen=True)
class Places:
    """Place names in the reader's language, by code (omakaiku's GET /places)."""

    regions: dict[str, str]
    municipalities: dict[str, str]


def statistics_view(stats: PublicStatsV1, lang: str, places: Places) -> dict[str, Any]:
    t = translator(lang)
    months = chart_months(stats)
    regions = sorted(stats.by_region, key=lambda r: region_name(r, places).lower())
    return {
        "num": lambda value: number(value, lang),
        "share": lambda child, uses: percent(children_share(child, uses) or 0.0, lang),
        "headline": [(key, number(getattr(stats, key), lang)) for key in HEADLINE],
        "updated_at": moment(stats.updated_at, lang),
        "months_through": month_name(stats.months_through, lang),
        "children_share": percent(children_share(stats.child_tickets, stats.uses), lang),
        "months": [(month_name(m.month, lang), m) for m in reversed(months)],
        "month_chart": month_chart(months, lang, stats.suppression_threshold),
        "regions": [(region_name(r, places), r) for r in regions],
        "region_chart": region_chart(regions, lang, places, stats.suppression_threshold),
        "municipalities": sorted(
            ((places.municipalities.get(m.municipality) or m.municipality,
              places.regions.get(m.region) or region_names(stats)[m.region], m)
             for m in stats.by_municipality), key=lambda row: row[0].lower()),
        "venue_kinds": sorted(((venue_kind_label(v.venue_kind, lang), v)
                               for v in stats.by_venue_kind), key=lambda row: row[0].lower()),
        "genres": sorted(((genre_label(g.genre, lang), g) for g in stats.by_genre),
                         key=lambda row: row[0].lower()),
        "growth": growth_view(stats, lang),
        "month_links": [(month_name(m.month, lang), m.month) for m in reversed(months)],
        "suppressed_note": t("public.suppressed_note",
                             threshold=number(stats.suppression_threshold, lang)),
    }


def chart_months(stats: PublicStatsV1) -> list[MonthFigures]:
    """The last twelve whole months through ``months_through``, none before the
    first month with figures; a month the document leaves out had none (zeros),
    so the chart's months are always consecutive."""
    present = {m.month: m for m in stats.by_month}
    if not stats.months_through or not present:
        return []
    year, month = (int(part) for part in stats.months_through.split("-"))
    window = []
    for _ in range(CHART_MONTHS):
        window.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    first = min(present)
    return [present.get(key) or MonthFigures(month=key, uses=0, child_tickets=0,
                                             swimming_visits=0, library_fees=0,
                                             cards_issued=0)
            for key in reversed(window) if key >= first]


def region_name(region: RegionFigures, places: Places) -> str:
    return places.regions.get(region.region) or region.name or region.region


def region_names(stats: PublicStatsV1) -> dict[str, str]:
    names = {r.region: r.name for r in stats.by_region}
    return {**{code: code for code in {m.region for m in stats.by_municipality}}, **names}


def venue_kind_label(code: str, lang: str) -> str:
    key = f"venuekind.{code}"
    return translator(lang)(key) if key in catalogue("fi") else code


def genre_label(code: str, lang: str) -> str:
    return taxonomy.label(code, lang) if taxonomy.is_valid_genre(code) else code


def suppressed_text(lang: str, threshold: int) -> str:
    return translator(lang)("public.suppressed_short_why", threshold=number(threshold, lang))


def month_chart(months: list[MonthFigures], lang: str, threshold: int) -> Any:
    t = translator(lang)
    bars = []
    for index, figures in enumerate(months):
        year, month = figures.month.split("-")
        bars.append(charts.Bar(
            label=str(int(month)), value=figures.uses, value_text=number(figures.uses, lang),
            sublabel=year if index == 0 or month == "01" else "",
            name=month_name(figures.month, lang)))
    if not bars:
        return ""
    text = charts.ChartText(
        title=t("public.month_chart_title"),
        description=t("public.month_chart_desc", first=month_name(months[0].month, lang),
                      last=month_name(months[-1].month, lang)),
        suppressed=suppressed_text(lang, threshold))
    return charts.column_chart("month-chart", bars, text, lambda tick: number(tick, lang))


def region_chart(regions: list[RegionFigures], lang: str, places: Places,
                 threshold: int) -> Any:
    """Uses per region, the largest first (hidden ones last): the table beside it
    keeps the alphabetical order, for finding one's own region."""
    t = translator(lang)
    ordered = sorted(regions, key=lambda r: (r.uses is None, -(r.uses or 0),
                                             region_name(r, places).lower()))
    bars = [charts.Bar(label=region_name(r, places), value=r.uses,
                       value_text=number(r.uses, lang)) for r in ordered]
    if not bars:
        return ""
    text = charts.ChartText(title=t("public.region_chart_title"),
                            description=t("public.region_chart_desc"),
                            suppressed=suppressed_text(lang, threshold))
    return charts.bar_chart("region-chart", bars, text)


def growth_view(stats: PublicStatsV1, lang: str) -> dict[str, Any]:
    growth = stats.growth
    if growth.months <= 0:
        return {"months": 0, "year": growth.year}
    rows = []
    for key, now, before in (("uses", growth.uses, growth.uses_previous_year),
                             ("cards_issued", growth.cards_issued,
                              growth.cards_issued_previous_year)):
        change = (now - before) / before if before else None
        rows.append({"key": key, "now": number(now, lang), "before": number(before, lang),
                     "change": signed_percent(change, lang) if change is not None else None})
    return {"months": growth.months, "year": growth.year, "rows": rows,
            "period": month_names_span(growth.year, growth.months, lang),
            "previous_period": month_names_span(growth.year - 1, growth.months, lang)}
