"""The public statistics document's pure parts: lines and their suppression, a
hidden region hiding its municipalities, growth, the ETag, the CSV, the venue
fold's order, and the api's If-None-Match and month checks (no server)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from itertools import permutations
from types import SimpleNamespace
from uuid import NAMESPACE_URL, uuid5

import pytest

from cards.adapters import public_stats
from cards.adapters.rebuild import Accumulator
from cards.adapters.statistics_fold import FOLDS, VENUE
from cards.entrypoints.public import chosen_month, not_modified
from kaiku_shared.contracts import VenueChangedV1, VenueRegisteredV1
from kaiku_shared.http import Problem
from kaiku_shared.public_stats import (
    GenreFigures,
    Growth,
    MonthFigures,
    MunicipalityFigures,
    PublicMonthStatsV1,
    PublicStatsV1,
    RegionFigures,
    VenueKindFigures,
)

FIELDS = ("uses", "swimming_visits")


def test_a_line_hides_small_cells_with_a_complement() -> None:
    grouped = {"a": {"uses": 2, "swimming_visits": 9}, "b": {"uses": 6, "swimming_visits": 9},
               "c": {"uses": 40, "swimming_visits": 0}}
    rows = public_stats.line(grouped, FIELDS, "municipality", threshold=5)
    by_key = {row["municipality"]: row for row in rows}
    assert by_key["a"]["uses"] is None and by_key["b"]["uses"] is None  # 2, and 6 beside it
    assert by_key["c"]["uses"] == 40
    assert by_key["a"]["suppressed"] == ["uses"]
    # nothing small in the swimming column: every cell shown
    assert [row["swimming_visits"] for row in rows] == [9, 9, 0]


def test_a_line_lists_every_key_asked_for_zeros_included() -> None:
    rows = public_stats.line({"x": {"uses": 7}}, ("uses",), "region", 5, keys=["w", "x"])
    assert [(row["region"], row["uses"]) for row in rows] == [("w", 0), ("x", 7)]
    assert all(row["suppressed"] == [] for row in rows)


def test_a_hidden_region_hides_that_figure_for_its_municipalities() -> None:
    regions = [{"region": "r", "uses": None, "cards_issued": 50, "suppressed": ["uses"]},
               {"region": "s", "uses": 90, "cards_issued": 50, "suppressed": []}]
    municipalities = [
        {"region": "r", "municipality": "m1", "uses": 30, "cards_issued": 20, "suppressed": []},
        {"region": "r", "municipality": "m2", "uses": 40, "cards_issued": 30, "suppressed": []},
        {"region": "s", "municipality": "m3", "uses": 90, "cards_issued": 50, "suppressed": []}]
    public_stats.hide_under_hidden_regions(regions, municipalities)
    assert [(m["uses"], m["cards_issued"]) for m in municipalities] == [
        (None, 20), (None, 30), (90, 50)]
    assert municipalities[0]["suppressed"] == ["uses"]


def test_growth_compares_the_years_completed_months() -> None:
    months = {"2025-01": {"uses": 10, "cards_issued": 1},
              "2025-02": {"uses": 20, "cards_issued": 2},
              "2025-03": {"uses": 999, "cards_issued": 99},  # not yet compared
              "2026-01": {"uses": 15, "cards_issued": 3},
              "2026-02": {"uses": 30, "cards_issued": 4}}
    assert public_stats.growth(months, date(2026, 3, 10)) == Growth(
        year=2026, months=2, uses=45, uses_previous_year=30, cards_issued=7,
        cards_issued_previous_year=3)
    january = public_stats.growth(months, date(2026, 1, 31))
    assert (january.months, january.uses, january.uses_previous_year) == (0, 0, 0)


def _document(uses: int = 12, at: datetime = datetime(2026, 3, 1, tzinfo=UTC)
              ) -> PublicStatsV1:
    return PublicStatsV1(
        updated_at=at, cards_issued=5, active_cards=4, uses=uses, child_tickets=3,
        swimming_visits=2, library_fees=1, months_through="2026-02", suppression_threshold=5,
        by_month=(MonthFigures(month="2026-02", cards_issued=5, uses=None, child_tickets=3,
                               swimming_visits=2, library_fees=1, suppressed=("uses",)),),
        by_region=(RegionFigures(region="kainuu", name="Kainuu", cards_issued=5, uses=10,
                                 child_tickets=3, swimming_visits=2, library_fees=1,
                                 active_cards=4),),
        by_municipality=(MunicipalityFigures(municipality="kajaani", region="kainuu",
                                             cards_issued=5, uses=10, child_tickets=None,
                                             swimming_visits=2, library_fees=1,
                                             suppressed=("child_tickets",)),),
        by_venue_kind=(VenueKindFigures(venue_kind="swimming_hall", uses=0, child_tickets=0,
                                        swimming_visits=2, library_fees=0),),
        by_genre=(GenreFigures(genre="music", uses=10, child_tickets=3),),
        growth=Growth(year=2026, months=2, uses=10, uses_previous_year=0, cards_issued=5,
                      cards_issued_previous_year=0))


def test_the_etag_follows_the_figures_not_the_time() -> None:
    first = public_stats.etag_of(_document())
    assert public_stats.etag_of(_document(at=datetime(2026, 4, 1, tzinfo=UTC))) == first
    assert public_stats.etag_of(_document(uses=13)) != first


def test_the_csv_is_long_with_hidden_cells_empty() -> None:
    rows = list(csv.DictReader(io.StringIO(public_stats.csv_text(_document()))))
    assert list(rows[0]) == ["dimension", "key", "name", "month", "figure", "value"]
    cell = {(r["dimension"], r["key"], r["figure"]): r for r in rows}
    assert cell[("national", "", "uses")]["value"] == "12"
    assert cell[("month", "2026-02", "uses")]["value"] == ""  # hidden
    assert cell[("month", "2026-02", "library_fees")]["month"] == "2026-02"
    assert cell[("region", "kainuu", "active_cards")]["name"] == "Kainuu"
    assert cell[("region", "kainuu", "active_cards")]["month"] == "2026-02"
    assert cell[("national", "", "uses")]["month"] == ""  # live, all time
    assert cell[("municipality", "kajaani", "child_tickets")]["value"] == ""
    assert cell[("genre", "music", "uses")]["value"] == "10"
    assert cell[("venue_kind", "swimming_hall", "swimming_visits")]["value"] == "2"


def test_a_months_csv_gives_its_month_on_every_line() -> None:
    document = PublicMonthStatsV1(
        month="2026-02", cards_issued=1, uses=2, child_tickets=0, swimming_visits=0,
        library_fees=0, suppression_threshold=5, by_region=(), by_municipality=(),
        by_venue_kind=(), by_genre=())
    rows = list(csv.DictReader(io.StringIO(public_stats.csv_text(document))))
    assert {r["month"] for r in rows} == {"2026-02"}
    assert {r["figure"]: r["value"] for r in rows}["uses"] == "2"


@pytest.mark.parametrize(("header", "expected"), [
    (None, False), ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True),
    ('"abcd"', False)])
def test_if_none_match(header, expected) -> None:
    request = SimpleNamespace(headers={"if-none-match": header} if header else {})
    assert not_modified(request, '"abc"') is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("month", "status"), [
    ("2026-01", None), ("2025-12", 404), ("2026-03", 404), ("2026-1", 422), ("2026-13", 422),
    ("x", 422)])
def test_only_published_months_are_found(month, status) -> None:
    document = _document().model_copy(update={"by_month": (
        MonthFigures(month="2026-01"), MonthFigures(month="2026-02"))})
    if status is None:
        assert chosen_month(month, document) == date(2026, 1, 1)
        return
    with pytest.raises(Problem) as refused:
        chosen_month(month, document)
    assert refused.value.status == status
    assert "2026-01 to 2026-02" in refused.value.detail


VENUE_ID = uuid5(NAMESPACE_URL, "/test/public/venue")


def _venue_facts() -> list:
    common = {"occurred_at": datetime(2026, 1, 1, tzinfo=UTC), "aggregate_id": VENUE_ID,
              "venue_id": VENUE_ID, "organisation_id": VENUE_ID}
    return [
        VenueRegisteredV1.build(**common, event_id=uuid5(NAMESPACE_URL, "/v/1"),
                                aggregate_version=1, name="Halli", kind="swimming_hall",
                                municipality="kokkola"),
        VenueChangedV1.build(**common, event_id=uuid5(NAMESPACE_URL, "/v/2"),
                             aggregate_version=2, changed=("name",), name="Uimahalli"),
        VenueChangedV1.build(**common, event_id=uuid5(NAMESPACE_URL, "/v/3"),
                             aggregate_version=3, changed=("contact",), name="Uimahalli"),
        VenueChangedV1.build(**common, event_id=uuid5(NAMESPACE_URL, "/v/4"),
                             aggregate_version=4, changed=("name",), name="Kokkolan uimahalli"),
    ]


@pytest.mark.parametrize("order", list(permutations(range(4))))
def test_a_venues_latest_name_whatever_the_order(order) -> None:
    facts = _venue_facts()
    folded = Accumulator()
    for index in order:
        folded.apply(FOLDS[type(facts[index])](facts[index]))
    row = folded.as_dicts(VENUE)[VENUE_ID]
    assert (row["kind"], row["name"], row["municipality"], row["version"]) == (
        "swimming_hall", "Kokkolan uimahalli", "kokkola", 4)


async def test_no_document_and_no_database_is_a_503_with_retry_after() -> None:
    """A real pool whose server is not there (nothing listens on the port)."""
    import asyncpg

    from cards.entrypoints.public import PublicStatsCache
    from kaiku_dev.testing import free_port

    pool = await asyncpg.create_pool(f"postgresql://nobody@127.0.0.1:{free_port()}/none",
                                     min_size=0, max_size=1, timeout=2)

    async def no_names() -> dict[str, str]:
        raise AssertionError("not asked: nothing could be read")

    cache = PublicStatsCache(pool, 5, no_names)
    try:
        with pytest.raises(Problem) as refused:
            await cache.served()
    finally:
        await pool.close()
    assert refused.value.status == 503
    assert refused.value.kind == "database-unavailable"
    assert refused.value.headers["Retry-After"] == "5"
