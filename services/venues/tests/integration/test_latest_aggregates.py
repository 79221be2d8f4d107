"""Deciding on cached offerings stays right when another process has written since.

Two VenuesApplication instances on one real Postgres event store stand for two
venues api processes. Each keeps its own LatestAggregates; a stale copy must
end in a conflict and a fresh decision — never in an extra ticket.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest

from kaiku_shared.db import ensure_database
from kaiku_shared.eventstore import application_env, construct_application
from venues.application.app import VenuesApplication
from venues.domain.model import CardStanding, RuleViolation

ORG = uuid4()
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
STARTS = NOW + timedelta(days=20)


def card(number: str) -> CardStanding:
    return CardStanding(card_number=number, status="open", valid_from=date(2026, 1, 1),
                        valid_until=date(2027, 12, 31), children=2)


@pytest.fixture(scope="module")
def two_processes(namespace):
    service = "venuescache"
    asyncio.run(ensure_database(namespace.settings, service))
    env = application_env(namespace.settings, service)
    first = construct_application(lambda: VenuesApplication(env))
    second = construct_application(lambda: VenuesApplication(env))
    yield first, second
    first.close()
    second.close()

    async def drop() -> None:
        conn = await asyncpg.connect(namespace.settings.maintenance_database_url())
        await conn.execute(f'DROP DATABASE IF EXISTS "{namespace.settings.database_name(service)}"'
                           " WITH (FORCE)")
        await conn.close()

    asyncio.run(drop())


def offering(app: VenuesApplication, *, card_cap: int, one_ticket_per_card: bool = False):
    venue_id, offering_id = uuid4(), uuid4()
    app.register_venue(venue_id=venue_id, organisation_id=ORG, name="Kulttuuritalo",
                       kind="performing_arts", municipality="oulu",
                       one_ticket_per_card=one_ticket_per_card, max_open_reservations=None,
                       ticket_agents=[])
    app.publish_offering(offering_id=offering_id, venue_id=venue_id, organisation_id=ORG,
                         role="venue", title="Konsertti", kind="performance",
                         genres=["music"], subgenres=[], starts_at=STARTS, capacity=card_cap,
                         card_cap=card_cap, now=NOW)
    return offering_id


def register(app: VenuesApplication, offering_id, number: str):
    return app.register_ticket(ticket_id=uuid4(), offering_id=offering_id, card_number=number,
                               card=card(number), children=0, channel="box_office",
                               organisation_id=ORG, role="venue", now=NOW,
                               may_be_retry=False)


def test_a_stale_copy_cannot_overbook(two_processes):
    first, second = two_processes
    offering_id = offering(first, card_cap=3)
    register(first, offering_id, "KXA-10001")  # first now holds 1 place taken
    register(second, offering_id, "KXA-10002")
    register(second, offering_id, "KXA-10003")  # the cap is full; first does not know
    assert first.latest.copy_of(offering_id).places_taken == 1  # stale indeed

    with pytest.raises(RuleViolation) as refused:
        register(first, offering_id, "KXA-10004")
    assert refused.value.rule == "card-cap-reached"
    assert second.get_offering(offering_id).places_taken == 3
    assert first.latest.copy_of(offering_id).places_taken == 3  # read afresh, kept


def test_a_stale_copy_cannot_give_a_card_two_tickets(two_processes):
    first, second = two_processes
    offering_id = offering(first, card_cap=10, one_ticket_per_card=True)
    register(first, offering_id, "KXA-20001")
    register(second, offering_id, "KXA-20002")  # first's copy is now behind
    with pytest.raises(RuleViolation) as refused:
        register(first, offering_id, "KXA-20002")
    assert refused.value.rule == "one-ticket-per-card"


def test_two_processes_racing_for_one_offering_fill_it_exactly(two_processes):
    first, second = two_processes
    offering_id = offering(first, card_cap=10)
    numbers = [f"KXB-{n:05d}" for n in range(60)]

    def attempt(n: int) -> bool:
        app = first if n % 2 else second
        try:
            register(app, offering_id, numbers[n])
            return True
        except RuleViolation as error:
            assert error.rule == "card-cap-reached"
            return False

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, range(len(numbers))))
    assert results.count(True) == 10
    fresh = construct_application(lambda: VenuesApplication(first.env))
    try:
        stored = fresh.get_offering(offering_id)
        assert stored.places_taken == 10 and len(stored.tickets) == 10
    finally:
        fresh.close()


def test_decisions_do_not_change_the_cached_state(two_processes):
    first, _ = two_processes
    offering_id = offering(first, card_cap=5)
    register(first, offering_id, "KXA-30001")
    decided_on = first.latest.copy_of(offering_id)
    decided_on.take_places(ticket_id=uuid4(), card_number="KXA-30002", children=0, now=NOW)
    assert first.latest.copy_of(offering_id).places_taken == 1  # a copy was changed, not it


def test_a_place_freed_elsewhere_is_not_refused_on_a_stale_copy(two_processes):
    first, second = two_processes
    offering_id = offering(first, card_cap=2)
    register(first, offering_id, "KXA-40001")
    freed = register(first, offering_id, "KXA-40002")  # first's copy: full
    second.cancel_ticket(ticket_id=freed.id, reason=None, now=NOW, organisation_id=ORG,
                         role="venue")
    ticket = register(first, offering_id, "KXA-40003")  # decided again on fresh state
    assert ticket.card_number == "KXA-40003"
    with pytest.raises(RuleViolation) as refused:
        register(first, offering_id, "KXA-40004")
    assert refused.value.rule == "card-cap-reached"
