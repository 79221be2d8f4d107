"""Staff users, distributor approval, the partner year, replacement, seed-history:
given / when / then on in-memory persistence."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest
from argon2 import PasswordHasher
from eventsourcing.utils import get_topic

from cards.adapters.reference import load_network
from cards.adapters.translate import translate
from cards.application.app import (
    KAIKUKESKUS_ID,
    AuthenticationFailed,
    CardsApplication,
    Forbidden,
)
from cards.application.seed_history import Plan, seed_history
from cards.domain.model import Card, StaffUser
from kaiku_dev.assertions import breaks_rule
from kaiku_shared.contracts import (
    CardClosedV1,
    CardIssuedV1,
    CardReplacedV1,
    CardUsesImportedV1,
    OrganisationStatusChangedV1,
    event_id_for,
)
from kaiku_shared.eventstore import MetaMapper

TODAY = date(2025, 3, 3)
PASSWORD = "correct horse battery"


@pytest.fixture
def app() -> CardsApplication:
    # Cheap argon2 parameters: the algorithm is the same, the tests stay fast.
    return CardsApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MetaMapper)},
        network=load_network(), hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )


@pytest.fixture
def distributor(app: CardsApplication) -> UUID:
    org = uuid4()
    app.register_organisation(org, "distributor", "Imatran aikuissosiaalityö", "Imatra")
    return org


def issue(app: CardsApplication, issuer: UUID, **overrides) -> Card:
    fields = dict(issuer_organisation_id=issuer, today=TODAY, birth_year=1968,
                  postal_code="55100", municipality="Imatra", children=2)
    fields.update(overrides)
    return app.issue_card(**fields)


def contracts_of(app: CardsApplication, aggregate_id: UUID) -> list:
    out = []
    for stored in app.recorder.select_events(aggregate_id):
        event = app.mapper.to_domain_event(stored)
        out.append(translate(event, {
            "event_id": event_id_for("cards", 1), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id,
            "aggregate_version": event.originator_version}))
    return out


# --- staff users --------------------------------------------------------------------------


def test_a_user_signs_in_with_an_argon2_hashed_password(app, distributor) -> None:
    user = app.create_user(username="Aino.Jakaja", password=PASSWORD,
                           organisation_id=distributor, admin=True)
    assert user.username == "aino.jakaja"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    signed_in = app.authenticate("AINO.JAKAJA", PASSWORD)
    assert (signed_in.id, signed_in.role, signed_in.organisation_id, signed_in.admin) == (
        user.id, "distributor", distributor, True)


@pytest.mark.parametrize("username,password", [
    ("aino.jakaja", "wrong password!!"), ("nobody.here", PASSWORD), ("x", PASSWORD)])
def test_wrong_username_or_password_fails_alike(app, distributor, username, password) -> None:
    app.create_user(username="aino.jakaja", password=PASSWORD, organisation_id=distributor,
                    admin=False)
    with pytest.raises(AuthenticationFailed):
        app.authenticate(username, password)


def test_a_deactivated_user_cannot_sign_in(app, distributor) -> None:
    user = app.create_user(username="aino.jakaja", password=PASSWORD,
                           organisation_id=distributor, admin=False)
    app.deactivate_user(user.id)
    with pytest.raises(AuthenticationFailed):
        app.authenticate("aino.jakaja", PASSWORD)
    assert app.list_users(distributor)[0]["active"] is False
    with breaks_rule("user-inactive"):
        app.deactivate_user(user.id)


def test_usernames_are_unique_and_passwords_long_enough(app, distributor) -> None:
    app.create_user(username="aino.jakaja", password=PASSWORD, organisation_id=distributor,
                    admin=False)
    with breaks_rule("username-taken"):
        app.create_user(username="Aino.Jakaja", password=PASSWORD,
                        organisation_id=distributor, admin=False)
    with breaks_rule("weak-password"):
        app.create_user(username="eino", password="short", organisation_id=distributor,
                        admin=False)
    with breaks_rule("username"):
        app.create_user(username="a b", password=PASSWORD, organisation_id=distributor,
                        admin=False)
    assert [u["username"] for u in app.list_users(distributor)] == ["aino.jakaja"]


def test_a_password_change_takes_effect(app, distributor) -> None:
    user = app.create_user(username="aino.jakaja", password=PASSWORD,
                           organisation_id=distributor, admin=False)
    app.change_password(user.id, "another long passphrase")
    with pytest.raises(AuthenticationFailed):
        app.authenticate("aino.jakaja", PASSWORD)
    assert app.authenticate("aino.jakaja", "another long passphrase").id == user.id


def test_the_current_password_is_verified_before_an_own_change(app, distributor) -> None:
    user = app.create_user(username="aino.jakaja", password=PASSWORD,
                           organisation_id=distributor, admin=False)
    assert app.verify_current_password(user.id, PASSWORD).id == user.id
    for wrong in ("wrong password!!", "", "x" * 300):
        with pytest.raises(AuthenticationFailed):
            app.verify_current_password(user.id, wrong)


def test_a_hash_with_old_argon2_parameters_is_renewed_at_sign_in(app, distributor) -> None:
    user = app.create_user(username="aino.jakaja", password=PASSWORD,
                           organisation_id=distributor, admin=False)
    old_hash = user.password_hash
    app.hasher = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    app.authenticate("aino.jakaja", PASSWORD)
    renewed = app.get_user(user.id).password_hash
    assert renewed != old_hash and "m=16,t=2,p=1" in renewed
    assert app.authenticate("aino.jakaja", PASSWORD).id == user.id


def test_kaikukeskus_users_belong_to_kaikukeskus(app) -> None:
    centre = app.ensure_kaikukeskus()
    assert centre.id == KAIKUKESKUS_ID and app.ensure_kaikukeskus().version == 1
    user = app.create_user(username="keskus", password=PASSWORD,
                           organisation_id=KAIKUKESKUS_ID, admin=True)
    assert user.role == "kaikukeskus"


def test_user_events_leave_the_service_only_as_revocations_by_id(app, distributor) -> None:
    """The username and password hash stay here; what ends a user's tokens leaves
    as a revocation that names only the user id."""
    user = app.create_user(username="aino.jakaja", password=PASSWORD,
                           organisation_id=distributor, admin=False)
    app.change_password(user.id, "another long passphrase")
    app.deactivate_user(user.id)
    created, changed, deactivated = contracts_of(app, user.id)
    assert created is None
    assert (changed.scope, changed.target, changed.reason) == (
        "user", str(user.id), "password_changed")
    assert (deactivated.scope, deactivated.target, deactivated.reason) == (
        "user", str(user.id), "deactivated")
    assert deactivated.not_before == deactivated.occurred_at
    for contract in (changed, deactivated):
        assert b"aino" not in contract.to_json() and b"$argon2" not in contract.to_json()
    assert StaffUser.create_id("aino.jakaja") == user.id


def test_a_signed_out_token_leaves_as_a_token_revocation(app) -> None:
    from datetime import UTC, datetime

    from cards.domain.model import SignedOutToken

    expires = datetime(2026, 12, 5, 6, tzinfo=UTC)
    app.sign_out("a1b2c3", expires)
    app.sign_out("a1b2c3", expires)  # twice: one event
    [revoked] = contracts_of(app, SignedOutToken.create_id("a1b2c3"))
    assert (revoked.scope, revoked.target, revoked.expires_at, revoked.reason) == (
        "token", "a1b2c3", expires, "signed_out")


# --- approval and the partner year ------------------------------------------------------


def test_a_pending_distributor_issues_only_after_approval(app) -> None:
    org = uuid4()
    registered = app.register_organisation(org, "distributor", "Uusi jakaja", "Imatra",
                                           pending=True, today=TODAY)
    assert registered.status == "pending"
    with breaks_rule("distributor-not-approved"):
        issue(app, org)
    approved = app.approve_organisation(org, today=TODAY, override=False)
    assert approved.status == "approved"
    assert issue(app, org).issuer_organisation_id == org
    (changed,) = [c for c in contracts_of(app, org) if isinstance(c, OrganisationStatusChangedV1)]
    assert changed.status == "approved"


def test_no_new_partners_mid_year_once_the_list_is_fixed(app, distributor) -> None:
    app.open_round(year=2025, deadline=date(2025, 1, 31), today=date(2024, 11, 20))
    app.answer_round(2025, distributor, "continue", today=date(2024, 12, 1))
    app.close_round(2025)
    with breaks_rule("no-new-partners-mid-year"):
        app.register_organisation(uuid4(), "venue", "Uusi kohde", "Imatra", today=TODAY)
    pending = uuid4()
    app.register_organisation(pending, "distributor", "Ehdotettu jakaja", "Imatra",
                              pending=True, today=TODAY)
    with breaks_rule("no-new-partners-mid-year"):
        app.approve_organisation(pending, today=TODAY, override=False)
    assert app.approve_organisation(pending, today=TODAY, override=True).status == "approved"
    overridden = app.register_organisation(uuid4(), "venue", "Poikkeus", "Imatra",
                                           override=True, today=TODAY)
    assert overridden.status == "approved"
    # the next year's list is not fixed yet
    assert app.register_organisation(uuid4(), "venue", "Ensi vuonna", "Imatra",
                                     today=date(2026, 1, 2)).status == "approved"


def test_the_continuation_round(app, distributor) -> None:
    leaving = uuid4()
    app.register_organisation(leaving, "venue", "Lähtevä kohde", "Imatra")
    with breaks_rule("deadline"):
        app.open_round(year=2026, deadline=TODAY - timedelta(days=1), today=TODAY)
    app.open_round(year=2026, deadline=date(2025, 12, 31), today=TODAY)
    with breaks_rule("round-exists"):
        app.open_round(year=2026, deadline=date(2025, 12, 31), today=TODAY)
    app.answer_round(2026, distributor, "continue", today=TODAY)
    app.answer_round(2026, leaving, "leave", today=TODAY)
    with breaks_rule("round-deadline-passed"):
        app.answer_round(2026, distributor, "leave", today=date(2026, 1, 1))
    with pytest.raises(Forbidden):
        app.answer_round(2026, app.ensure_kaikukeskus().id, "continue", today=TODAY)
    round_ = app.close_round(2026)
    assert round_.answers == {str(distributor): "continue", str(leaving): "leave"}
    assert app.get_organisation(leaving).status == "left"
    with breaks_rule("round-closed"):
        app.answer_round(2026, distributor, "continue", today=TODAY)


# --- the card's life: community cards, no answer, replacement ------------------------------


def test_community_cards_are_not_asked_wellbeing(app, distributor) -> None:
    with breaks_rule("community-card-wellbeing"):
        issue(app, distributor, community=True, life_satisfaction=5)
    card = issue(app, distributor, community=True)
    with breaks_rule("community-card-wellbeing"):
        app.renew_card(card.card_number, distributor, today=TODAY, valid_until=None,
                       life_satisfaction=None, wellbeing_impact=7)


def test_skipped_questions_are_recorded_as_no_answer(app, distributor) -> None:
    card = issue(app, distributor, life_satisfaction=None)
    app.renew_card(card.card_number, distributor, today=TODAY, valid_until=None,
                   life_satisfaction=8, wellbeing_impact=None)
    issued, renewed = contracts_of(app, card.id)
    assert issued.life_satisfaction is None
    assert (renewed.life_satisfaction, renewed.wellbeing_impact) == (8, None)


def test_a_lost_card_is_replaced_with_the_same_validity_and_a_link(app, distributor) -> None:
    card = issue(app, distributor, valid_until=date(2025, 10, 31), children=3)
    later = date(2025, 6, 12)
    new = app.replace_card(card.card_number, distributor, today=later)
    assert new.card_number != card.card_number
    assert (new.valid_from, new.valid_until, new.children, new.replaces) == (
        later, date(2025, 10, 31), 3, card.card_number)
    old = app.get_card(card.card_number)
    assert (old.status, old.closure_reason, old.replaced_by) == ("closed", "lost",
                                                               new.card_number)
    kinds = [type(c) for c in contracts_of(app, card.id)]
    assert kinds == [CardIssuedV1, CardClosedV1, CardReplacedV1]
    replaced = contracts_of(app, card.id)[-1]
    assert (replaced.replacement_card_number, replaced.valid_until) == (
        new.card_number, date(2025, 10, 31))
    with breaks_rule("card-already-replaced"):
        app.replace_card(card.card_number, distributor, today=later)


def test_a_card_closed_as_lost_can_still_be_replaced(app, distributor) -> None:
    card = issue(app, distributor)
    app.close_card(card.card_number, reason="lost", organisation_id=distributor)
    assert app.replace_card(card.card_number, distributor, today=TODAY).replaces == \
        card.card_number


def test_replacement_refusals(app, distributor) -> None:
    moved = issue(app, distributor)
    app.close_card(moved.card_number, reason="moved", organisation_id=distributor)
    with breaks_rule("card-closed"):
        app.replace_card(moved.card_number, distributor, today=TODAY)
    expiring = issue(app, distributor, valid_until=TODAY + timedelta(days=5))
    with breaks_rule("card-expired"):
        app.replace_card(expiring.card_number, distributor, today=TODAY + timedelta(days=6))
    other = uuid4()
    app.register_organisation(other, "distributor", "Toinen", "Imatra")
    with pytest.raises(Forbidden):
        app.replace_card(expiring.card_number, other, today=TODAY)


def test_a_retried_replacement_returns_the_same_card(app, distributor) -> None:
    card = issue(app, distributor)
    first = app.replace_card(card.card_number, distributor, today=TODAY, issue_key="k1")
    again = app.replace_card(card.card_number, distributor, today=TODAY, issue_key="k1")
    assert again.card_number == first.card_number


# --- seed-history ----------------------------------------------------------------------------


def test_seed_history_writes_exactly_the_planned_totals(app) -> None:
    plan = Plan(cards=300, uses=900, uses_with_children=150, distributors=12, batch=64,
                seed="unit")
    totals = seed_history(app, plan)
    assert (totals.cards, totals.uses, totals.uses_with_children) == (300, 900, 150)
    uses = with_children = cards = 0
    for notification in app.recorder.select_notifications(1, 100_000):
        event = app.mapper.to_domain_event(notification)
        contract = translate(event, {
            "event_id": event_id_for("cards", notification.id), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id,
            "aggregate_version": event.originator_version})
        if isinstance(contract, CardIssuedV1):
            cards += 1
            assert contract.valid_from.year >= 2015
            assert contract.valid_from.year - contract.birth_year >= 16
        if isinstance(contract, CardUsesImportedV1):
            uses += len(contract.uses)
            with_children += sum(1 for u in contract.uses if u.children)
    assert (cards, uses, with_children) == (300, 900, 150)
    again = seed_history(app, plan)  # resumable: nothing is written twice
    assert again.skipped_existing == 300


def test_stored_history_is_what_seed_history_records(app) -> None:
    """The benchmark's bulk load: the same stored events in the same order."""
    import json

    from cards.application.seed_history import Totals, stored_history

    plan = Plan(cards=120, uses=300, uses_with_children=60, distributors=7, batch=16,
                seed="bulk")
    bulk_totals = Totals()
    bulk = [event for batch in stored_history(app, plan, bulk_totals) for event in batch]
    totals = seed_history(app, plan)
    recorded = app.recorder.select_notifications(1, 100_000)
    recorded = recorded[-len(bulk):]  # after the network's own events

    def comparable(stored) -> tuple:
        state = json.loads(stored.state)
        state.pop("timestamp")
        return stored.originator_id, stored.originator_version, stored.topic, state

    assert [comparable(e) for e in bulk] == [comparable(e) for e in recorded]
    assert (bulk_totals.cards, bulk_totals.uses, bulk_totals.renewals,
            bulk_totals.distributors) == (totals.cards, totals.uses, totals.renewals,
                                          totals.distributors)
    assert bulk_totals.renewals > 0
