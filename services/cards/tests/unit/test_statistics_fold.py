"""The statistics fold gives the same rows whatever order the facts arrive in.

Live consumers may see a card's facts out of order (worker replicas, retries with
a delay); the rebuild sees them in the event store's order. Histories are made by
the domain itself (every rule applies), translated as the relay does, and folded
in memory in order and in a random order.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import NAMESPACE_URL, uuid4, uuid5

from hypothesis import given, settings
from hypothesis import strategies as st

from cards.adapters.rebuild import Accumulator
from cards.adapters.statistics_fold import CARD, FOLDS, TABLES
from cards.adapters.translate import translate
from cards.domain.model import Card, Organisation, RuleViolation

ISSUER = uuid5(NAMESPACE_URL, "/test/fold/distributor")
PLACES = [("imatra", "etela-karjala"), ("kajaani", "kainuu")]
OPERATIONS = ("renew", "change", "close", "replace", "import")


def _contracts(aggregates) -> list:
    contracts = []
    for aggregate in aggregates:
        for event in aggregate.collect_events():
            contract = translate(event, {
                "event_id": uuid4(), "occurred_at": event.timestamp,
                "aggregate_id": event.originator_id,
                "aggregate_version": event.originator_version})
            if contract is not None:
                contracts.append(contract)
    return contracts


@st.composite
def histories(draw) -> list:
    """The contracts of a few cards and an organisation, each card put through a
    random run of operations (refused ones are skipped, as the api would)."""
    organisation = Organisation.register(ISSUER, "distributor", "Jakaja", "imatra",
                                          pending=draw(st.booleans()))
    if not organisation.approved:
        organisation.approve(override=False)
    if draw(st.booleans()):
        organisation.leave(2025)
    aggregates = [organisation]
    for n in range(draw(st.integers(1, 4))):
        issued = date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 700)))
        municipality, region = draw(st.sampled_from(PLACES))
        community = draw(st.booleans())
        card = Card.issue(
            card_number=f"4{n:06d}", issuer_organisation_id=ISSUER, today=issued,
            birth_year=1970, postal_code="55100", municipality=municipality, region=region,
            children=draw(st.integers(0, 3)), valid_until=None, community=community,
            life_satisfaction=None if community else draw(st.none() | st.integers(0, 10)),
            issue_key=None)
        aggregates.append(card)
        day = issued
        for i, operation in enumerate(draw(st.lists(st.sampled_from(OPERATIONS),
                                                    max_size=6))):
            day += timedelta(days=draw(st.integers(1, 400)))
            try:
                if operation == "renew":
                    card.renew(today=day, valid_until=None, life_satisfaction=None,
                               wellbeing_impact=None if community
                               else draw(st.none() | st.integers(0, 10)))
                elif operation == "change":
                    place = draw(st.sampled_from(PLACES))
                    card.change(children=draw(st.integers(0, 3)), postal_code=None,
                                municipality=place[0], region=place[1])
                elif operation == "close":
                    card.close(draw(st.sampled_from(["other", "lost"])))
                elif operation == "replace":
                    card.check_replaceable(day)
                    replacement = Card.issue_replacement(
                        card, card_number=f"5{n:03d}{i:03d}", today=day, issue_key=None)
                    card.replace(replacement=replacement.card_number, today=day)
                    aggregates.append(replacement)
                else:
                    card.import_uses([{"use_id": uuid4(),
                                       "used_at": datetime.combine(day, time(12), UTC),
                                       "venue_municipality": "imatra",
                                       "children": draw(st.integers(0, 2))}])
            except RuleViolation:
                continue
    return _contracts(aggregates)


def _fold(contracts) -> dict:
    folded = Accumulator()
    for contract in contracts:
        folded.apply(FOLDS[type(contract)](contract))
    return {table.name: folded.as_dicts(table) for table in TABLES}


@settings(max_examples=300, deadline=None)
@given(history=histories(), data=st.data())
def test_any_arrival_order_gives_the_same_rows(history, data) -> None:
    shuffled = data.draw(st.permutations(history))
    assert _fold(shuffled) == _fold(history)


def test_a_closure_before_an_older_renewal_keeps_the_renewed_state() -> None:
    card = Card.issue(card_number="4000001", issuer_organisation_id=ISSUER,
                      today=date(2024, 2, 1), birth_year=1970, postal_code="55100",
                      municipality="imatra", region="etela-karjala", children=0,
                      valid_until=None, community=False, life_satisfaction=None,
                      issue_key=None)
    card.renew(today=date(2025, 1, 31), valid_until=None, life_satisfaction=7,
               wellbeing_impact=8)
    card.change(children=2, postal_code=None, municipality=None, region=None)
    card.close("other")
    issued, renewed, changed, closed = _contracts([card])
    row = _fold([closed, changed, issued, renewed])["card_view"]["4000001"]
    assert row == _fold([issued, renewed, changed, closed])["card_view"]["4000001"]
    assert (row["status"], row["valid_until"], row["children"], row["version"]) == (
        "closed", date(2026, 1, 30), 2, 3)
    assert set(row) == set(CARD.columns)
