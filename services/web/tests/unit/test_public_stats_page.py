"""`/tilastot` rendered from a PublicStatsV1 built here, against a fake of the
services: the headline in each language's number format, the charts and their
tables, hidden cells marked, place names in the reader's language, the open
data passed on, the ETag revalidation, and cards down (the real flow is in
tests/browser/test_public_stats.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from kaiku_shared.public_stats import (  # noqa: E402
    GenreFigures,
    Growth,
    MonthFigures,
    MunicipalityFigures,
    PublicStatsV1,
    RegionFigures,
    VenueKindFigures,
)
from web.client import Answer  # noqa: E402
from web.i18n import catalogue  # noqa: E402

NNBSP = "\u202f"


def document(**changes: Any) -> PublicStatsV1:
    months = tuple(MonthFigures(
        month=f"2026-{m:02d}", uses=None if m == 3 else 400 * m, child_tickets=100 * m,
        swimming_visits=10, library_fees=3, cards_issued=100,
        suppressed=("uses",) if m == 3 else ()) for m in range(1, 12))
    regions = (
        RegionFigures(region="etela-karjala", name="Etelä-Karjala", cards_issued=2000,
                      active_cards=1500, uses=8000, child_tickets=3000,
                      swimming_visits=None, library_fees=40, suppressed=("swimming_visits",)),
        RegionFigures(region="uusimaa", name="Uusimaa", cards_issued=5000, active_cards=4000,
                      uses=30000, child_tickets=9000, swimming_visits=700, library_fees=200),
        RegionFigures(region="lappi", name="Lappi <script>", suppressed=("uses",)),
    )
    base = dict(
        updated_at=datetime(2026, 12, 6, 3, 24, tzinfo=UTC), cards_issued=12345,
        active_cards=9876, uses=54321, child_tickets=23456, swimming_visits=1200,
        library_fees=345, months_through="2026-11", suppression_threshold=5,
        by_month=months, by_region=regions,
        by_municipality=(MunicipalityFigures(municipality="imatra", region="etela-karjala",
                                             cards_issued=300, uses=1000, child_tickets=200,
                                             suppressed=("swimming_visits",)),),
        by_venue_kind=(VenueKindFigures(venue_kind="performing_arts", uses=5000,
                                        child_tickets=2000),
                       VenueKindFigures(venue_kind="swimming_hall", swimming_visits=1200)),
        by_genre=(GenreFigures(genre="music", uses=3000, child_tickets=1000),),
        growth=Growth(year=2026, months=11, uses=50000, uses_previous_year=40000,
                      cards_issued=8000, cards_issued_previous_year=0))
    return PublicStatsV1(**{**base, **changes})


class FakeServices:
    """Cards' public document (with an ETag, 304 on a match) and omakaiku's place
    names; anything else is down."""

    def __init__(self, stats: PublicStatsV1 | None, places: dict | None = None) -> None:
        self.stats = stats
        self.places = places
        self.etag = '"v1"'
        self.calls: list[tuple[str, str, dict | None, dict]] = []
        self.extra: dict[str, Answer] = {}

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   params: dict[str, Any] | None = None, headers: dict | None = None,
                   **_: Any) -> Answer:
        self.calls.append((service, path, params, headers or {}))
        assert token is None, "the public page calls with no token"
        if (service, path) == ("cards", "/public/stats") and self.stats is not None:
            if (headers or {}).get("If-None-Match") == self.etag:
                return Answer(304, "", {"etag": self.etag})
            return Answer(200, self.stats.model_dump(mode="json"),
                          {"etag": self.etag, "cache-control": "public, max-age=5"})
        if (service, path) == ("omakaiku", "/places") and self.places is not None:
            return Answer(200, self.places)
        if (service, path) in self.extra:
            return self.extra[(service, path)]
        return Answer(503, {"title": "Service unavailable"})

    async def close(self) -> None:
        pass


PLACES_SV = {"regions": [{"code": "etela-karjala", "name": "Södra Karelen"},
                         {"code": "uusimaa", "name": "Nyland"}],
             "municipalities": [{"code": "imatra", "region": "etela-karjala",
                                 "name": "Imatra"}]}


def open_page(client, lang: str, fake: FakeServices) -> str:
    client.app.state.services = fake
    client.cookies.set("kaiku_lang", lang)
    response = client.get("/tilastot")
    assert response.status_code == 200, response.text
    return response.text


def figure(html: str, label: str) -> str:
    found = re.search(rf"<dt>{re.escape(label)}</dt><dd>([^<]*)</dd>", html)
    assert found, label
    return found.group(1)


@pytest.mark.parametrize("lang, cards, share, growth", [
    ("fi", f"12{NNBSP}345", "30\u00a0%", "+25\u00a0%"),
    ("sv", f"12{NNBSP}345", "30\u00a0%", "+25\u00a0%"),
    ("en", "12,345", "30%", "+25%"),
])
def test_the_page_shows_the_headline_in_the_readers_language(client, lang, cards, share,
                                                             growth):
    html = open_page(client, lang, FakeServices(document()))
    t = catalogue(lang)
    assert f'<html lang="{lang}">' in html
    assert f"<h1>{t['public.title']}</h1>" in html
    assert figure(html, t["public.cards_issued"]) == cards
    assert figure(html, t["public.library_fees"]) == "345"
    assert figure(html, t["public.swimming_visits"]) in (f"1{NNBSP}200", "1,200")
    assert share in html  # 23456 / (54321 + 23456)
    assert growth in html  # 50 000 against 40 000
    assert t["public.no_comparison"] in html  # no cards a year earlier: no percentage
    updated = {"fi": "6.12.2026 klo 5.24", "sv": "6.12.2026 kl. 5.24",
               "en": "6 December 2026 at 05:24"}[lang]
    assert updated in html
    month = {"fi": "marraskuu 2026", "sv": "november 2026", "en": "November 2026"}[lang]
    assert t["public.months_through"].format(month=month) in html


def test_charts_are_svg_images_with_their_figures_in_tables(client):
    html = open_page(client, "fi", FakeServices(document()))
    t = catalogue("fi")
    svgs = re.findall(r'<svg class="chart [^"]*" role="img"[^>]*aria-labelledby="([^"]+)"', html)
    assert svgs == ["month-chart-title month-chart-desc", "region-chart-title region-chart-desc"]
    assert f'<title id="month-chart-title">{t["public.month_chart_title"]}</title>' in html
    # Each chart has a captioned table in a labelled, focusable scrolling region.
    for caption in ("months-caption", "regions-caption"):
        assert (f'<div class="table-scroll" role="region" tabindex="0" '
                f'aria-labelledby="{caption}">') in html
        assert f'<caption id="{caption}">' in html
    months_table = html[html.index('id="months-caption"'):html.index('id="regions-heading"')]
    assert f"<th scope=\"row\">marraskuu 2026</th><td class=\"num\">4{NNBSP}400</td>" \
        in months_table
    # No script on the page draws anything: the charts are in the HTML.
    assert "<rect" in html and html.count("<script") == 2  # htmx and app.js only


def test_the_months_are_the_last_twelve_consecutive_ones(client):
    from web.public_view import chart_months

    # A month with no use at all is not in the document: the chart shows it as 0.
    gap = document(by_month=tuple(m for m in document().by_month if m.month != "2026-05"))
    months = chart_months(gap)
    assert [m.month for m in months] == [f"2026-{m:02d}" for m in range(1, 12)]
    assert months[4].uses == 0 and months[4].suppressed == ()
    # Two years of months: the last twelve, through months_through.
    long = document(by_month=tuple(
        MonthFigures(month=f"{2025 + (m - 1) // 12}-{(m - 1) % 12 + 1:02d}", uses=m)
        for m in range(1, 24)))
    assert [m.month for m in chart_months(long)][0] == "2025-12"
    assert [m.month for m in chart_months(long)][-1] == "2026-11"
    assert chart_months(document(months_through=None)) == []


def test_hidden_cells_are_marked_and_explained(client):
    html = open_page(client, "fi", FakeServices(document()))
    t = catalogue("fi")
    hidden = (f'<td class="num suppressed"><span aria-hidden="true">–</span>'
              f'<span class="visually-hidden">{t["public.suppressed_short"]}</span></td>')
    regions = html[html.index('id="regions-caption"'):html.index('id="growth-heading"')]
    lappi = regions[regions.index('data-region="lappi"'):]
    lappi = lappi[:lappi.index("</tr>")]
    assert lappi.count(hidden) == 7  # every figure of Lappi, the children's share too
    assert "Lappi &lt;script&gt;" in lappi  # names are escaped
    months = html[html.index('id="months-caption"'):html.index('id="regions-heading"')]
    march = months[months.index("maaliskuu 2026"):]
    assert march[:march.index("</tr>")].count(hidden) == 1
    assert t["public.suppressed_note"].format(threshold="5") in html
    # In the chart: no bar for March, a dash at its foot with the reason.
    chart = html[html.index('<svg class="chart column-chart"'):html.index("</svg>")]
    assert "maaliskuu 2026: piilotettu yksityisyyden suojaamiseksi (alle 5)" in chart


def test_places_and_kinds_are_named_in_the_readers_language(client):
    html = open_page(client, "sv", FakeServices(document(), PLACES_SV))
    assert '<th scope="row">Södra Karelen</th>' in html
    assert "Etelä-Karjala" not in html
    assert '<th scope="row">Nyland</th>' in html
    assert '<th scope="row">Imatra</th><td>Södra Karelen</td>' in html
    assert '<th scope="row">Scenkonst</th>' in html and '<th scope="row">Simhall</th>' in html
    assert '<th scope="row">Musik</th>' in html  # taxonomy's genre name in Swedish


def test_without_omakaiku_the_documents_region_names_are_used(client):
    html = open_page(client, "en", FakeServices(document()))
    assert '<th scope="row">Etelä-Karjala</th>' in html
    assert '<th scope="row">imatra</th><td>Etelä-Karjala</td>' in html


def test_the_open_data_is_linked_with_its_licence(client):
    html = open_page(client, "en", FakeServices(document()))
    for href in ('href="/tilastot.csv"', 'href="/tilastot.json"',
                 'href="/tilastot/schema.json"', 'href="/tilastot/2026-11.json"',
                 'href="/tilastot/2026-01.csv"',
                 'href="https://creativecommons.org/licenses/by/4.0/" rel="license"'):
        assert href in html, href
    assert "CC BY 4.0" in html
    assert "Kaikukortti, Kulttuuria kaikille -palvelu (Kaikukanta)" in html


def test_before_the_first_whole_month_the_page_says_so(client):
    stats = document(months_through=None, by_month=(), by_region=(), by_municipality=(),
                     by_venue_kind=(), by_genre=(),
                     growth=Growth(year=2026, months=0, uses=0, uses_previous_year=0,
                                   cards_issued=0, cards_issued_previous_year=0))
    html = open_page(client, "fi", FakeServices(stats))
    t = catalogue("fi")
    assert t["public.no_months_yet"] in html
    assert t["public.growth_none_yet"].format(year=2026) in html
    assert "<svg" not in html


def test_cards_down_shows_not_available_with_503(client):
    client.app.state.services = FakeServices(None)
    response = client.get("/tilastot")
    assert response.status_code == 503
    assert catalogue("fi")["error.unavailable"] in response.text


def test_the_document_is_revalidated_with_its_etag(client):
    fake = FakeServices(document())
    first = open_page(client, "fi", fake)
    second = open_page(client, "fi", fake)
    asked = [headers for service, path, _, headers in fake.calls
             if path == "/public/stats"]
    assert "If-None-Match" not in asked[0]
    assert asked[1]["If-None-Match"] == '"v1"'  # answered 304: the kept copy is shown
    assert first.count(f"12{NNBSP}345") == second.count(f"12{NNBSP}345") == 1
    fake.stats, fake.etag = document(cards_issued=12346), '"v2"'
    assert f"12{NNBSP}346" in open_page(client, "fi", fake)


def test_the_csv_is_passed_on_as_a_download(client):
    fake = FakeServices(document())
    csv = "month,uses\r\n2026-11,4400\r\n"
    fake.extra[("cards", "/public/stats.csv")] = Answer(
        200, csv, {"content-type": "text/csv; charset=utf-8", "etag": '"c1"'})
    client.app.state.services = fake
    response = client.get("/tilastot.csv")
    assert response.status_code == 200
    assert response.text == csv
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="kaikukortti-tilastot.csv"' in response.headers["content-disposition"]
    assert response.headers["etag"] == 'W/"c1"'
    assert fake.calls[-1][3]["Accept"] == "text/csv"
    again = client.get("/tilastot.csv", headers={"If-None-Match": 'W/"c1"'})
    assert again.status_code == 304


def test_a_month_is_passed_on_and_a_bad_month_never_reaches_cards(client):
    fake = FakeServices(document())
    fake.extra[("cards", "/public/stats/months/2026-11")] = Answer(
        200, {"month": "2026-11", "uses": 4400}, {"content-type": "application/json"})
    fake.extra[("cards", "/public/stats/months/2020-01")] = Answer(
        404, {"type": "https://kaikukortti.fi/problems/not-found", "detail": "No such month"},
        {"content-type": "application/problem+json"})
    client.app.state.services = fake
    assert client.get("/tilastot/2026-11.json").json() == {"month": "2026-11", "uses": 4400}
    missing = client.get("/tilastot/2020-01.json")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    asked = len(fake.calls)
    assert client.get("/tilastot/2026-13.json").status_code == 404
    assert client.get("/tilastot/..%2Fstats.json").status_code == 404
    assert len(fake.calls) == asked


def test_open_data_with_cards_down_is_503(client):
    client.app.state.services = FakeServices(None)
    assert client.get("/tilastot.json").status_code == 503
    assert client.get("/tilastot/2026-11.csv").status_code == 503


def test_everyone_finds_the_page_from_the_front_page_and_footer(client):
    html = client.get("/").text
    assert html.count('href="/tilastot"') == 2  # the front page's link and the footer's
