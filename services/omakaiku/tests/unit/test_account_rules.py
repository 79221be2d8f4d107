"""OmaKaiku accounts: one per card, retries are safe, nothing personal leaves."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from kaiku_shared.contracts import (
    AccountActivatedV1,
    TicketCancellationRequestedV1,
    event_id_for,
)
from kaiku_shared.eventstore import MetaMapper
from omakaiku.adapters.translate import translate
from omakaiku.adapters.vault import MemoryKeyStore, Vault
from omakaiku.application.app import NotFound, OmaKaikuApplication, PersonalData
from omakaiku.domain.model import Account, CardAccount, RuleViolation

DISTRIBUTOR = UUID("3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14")
# Clearly synthetic identity data: it must stay inside this service.
FIRST, LAST, EMAIL, PHONE = "Testi", "Henkilö", "testi.henkilo@example.invalid", "+358 40 000 0000"


@pytest.fixture
def app() -> OmaKaikuApplication:
    app = OmaKaikuApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                   "MAPPER_TOPIC": get_topic(MetaMapper)})
    app.vault = Vault(MemoryKeyStore(), b"m" * 32, b"l" * 32)
    return app


def activate(app: OmaKaikuApplication, card_number: str = "KXA-12345",
             account_id: UUID | None = None) -> Account:
    return app.activate_account(account_id=account_id or uuid4(), card_number=card_number,
                                personal=PersonalData(FIRST, LAST, EMAIL, PHONE, "imatra"),
                                language="fi",
                                activated_by=DISTRIBUTOR)


def test_a_distributor_activates_an_account(app: OmaKaikuApplication) -> None:
    account = activate(app)
    profile = app.get_profile(account.id)
    assert (profile.account.card_number, profile.personal.email, profile.account.language,
            profile.account.activated_by) == ("KXA-12345", EMAIL, "fi", DISTRIBUTOR)
    link = app.repository.get(CardAccount.create_id("KXA-12345"))
    assert link.account_id == account.id


def test_one_account_per_card(app: OmaKaikuApplication) -> None:
    first = activate(app)
    with pytest.raises(RuleViolation) as info:
        activate(app)  # another account id for the same card
    assert info.value.rule == "account-exists"
    assert info.value.status == 409
    assert app.repository.get(CardAccount.create_id("KXA-12345")).account_id == first.id


def test_a_second_card_gets_its_own_account(app: OmaKaikuApplication) -> None:
    first = activate(app, "KXA-12345")
    second = activate(app, "KXA-54321")
    assert first.id != second.id


def test_the_same_account_id_retried_returns_the_same_account(
    app: OmaKaikuApplication,
) -> None:
    account_id = uuid4()
    first = activate(app, account_id=account_id)
    again = activate(app, account_id=account_id)
    assert again.id == first.id == account_id
    assert again.version == 1
    assert len(app.recorder.select_events(account_id)) == 1


def test_a_reused_account_id_for_another_card_is_refused(app: OmaKaikuApplication) -> None:
    account_id = uuid4()
    activate(app, "KXA-12345", account_id=account_id)
    with pytest.raises(RuleViolation) as info:
        activate(app, "KXA-54321", account_id=account_id)
    assert info.value.rule == "account-exists"
    # The failed attempt left no half-made link for the other card.
    assert not app.recorder.select_events(CardAccount.create_id("KXA-54321"))
    assert app.get_account(account_id).card_number == "KXA-12345"


def test_request_cancellation_twice_records_once(app: OmaKaikuApplication) -> None:
    account = activate(app)
    ticket = uuid4()
    assert app.request_cancellation(account.id, ticket) is True
    assert app.request_cancellation(account.id, ticket) is False
    stored = app.get_account(account.id)
    assert stored.version == 2
    assert stored.cancellation_requests == [str(ticket)]
    assert app.request_cancellation(account.id, uuid4()) is True
    assert app.get_account(account.id).version == 3


def test_unknown_account_is_not_found(app: OmaKaikuApplication) -> None:
    with pytest.raises(NotFound):
        app.get_account(uuid4())
    with pytest.raises(NotFound):
        app.request_cancellation(uuid4(), uuid4())


def test_the_link_id_is_deterministic_per_card() -> None:
    assert CardAccount.create_id("KXA-12345") == CardAccount.create_id("KXA-12345")
    assert CardAccount.create_id("KXA-12345") != CardAccount.create_id("KXA-12346")


def test_published_events_carry_no_personal_data(app: OmaKaikuApplication) -> None:
    account = activate(app)
    ticket = uuid4()
    app.request_cancellation(account.id, ticket)
    contracts = []
    for stored in app.recorder.select_events(account.id):
        event = app.mapper.to_domain_event(stored)
        contracts.append(translate(event, {
            "event_id": event_id_for("omakaiku", 1), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id,
            "aggregate_version": event.originator_version}))
    activated, requested = contracts
    assert isinstance(activated, AccountActivatedV1)
    assert (activated.account_id, activated.card_number, activated.activated_by) == (
        account.id, "KXA-12345", DISTRIBUTOR)
    assert isinstance(requested, TicketCancellationRequestedV1)
    assert (requested.ticket_id, requested.card_number) == (ticket, "KXA-12345")
    for contract in contracts:
        wire = contract.to_json().decode()
        for personal in (FIRST, LAST, EMAIL, PHONE, "imatra"):
            assert personal not in wire, personal
    # The link aggregate is internal: nothing is published for it.
    (link_event,) = [app.mapper.to_domain_event(s) for s in
                     app.recorder.select_events(CardAccount.create_id("KXA-12345"))]
    assert translate(link_event, {}) is None
