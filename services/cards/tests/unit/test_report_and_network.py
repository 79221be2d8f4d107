"""The feedback-meeting report renders well-formed SVG; the editable network."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date

import pytest
from eventsourcing.utils import get_topic

from cards.adapters.reference import load_network
from cards.adapters.report import bar_chart, render
from cards.application.app import CardsApplication
from cards.domain.model import RuleViolation
from kaiku_shared.eventstore import MetaMapper


def figures(**values):
    base = {"cards_issued": 0, "active_cards": 0, "community_cards": 0,
            "replacement_cards": 0, "uses": 0, "child_tickets": 0, "uses_with_children": 0}
    return {**base, **values}


def details():
    answers = {"average": 7.25, "answers": 12, "no_answer": 3, "suppressed": False}
    return {
        "region": "kainuu", "name": "Kainuu <& co>", "from": None, "to": None,
        "active_on": date(2025, 4, 30), **figures(cards_issued=120, uses=400),
        "national": figures(cards_issued=88188, uses=251566),
        "by_municipality": [{"municipality": "kajaani", **figures(cards_issued=100),
                             "suppressed": []}],
        "by_month": [{"month": f"2024-{m:02d}", **figures(cards_issued=m, uses=3 * m),
                      "suppressed": []} for m in range(1, 13)],
        "age_groups": [{"age_group": "16–24", "cards": None, "suppressed": True}],
        "wellbeing": {"at_issue": {"life_satisfaction": answers},
                      "at_renewal": {"life_satisfaction": {**answers, "average": None},
                                     "wellbeing_impact": answers}},
        "suppression_threshold": 5,
    }


def test_the_report_is_html_with_well_formed_svg_charts() -> None:
    page = render(details(), [{"region": "kainuu", "name": "Kainuu", **figures(uses=5)},
                              {"region": "lappi", "name": "Lappi", **figures()}],
                  [], generated_on=date(2025, 5, 1))
    assert page.startswith("<!doctype html>")
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 5
    for svg in svgs:
        root = ET.fromstring(svg)  # raises on malformed markup
        assert root.tag.endswith("svg")
    assert "Kainuu &lt;&amp; co&gt;" in page and "<& co>" not in page
    assert "88\u00a0188" in page  # national figures beside the region's


def test_suppressed_values_are_gaps_not_bars() -> None:
    svg = bar_chart("t", ["a", "b"], [("s", [None, 4])])
    assert svg.count("<rect") == 2  # one bar + one legend swatch


@pytest.fixture
def app() -> CardsApplication:
    return CardsApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MetaMapper)},
        network=load_network())


def test_the_network_is_seeded_once_and_edits_are_events(app: CardsApplication) -> None:
    assert len(app.network.regions) == 17
    assert app.ensure_network().version == 2  # seeded and announced
    app.set_municipality("imatra", names=None, region=None, status="left", country=None)
    assert app.network.municipalities["imatra"].status == "left"
    with pytest.raises(RuleViolation):
        app.network.card_municipality("Imatra")
    # unchanged edits record nothing
    app.set_municipality("imatra", names=None, region=None, status="left", country=None)
    assert app.ensure_network().version == 3
    app.set_region("pohjois-testi", names={"fi": "Pohjois-Testi"}, country="fi")
    app.set_municipality("uusikunta", names={"fi": "Uusikunta", "sv": "Nykommun"},
                         region="pohjois-testi", status="joining_2025_2026", country=None)
    assert app.network.card_municipality("Nykommun").region == "pohjois-testi"
    with pytest.raises(RuleViolation) as info:
        app.set_municipality("x y", names={"fi": "X"}, region="lappi", status="pilot",
                             country=None)
    assert info.value.rule == "code"


def test_rebuild_skips_what_the_live_consumer_would_dead_letter() -> None:
    import json
    from pathlib import Path

    import kaiku_shared.contracts as contracts
    from cards.adapters import projections
    from cards.adapters.rebuild import _decode

    wanted = set(projections.USAGE_HANDLERS)
    fixture = Path(contracts.__file__).parent / "fixtures" / "ticket_registered.v1.json"
    good = json.loads(fixture.read_text())
    assert type(_decode(json.dumps(good).encode(), wanted)).__name__ == "TicketRegisteredV1"
    for poison in (b"{not json", b"[1]", json.dumps({**good, "schema_version": 9}).encode(),
                   json.dumps({**good, "children": -1}).encode(),
                   json.dumps({**good, "event_type": "offering_published"}).encode()):
        assert _decode(poison, wanted) is None
