"""Kaikukanta's card rules and use cases: given / when / then, in memory."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from cards.adapters.reference import load_network
from cards.adapters.translate import translate
from cards.application.app import CardsApplication, Forbidden, NotFound
from cards.domain.card_numbers import LETTERS, card_number_candidates
from cards.domain.model import (
    Card,
    Organisation,
    RuleViolation,
    normalise_card_number,
    normalise_postal_code,
)
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    OrganisationRegisteredV1,
    event_id_for,
)
from kaiku_shared.eventstore import MetaMapper

TODAY = date(2025, 3, 3)
ISSUED_NUMBER = re.compile(rf"[{LETTERS}]{{3}}-\d{{5}}")


@pytest.fixture
def app() -> CardsApplication:
    return CardsApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MetaMapper)},
        network=load_network(),
    )


@pytest.fixture
def distributor(app: CardsApplication) -> UUID:
    org = uuid4()
    app.register_organisation(org, "distributor", "Imatran aikuissosiaalityö", "Imatra")
    return org


@pytest.fixture
def other_distributor(app: CardsApplication) -> UUID:
    org = uuid4()
    app.register_organisation(org, "distributor", "Lappeenrannan diakonia", "Lappeenranta")
    return org


def issue(app: CardsApplication, issuer: UUID, **overrides) -> Card:
    fields = dict(issuer_organisation_id=issuer, today=TODAY, birth_year=1968,
                  postal_code="55100", municipality="Imatra", children=2)
    fields.update(overrides)
    return app.issue_card(**fields)


class _Refused:
    """``with _Refused("rule"):`` — a RuleViolation naming exactly this rule."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self._ctx = pytest.raises(RuleViolation)

    def __enter__(self):
        self.info = self._ctx.__enter__()
        return self.info

    def __exit__(self, *exc):
        suppressed = self._ctx.__exit__(*exc)
        assert self.info.value.rule == self.rule, (self.info.value.rule, str(self.info.value))
        return suppressed


# --- organisations ------------------------------------------------------------------


def test_register_organisation_in_the_network(app: CardsApplication) -> None:
    org = uuid4()
    registered = app.register_organisation(org, "venue", "  Imatran Kaupunginteatteri ",
                                           "Villmanstrand")
    assert (registered.kind, registered.name, registered.municipality) == (
        "venue", "Imatran Kaupunginteatteri", "lappeenranta")
    assert app.get_organisation(org).name == "Imatran Kaupunginteatteri"


def test_register_organisation_is_idempotent(app: CardsApplication) -> None:
    org = uuid4()
    first = app.register_organisation(org, "distributor", "Sosiaalitoimi", "Imatra")
    again = app.register_organisation(org, "distributor", "Sosiaalitoimi", "Imatra")
    assert again.id == first.id and again.version == 1


def test_popup_venues_may_register_in_helsinki(app: CardsApplication) -> None:
    registered = app.register_organisation(uuid4(), "venue", "Ateneum", "Helsingfors")
    assert registered.municipality == "helsinki"


def test_organisation_kind_and_name_are_checked(app: CardsApplication) -> None:
    with _Refused("organisation-kind"):
        app.register_organisation(uuid4(), "bank", "X", "Imatra")
    with _Refused("organisation-name"):
        app.register_organisation(uuid4(), "venue", "   ", "Imatra")


def test_organisation_outside_the_network_is_refused(app: CardsApplication) -> None:
    with _Refused("municipality-not-in-network"):
        app.register_organisation(uuid4(), "venue", "Kulturhuset", "Stockholm")


def test_unknown_organisation_is_not_found(app: CardsApplication) -> None:
    with pytest.raises(NotFound):
        app.get_organisation(uuid4())


# --- issuing ---------------------------------------------------------------------------


def test_a_distributor_issues_a_card(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor, life_satisfaction=6)
    assert ISSUED_NUMBER.fullmatch(card.card_number)
    assert card.id == Card.create_id(card.card_number)
    assert (card.valid_from, card.valid_until) == (TODAY, date(2026, 3, 2))
    assert (card.municipality, card.region, card.postal_code) == (
        "imatra", "etela-karjala", "55100")
    assert (card.children, card.birth_year, card.status, card.community) == (
        2, 1968, "open", False)
    stored = app.get_card(card.card_number)
    assert stored.card_number == card.card_number and stored.version == 1


def test_the_card_stores_no_personal_identity(app: CardsApplication,
                                              distributor: UUID) -> None:
    card = issue(app, distributor)
    for attribute in ("name", "first_name", "last_name", "email", "phone", "address",
                      "birth_date", "personal_identity_code"):
        assert not hasattr(card, attribute)


@pytest.mark.parametrize("age", [0, 10, 15])
def test_under_16_is_refused(app: CardsApplication, distributor: UUID, age: int) -> None:
    with _Refused("holder-too-young") as info:
        issue(app, distributor, birth_year=TODAY.year - age)
    assert info.value.field == "birth_year"


def test_turning_16_this_year_is_enough(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor, birth_year=TODAY.year - 16)
    assert card.birth_year == 2009


def test_community_cards_are_exempt_from_the_age_rule(app: CardsApplication,
                                                      distributor: UUID) -> None:
    card = issue(app, distributor, birth_year=TODAY.year - 10, community=True)
    assert card.community is True


def test_an_implausible_birth_year_is_refused(app: CardsApplication,
                                              distributor: UUID) -> None:
    with _Refused("birth-year"):
        issue(app, distributor, birth_year=TODAY.year - 121)


def test_default_validity_is_one_year(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    assert card.valid_until == date(2026, 3, 2)
    leap = issue(app, distributor, today=date(2024, 2, 29))
    assert leap.valid_until == date(2025, 2, 28)


def test_a_shorter_validity_is_allowed(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor, valid_until=date(2025, 8, 31))
    assert card.valid_until == date(2025, 8, 31)


@pytest.mark.parametrize("valid_until", [TODAY + timedelta(days=367), date(2027, 3, 3)])
def test_validity_over_a_year_is_refused(app: CardsApplication, distributor: UUID,
                                         valid_until: date) -> None:
    with _Refused("validity-over-a-year"):
        issue(app, distributor, valid_until=valid_until)


def test_validity_in_the_past_is_refused(app: CardsApplication, distributor: UUID) -> None:
    with _Refused("validity"):
        issue(app, distributor, valid_until=TODAY - timedelta(days=1))


@pytest.mark.parametrize("children", [-1, -5, 31])
def test_children_out_of_range_are_refused(app: CardsApplication, distributor: UUID,
                                           children: int) -> None:
    with _Refused("children"):
        issue(app, distributor, children=children)


def test_life_satisfaction_is_0_to_10(app: CardsApplication, distributor: UUID) -> None:
    assert issue(app, distributor, life_satisfaction=0).id
    assert issue(app, distributor, life_satisfaction=10).id
    with _Refused("score"):
        issue(app, distributor, life_satisfaction=11)


def test_municipality_outside_the_network_is_refused(app: CardsApplication,
                                                     distributor: UUID) -> None:
    with _Refused("municipality-not-in-network"):
        issue(app, distributor, municipality="Tukholma")


def test_cards_are_not_issued_in_popup_helsinki(app: CardsApplication,
                                                distributor: UUID) -> None:
    with _Refused("municipality-not-in-network") as info:
        issue(app, distributor, municipality="Helsinki")
    assert "popup" in str(info.value)


def test_municipality_by_any_language_case_and_accent(app: CardsApplication,
                                                      distributor: UUID) -> None:
    assert issue(app, distributor, municipality="ALAJÄRVI").municipality == "alajarvi"
    assert issue(app, distributor, municipality="alajarvi").municipality == "alajarvi"
    haparanda = issue(app, distributor, municipality="Haparanda", postal_code="953 31")
    assert (haparanda.municipality, haparanda.region) == ("haaparanta", "ruotsi")
    assert haparanda.postal_code == "95331"


def test_postal_code_is_five_digits(app: CardsApplication, distributor: UUID) -> None:
    assert normalise_postal_code("00 100") == "00100"
    for bad in ("0010", "001000", "ABCDE", ""):
        with _Refused("postal-code"):
            normalise_postal_code(bad)
    with _Refused("postal-code"):
        issue(app, distributor, postal_code="551")


def test_non_distributor_cannot_issue(app: CardsApplication) -> None:
    venue = uuid4()
    app.register_organisation(venue, "venue", "Imatran Kaupunginteatteri", "Imatra")
    with pytest.raises(Forbidden):
        issue(app, venue)


def test_unknown_issuer_is_not_found(app: CardsApplication) -> None:
    with pytest.raises(NotFound):
        issue(app, uuid4())


def test_the_same_issue_key_returns_the_same_card(app: CardsApplication,
                                                  distributor: UUID) -> None:
    first = issue(app, distributor, issue_key="request-1")
    again = issue(app, distributor, issue_key="request-1")
    assert again.card_number == first.card_number
    assert again.id == first.id and again.version == 1
    other = issue(app, distributor, issue_key="request-2")
    assert other.card_number != first.card_number


def test_the_same_issue_key_at_another_distributor_is_another_card(
    app: CardsApplication, distributor: UUID, other_distributor: UUID,
) -> None:
    mine = issue(app, distributor, issue_key="request-1")
    theirs = issue(app, other_distributor, issue_key="request-1")
    assert mine.card_number != theirs.card_number
    assert app.get_card(mine.card_number).issuer_organisation_id == distributor


def test_a_taken_number_moves_on_to_the_next_candidate(app: CardsApplication,
                                                       distributor: UUID) -> None:
    """Another card already has this key's first number: the key gets the next one."""
    seed = f"{distributor}/request-9"
    candidates = card_number_candidates(seed)
    taken, second = next(candidates), next(candidates)
    blocker = Card.issue(card_number=taken, issuer_organisation_id=uuid4(), today=TODAY,
                         birth_year=1970, postal_code="55100", municipality="imatra",
                         region="etela-karjala", children=0, valid_until=None,
                         life_satisfaction=None, community=False, issue_key=None)
    app.save(blocker)
    card = issue(app, distributor, issue_key="request-9")
    assert card.card_number == second
    assert issue(app, distributor, issue_key="request-9").card_number == second


# --- card numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["KXA-12345", "kxa-12345", "KXA12345", "kxa 12345",
                                 " K X A - 1 2 3 4 5 ", "Kxa-12345"])
def test_card_number_normalisation(raw: str) -> None:
    assert normalise_card_number(raw) == "KXA-12345"


@pytest.mark.parametrize("raw", ["", "KX-12345", "KXA-1234", "KXA-123456", "123-45678",
                                 "KXAB-1234", "KXA_12345", "KÄA-12345"])
def test_card_number_format_is_refused(raw: str) -> None:
    with _Refused("card-number-format") as info:
        normalise_card_number(raw)
    assert info.value.field == "card_number"


@pytest.mark.parametrize("raw", ["KXA-١٢٣٤٥", "KXA-１２３４５"])
def test_non_ascii_digits_are_not_a_card_number(raw: str) -> None:
    try:
        number = normalise_card_number(raw)
    except RuleViolation:
        return
    assert number.isascii()


def test_non_ascii_digits_are_not_a_postal_code() -> None:
    try:
        code = normalise_postal_code("５５１００")
    except RuleViolation:
        return
    assert code.isascii()


def test_issued_numbers_use_only_unambiguous_letters() -> None:
    numbers = [n for n, _ in zip(card_number_candidates("seed"), range(500), strict=False)]
    for number in numbers:
        assert ISSUED_NUMBER.fullmatch(number), number
        assert not set(number[:3]) & set("IOQBGSZ")
        assert normalise_card_number(number) == number
    assert len(set(numbers)) > 490


def test_seeded_candidates_repeat_and_unseeded_do_not() -> None:
    first = [n for n, _ in zip(card_number_candidates("k"), range(5), strict=False)]
    again = [n for n, _ in zip(card_number_candidates("k"), range(5), strict=False)]
    assert first == again
    other = [n for n, _ in zip(card_number_candidates("k2"), range(5), strict=False)]
    assert other != first


def test_get_card_accepts_any_spelling(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    messy = card.card_number.lower().replace("-", " ")
    assert app.get_card(messy).id == card.id
    with pytest.raises(NotFound):
        app.get_card("KXA-00000" if card.card_number != "KXA-00000" else "KXA-00001")


# --- renewal, change, closure --------------------------------------------------------------


def test_the_issuer_renews(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    renewed = app.renew_card(card.card_number, distributor, today=date(2026, 2, 20),
                             valid_until=None, life_satisfaction=7, wellbeing_impact=8)
    assert renewed.valid_until == date(2027, 2, 19)
    assert renewed.version == 2
    assert app.get_card(card.card_number).valid_until == date(2027, 2, 19)


def test_renewal_scores_are_0_to_10(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    with _Refused("score"):
        app.renew_card(card.card_number, distributor, today=TODAY, valid_until=None,
                       life_satisfaction=5, wellbeing_impact=-1)


def test_renewal_over_a_year_is_refused(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    with _Refused("validity-over-a-year"):
        app.renew_card(card.card_number, distributor, today=TODAY,
                       valid_until=TODAY + timedelta(days=400), life_satisfaction=None,
                       wellbeing_impact=None)


def test_only_the_issuing_distributor_renews_changes_and_closes(
    app: CardsApplication, distributor: UUID, other_distributor: UUID,
) -> None:
    card = issue(app, distributor)
    with pytest.raises(Forbidden):
        app.renew_card(card.card_number, other_distributor, today=TODAY, valid_until=None,
                       life_satisfaction=None, wellbeing_impact=None)
    with pytest.raises(Forbidden):
        app.change_card(card.card_number, other_distributor, children=3, postal_code=None,
                        municipality=None)
    with pytest.raises(Forbidden):
        app.close_card(card.card_number, reason="lost", organisation_id=other_distributor)
    with pytest.raises(Forbidden):
        app.issued_card(card.card_number, other_distributor)
    unchanged = app.get_card(card.card_number)
    assert (unchanged.version, unchanged.children, unchanged.status) == (1, 2, "open")


def test_the_issuer_changes_children_and_place(app: CardsApplication,
                                               distributor: UUID) -> None:
    card = issue(app, distributor)
    changed = app.change_card(card.card_number, distributor, children=3,
                              postal_code="53 100", municipality="Lappeenranta")
    assert (changed.children, changed.postal_code, changed.municipality, changed.region) == (
        3, "53100", "lappeenranta", "etela-karjala")
    assert changed.version == 2


def test_a_change_that_changes_nothing_records_nothing(app: CardsApplication,
                                                       distributor: UUID) -> None:
    card = issue(app, distributor)
    same = app.change_card(card.card_number, distributor, children=2, postal_code="55100",
                           municipality="imatra")
    assert same.version == 1
    assert app.get_card(card.card_number).version == 1


def test_a_change_keeps_the_rules(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    with _Refused("children"):
        app.change_card(card.card_number, distributor, children=-1, postal_code=None,
                        municipality=None)
    with _Refused("municipality-not-in-network"):
        app.change_card(card.card_number, distributor, children=None, postal_code=None,
                        municipality="Helsinki")


def test_the_issuer_closes_and_closing_twice_is_refused(app: CardsApplication,
                                                        distributor: UUID) -> None:
    card = issue(app, distributor)
    closed = app.close_card(card.card_number, reason="lost", organisation_id=distributor)
    assert (closed.status, closed.closure_reason) == ("closed", "lost")
    assert not closed.is_valid_on(TODAY)
    with _Refused("card-closed"):
        app.close_card(card.card_number, reason="lost", organisation_id=distributor)
    assert app.get_card(card.card_number).version == 2


def test_kaikukeskus_closes_any_card(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    closed = app.close_card(card.card_number, reason="misuse", organisation_id=None)
    assert closed.status == "closed"


def test_closure_reason_must_be_known(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor)
    with _Refused("closure-reason"):
        app.close_card(card.card_number, reason="because", organisation_id=distributor)
    assert app.get_card(card.card_number).status == "open"


def test_a_closed_card_cannot_be_renewed_or_changed(app: CardsApplication,
                                                    distributor: UUID) -> None:
    card = issue(app, distributor)
    app.close_card(card.card_number, reason="moved", organisation_id=distributor)
    with _Refused("card-closed"):
        app.renew_card(card.card_number, distributor, today=TODAY, valid_until=None,
                       life_satisfaction=None, wellbeing_impact=None)
    with _Refused("card-closed"):
        app.change_card(card.card_number, distributor, children=1, postal_code=None,
                        municipality=None)


def test_validity_window(app: CardsApplication, distributor: UUID) -> None:
    card = issue(app, distributor, valid_until=date(2025, 3, 31))
    assert card.is_valid_on(TODAY) and card.is_valid_on(date(2025, 3, 31))
    assert not card.is_valid_on(date(2025, 4, 1))
    assert not card.is_valid_on(TODAY - timedelta(days=1))


# --- what the relay publishes ------------------------------------------------------------


def _envelope(event) -> dict:
    return {"event_id": event_id_for("cards", 1), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id, "aggregate_version": event.originator_version}


def test_every_card_event_translates_to_its_contract(app: CardsApplication,
                                                     distributor: UUID) -> None:
    card = issue(app, distributor, life_satisfaction=6)
    app.change_card(card.card_number, distributor, children=3, postal_code=None,
                    municipality=None)
    app.renew_card(card.card_number, distributor, today=TODAY, valid_until=None,
                   life_satisfaction=7, wellbeing_impact=8)
    app.close_card(card.card_number, reason="lost", organisation_id=distributor)
    events = [app.mapper.to_domain_event(s) for s in app.recorder.select_events(card.id)]
    contracts = [translate(e, _envelope(e)) for e in events]
    assert [type(c) for c in contracts] == [CardIssuedV1, CardChangedV1, CardRenewedV1,
                                            CardClosedV1]
    issued, changed, renewed, closed = contracts
    assert (issued.card_number, issued.children, issued.valid_until, issued.region) == (
        card.card_number, 2, date(2026, 3, 2), "etela-karjala")
    assert issued.life_satisfaction == 6 and issued.aggregate_version == 1
    assert (changed.children, changed.aggregate_version) == (3, 2)
    assert (renewed.children, renewed.wellbeing_impact, renewed.aggregate_version) == (3, 8, 3)
    assert (closed.reason, closed.aggregate_version) == ("lost", 4)
    assert all(c.aggregate_id == card.id for c in contracts)


def test_organisation_translates_to_its_contract(app: CardsApplication) -> None:
    org = uuid4()
    app.register_organisation(org, "distributor", "Imatran aikuissosiaalityö", "Imatra")
    (stored,) = app.recorder.select_events(org)
    event = app.mapper.to_domain_event(stored)
    assert isinstance(event, Organisation.Registered)
    contract = translate(event, _envelope(event))
    assert isinstance(contract, OrganisationRegisteredV1)
    assert (contract.organisation_id, contract.kind, contract.municipality) == (
        org, "distributor", "imatra")
    assert contract.occurred_at.tzinfo is not None
    assert contract.occurred_at <= datetime.now(UTC)
