"""Group commit on a real Postgres event store: batching, and conflicts still caught."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import asyncpg
import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from kaiku_shared.db import ensure_database
from kaiku_shared.eventstore import (
    KaikuApplication,
    application_env,
    construct_application,
    retry_on_conflict,
)


class Counter(Aggregate):
    @event("Started")
    def __init__(self) -> None:
        self.value = 0

    @event("Incremented")
    def increment(self) -> None:
        self.value += 1


class Counters(KaikuApplication):
    name = "counters"

    def start(self) -> UUID:
        counter = Counter()
        self.save(counter)
        return counter.id

    def increment_once(self, counter_id: UUID) -> None:
        counter = self.repository.get(counter_id)
        counter.increment()
        self.save(counter)

    @retry_on_conflict(attempts=200)
    def increment(self, counter_id: UUID) -> None:
        self.increment_once(counter_id)


@pytest.fixture(scope="module")
def counters(namespace):
    service = "gctest"
    asyncio.run(ensure_database(namespace.settings, service))
    app = construct_application(lambda: Counters(application_env(namespace.settings, service)))
    yield app
    app.close()

    async def drop() -> None:
        conn = await asyncpg.connect(namespace.settings.maintenance_database_url())
        await conn.execute(f'DROP DATABASE IF EXISTS "{namespace.settings.database_name(service)}" '
                           "WITH (FORCE)")
        await conn.close()

    asyncio.run(drop())


def test_concurrent_saves_share_transactions(counters):
    before_batches, before_saves = counters.group_committer.batches, counters.group_committer.saves
    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = list(pool.map(lambda _: counters.start(), range(400)))
    assert len(set(ids)) == 400
    assert all(counters.repository.get(i).value == 0 for i in ids[:20])
    batches = counters.group_committer.batches - before_batches
    saves = counters.group_committer.saves - before_saves
    assert saves == 400
    assert batches < saves, "concurrent saves were grouped into fewer transactions"
    print(f"400 saves in {batches} transactions")


def test_a_conflict_in_a_batch_fails_only_the_conflicting_save(counters):
    counter_id = counters.start()
    # 16 writers all load version 1 and try to append version 2: one may win.
    loaded = [counters.repository.get(counter_id) for _ in range(16)]
    for counter in loaded:
        counter.increment()

    def save(counter):
        try:
            counters.save(counter)
            return "saved"
        except IntegrityError:
            return "conflict"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(save, loaded))
    assert outcomes.count("saved") == 1, outcomes
    assert counters.repository.get(counter_id).value == 1


def test_retried_conflicts_lose_no_increment(counters):
    counter_id = counters.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: counters.increment(counter_id), range(64)))
    assert counters.repository.get(counter_id).value == 64
