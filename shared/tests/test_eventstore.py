"""Event-store setup: command metadata stored beside events, dates, conflict retries.

Runs on eventsourcing's in-memory (POPO) persistence: no database.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, RecordConflictError
from eventsourcing.utils import get_topic

from kaiku_shared.eventstore import (
    META_KEY,
    DateAsISO,
    KaikuApplication,
    MetaMapper,
    command_meta,
    decode_meta,
    meta_scope,
    retry_on_conflict,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Booklet(Aggregate):
    """A tiny aggregate with a date and a datetime in its events."""

    @event("Printed")
    def __init__(self, title: str, valid_until: date, printed_at: datetime) -> None:
        self.title = title
        self.valid_until = valid_until
        self.printed_at = printed_at
        self.stamps = 0

    @event("Stamped")
    def stamp(self, on: date) -> None:
        self.stamps += 1
        self.last_stamp = on


class Booklets(KaikuApplication):
    name = "booklets"


@pytest.fixture
def app() -> Booklets:
    return Booklets(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                         "MAPPER_TOPIC": get_topic(MetaMapper)})


def new_booklet() -> Booklet:
    return Booklet(title="Kaikukortti brochure", valid_until=date(2026, 2, 28),
                   printed_at=datetime(2025, 3, 3, 9, 14, 27, 512004, tzinfo=UTC))


def stored_states(app: Booklets, aggregate_id: UUID) -> list[dict]:
    return [json.loads(s.state) for s in app.recorder.select_events(aggregate_id)]


def test_the_application_uses_the_meta_mapper_in_memory(app: Booklets) -> None:
    assert isinstance(app.mapper, MetaMapper)
    assert type(app.recorder).__module__.startswith("eventsourcing.popo")


def test_meta_is_stored_with_each_event_and_decoded_beside_it(app: Booklets) -> None:
    booklet = new_booklet()
    booklet.stamp(on=date(2025, 4, 12))
    with meta_scope(traceparent=TRACEPARENT, correlation_id="corr-1"):
        recordings = app.save(booklet)
    originals = [r.domain_event for r in recordings]
    assert len(originals) == 2

    states = stored_states(app, booklet.id)
    assert [s[META_KEY] for s in states] == [
        {"traceparent": TRACEPARENT, "correlation_id": "corr-1"}] * 2

    for stored, original in zip(app.recorder.select_events(booklet.id), originals,
                                strict=True):
        decoded, meta = app.mapper.decode(stored)
        assert meta == {"traceparent": TRACEPARENT, "correlation_id": "corr-1"}
        assert decoded == original
        assert type(decoded) is type(original)
        assert META_KEY not in vars(decoded)
        assert decode_meta(stored.state) == meta
        # The library's path (repository, relay's translate) sees the plain event.
        plain = app.mapper.to_domain_event(stored)
        assert plain == original and META_KEY not in vars(plain)


def test_the_aggregate_reconstructs_unchanged_from_events_with_meta(app: Booklets) -> None:
    booklet = new_booklet()
    booklet.stamp(on=date(2025, 4, 12))
    with meta_scope(correlation_id="corr-2"):
        app.save(booklet)
    copy = app.repository.get(booklet.id)
    assert (copy.title, copy.valid_until, copy.printed_at, copy.stamps, copy.last_stamp) == (
        booklet.title, booklet.valid_until, booklet.printed_at, 1, date(2025, 4, 12))
    assert copy.version == booklet.version == 2
    assert not hasattr(copy, META_KEY)


def test_without_meta_nothing_is_added(app: Booklets) -> None:
    booklet = new_booklet()
    app.save(booklet)
    (state,) = stored_states(app, booklet.id)
    assert META_KEY not in state
    (stored,) = app.recorder.select_events(booklet.id)
    decoded, meta = app.mapper.decode(stored)
    assert meta == {}
    assert decode_meta(stored.state) == {}
    assert decoded.title == "Kaikukortti brochure"


def test_empty_meta_values_are_left_out(app: Booklets) -> None:
    booklet = new_booklet()
    with meta_scope(traceparent=None, correlation_id="corr-3", causation_id=""):
        app.save(booklet)
    (state,) = stored_states(app, booklet.id)
    assert state[META_KEY] == {"correlation_id": "corr-3"}
    other = new_booklet()
    with meta_scope(traceparent=None):
        app.save(other)
    (state,) = stored_states(app, other.id)
    assert META_KEY not in state


def test_meta_scope_is_restored_after_the_block() -> None:
    assert command_meta.get() is None
    with meta_scope(correlation_id="outer"):
        with meta_scope(correlation_id="inner", causation_id="c"):
            assert command_meta.get() == {"correlation_id": "inner", "causation_id": "c"}
        assert command_meta.get() == {"correlation_id": "outer"}
    assert command_meta.get() is None


def test_meta_scope_is_restored_after_an_error() -> None:
    with pytest.raises(RuntimeError), meta_scope(correlation_id="x"):
        raise RuntimeError("the use case failed")
    assert command_meta.get() is None


def test_only_events_saved_inside_the_scope_carry_its_meta(app: Booklets) -> None:
    booklet = new_booklet()
    with meta_scope(correlation_id="first"):
        app.save(booklet)
    booklet.stamp(on=date(2025, 5, 1))
    app.save(booklet)
    first, second = stored_states(app, booklet.id)
    assert first[META_KEY] == {"correlation_id": "first"}
    assert META_KEY not in second


def test_decode_meta_tolerates_non_json() -> None:
    assert decode_meta(b"\x00\x01 not json") == {}


# --- dates ---------------------------------------------------------------------------


def test_date_as_iso_round_trips_dates(app: Booklets) -> None:
    transcoder = app.mapper.transcoder
    for day in (date(2024, 2, 29), date(1, 1, 1), date(9999, 12, 31)):
        decoded = transcoder.decode(transcoder.encode({"d": day}))["d"]
        assert decoded == day
        assert type(decoded) is date
    encoded = transcoder.encode({"d": date(2024, 2, 29)})
    assert b"2024-02-29" in encoded


def test_datetimes_stay_datetimes_beside_dates(app: Booklets) -> None:
    transcoder = app.mapper.transcoder
    moment = datetime(2025, 4, 12, 16, 0, tzinfo=UTC)
    decoded = transcoder.decode(transcoder.encode({"at": moment, "on": moment.date()}))
    assert decoded["at"] == moment and type(decoded["at"]) is datetime
    assert decoded["on"] == moment.date() and type(decoded["on"]) is date


def test_dates_in_stored_events_are_iso_strings(app: Booklets) -> None:
    booklet = new_booklet()
    app.save(booklet)
    (state,) = stored_states(app, booklet.id)
    assert "2026-02-28" in json.dumps(state)
    assert app.repository.get(booklet.id).valid_until == date(2026, 2, 28)


def test_date_as_iso_transcoding_directly() -> None:
    transcoding = DateAsISO()
    assert transcoding.encode(date(2025, 3, 3)) == "2025-03-03"
    assert transcoding.decode("2025-03-03") == date(2025, 3, 3)


# --- optimistic concurrency ------------------------------------------------------------


def test_retry_on_conflict_retries_until_it_succeeds() -> None:
    calls: list[int] = []

    @retry_on_conflict(attempts=5)
    def use_case(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise RecordConflictError("another writer won")
        return value * 2

    assert use_case(21) == 42
    assert calls == [21, 21, 21]


def test_retry_on_conflict_gives_up_after_n_attempts() -> None:
    calls = 0

    @retry_on_conflict(attempts=4)
    def always_conflicts() -> None:
        nonlocal calls
        calls += 1
        raise RecordConflictError("lost again")

    with pytest.raises(RecordConflictError, match="lost again"):
        always_conflicts()
    assert calls == 4


def test_retry_on_conflict_retries_integrity_errors_too() -> None:
    calls = 0

    @retry_on_conflict(attempts=3)
    def use_case() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise IntegrityError("duplicate key")
        return "ok"

    assert use_case() == "ok"
    assert calls == 2


def test_retry_on_conflict_does_not_retry_other_errors() -> None:
    calls = 0

    @retry_on_conflict(attempts=5)
    def refuses() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a business rule, not a race")

    with pytest.raises(ValueError):
        refuses()
    assert calls == 1


def test_retry_on_conflict_keeps_the_name_and_doc() -> None:
    @retry_on_conflict()
    def renew_card() -> None:
        """Renew a card."""

    assert renew_card.__name__ == "renew_card"
    assert renew_card.__doc__ == "Renew a card."


def test_a_stale_writer_reloads_and_decides_again(app: Booklets) -> None:
    """A real conflict on the in-memory store: the loser retries on fresh state."""
    booklet = new_booklet()
    app.save(booklet)
    attempts = 0

    @retry_on_conflict(attempts=3)
    def stamp_once(on: date) -> int:
        nonlocal attempts
        attempts += 1
        mine = app.repository.get(booklet.id)
        if attempts == 1:
            # Another writer stamps between our read and our save.
            theirs = app.repository.get(booklet.id)
            theirs.stamp(on=date(2025, 1, 1))
            app.save(theirs)
        mine.stamp(on=on)
        app.save(mine)
        return mine.stamps

    assert stamp_once(date(2025, 2, 2)) == 2  # decided against the other writer's stamp
    assert attempts == 2
    final = app.repository.get(booklet.id)
    assert (final.version, final.stamps, final.last_stamp) == (3, 2, date(2025, 2, 2))
