"""Bar charts as server-rendered SVG: no script, the same bytes for the same figures.

Each chart is an ``<svg role="img">`` named by its ``<title>`` and ``<desc>``;
the page puts the same figures in a ``<table>`` beside it, so nothing is shown
by the picture alone. The ``viewBox`` lets a chart shrink to a phone's width
(CSS gives it ``width: 100%``), and the sizes below are chosen so that its text
stays readable there (13 units ≈ 13 px at 390 px wide). One colour per
chart, so no meaning rests on colour. A hidden (suppressed) value is drawn as no
bar with a dash at its foot, and a tooltip says why.

The module knows no language: labels and value texts come written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR = "#0b5a6e"  # the site's brand colour: 7.6:1 on white
INK = "#1a1a1a"
AXIS = "#767676"
GRID = "#d6d6d6"
FONT = 13
WIDTH = 360  # ≈ the width of a phone's page: 1 unit ≈ 1 px there
SUPPRESSED_MARK = "\u2013"  # an en dash, as in the tables


@dataclass(frozen=True)
class Bar:
    label: str  # the category on the axis, short ("3" for March, a region's name)
    value: int | None  # None: hidden (suppressed)
    value_text: str = ""  # the value as the reader's language writes it
    sublabel: str = ""  # a second axis line under the label (the year under January)
    name: str = ""  # the category in full, for the tooltip ("maaliskuu 2026")


@dataclass(frozen=True)
class ChartText:
    title: str  # what the chart shows ("Käyntikerrat kuukausittain")
    description: str  # what it shows in words, and where its table is
    suppressed: str  # why a value is missing ("piilotettu: alle 5")


def nice_scale(maximum: int, ticks: int = 4) -> tuple[int, list[int]]:
    """The axis's top and its tick values: steps of 1, 2 or 5 × 10ⁿ, at most
    ``ticks`` of them above zero, the top at or above ``maximum``."""
    if maximum <= 0:
        return 1, [0, 1]
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude * ticks >= maximum)
    step = max(1, int(step))
    top = step * math.ceil(maximum / step)
    return top, list(range(0, top + 1, step))


def _n(value: float) -> str:
    """A coordinate, rounded so that the output is stable and short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text_width(text: str, size: int = FONT) -> float:
    """A generous estimate of a text's width in the chart's units (no font metrics
    on the server): 0.62 em a character."""
    return len(text) * size * 0.62


def _svg_open(chart_id: str, height: float, text: ChartText, css_class: str) -> list[str]:
    return [
        f'<svg class="chart {css_class}" role="img" viewBox="0 0 {WIDTH} {_n(height)}" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" focusable="false" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" '
        f'font-size="{FONT}" fill="{INK}">',
        f'<title id="{chart_id}-title">{escape(text.title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(text.description)}</desc>',
    ]


def _tooltip(bar: Bar, text: ChartText) -> str:
    shown = bar.value_text if bar.value is not None else text.suppressed
    return f"<title>{escape(bar.name or bar.label)}: {escape(shown)}</title>"


def column_chart(chart_id: str, bars: Sequence[Bar], text: ChartText,
                 tick_text: Callable[[int], str], height: int = 250) -> Markup:
    """Vertical bars side by side (months along the bottom), with a value axis on
    the left; each value is written above its bar where it fits."""
    if not bars:
        return Markup("")
    top, ticks = nice_scale(max((b.value or 0) for b in bars))
    left = max(_text_width(tick_text(t)) for t in ticks) + 10
    plot_top, plot_bottom, right = 22.0, height - 40.0, 6.0
    plot_height = plot_bottom - plot_top
    band = (WIDTH - left - right) / len(bars)
    width = min(band * 0.7, 48.0)
    parts = _svg_open(chart_id, height, text, "column-chart")
    for tick in ticks:
        y = plot_bottom - plot_height * tick / top
        parts.append(f'<line x1="{_n(left)}" x2="{_n(WIDTH - right)}" y1="{_n(y)}" '
                     f'y2="{_n(y)}" stroke="{GRID if tick else AXIS}" stroke-width="1"/>')
        parts.append(f'<text x="{_n(left - 6)}" y="{_n(y + 4.5)}" text-anchor="end">'
                     f'{escape(tick_text(tick))}</text>')
    # Values above the bars only if every one fits: a few labelled bars would
    # look more important than the rest.
    labelled = all(_text_width(b.value_text, 11) <= band for b in bars if b.value is not None)
    for index, bar in enumerate(bars):
        middle = left + band * (index + 0.5)
        parts.append(f'<g class="bar-group">{_tooltip(bar, text)}')
        if bar.value is None:
            parts.append(f'<text class="suppressed" x="{_n(middle)}" y="{_n(plot_bottom - 5)}" '
                         f'text-anchor="middle" font-size="18" font-weight="700">'
                         f'{SUPPRESSED_MARK}</text>')
        else:
            bar_height = plot_height * bar.value / top
            parts.append(f'<rect x="{_n(middle - width / 2)}" y="{_n(plot_bottom - bar_height)}" '
                         f'width="{_n(width)}" height="{_n(bar_height)}" fill="{BAR}"/>')
            if labelled and bar.value_text:
                parts.append(f'<text x="{_n(middle)}" y="{_n(plot_bottom - bar_height - 5)}" '
                             f'text-anchor="middle" font-size="11">'
                             f'{escape(bar.value_text)}</text>')
        parts.append(f'<text x="{_n(middle)}" y="{_n(plot_bottom + 17)}" '
                     f'text-anchor="middle">{escape(bar.label)}</text>')
        if bar.sublabel:
            parts.append(f'<text x="{_n(middle)}" y="{_n(plot_bottom + 33)}" '
                         f'text-anchor="middle" font-size="11">{escape(bar.sublabel)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("\n".join(parts))


def bar_chart(chart_id: str, bars: Sequence[Bar], text: ChartText) -> Markup:
    """Horizontal bars one under another (regions), each with its name above it
    and its value after it: long names need no margin, so it fits a phone."""
    if not bars:
        return Markup("")
    row, label_height, thickness = 44.0, 16.0, 18.0
    room = max(_text_width(b.value_text or SUPPRESSED_MARK, 14) for b in bars) + 8
    longest = max(WIDTH - room, 40.0)
    maximum = max((b.value or 0) for b in bars) or 1
    height = row * len(bars) + 4
    parts = _svg_open(chart_id, height, text, "bar-chart")
    for index, bar in enumerate(bars):
        y = index * row + 2
        parts.append(f'<g class="bar-group">{_tooltip(bar, text)}')
        parts.append(f'<text x="0" y="{_n(y + label_height - 3)}" font-size="14">'
                     f'{escape(bar.label)}</text>')
        bar_top = y + label_height + 2
        baseline = bar_top + thickness - 4
        if bar.value is None:
            parts.append(f'<text class="suppressed" x="4" y="{_n(baseline)}" '
                         f'font-size="18" font-weight="700">{SUPPRESSED_MARK}</text>')
        else:
            length = longest * bar.value / maximum
            parts.append(f'<rect x="0" y="{_n(bar_top)}" width="{_n(length)}" '
                         f'height="{_n(thickness)}" fill="{BAR}"/>')
            parts.append(f'<text x="{_n(length + 6)}" y="{_n(baseline)}" font-size="14" '
                         f'font-weight="600">{escape(bar.value_text)}</text>')
        parts.append("</g>")
    parts.append(f'<line x1="0.5" x2="0.5" y1="0" y2="{_n(height)}" stroke="{AXIS}"/>')
    parts.append("</svg>")
    return Markup("\n".join(parts))
