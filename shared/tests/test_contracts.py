"""The integration-event contracts and their golden JSON fixtures.

A golden fixture is what a producer puts on the wire for one contract, byte for
byte as pydantic serialises it. Consumers are tested against these files
(test_consumer_decode.py), so a change that would break a consumer shows up here
first: a breaking change needs a new contract version, never an edited fixture.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import kaiku_shared.contracts as contracts
from kaiku_shared.contracts import (
    REGISTRY,
    CardIssuedV1,
    IntegrationEvent,
    UnknownContract,
    contract_for,
    event_id_for,
)

FIXTURES = Path(contracts.__file__).parent / "fixtures"
CONTRACTS = sorted(REGISTRY.values(), key=lambda c: (c.PRODUCER, c.EVENT_TYPE, c.VERSION))
PRODUCERS = {"cards", "venues", "omakaiku", "notifications"}


def fixture_path(contract: type[IntegrationEvent]) -> Path:
    return FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json"


def load_fixture(contract: type[IntegrationEvent]) -> dict[str, Any]:
    return json.loads(fixture_path(contract).read_text(encoding="utf-8"))


def by_name(contract: type[IntegrationEvent]) -> str:
    return contract.__name__


each_contract = pytest.mark.parametrize("contract", CONTRACTS, ids=by_name)


# --- the registry --------------------------------------------------------------


def test_registry_is_not_empty_and_keys_match_the_classes() -> None:
    assert len(REGISTRY) >= 14
    for (producer, event_type, version), contract in REGISTRY.items():
        assert (contract.PRODUCER, contract.EVENT_TYPE, contract.VERSION) == (
            producer, event_type, version)
        assert producer in PRODUCERS
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", event_type), event_type
        assert contract.__name__.endswith(f"V{version}")
        assert contract_for(producer, event_type, version) is contract


def test_event_types_are_unique_across_producers() -> None:
    # Fixture files are named <event_type>.v<N>.json, without the producer.
    keys = [(c.EVENT_TYPE, c.VERSION) for c in CONTRACTS]
    assert len(keys) == len(set(keys))


def test_every_contract_is_exported_by_the_package() -> None:
    for contract in CONTRACTS:
        assert getattr(contracts, contract.__name__) is contract
        assert contract.__name__ in contracts.__all__


def test_contract_for_unknown_raises_unknown_contract() -> None:
    with pytest.raises(UnknownContract, match="card_issued version 99"):
        contract_for("cards", "card_issued", 99)
    with pytest.raises(UnknownContract):
        contract_for("venues", "card_issued", 1)  # right type, wrong producer


def test_no_fixture_without_a_contract() -> None:
    expected = {fixture_path(c).name for c in CONTRACTS}
    present = {p.name for p in FIXTURES.glob("*.json")}
    assert present == expected


# --- golden fixtures -------------------------------------------------------------


@each_contract
def test_every_contract_has_a_fixture(contract: type[IntegrationEvent]) -> None:
    assert fixture_path(contract).is_file(), f"write {fixture_path(contract).name}"


@each_contract
def test_fixture_validates_and_is_complete(contract: type[IntegrationEvent]) -> None:
    raw = load_fixture(contract)
    event = contract.model_validate(raw)
    assert type(event) is contract
    # The envelope names this very contract.
    assert (raw["producer"], raw["event_type"], raw["schema_version"]) == (
        contract.PRODUCER, contract.EVENT_TYPE, contract.VERSION)
    # Complete: every field is spelled out, defaults included, nothing extra.
    assert set(raw) == set(contract.model_fields)
    assert isinstance(event.event_id, UUID)
    assert event.occurred_at.tzinfo is not None, "occurred_at must carry a time zone"


@each_contract
def test_fixture_is_what_the_producer_serialises(contract: type[IntegrationEvent]) -> None:
    """Golden: building the event from its fields gives exactly the fixture's JSON."""
    raw = load_fixture(contract)
    event = contract.model_validate(raw)
    assert json.loads(event.to_json()) == raw
    rebuilt = contract.build(**{k: v for k, v in raw.items()
                                if k not in ("event_type", "schema_version", "producer")})
    assert json.loads(rebuilt.to_json()) == raw


@each_contract
def test_model_json_model_round_trip(contract: type[IntegrationEvent]) -> None:
    event = contract.model_validate(load_fixture(contract))
    again = contract.model_validate_json(event.to_json())
    assert again == event
    assert again.model_dump() == event.model_dump()


@each_contract
def test_fixture_card_numbers_look_real_and_no_contact_data(
    contract: type[IntegrationEvent],
) -> None:
    raw = load_fixture(contract)
    for key, value in raw.items():
        if not isinstance(value, str) or key in ("traceparent",) or _is_id_or_time(value):
            continue
        assert not re.search(r"[\w.+-]+@[\w-]+\.\w+", value), f"{key}: an e-mail address?"
        assert not re.search(r"\+?\d[\d ()-]{6,}\d", value), f"{key}: a phone number?"
    if "card_number" in raw:
        assert re.fullmatch(r"[A-Z]{3}-\d{5}", raw["card_number"])


def _is_id_or_time(value: str) -> bool:
    for parse in (UUID, date.fromisoformat, datetime.fromisoformat):
        try:
            parse(value)
        except ValueError:
            continue
        return True
    return False


# --- tolerant reader, frozen models ----------------------------------------------


@each_contract
def test_unknown_fields_are_ignored(contract: type[IntegrationEvent]) -> None:
    raw = load_fixture(contract)
    newer = {**raw, "added_in_a_later_release": {"nested": [1, 2, 3]}, "zz_flag": True}
    event = contract.model_validate(newer)
    assert event == contract.model_validate(raw)
    assert "added_in_a_later_release" not in event.model_dump()
    assert b"added_in_a_later_release" not in event.to_json()
    # The same from raw bytes, as a consumer reads them.
    assert contract.model_validate_json(json.dumps(newer)) == event


@each_contract
def test_models_are_frozen(contract: type[IntegrationEvent]) -> None:
    event = contract.model_validate(load_fixture(contract))
    with pytest.raises(ValidationError):
        event.aggregate_version = 99  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event.event_id = uuid4()  # type: ignore[misc]
    assert event.aggregate_version == load_fixture(contract)["aggregate_version"]


@each_contract
def test_a_missing_required_field_is_refused(contract: type[IntegrationEvent]) -> None:
    raw = load_fixture(contract)
    required = [name for name, f in contract.model_fields.items() if f.is_required()]
    assert "event_id" in required and "aggregate_id" in required
    for name in required:
        broken = {k: v for k, v in raw.items() if k != name}
        with pytest.raises(ValidationError):
            contract.model_validate(broken)


@each_contract
def test_aggregate_version_starts_at_one(contract: type[IntegrationEvent]) -> None:
    with pytest.raises(ValidationError):
        contract.model_validate({**load_fixture(contract), "aggregate_version": 0})


def test_field_constraints_hold() -> None:
    from kaiku_shared.contracts import FeedbackGivenV1, TicketRegisteredV1

    issued = load_fixture(CardIssuedV1)
    with pytest.raises(ValidationError):
        CardIssuedV1.model_validate({**issued, "children": -1})
    feedback = load_fixture(FeedbackGivenV1)
    for score in ("accessibility", "meaning", "interest"):
        with pytest.raises(ValidationError):
            FeedbackGivenV1.model_validate({**feedback, score: 6})
        with pytest.raises(ValidationError):
            FeedbackGivenV1.model_validate({**feedback, score: -1})
    ticket = load_fixture(TicketRegisteredV1)
    with pytest.raises(ValidationError):
        TicketRegisteredV1.model_validate({**ticket, "children": -2})


def test_dates_and_datetimes_parse_to_their_types() -> None:
    event = CardIssuedV1.model_validate(load_fixture(CardIssuedV1))
    assert event.valid_from == date(2025, 3, 3)
    assert isinstance(event.valid_until, date) and not isinstance(event.valid_until, datetime)
    assert isinstance(event.occurred_at, datetime)


# --- subjects and event ids --------------------------------------------------------


@each_contract
def test_subject(contract: type[IntegrationEvent]) -> None:
    expected = f"kaiku.{contract.PRODUCER}.{contract.EVENT_TYPE}.v{contract.VERSION}"
    assert contract.subject() == expected
    assert contract.subject("t_ab12") == f"t_ab12.{contract.PRODUCER}." \
        f"{contract.EVENT_TYPE}.v{contract.VERSION}"
    # NATS subject tokens: no spaces, no wildcards, exactly four tokens.
    assert len(expected.split(".")) == 4
    assert not re.search(r"[\s*>]", expected)


def test_subjects_are_unique() -> None:
    subjects = [c.subject() for c in CONTRACTS]
    assert len(subjects) == len(set(subjects))


def test_build_fills_the_envelope_constants() -> None:
    raw = load_fixture(CardIssuedV1)
    fields = {k: v for k, v in raw.items()
              if k not in ("event_type", "schema_version", "producer")}
    event = CardIssuedV1.build(**fields)
    assert (event.event_type, event.schema_version, event.producer) == (
        "card_issued", 1, "cards")


def test_event_id_for_is_deterministic() -> None:
    first = event_id_for("cards", 41)
    assert first == event_id_for("cards", 41)
    assert isinstance(first, UUID) and first.version == 5
    assert first != event_id_for("cards", 42)
    assert first != event_id_for("venues", 41)
    # Stable across releases: JetStream deduplicates on it after a relay restart.
    assert str(first) == load_fixture(CardIssuedV1)["event_id"]


def test_event_ids_do_not_collide_across_many_notifications() -> None:
    ids = {event_id_for(p, n) for p in ("cards", "venues", "omakaiku") for n in range(2000)}
    assert len(ids) == 6000


# --- privacy by construction -------------------------------------------------------

# Field names that would mean personal data on NATS. Only omakaiku may hold these.
PERSONAL = re.compile(
    r"(^|_)(first_?name|last_?name|surname|given_name|full_name|e_?mail|phone|mobile|"
    r"address|street|ssn|hetu|personal_id|identity_code|birth_?date|date_of_birth|dob)($|_)"
)

# A field called ``name`` / ``*_name`` must name a non-person. Reviewed ones:
# - OrganisationRegisteredV1.name: the organisation's name (a distributor, venue,
#   ticket agent or Kaikukeskus), public information, never a person.
# - VenueRegisteredV1.name / VenueChangedV1.name: the venue's public name.
# - OfferingPublishedV1.venue_name / TicketRegisteredV1.venue_name: the same.
# A new name-like field fails this test until it is reviewed and listed here.
ALLOWED_NAME_FIELDS = {
    ("OrganisationRegisteredV1", "name"),
    ("VenueRegisteredV1", "name"),
    ("VenueChangedV1", "name"),
    ("OfferingPublishedV1", "venue_name"),
    ("TicketRegisteredV1", "venue_name"),
}


@each_contract
def test_no_contract_carries_personal_data(contract: type[IntegrationEvent]) -> None:
    for name in contract.model_fields:
        assert not PERSONAL.search(name), f"{contract.__name__}.{name} looks personal"
        if name == "name" or name.endswith("_name") or name.startswith("name_"):
            assert (contract.__name__, name) in ALLOWED_NAME_FIELDS, (
                f"{contract.__name__}.{name}: is this a person's name? review and list it")


def test_the_personal_data_check_would_catch_personal_fields() -> None:
    for name in ("first_name", "last_name", "email", "holder_email", "phone",
                 "phone_number", "address", "home_address", "birth_date", "firstname"):
        assert PERSONAL.search(name), name
    for name in ("card_number", "postal_code", "birth_year", "municipality", "account_id",
                 "venue_name", "offering_title", "name"):
        assert not PERSONAL.search(name), name


# omakaiku contracts that refer to no holder at all, and why:
# - feedback_given: ratings must not be linkable to the holder who gave them;
# - mobile_card_key_published: a public signing key, about no holder;
# - holder_access_revoked: a signed-out token's random id (``target``), so that
#   the services refuse that token without learning whose it was.
NOT_ABOUT_A_HOLDER = {"feedback_given", "mobile_card_key_published", "holder_access_revoked"}


def test_holder_contracts_refer_to_holders_only_by_card_or_account() -> None:
    for contract in CONTRACTS:
        if contract.PRODUCER != "omakaiku":
            continue
        own = set(contract.model_fields) - set(IntegrationEvent.model_fields)
        holder_refs = own & {"card_number", "account_id"}
        if contract.EVENT_TYPE in NOT_ABOUT_A_HOLDER:
            assert not holder_refs, contract.__name__
        else:
            assert holder_refs, contract.__name__
        assert not {"municipality", "language", "postal_code"} & own, contract.__name__


def test_the_mobile_card_key_is_public_key_material_only() -> None:
    from kaiku_shared.contracts import MobileCardKeyPublishedV1

    raw = load_fixture(MobileCardKeyPublishedV1)
    own = set(MobileCardKeyPublishedV1.model_fields) - set(IntegrationEvent.model_fields)
    # The public JWK's members and when; never a private member ("d") or a token.
    assert own == {"kid", "algorithm", "kty", "crv", "x", "published_at"}
    assert (raw["algorithm"], raw["kty"], raw["crv"]) == ("EdDSA", "OKP", "Ed25519")
    assert len(jwt_b64decode(raw["x"])) == 32  # an Ed25519 public key
    assert MobileCardKeyPublishedV1.subject() == "kaiku.omakaiku.mobile_card_key_published.v1"
    with pytest.raises(ValidationError):
        MobileCardKeyPublishedV1.model_validate({**raw, "kid": ""})


def jwt_b64decode(value: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@given(producer=st.sampled_from(["cards", "venues", "omakaiku", "notifications"]),
       notification_id=st.integers(min_value=1, max_value=2**63 - 1))
def test_event_id_for_is_the_rfc_4122_name_based_uuid(producer: str,
                                                      notification_id: int) -> None:
    from uuid import uuid5

    from kaiku_shared.contracts.base import EVENT_ID_NAMESPACE

    event_id = event_id_for(producer, notification_id)
    expected = uuid5(EVENT_ID_NAMESPACE, f"{producer}/{notification_id}")
    assert event_id == expected and hash(event_id) == hash(expected)
    assert str(event_id) == str(expected) and event_id.version == 5
    assert event_id.is_safe == expected.is_safe


# --- feedback: V2 is unlinkable, V1 upcasts to it --------------------------------------


def test_feedback_v2_names_no_ticket_card_or_account() -> None:
    from kaiku_shared.contracts import FeedbackGivenV2

    own = set(FeedbackGivenV2.model_fields) - set(IntegrationEvent.model_fields)
    assert own == {"feedback_id", "offering_id", "venue_id", "accessibility", "meaning",
                   "interest"}
    raw = load_fixture(FeedbackGivenV2)
    assert raw["aggregate_id"] == raw["feedback_id"]
    assert raw["correlation_id"] is raw["traceparent"] is raw["causation_id"] is None
    assert FeedbackGivenV2.subject() == "kaiku.omakaiku.feedback_given.v2"
    for score in ("accessibility", "meaning", "interest"):
        with pytest.raises(ValidationError):
            FeedbackGivenV2.model_validate({**raw, score: 6})


def test_a_v1_feedback_upcasts_to_v2_without_its_ticket() -> None:
    from uuid import NAMESPACE_URL, uuid5

    from kaiku_shared.contracts import FeedbackGivenV1, FeedbackGivenV2

    v1 = FeedbackGivenV1.model_validate(load_fixture(FeedbackGivenV1))
    v2 = v1.upcast()
    assert type(v2) is FeedbackGivenV2 and v2.schema_version == 2
    assert b"ticket_id" not in v2.to_json()
    assert str(v1.ticket_id) not in v2.to_json().decode()
    assert (v2.event_id, v2.occurred_at, v2.offering_id, v2.venue_id) == (
        v1.event_id, v1.occurred_at, v1.offering_id, v1.venue_id)
    assert (v2.accessibility, v2.meaning, v2.interest) == (4, 5, 3)
    # The same V1 message (a redelivery) is the same answer; another is another.
    assert v1.upcast().feedback_id == v2.feedback_id == v2.aggregate_id
    other = FeedbackGivenV1.model_validate({**load_fixture(FeedbackGivenV1),
                                            "event_id": str(uuid4())})
    assert other.upcast().feedback_id != v2.feedback_id
    # Derived from the event, never from the ticket (nor the V1 aggregate, which was).
    assert v2.feedback_id not in {v1.ticket_id, v1.aggregate_id, uuid5(
        NAMESPACE_URL, f"/kaikukortti/omakaiku/feedback/{v1.ticket_id}")}
    # The same V1 answer with another ticket id upcasts to the same feedback id.
    retick = FeedbackGivenV1.model_validate({**load_fixture(FeedbackGivenV1),
                                             "ticket_id": str(uuid4())})
    assert retick.upcast().feedback_id == v2.feedback_id
