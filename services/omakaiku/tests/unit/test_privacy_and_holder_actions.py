"""OmaKaiku in memory: sealed personal data, crypto-shredding, feedback once per
ticket, subscriptions, card replacement, and the mobile card's signature."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.utils import get_topic

from kaiku_shared.contracts import (
    AccountErasedV1,
    FeedbackGivenV2,
    GenreSubscriptionsChangedV1,
    MobileCardKeyPublishedV1,
    event_id_for,
)
from kaiku_shared.eventstore import MetaMapper
from omakaiku.adapters.delivery import notification_text
from omakaiku.adapters.mail import TEXTS, render
from omakaiku.adapters.mobile_card import AUDIENCE, CardSigner, qr_svg
from omakaiku.adapters.translate import translate
from omakaiku.adapters.vault import KeyErased, MemoryKeyStore, Vault
from omakaiku.application.app import NotFound, OmaKaikuApplication, PersonalData
from omakaiku.domain.model import CardAccount, Feedback, MobileCardKey, RuleViolation

DISTRIBUTOR = UUID("3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14")
CANARIES = PersonalData("Kanarialintu", "Sukunimikanaria", "kanaria@example.invalid",
                        "+358 40 1234567", "Lappeenranta")


@pytest.fixture
def app() -> OmaKaikuApplication:
    app = OmaKaikuApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                   "MAPPER_TOPIC": get_topic(MetaMapper)})
    app.vault = Vault(MemoryKeyStore(), b"m" * 32, b"l" * 32)
    return app


def activate(app: OmaKaikuApplication, card_number: str = "KXA-12345"):
    return app.activate_account(account_id=uuid4(), card_number=card_number,
                                personal=CANARIES, language="sv", activated_by=DISTRIBUTOR)


def stored_text(app: OmaKaikuApplication, aggregate_id: UUID) -> str:
    return "\n".join(s.state.decode("utf-8", "replace")
                     for s in app.recorder.select_events(aggregate_id))


def contracts_of(app: OmaKaikuApplication, aggregate_id: UUID) -> list:
    out = []
    for stored in app.recorder.select_events(aggregate_id):
        event = app.mapper.to_domain_event(stored)
        out.append(translate(event, {
            "event_id": event_id_for("omakaiku", 1), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id,
            "aggregate_version": event.originator_version}))
    return out


def test_the_event_store_holds_only_ciphertext(app: OmaKaikuApplication) -> None:
    account = activate(app)
    text = stored_text(app, account.id)
    assert "v1:" in text  # the sealed blob is there …
    for value in (CANARIES.first_name, CANARIES.last_name, CANARIES.email, CANARIES.phone,
                  CANARIES.municipality):
        assert value not in text  # … and nothing of it in clear
    assert app.get_profile(account.id).personal == CANARIES


def test_sealed_data_is_bound_to_its_account(app: OmaKaikuApplication) -> None:
    first, second = activate(app, "KXA-11111"), activate(app, "KXA-22222")
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM refuses the wrong key/AAD
        app.vault.open(second.id, first.sealed)


def test_erasure_shreds_the_key_and_frees_the_card(app: OmaKaikuApplication) -> None:
    account = activate(app)
    sealed = account.sealed
    app.erase_account(account.id, by="holder")
    with pytest.raises(KeyErased):
        app.vault.open(account.id, sealed)
    with pytest.raises(NotFound):
        app.get_profile(account.id)
    with pytest.raises(NotFound):
        app.get_account(account.id)
    assert app.accounts_for_email(CANARIES.email) == []
    assert app.repository.get(CardAccount.create_id("KXA-12345")).account_id is None
    # Again: harmless, nothing new recorded.
    version = app.load_account(account.id).version
    app.erase_account(account.id, by="holder")
    assert app.load_account(account.id).version == version
    erased = contracts_of(app, account.id)[-1]
    assert isinstance(erased, AccountErasedV1) and erased.account_id == account.id
    # The card may get a new account afterwards.
    again = activate(app)
    assert again.id != account.id
    assert app.get_profile(again.id).personal.email == CANARIES.email


def test_a_card_with_a_live_account_is_not_relinked(app: OmaKaikuApplication) -> None:
    activate(app)
    with pytest.raises(RuleViolation) as info:
        activate(app)
    assert info.value.rule == "account-exists"


def test_email_lookup_is_a_keyed_hash(app: OmaKaikuApplication) -> None:
    account = activate(app)
    assert app.accounts_for_email("  KANARIA@example.invalid ") == [account.id]
    other = Vault(MemoryKeyStore(), b"m" * 32, b"x" * 32)
    assert other.email_lookup(CANARIES.email) != app.vault.email_lookup(CANARIES.email)
    assert CANARIES.email.encode() not in app.vault.email_lookup(CANARIES.email)


def test_feedback_once_per_ticket_and_names_no_account(app: OmaKaikuApplication) -> None:
    ticket, offering, venue = uuid4(), uuid4(), uuid4()
    feedback = app.give_feedback(ticket_id=ticket, offering_id=offering, venue_id=venue,
                                 accessibility=4, meaning=5, interest=3)
    assert app.feedback_given(ticket)
    with pytest.raises(RuleViolation) as info:
        app.give_feedback(ticket_id=ticket, offering_id=offering, venue_id=venue,
                          accessibility=1, meaning=1, interest=1)
    assert (info.value.rule, info.value.status) == ("feedback-given", 409)
    (given,) = contracts_of(app, feedback.id)
    assert isinstance(given, FeedbackGivenV2)
    assert feedback.id == Feedback.create_id(ticket)  # omakaiku's own: one per ticket
    # What leaves names neither the ticket nor the aggregate derived from it.
    assert given.feedback_id == given.aggregate_id == feedback.feedback_id
    assert given.feedback_id.version == 4
    wire = given.to_json().decode()
    assert str(ticket) not in wire and str(feedback.id) not in wire
    assert "ticket_id" not in wire
    assert (given.offering_id, given.venue_id) == (offering, venue)
    assert (given.accessibility, given.meaning, given.interest) == (4, 5, 3)
    # Each answer has its own random id.
    other = app.give_feedback(ticket_id=uuid4(), offering_id=offering, venue_id=venue,
                              accessibility=4, meaning=5, interest=3)
    assert other.feedback_id != feedback.feedback_id


def test_feedback_stored_before_feedback_ids_gets_one_from_its_event_id(
        app: OmaKaikuApplication) -> None:
    """A Given recorded by the previous release (class version 1: no feedback id)
    still loads (the 409 still works) and goes out under the id a reader of its
    V1 message derives: uuid5 of the event id, never of the ticket."""
    import json
    from dataclasses import replace
    from uuid import uuid5

    from kaiku_shared.contracts import FEEDBACK_V1_NAMESPACE

    ticket = uuid4()
    feedback = app.give_feedback(ticket_id=ticket, offering_id=uuid4(), venue_id=uuid4(),
                                 accessibility=2, meaning=3, interest=4)
    (stored,) = app.recorder.select_events(feedback.id)
    state = json.loads(stored.state)  # as the previous release stored it: no id
    assert state.pop("class_version") == 2 and state.pop("feedback_id")
    old = replace(stored, state=json.dumps(state).encode())
    event = app.mapper.to_domain_event(old)
    assert event.feedback_id is None and event.ticket_id == ticket
    (given,) = [translate(event, {
        "event_id": event_id_for("omakaiku", 7), "occurred_at": event.timestamp,
        "aggregate_id": event.originator_id, "aggregate_version": 1})]
    assert isinstance(given, FeedbackGivenV2)
    assert given.feedback_id == uuid5(FEEDBACK_V1_NAMESPACE, str(event_id_for("omakaiku", 7)))
    assert given.aggregate_id == given.feedback_id
    assert str(ticket) not in given.to_json().decode()


def test_feedback_scores_are_0_to_5(app: OmaKaikuApplication) -> None:
    with pytest.raises(RuleViolation) as info:
        app.give_feedback(ticket_id=uuid4(), offering_id=uuid4(), venue_id=uuid4(),
                          accessibility=6, meaning=0, interest=0)
    assert (info.value.rule, info.value.field) == ("score-range", "accessibility")


def test_subscriptions_publish_only_changes(app: OmaKaikuApplication) -> None:
    account = activate(app)
    app.change_subscriptions(account.id, genres=["music", "theatre"], subgenres=["jazz"],
                             region="etela-karjala")
    app.change_subscriptions(account.id, genres=["theatre", "music"], subgenres=["jazz"],
                             region="etela-karjala")
    changed = [c for c in contracts_of(app, account.id)
               if isinstance(c, GenreSubscriptionsChangedV1)]
    assert len(changed) == 1
    assert (changed[0].genres, changed[0].subgenres, changed[0].region) == (
        ("music", "theatre"), ("jazz",), "etela-karjala")


def test_a_replaced_card_moves_to_the_same_account(app: OmaKaikuApplication) -> None:
    account = activate(app, "KXA-12345")
    assert app.move_card("KXA-12345", "KXB-99999") == account.id
    assert app.move_card("KXA-12345", "KXB-99999") == account.id  # redelivery: no change
    moved = app.get_account(account.id)
    assert moved.card_numbers == ["KXB-99999", "KXA-12345"]
    assert app.account_for_card("KXB-99999") == account.id
    assert moved.version == 2
    assert app.move_card("KXC-00000", "KXD-11111") is None  # no account: nothing to move


def test_the_mobile_card_verifies_with_the_public_key_and_expires() -> None:
    signer = CardSigner(b"s" * 32)
    now = datetime.now(UTC)
    token, expires = signer.issue(card_number="KXA-12345", valid_until=date(2027, 1, 31),
                                  children=2, now=now, ttl_seconds=300)
    jwk = signer.public_jwk()
    public = Ed25519PublicKey.from_public_bytes(jwt.utils.base64url_decode(jwk["x"]))
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience=AUDIENCE)
    assert (claims["card_number"], claims["valid_until"], claims["children"]) == (
        "KXA-12345", "2027-01-31", 2)
    assert expires - now == timedelta(seconds=300)
    old, _ = signer.issue(card_number="KXA-12345", valid_until=None, children=0,
                          now=now - timedelta(seconds=600), ttl_seconds=300)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(old, public, algorithms=["EdDSA"], audience=AUDIENCE)
    other = CardSigner(b"t" * 32).public_jwk()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, Ed25519PublicKey.from_public_bytes(
            jwt.utils.base64url_decode(other["x"])), algorithms=["EdDSA"], audience=AUDIENCE)
    assert qr_svg(token).lstrip().startswith("<svg")


def test_the_mobile_card_key_is_recorded_once_per_kid_and_published_public_only() -> None:
    app = OmaKaikuApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                   "MAPPER_TOPIC": get_topic(MetaMapper)})
    signer = CardSigner(b"s" * 32)
    now = datetime(2026, 1, 12, 7, 0, tzinfo=UTC)
    assert app.publish_mobile_card_key(**signer.published_key(), now=now) is True
    # A restart (or a second replica) with the same key records nothing new.
    assert app.publish_mobile_card_key(**signer.published_key(), now=now) is False
    key_id = MobileCardKey.create_id(signer.kid)
    assert len(list(app.recorder.select_events(key_id))) == 1
    (published,) = contracts_of(app, key_id)
    assert isinstance(published, MobileCardKeyPublishedV1)
    jwk = signer.public_jwk()
    assert (published.kid, published.algorithm, published.kty, published.crv, published.x) == (
        jwk["kid"], "EdDSA", "OKP", "Ed25519", jwk["x"])
    assert published.published_at == now and published.aggregate_version == 1
    # The seed (private key) is nowhere in what is stored.
    import base64

    seed = base64.urlsafe_b64encode(b"s" * 32).rstrip(b"=").decode()
    assert seed not in stored_text(app, key_id)
    # A rotated key is a second kid: both are recorded, the first stays.
    rotated = CardSigner(b"r" * 32)
    assert app.publish_mobile_card_key(**rotated.published_key(), now=now) is True
    assert app.mobile_card_key(signer.kid).x == jwk["x"]
    assert app.mobile_card_key(rotated.kid).kid == rotated.kid != signer.kid
    assert app.mobile_card_key("no-such-kid") is None


def test_holder_texts_exist_in_three_languages() -> None:
    for kind, texts in TEXTS.items():
        assert set(texts) == {"fi", "sv", "en"}, kind
    subject, body = render("signin_code", "sv", code="123456", minutes=10)
    assert "123456" in body and "Inloggningskod" in subject
    title, body = notification_text("new_offering", {
        "title": "Kevätkonsertti", "venue_name": "Imatran Teatteri",
        "starts_at": "2026-03-16T17:00:00+00:00"}, "en")
    assert title == "New on offer: Kevätkonsertti" and "16.03.2026" in body
    assert notification_text("something_new", {}, "fi")[0] == "Uusi ilmoitus"
