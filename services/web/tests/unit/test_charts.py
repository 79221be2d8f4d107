"""The SVG charts (web.charts) and the number formats (web.formatting): the scale,
bar sizes, labels, hidden values, escaping and the same output for the same
figures."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web import charts, formatting  # noqa: E402
from web.charts import Bar, ChartText, bar_chart, column_chart, nice_scale  # noqa: E402

TEXT = ChartText(title="Uses per month", description="Columns; the table has the figures.",
                 suppressed="hidden (below 5)")


def ticks(value: int) -> str:
    return formatting.number(value, "fi")


def rects(svg: str) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in re.findall(r'(x|y|width|height)="([\d.]+)"', rect)}
            for rect in re.findall(r"<rect [^>]*>", svg)]


@pytest.mark.parametrize("maximum, top, steps", [
    (0, 1, [0, 1]),
    (3, 3, [0, 1, 2, 3]),
    (7, 8, [0, 2, 4, 6, 8]),
    (95, 100, [0, 50, 100]),
    (4400, 6000, [0, 2000, 4000, 6000]),
    (12345, 15000, [0, 5000, 10000, 15000]),
])
def test_the_scale_uses_round_steps_at_or_above_the_maximum(maximum, top, steps):
    assert nice_scale(maximum) == (top, steps)
    assert len(steps) - 1 <= 5


def test_column_heights_follow_the_values_on_the_scale():
    bars = [Bar("1", 1000, "1 000"), Bar("2", 2500, "2 500"), Bar("3", 5000, "5 000")]
    svg = column_chart("c", bars, TEXT, ticks)
    found = rects(svg)
    assert len(found) == 3
    heights = [r["height"] for r in found]
    assert heights[2] == pytest.approx(heights[0] * 5, abs=0.2)
    assert heights[1] == pytest.approx(heights[0] * 2.5, abs=0.2)
    # All bars stand on one baseline, the zero line.
    assert len({round(r["y"] + r["height"], 1) for r in found}) == 1
    # Axis ticks are written the reader's way (fi: a narrow no-break space).
    assert ">6\u202f000</text>" in svg and ">0</text>" in svg
    assert svg.count("<rect") == 3 and svg.count("<line") == 4  # ticks 0…6000 by 2000


def test_value_labels_are_written_on_every_bar_or_on_none():
    few = column_chart("c", [Bar("1", 10, "10"), Bar("2", 20, "20")], TEXT, ticks)
    assert ">10</text>" in few and ">20</text>" in few
    crowded = [Bar(str(m), 100000 + m, formatting.number(100000 + m, "fi"))
               for m in range(1, 13)]
    svg = column_chart("c", crowded, TEXT, ticks)
    assert 'font-size="11"' not in svg  # no value above any bar (nor a sublabel here)
    assert "<title>1: 100\u202f001</title>" in svg  # the tooltip still tells it


def test_a_hidden_value_is_no_bar_but_a_mark_with_its_reason():
    bars = [Bar("1", 40, "40", name="January 2026"), Bar("2", None, "", name="February 2026"),
            Bar("3", 60, "60", name="March 2026")]
    for svg in (column_chart("c", bars, TEXT, ticks), bar_chart("r", bars, TEXT)):
        assert svg.count("<rect") == 2
        assert svg.count('class="suppressed"') == 1
        assert "<title>February 2026: hidden (below 5)</title>" in svg
        assert "<title>March 2026: 60</title>" in svg


def test_the_chart_is_an_image_named_by_its_title_and_description():
    svg = str(column_chart("month-chart", [Bar("1", 5, "5")], TEXT, ticks))
    assert svg.startswith('<svg class="chart column-chart" role="img" viewBox="0 0 360 250" '
                          'aria-labelledby="month-chart-title month-chart-desc"')
    assert '<title id="month-chart-title">Uses per month</title>' in svg
    assert '<desc id="month-chart-desc">Columns; the table has the figures.</desc>' in svg
    assert 'style=' not in svg  # the page's CSP allows no inline style


def test_every_text_is_escaped():
    evil = ChartText(title="<b>t</b>", description='"d" & e', suppressed="<s>")
    svg = str(bar_chart("r", [Bar("<script>alert(1)</script>", 3, "3 & 4"),
                              Bar("x", None)], evil))
    assert "<script>" not in svg and "<b>" not in svg and "<s>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "3 &amp; 4" in svg and "&#34;d&#34; &amp; e" in svg


def test_horizontal_bars_are_as_long_as_their_values_and_fit_the_width():
    bars = [Bar("Uusimaa", 30000, "30 000"), Bar("Etelä-Karjala", 7500, "7 500"),
            Bar("Lappi", 0, "0")]
    svg = bar_chart("r", bars, TEXT)
    found = rects(svg)
    assert found[0]["width"] == pytest.approx(found[1]["width"] * 4, abs=0.2)
    assert found[2]["width"] == 0
    assert all(r["x"] + r["width"] <= charts.WIDTH for r in found)
    # Each name above its bar, each value after it.
    assert svg.index(">Uusimaa</text>") < svg.index(">30 000</text>") \
        < svg.index(">Etelä-Karjala</text>")
    assert 'viewBox="0 0 360 136"' in svg  # 3 rows of 44 and a margin


def test_the_same_figures_give_the_same_bytes():
    bars = [Bar(str(m), m * 37, str(m * 37), sublabel="2026" if m == 1 else "")
            for m in range(1, 13)]
    assert column_chart("c", bars, TEXT, ticks) == column_chart("c", bars, TEXT, ticks)
    assert bar_chart("r", bars, TEXT) == bar_chart("r", bars, TEXT)
    assert column_chart("c", [], TEXT, ticks) == "" and bar_chart("r", [], TEXT) == ""


@pytest.mark.parametrize("lang, big, share, change", [
    ("fi", "1\u202f234\u202f567", "35,5\u00a0%", "\u221212\u00a0%"),
    ("sv", "1\u202f234\u202f567", "35,5\u00a0%", "\u221212\u00a0%"),
    ("en", "1,234,567", "35.5%", "\u221212%"),
])
def test_numbers_are_written_the_languages_way(lang, big, share, change):
    assert formatting.number(1234567, lang) == big
    assert formatting.number(999, lang) == "999"
    assert formatting.percent(0.355, lang, decimals=1) == share
    assert formatting.signed_percent(-0.12, lang) == change
    assert formatting.signed_percent(0.001, lang).startswith("±")
    assert formatting.number(None, lang) == ""


def test_months_and_moments_in_each_language():
    assert formatting.month_name("2026-03", "fi") == "maaliskuu 2026"
    assert formatting.month_name("2026-03", "sv") == "mars 2026"
    assert formatting.month_name("2026-13", "en") == "2026-13"
    assert formatting.month_names_span(2026, 11, "en") == "January\u2013November 2026"
    assert formatting.month_names_span(2026, 1, "fi") == "tammikuu 2026"
    summer = datetime(2026, 7, 1, 9, 5, tzinfo=UTC)  # 12.05 in Helsinki (UTC+3)
    assert formatting.moment(summer, "fi") == "1.7.2026 klo 12.05"
    assert formatting.moment(summer, "sv") == "1.7.2026 kl. 12.05"
    assert formatting.moment(summer, "en") == "1 July 2026 at 12:05"
