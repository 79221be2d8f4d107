"""The region's feedback-meeting report: one printable HTML page, inline SVG charts.

Hand-built SVG keeps the service free of plotting and PDF dependencies; the
browser's "print to PDF" gives the PDF (the page has print styles).
"""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Any

COLOURS = ("#1f5f8b", "#e07b39", "#5a9e4b", "#8b5fbf")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u00a0")
    return escape(str(value))


def bar_chart(title: str, labels: list[str], series: list[tuple[str, list[float | None]]],
              *, width: int = 720, height: int = 260, highlight: str | None = None,
              max_value: float | None = None) -> str:
    """Vertical grouped bars; ``None`` values (suppressed) are drawn as gaps."""
    left, right, top, bottom = 48, 12, 34, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vs in series for v in vs if v is not None]
    peak = max_value or max(values, default=0) or 1
    group_w = plot_w / max(len(labels), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f'<title>{escape(title)}</title>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#444"/>',
    ]
    for step in range(5):
        value = peak * step / 4
        y = top + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{_fmt(round(value, 1) if peak <= 10 else int(value))}'
                     '</text>')
    label_every = max(1, len(labels) // 18)
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, (_, vs) in enumerate(series):
            value = vs[i]
            if value is None:
                continue
            h = plot_h * value / peak
            colour = COLOURS[j % len(COLOURS)]
            if highlight is not None and label != highlight:
                colour = colour + "88"
            parts.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f'<title>{escape(label)}: {_fmt(value)}</title></rect>')
        if i % label_every == 0:
            x = left + i * group_w + group_w / 2
            weight = ' font-weight="bold"' if label == highlight else ""
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 12}" font-size="9" '
                f'text-anchor="end" transform="rotate(-40 {x:.1f} {top + plot_h + 12})"'
                f'{weight}>'
                f'{escape(label)}</text>')
    for j, (name, _) in enumerate(series):
        x = left + plot_w - 150 * (len(series) - j)
        parts.append(f'<rect x="{x}" y="8" width="10" height="10" '
                     f'fill="{COLOURS[j % len(COLOURS)]}"/>')
        parts.append(f'<text x="{x + 14}" y="17" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# Venues and ticket agents get the report without the answers to the wellbeing questions.
WELLBEING_WITHHELD = ("<p>Hyvinvointikysymysten tulokset näkyvät vain Kaikukeskukselle "
                      "ja kortinjakajille.</p>")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(details: dict[str, Any], comparison: list[dict[str, Any]],
           national_months: list[dict[str, Any]], *, generated_on: date) -> str:
    name = details["name"] or details["region"]
    municipalities = [[m["municipality"], m["cards_issued"], m["active_cards"], m["uses"],
                       m["child_tickets"]] for m in details["by_municipality"]]
    sections = {
        "key_figures": _table(["", escape(name), "koko maa", "osuus"], _key_rows(details)),
        "wellbeing": _table(["kysymys", "keskiarvo", "vastauksia", "ei vastausta"],
                            _wellbeing_rows(details["wellbeing"]))
        if details.get("wellbeing") else WELLBEING_WITHHELD,
        "municipalities": _table(["kunta", "kortit", "voimassa", "käyttökerrat",
                                  "lasten liput"], municipalities),
    }
    return _page(details, name, _charts(details, comparison, name), sections,
                 generated_on=generated_on, national_total_months=len(national_months))


def _charts(details: dict[str, Any], comparison: list[dict[str, Any]], name: str
            ) -> list[str]:
    """The page's five charts, in the order it shows them."""
    months = details["by_month"][-36:]
    month_labels = [m["month"] for m in months]
    wellbeing = details.get("wellbeing")
    return [
        bar_chart(f"Myönnetyt kortit kuukausittain — {name}", month_labels,
                  [("kortit / cards issued", [m["cards_issued"] for m in months])]),
        bar_chart(f"Käyttökerrat ja lasten liput — {name}", month_labels,
                  [("käyttökerrat / uses", [m["uses"] for m in months]),
                   ("lasten liput / child tickets", [m["child_tickets"] for m in months])]),
        bar_chart("Alueet rinnakkain: myönnetyt kortit ja käyttökerrat",
                  [r["name"] or r["region"] for r in comparison],
                  [("kortit / cards", [r["cards_issued"] for r in comparison]),
                   ("käyttökerrat / uses", [r["uses"] for r in comparison])],
                  highlight=name, height=300),
        "" if not wellbeing else bar_chart("Hyvinvointi (0–10): myöntäessä vs. uusiessa",
                  ["elämään tyytyväisyys myöntäessä", "elämään tyytyväisyys uusiessa",
                   "Kaikukortti lisännyt hyvinvointia"],
                  [("keskiarvo / average",
                    [wellbeing["at_issue"]["life_satisfaction"]["average"],
                     wellbeing["at_renewal"]["life_satisfaction"]["average"],
                     wellbeing["at_renewal"]["wellbeing_impact"]["average"]])],
                  max_value=10, height=240),
        bar_chart("Ikäryhmät (myöntämishetkellä)",
                  [g["age_group"] for g in details["age_groups"]],
                  [("kortit / cards", [g["cards"] for g in details["age_groups"]])],
                  height=220),
    ]


# The key figures: (label, figure), the region's beside the nation's and its share.
KEY_FIGURES = (
    ("Myönnetyt kortit / cards issued", "cards_issued"),
    ("Voimassa olevat / active cards", "active_cards"),
    ("Käyttökerrat / uses", "uses"),
    ("Lasten liput / child tickets", "child_tickets"),
    ("Käytöt lasten kanssa / uses with children", "uses_with_children"),
)


def _share(part: Any, whole: Any) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def _key_rows(details: dict[str, Any]) -> list[list[Any]]:
    national = details["national"]
    return [[label, details[key], national[key], _share(details[key], national[key])]
            for label, key in KEY_FIGURES]


def _wellbeing_rows(wellbeing: dict[str, Any]) -> list[list[Any]]:
    questions = (
        ("Elämään tyytyväisyys myöntäessä", wellbeing["at_issue"]["life_satisfaction"]),
        ("Elämään tyytyväisyys uusiessa", wellbeing["at_renewal"]["life_satisfaction"]),
        ("Kaikukortti on lisännyt hyvinvointiani", wellbeing["at_renewal"]["wellbeing_impact"]),
    )
    return [[question, answers["average"], answers["answers"], answers["no_answer"]]
            for question, answers in questions]


def _period(details: dict[str, Any]) -> str:
    """The months counted: ``to`` is the last day of the last completed month."""
    if not details["to"]:
        return "koko historia (all time)"
    start = _fmt(details["from"]) if details["from"] else "alusta (from the start)"
    return f"{start} – {_fmt(details['to'])}"


STYLE = """<style>
 body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 60em; }
 h1 { font-size: 1.6em; margin-bottom: 0; } .meta { color: #555; }
 table { border-collapse: collapse; margin: 1em 0; }
 th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
 th:first-child, td:first-child { text-align: left; }
 figure { margin: 1.5em 0; page-break-inside: avoid; }
 .note { font-size: .85em; color: #555; }
 @media print { body { margin: 0; } section { page-break-inside: avoid; } }
</style>"""


def _page(details: dict[str, Any], name: str, charts: list[str], sections: dict[str, str],
          *, generated_on: date, national_total_months: int) -> str:
    threshold, period = details["suppression_threshold"], _period(details)
    return f"""<!doctype html>
<html lang="fi"><head><meta charset="utf-8">
<title>Kaikukortti — palautetilaisuus — {escape(name)}</title>
{STYLE}</head><body>
<h1>Kaikukortti — alueen palautetilaisuus: {escape(name)}</h1>
<p class="meta">Kaikukannan tilastot · ajanjakso {period} · voimassa {_fmt(details["active_on"])}
 · laadittu {_fmt(generated_on)}</p>
<section><h2>Tunnusluvut: alue ja koko maa</h2>
{sections["key_figures"]}</section>
<section><h2>Kortit ja käyttö kuukausittain</h2>
<figure>{charts[0]}</figure><figure>{charts[1]}</figure></section>
<section><h2>Alue muihin alueisiin verrattuna</h2><figure>{charts[2]}</figure></section>
<section><h2>Hyvinvointi</h2>{f"<figure>{charts[3]}</figure>" if charts[3] else ""}
{sections["wellbeing"]}</section>
<section><h2>Kortinhaltijat ikäryhmittäin</h2><figure>{charts[4]}</figure></section>
<section><h2>Kunnittain</h2>
{sections["municipalities"]}
</section>
<p class="note">Tilastot kattavat kokonaiset, päättyneet kalenterikuukaudet.
Alle {threshold} lukumäärät on piilotettu (–) ja niiden lisäksi niin monta muuta
lukua, ettei piilotettua voi laskea summasta; hyvinvoinnin keskiarvoihin otetaan vain
alueen kuukaudet, joissa on vähintään {threshold} vastausta, jotta yksittäistä
henkilöä ei voi tunnistaa. Käyttökerrat = rekisteröidyt liput miinus perutut; ne lasketaan
kortin kotialueelle. Koko maan tilastoissa {national_total_months} kuukautta.</p>
</body></html>"""
