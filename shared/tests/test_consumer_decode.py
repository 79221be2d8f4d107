"""What the idempotent consumer does with a delivered body, before any database.

``MessageProcessor.decode`` decides: the contract instance, None (an event type the
consumer does not handle: ack and move on), or DeadLetter (it can never succeed).
Every real consumer in the services is checked against the golden fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import kaiku_shared.contracts as contracts
from kaiku_shared.consumer import Consumer, DeadLetter, MessageProcessor, backoff_delay
from kaiku_shared.contracts import (
    REGISTRY,
    CardClosedV1,
    CardIssuedV1,
    IntegrationEvent,
    TicketRegisteredV1,
)
from kaiku_shared.settings import KaikuSettings

FIXTURES = Path(contracts.__file__).parent / "fixtures"


def fixture(contract: type[IntegrationEvent]) -> dict[str, Any]:
    path = FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


async def _never_called(event: Any, conn: Any) -> None:  # pragma: no cover
    raise AssertionError("decode must not apply the handler")


@pytest.fixture
def processor() -> MessageProcessor:
    consumer = Consumer("test-card-statistics", "cards")
    consumer.on(CardIssuedV1)(_never_called)
    return MessageProcessor(consumer, pool=None)  # type: ignore[arg-type]


# --- poison messages --------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"not json", b"{\"event_type\": ", b"", b"\xff\xfe\x00garbage",
                                 b"{'single': 'quotes'}"])
def test_non_json_is_dead_lettered_with_reason(processor: MessageProcessor, raw: bytes) -> None:
    with pytest.raises(DeadLetter, match="body is not JSON"):
        processor.decode(raw)


@pytest.mark.parametrize("raw", [b"[]", b"[{\"event_type\": \"card_issued\"}]", b"42",
                                 b"\"card_issued\"", b"null", b"true"])
def test_a_non_object_is_dead_lettered(processor: MessageProcessor, raw: bytes) -> None:
    with pytest.raises(DeadLetter, match="not a JSON object"):
        processor.decode(raw)


def test_an_unhandled_event_type_is_ignored(processor: MessageProcessor) -> None:
    assert processor.decode(body(fixture(CardClosedV1))) is None
    assert processor.decode(body({"event_type": "something_new", "schema_version": 7})) is None


def test_an_envelope_without_event_type_is_dead_lettered(processor: MessageProcessor) -> None:
    # Nobody can ever handle it: an operator should see it, not lose it.
    with pytest.raises(DeadLetter, match="event_type"):
        processor.decode(b"{}")


def test_an_unhandled_type_is_ignored_even_if_its_body_is_broken(
    processor: MessageProcessor,
) -> None:
    assert processor.decode(body({"event_type": "card_closed", "schema_version": "x"})) is None


@pytest.mark.parametrize("version", [2, 0, 99, "2"])
def test_unknown_schema_version_is_dead_lettered_naming_it(
    processor: MessageProcessor, version: Any,
) -> None:
    raw = {**fixture(CardIssuedV1), "schema_version": version}
    with pytest.raises(DeadLetter) as caught:
        processor.decode(body(raw))
    reason = str(caught.value)
    assert f"unknown schema version {version!r}" in reason
    assert "card_issued" in reason
    assert "test-card-statistics handles versions [1]" in reason


@pytest.mark.parametrize("version", [None, "one", [1], {"v": 1}])
def test_an_unreadable_schema_version_is_dead_lettered(
    processor: MessageProcessor, version: Any,
) -> None:
    raw = {**fixture(CardIssuedV1), "schema_version": version}
    with pytest.raises(DeadLetter, match="unknown schema version"):
        processor.decode(body(raw))


def test_a_missing_schema_version_is_dead_lettered(processor: MessageProcessor) -> None:
    raw = {k: v for k, v in fixture(CardIssuedV1).items() if k != "schema_version"}
    with pytest.raises(DeadLetter, match="unknown schema version None"):
        processor.decode(body(raw))


def test_a_foreign_producer_is_dead_lettered(processor: MessageProcessor) -> None:
    # A card_issued that claims to come from venues has no contract.
    with pytest.raises(DeadLetter):
        processor.decode(body({**fixture(CardIssuedV1), "producer": "venues"}))


@pytest.mark.parametrize("change", [
    {"children": -1},
    {"card_number": None},
    {"event_id": "not-a-uuid"},
    {"occurred_at": "yesterday"},
    {"aggregate_version": 0},
    {"valid_until": "2026-02-30"},
])
def test_an_invalid_body_is_dead_lettered(processor: MessageProcessor,
                                          change: dict[str, Any]) -> None:
    raw = {**fixture(CardIssuedV1), **change}
    with pytest.raises(DeadLetter) as caught:
        processor.decode(body(raw))
    reason = str(caught.value)
    assert reason.startswith("CardIssuedV1 invalid")
    assert next(iter(change)) in reason  # the reason names the bad field


def test_a_missing_field_is_dead_lettered(processor: MessageProcessor) -> None:
    raw = {k: v for k, v in fixture(CardIssuedV1).items() if k != "issuer_organisation_id"}
    with pytest.raises(DeadLetter, match="issuer_organisation_id"):
        processor.decode(body(raw))


def test_the_golden_fixture_decodes_to_the_contract(processor: MessageProcessor) -> None:
    raw = fixture(CardIssuedV1)
    event = processor.decode(body(raw))
    assert isinstance(event, CardIssuedV1)
    assert event == CardIssuedV1.model_validate(raw)
    assert event.card_number == "KXA-12345"


def test_unknown_fields_do_not_dead_letter(processor: MessageProcessor) -> None:
    raw = {**fixture(CardIssuedV1), "added_later": [1, 2]}
    assert processor.decode(body(raw)) == CardIssuedV1.model_validate(fixture(CardIssuedV1))


def test_a_body_without_producer_is_dead_lettered(processor: MessageProcessor) -> None:
    raw = {k: v for k, v in fixture(CardIssuedV1).items() if k != "producer"}
    # The contract is looked up as the source stream's, but the envelope's
    # producer field is required by the contract itself.
    with pytest.raises(DeadLetter, match="producer"):
        processor.decode(body(raw))


@pytest.mark.parametrize("event_type", [["card_issued"], {"t": "card_issued"}])
def test_an_unhashable_event_type_is_not_a_crash(processor: MessageProcessor,
                                                 event_type: Any) -> None:
    raw = {**fixture(CardIssuedV1), "event_type": event_type}
    try:
        result = processor.decode(body(raw))
    except DeadLetter:
        return
    assert result is None


def test_a_deeply_nested_body_is_dead_lettered(processor: MessageProcessor) -> None:
    with pytest.raises(DeadLetter):
        processor.decode(b"[" * 200_000)


# --- Consumer registration -----------------------------------------------------------


def test_a_consumer_refuses_a_contract_from_another_stream() -> None:
    consumer = Consumer("test-x", "cards")
    with pytest.raises(ValueError, match="not produced by cards"):
        consumer.on(TicketRegisteredV1)


def test_handled_types_lists_versions() -> None:
    consumer = Consumer("test-x", "cards")
    consumer.on(CardIssuedV1)(_never_called)
    consumer.on(CardClosedV1)(_never_called)
    assert consumer.handled_types == {"card_issued": [1], "card_closed": [1]}


# --- every real consumer against the golden fixtures ----------------------------------


def _service_consumers() -> list[Consumer]:
    from cards.adapters import projections as cards_projections
    from notifications.adapters import projections as notifications_projections
    from omakaiku.adapters import projections as omakaiku_projections
    from venues.adapters import holder_requests
    from venues.adapters import projections as venues_projections

    return [
        *cards_projections.consumers(),
        *venues_projections.consumers(),
        *omakaiku_projections.consumers(),
        *notifications_projections.consumers(),
        # The handler closes over the application; decoding never calls it.
        *holder_requests.consumers(application=None),  # type: ignore[arg-type]
    ]


SERVICE_CONSUMERS = _service_consumers()


def test_the_services_have_consumers_with_unique_durable_names() -> None:
    names = [c.name for c in SERVICE_CONSUMERS]
    assert len(names) == len(set(names))
    assert len(SERVICE_CONSUMERS) >= 9
    for consumer in SERVICE_CONSUMERS:
        service = consumer.name.split("-", 1)[0]
        assert service in {"cards", "venues", "omakaiku", "notifications"}, consumer.name
        assert consumer.handlers, f"{consumer.name} handles nothing"


@pytest.mark.parametrize("consumer", SERVICE_CONSUMERS, ids=lambda c: c.name)
def test_consumer_decodes_the_golden_fixture_of_each_contract_it_handles(
    consumer: Consumer,
) -> None:
    processor = MessageProcessor(consumer, pool=None)  # type: ignore[arg-type]
    for contract in consumer.handlers:
        assert contract.PRODUCER == consumer.source
        raw = fixture(contract)
        event = processor.decode(body(raw))
        assert type(event) is contract, contract.__name__
        assert event == contract.model_validate(raw)
        # A newer producer adding fields changes nothing for this consumer.
        assert processor.decode(body({**raw, "added_later": "x"})) == event


@pytest.mark.parametrize("consumer", SERVICE_CONSUMERS, ids=lambda c: c.name)
def test_consumer_ignores_the_other_events_on_its_stream(consumer: Consumer) -> None:
    processor = MessageProcessor(consumer, pool=None)  # type: ignore[arg-type]
    for (producer, _, _), contract in REGISTRY.items():
        if producer == consumer.source and contract not in consumer.handlers:
            assert processor.decode(body(fixture(contract))) is None, contract.__name__


@pytest.mark.parametrize("consumer", SERVICE_CONSUMERS, ids=lambda c: c.name)
def test_consumer_dead_letters_a_future_version_of_what_it_handles(consumer: Consumer) -> None:
    processor = MessageProcessor(consumer, pool=None)  # type: ignore[arg-type]
    for contract in consumer.handlers:
        # The version after the newest it handles (it may handle V1 and V2 both).
        future = max(consumer.handled_types[contract.EVENT_TYPE]) + 1
        raw = {**fixture(contract), "schema_version": future}
        with pytest.raises(DeadLetter, match=f"version {future}"):
            processor.decode(body(raw))


# --- backoff ------------------------------------------------------------------------------


def test_backoff_delay_follows_the_steps_then_stays_at_the_last() -> None:
    settings = KaikuSettings(consumer_backoff_seconds=(0.2, 1.0, 3.0))
    assert [backoff_delay(settings, n) for n in (1, 2, 3, 4, 50)] == [0.2, 1.0, 3.0, 3.0, 3.0]


def test_default_backoff_grows_and_covers_every_retry() -> None:
    settings = KaikuSettings()
    delays = [backoff_delay(settings, n) for n in range(1, settings.consumer_max_deliver)]
    assert len(delays) == settings.consumer_max_deliver - 1
    assert delays == sorted(delays)
    assert delays[0] < 1.0 <= delays[-1]
    assert all(d > 0 for d in delays)
