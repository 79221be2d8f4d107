"""Notifications' domain and use cases in memory: message rules, exactly-once saves,
translation to contracts and the digest window."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID, uuid4

import pytest

from kaiku_shared.contracts import (
    BulletinPublishedV1,
    MessageSentV1,
    NotificationBatchIssuedV1,
    NotificationDigestIssuedV1,
)
from notifications.adapters.handover import digest_window
from notifications.adapters.translate import translate
from notifications.application.app import NotificationsApplication
from kaiku_shared.kernel.errors import RuleViolation
from kaiku_shared.sealing import is_sealed, open_sealed, seal
from notifications.domain.model import Bulletin, Party

VENUE = Party("organisation", organisation_id=UUID("b81e4d02-6a3f-4f9c-8c55-2e7a1d9b6f30"))
HOLDER = Party("holder", card_number="KXA-12345")


def app() -> NotificationsApplication:
    return NotificationsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def envelope(event) -> dict:
    return {"event_id": uuid4(), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id,
            "aggregate_version": event.originator_version}


KEY = bytes(range(32))


def sealer_for(message_id: UUID):
    """What the api gives a use case: seals under the holder's key, bound to the message."""
    return lambda holder, text: seal(KEY, text, message_id.bytes)


def events_of(application: NotificationsApplication) -> list:
    return [application.mapper.to_domain_event(stored) for stored in
            application.recorder.select_notifications(start=1, limit=100)]


def test_a_message_is_saved_once_under_its_id() -> None:
    application = app()
    message_id = uuid4()
    first = application.send_message(message_id, VENUE, HOLDER, "Tervetuloa", "Ovet 18.30",
                                      seal=sealer_for(message_id))
    again = application.send_message(message_id, VENUE, HOLDER, "Tervetuloa", "Ovet 18.30",
                                     seal=sealer_for(message_id))
    assert first.id == again.id == message_id
    assert len(events_of(application)) == 1


@pytest.mark.parametrize(("subject", "body", "rule"), [
    (" ", "body", "message-empty"),
    ("x" * 201, "body", "message-too-long"),
])
def test_message_content_rules(subject: str, body: str, rule: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        app().send_message(uuid4(), VENUE, HOLDER, subject, body)
    assert refused.value.rule == rule


def test_nobody_writes_to_themselves_and_holders_write_to_organisations() -> None:
    with pytest.raises(RuleViolation) as refused:
        app().send_message(uuid4(), VENUE, VENUE, "s", "b")
    assert refused.value.rule == "message-to-self"
    with pytest.raises(RuleViolation) as refused:
        app().send_message(uuid4(), HOLDER, Party("user", user_id="u-1"), "s", "b")
    assert refused.value.rule == "holder-writes-to-organisations"


def test_a_party_needs_its_id() -> None:
    with pytest.raises(RuleViolation):
        Party("holder")


def test_message_sent_contract_carries_ids_only() -> None:
    application, message_id = app(), uuid4()
    application.send_message(message_id, VENUE, HOLDER, "Aino, your seat", "Row 3, seat 12",
                             seal=sealer_for(message_id))
    (event,) = events_of(application)
    contract = translate(event, envelope(event))
    assert isinstance(contract, MessageSentV1)
    assert contract.recipient_card_number == "KXA-12345"
    assert contract.sender_organisation_id == VENUE.organisation_id
    wire = contract.to_json().decode()
    assert "Aino" not in wire and "seat" not in wire


def test_a_holders_message_is_recorded_sealed_under_the_holders_key() -> None:
    application, message_id = app(), uuid4()
    holder = Party("holder", account_id=uuid4())
    application.send_message(message_id, holder, VENUE, "Allergia", "Minulla on allergia",
                             seal=sealer_for(message_id))
    (event,) = events_of(application)
    assert event.sealed_for == f"account:{holder.account_id}"
    assert is_sealed(event.subject) and is_sealed(event.body)
    assert open_sealed(KEY, event.body, message_id.bytes) == "Minulla on allergia"
    stored = application.recorder.select_notifications(start=1, limit=1)[0].state
    assert b"allergia" not in stored.lower()
    # Without a sealer, a holder's message is never recorded in the clear.
    with pytest.raises(RuntimeError, match="sealed"):
        app().send_message(uuid4(), holder, VENUE, "Allergia", "Minulla on allergia")


def test_a_message_between_staff_is_not_sealed() -> None:
    application = app()
    application.send_message(uuid4(), Party("user", user_id="u-1"), VENUE, "Kokous", "Klo 10")
    (event,) = events_of(application)
    assert (event.sealed_for, event.subject) == (None, "Kokous")


def test_batch_digest_and_bulletin_translate_to_their_contracts() -> None:
    application = app()
    batch_id, source, account = uuid4(), uuid4(), uuid4()
    application.issue_batch(batch_id, "new_offering", source, "notification.new_offering",
                            {"title": "Kevätkonsertti"}, [str(account)])
    application.issue_batch(batch_id, "new_offering", source, "notification.new_offering",
                            {"title": "Kevätkonsertti"}, [str(account)])
    application.issue_digest(uuid4(), account, date(2026, 3, 1), [
        {"kind": "new_offering", "source_id": str(source),
         "template_key": "notification.new_offering", "params": {"title": "Kevätkonsertti"}}])
    application.publish_bulletin(uuid4(), "Palautetilaisuudet", "Huhtikuussa", None,
                                 date(2026, 3, 1))
    contracts = [translate(e, envelope(e)) for e in events_of(application)]
    assert [type(c) for c in contracts] == [NotificationBatchIssuedV1,
                                            NotificationDigestIssuedV1, BulletinPublishedV1]
    batch, digest, _ = contracts
    assert batch.batch_id == batch_id and batch.account_ids == (account,)
    assert digest.items[0].params == {"title": "Kevätkonsertti"}
    assert NotificationDigestIssuedV1.model_validate_json(digest.to_json()) == digest


def test_the_daily_digest_covers_yesterday_from_seven_in_finland() -> None:
    assert digest_window(datetime(2026, 3, 2, 4, 59, tzinfo=UTC)) is None  # 06:59 in Helsinki
    cutoff, day = digest_window(datetime(2026, 3, 2, 5, 0, tzinfo=UTC))
    assert day == date(2026, 3, 1)
    assert cutoff.isoformat() == "2026-03-02T00:00:00+02:00"


def test_a_bulletin_is_current_until_the_day_named_or_thirty_days_on() -> None:
    today = date(2026, 3, 1)
    assert Bulletin.last_day(today, None) == date(2026, 3, 31)
    assert Bulletin.last_day(today, today) == today
    assert Bulletin.last_day(today, date(2027, 3, 1)) == date(2027, 3, 1)  # 365 days
    for wrong, rule in ((date(2026, 2, 28), "bulletin-expired"),
                        (date(2027, 3, 3), "bulletin-too-long")):
        with pytest.raises(RuleViolation) as refused:
            Bulletin.last_day(today, wrong)
        assert refused.value.rule == rule and refused.value.status == 422
