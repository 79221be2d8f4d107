"""An offering's limits and how to get a ticket, in words, in fi/sv/en."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kaiku_shared.problems import negotiate
from omakaiku.domain.offering_terms import how_to_get, limits_in_words

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
LIMITS = {"one_ticket_per_card": True, "max_open_reservations": 2,
          "weekends_excluded": True, "excluded_productions": ["gala", "premiere"]}


@pytest.mark.parametrize(("header", "expected"), [
    (None, "fi"), ("", "fi"), ("sv-FI,sv;q=0.9,en;q=0.8", "sv"), ("de,en;q=0.5", "en"),
    ("en;q=0.2,sv;q=0.7", "sv"), ("de", "fi"), ("sv;q=0", "fi"), ("sv;q=abc,en", "en"),
])
def test_the_reader_s_language_from_accept_language(header, expected):
    assert negotiate(header, "fi") == expected


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_every_limit_has_its_own_sentence_in_each_language(language):
    said = limits_in_words(limits=LIMITS, sales_opens_at=NOW + timedelta(days=3),
                           card_tickets_excluded=None, language=language, now=NOW)
    assert [s["code"] for s in said] == [
        "sales_opens_at", "one_ticket_per_card", "max_open_reservations",
        "weekends_excluded", "excluded_productions", "children"]
    assert all(s["text"].endswith(".") for s in said)
    assert "2" in said[2]["text"]
    assert "09.12.2026" in said[0]["text"] or "09 Dec 2026" in said[0]["text"]


def test_the_languages_differ_and_productions_are_named():
    texts = {lang: limits_in_words(limits=LIMITS, sales_opens_at=None,
                                   card_tickets_excluded=None, language=lang, now=NOW)
             for lang in ("fi", "sv", "en")}
    excluded = {lang: said[-2]["text"] for lang, said in texts.items()}
    assert "gaalat, ensi-illat" in excluded["fi"]
    assert "galor, premiärer" in excluded["sv"]
    assert "galas, premieres" in excluded["en"]
    assert len({said[0]["text"] for said in texts.values()}) == 3


def test_no_limits_still_says_what_children_take_and_a_past_sales_opening_is_not_said():
    said = limits_in_words(limits=None, sales_opens_at=NOW - timedelta(days=1),
                           card_tickets_excluded=None, language="en", now=NOW)
    assert [s["code"] for s in said] == ["children"]


def test_an_excluded_offering_says_so_first_and_how_to_get_says_only_that():
    said = limits_in_words(limits=LIMITS, sales_opens_at=None,
                           card_tickets_excluded="weekend-excluded", language="en", now=NOW)
    assert said[0]["code"] == "weekend-excluded" and "weekend" in said[0]["text"]
    steps = how_to_get(contact={"phone": "+358 5 1"}, places_left=0,
                       card_tickets_excluded="weekend-excluded", language="en")
    assert len(steps) == 1 and "no tickets" in steps[0]


def test_how_to_get_names_the_contact_and_says_when_places_are_gone():
    contact = {"phone": "+358 5 123", "box_office": "ti–pe 12–18", "url": "https://x.example"}
    steps = how_to_get(contact=contact, places_left=0, card_tickets_excluded=None,
                       language="sv")
    assert "biljettkassa" in steps[0]
    assert steps[1:4] == ["Biljettkassa: ti–pe 12–18", "Telefon: +358 5 123",
                          "Webbplats: https://x.example"]
    assert "slut" in steps[-1]
    assert len(how_to_get(contact=None, places_left=4, card_tickets_excluded=None,
                          language="fi")) == 1
