"""Genre fan-out, exactly once: redelivery, replay, two worker processes at once;
the region filter; immediate vs daily digest; the hand-over to omakaiku and its
failure handling.

Holders are subscribed by publishing omakaiku's GenreSubscriptionsChangedV1 on
its stream (the contract is the interface); offerings are published over venues'
HTTP API or, for the bulk two-worker test, as OfferingPublishedV1 messages.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import psycopg
import nats
import pytest

import kaiku_shared.contracts as contracts
from kaiku_shared.contracts import (
    GenreSubscriptionsChangedV1,
    NetworkChangedV1,
    OfferingPublishedV1,
)
from kaiku_shared.db import apply_schema
from kaiku_shared.eventstore import application_env
from kaiku_dev.supervisor import ProcessSpec, Supervisor
from kaiku_dev.testing import eventually, stream_events
from notifications.adapters import handover, projections
from notifications.adapters.schema import SCHEMA
from notifications.application.app import NotificationsApplication

pytestmark = pytest.mark.e2e

FANOUT = projections.FANOUT_CONSUMER


# --- helpers -------------------------------------------------------------------------


async def publish(system, subject: str, body: bytes, msg_id: str | None = None) -> None:
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await nc.jetstream().publish(subject, body, headers=headers)
    finally:
        await nc.close()


async def subscribe(system, genres: list[str], n: int = 1, region: str | None = None,
                    accounts: list[str] | None = None) -> list[str]:
    """Subscribe holders (new opaque account ids unless given) via omakaiku's contract."""
    accounts = accounts or [str(uuid.uuid4()) for _ in range(n)]
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        js = nc.jetstream()
        for account in accounts:
            event = GenreSubscriptionsChangedV1.build(
                event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), aggregate_id=account,
                aggregate_version=1, account_id=account, genres=genres, region=region)
            await js.publish(GenreSubscriptionsChangedV1.subject(system.ns.name),
                             event.to_json())
    finally:
        await nc.close()

    async def stored() -> bool:
        return await scalar(system, "SELECT count(DISTINCT account_id) FROM subscription_view "
                                    "WHERE account_id = ANY($1::uuid[])", accounts) == len(accounts)

    await eventually(stored, timeout=30, message="subscriptions stored")
    return accounts


async def scalar(system, sql: str, *args):
    conn = await system.database("notifications")
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def rows(system, sql: str, *args) -> list:
    conn = await system.database("notifications")
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def drained(system, source: str, durable: str) -> bool:
    nc = await nats.connect(system.ns.settings.nats_url)
    try:
        info = await nc.jetstream().consumer_info(system.ns.settings.stream_name(source),
                                                  durable)
        return info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


async def notified(system, offering_id) -> list[str]:
    return sorted(str(r["account_id"]) for r in await rows(
        system, "SELECT account_id FROM notification WHERE source_id = $1", offering_id))


async def handed_over(system, source_id) -> list[str]:
    """Every account id in a NotificationBatchIssued for this source, duplicates kept."""
    batches = [b for b in await stream_events(system, "notifications",
                                               "notification_batch_issued.v1")
               if b["source_id"] == str(source_id)]
    return sorted(a for b in batches for a in b["account_ids"])


async def offering_event(system, offering_id: str) -> bytes:
    async def find():
        for body in await stream_events(system, "venues", "offering_published.v1"):
            if body["offering_id"] == offering_id:
                return json.dumps(body).encode()
        return None

    return await eventually(find, message="OfferingPublished in the venues stream")


# --- fan-out exactly once ------------------------------------------------------------


async def test_fan_out_reaches_each_subscriber_once_under_redelivery_and_replay(world):
    system = world.system
    fans = await subscribe(system, ["dance"], n=5)
    subgenre_fans = await subscribe(system, ["contemporary_dance_xyz"], n=1)
    others = await subscribe(system, ["sports"], n=2)
    offering_id = await world.publish_offering(
        title="Tanssin ilta", genres=["dance"], subgenres=[])
    expected = sorted(fans)

    async def all_notified():
        return await notified(system, offering_id) == expected

    await eventually(all_notified, timeout=30, message="every dance subscriber notified")
    data = await offering_event(system, offering_id)
    original = json.loads(data)
    # Forced redelivery: the same event twice more, past JetStream's dedupe.
    for attempt in range(2):
        await publish(system, OfferingPublishedV1.subject(system.ns.name), data,
                      msg_id=f"redeliver-{attempt}-{original['event_id']}")
    # A replay under a new event id (a rebuilt producer): the primary key holds.
    replay = {**original, "event_id": str(uuid.uuid4())}
    await publish(system, OfferingPublishedV1.subject(system.ns.name),
                  json.dumps(replay).encode())
    await eventually(lambda: drained(system, "venues", FANOUT), timeout=30,
                     message="the fan-out consumer took every copy")

    assert await notified(system, offering_id) == expected
    assert not set(subgenre_fans + others) & set(await notified(system, offering_id))
    assert await scalar(system, "SELECT count(*) FROM processed_events WHERE consumer = $1 "
                                "AND event_id = ANY($2::uuid[])", FANOUT,
                        [original["event_id"], replay["event_id"]]) == 2

    async def all_handed_over():
        return await handed_over(system, offering_id) == expected

    await eventually(all_handed_over, timeout=30,
                     message="one hand-over to omakaiku per subscriber")
    notification = (await rows(system, "SELECT title, kind, payload::text AS p FROM "
                                       "notification WHERE source_id = $1", offering_id))[0]
    assert (notification["title"], notification["kind"]) == ("Tanssin ilta", "new_offering")
    async with system.client("notifications", world.holder_token(fans[0])) as client:
        mine = (await client.get("/me/notifications")).json()
    assert [n["source_id"] for n in mine] == [offering_id]
    assert mine[0]["handed_over"] is True and mine[0]["delivery"] == "immediate"
    print(f"verified: 5 subscribers, 3 extra deliveries of the event, 5 notifications, "
          f"5 hand-overs, 0 to the 3 holders of other genres")


async def test_two_worker_processes_consume_at_once_and_fan_out_exactly_once(
        world, tmp_path: Path):
    system = world.system
    fans = await subscribe(system, ["cinema"], n=40)
    second_spans = tmp_path / "second-worker-spans.jsonl"
    second = Supervisor(system.supervisor.base_env, tmp_path / "logs", restart_crashed=False)
    second.add(ProcessSpec(
        "notifications-worker-2", [sys.executable, "-m", "notifications", "worker"],
        # A small pull batch so that the two workers interleave on the shared consumer.
        {"KAIKU_OTEL_FILE": str(second_spans), "KAIKU_CONSUMER_BATCH_SIZE": "2"}))
    second.start_all()

    def applied_by(spans: list[dict]) -> int:
        return sum(1 for s in spans if s["service"] == "notifications-worker"
                   and s["name"] == f"{FANOUT} apply offering_published")

    def second_worker_spans() -> list[dict]:
        if not second_spans.exists():
            return []
        return [json.loads(line) for line in second_spans.read_text().splitlines() if line]

    offerings: list[str] = []
    template = json.loads(await offering_event(
        system, await world.publish_offering(title="Elokuvailta", genres=["cinema"], subgenres=[])))
    offerings.append(template["offering_id"])
    try:
        async def second_consuming() -> bool:
            return '"worker consuming"' in second.log_tail("notifications-worker-2", 200)

        await eventually(second_consuming, timeout=60, message="the second worker consuming")
        first_before = applied_by(system.spans())
        # Waves of offerings, each published twice (different Nats-Msg-Ids), until
        # both workers have applied some: they compete on one durable consumer.
        for wave in range(20):
            for _ in range(10):
                body = {**template, "event_id": str(uuid.uuid4()),
                        "offering_id": str(uuid.uuid4()), "title": f"Elokuva {wave}"}
                offerings.append(body["offering_id"])
                data = json.dumps(body).encode()
                for copy in range(2):
                    await publish(system, OfferingPublishedV1.subject(system.ns.name), data,
                                  msg_id=f"{body['event_id']}-{copy}")
            await eventually(lambda: drained(system, "venues", FANOUT), timeout=60,
                             message="both workers drained the wave")
            by_first = applied_by(system.spans()) - first_before
            by_second = applied_by(second_worker_spans())
            if by_first and by_second and wave >= 1:
                break
        assert by_first > 0 and by_second > 0, (by_first, by_second)
        print(f"workers applied {by_first} and {by_second} OfferingPublished copies")
    finally:
        second.stop_all()

    counts = await rows(system, "SELECT source_id, count(*) AS n, count(DISTINCT account_id) "
                                "AS d FROM notification WHERE source_id = ANY($1::uuid[]) "
                                "AND account_id = ANY($2::uuid[]) GROUP BY source_id",
                        offerings, fans)
    assert len(counts) == len(offerings)
    assert all(r["n"] == r["d"] == len(fans) for r in counts)

    async def every_batch_issued() -> bool:
        return not await scalar(system, "SELECT count(*) FROM notification WHERE "
                                        "source_id = ANY($1::uuid[]) AND (batch_id IS NULL "
                                        "OR batch_id IN (SELECT handover_id FROM handover "
                                        "WHERE state <> 'issued'))", offerings)

    await eventually(every_batch_issued, timeout=60, message="every notification handed over")
    batches = [b for b in await stream_events(system, "notifications",
                                               "notification_batch_issued.v1")
               if b["source_id"] in set(offerings)]
    pairs = [(b["source_id"], a) for b in batches for a in b["account_ids"]]
    assert len(pairs) == len(set(pairs)) == len(offerings) * len(fans)
    print(f"verified: {len(offerings)} offerings x {len(fans)} holders, each delivered twice, "
          f"two workers: {len(pairs)} notifications and hand-overs, none twice")


# --- region filter and delivery preference -----------------------------------------------


async def network_known(system) -> None:
    """Cards' network names Imatra (South Karelia): its golden NetworkChangedV1 on
    cards' stream, dated before any real one so that it never overwrites cards' own."""
    golden = Path(contracts.__file__).parent / "fixtures" / "network_changed.v1.json"
    event = {**json.loads(golden.read_text(encoding="utf-8")), "event_id": str(uuid.uuid4())}
    await publish(system, NetworkChangedV1.subject(system.ns.name), json.dumps(event).encode())

    async def imatra_known() -> bool:
        return await scalar(system, "SELECT region FROM network_municipality "
                                    "WHERE code = 'imatra'") == "etela-karjala"

    await eventually(imatra_known, timeout=30, message="the network projected")


async def test_region_filter_keeps_offerings_from_other_regions_away(world):
    system = world.system
    await network_known(system)
    local = await subscribe(system, ["literature"], n=2, region="etela-karjala")
    elsewhere = await subscribe(system, ["literature"], n=2, region="pirkanmaa")
    anywhere = await subscribe(system, ["literature"], n=1)
    # The world's venue is in Imatra, South Karelia (etela-karjala).
    offering_id = await world.publish_offering(title="Runoilta", genres=["literature"], subgenres=[])
    expected = sorted(local + anywhere)

    async def local_notified():
        return await notified(system, offering_id) == expected

    await eventually(local_notified, timeout=30, message="local and region-free holders")
    await eventually(lambda: drained(system, "venues", FANOUT), message="fan-out drained")
    assert not set(elsewhere) & set(await notified(system, offering_id))
    payload = json.loads(await scalar(system, "SELECT payload::text FROM notification WHERE "
                                              "source_id = $1 LIMIT 1", offering_id))
    assert payload["region"] == "etela-karjala" and payload["municipality"] == "imatra"


async def test_daily_digest_holders_get_one_digest_instead_of_immediate_mail(world):
    system = world.system
    immediate, digest = await subscribe(system, ["museums"], n=2)
    async with system.client("notifications", world.holder_token(digest)) as client:
        put = await client.put("/me/preferences", json={"delivery": "daily_digest"})
        assert put.status_code == 200, put.text
        assert (await client.get("/me/preferences")).json() == {"delivery": "daily_digest"}
        bad = await client.put("/me/preferences", json={"delivery": "hourly"})
        assert bad.status_code == 422
    offering_id = await world.publish_offering(title="Museoilta", genres=["museums"], subgenres=[])

    async def immediate_handed_over():
        return await handed_over(system, offering_id) == [immediate]

    await eventually(immediate_handed_over, timeout=30, message="the immediate hand-over")
    row = (await rows(system, "SELECT delivery, batch_id FROM notification WHERE "
                              "account_id = $1 AND source_id = $2", digest, offering_id))[0]
    assert (row["delivery"], row["batch_id"]) == ("daily_digest", None)
    async with system.client("notifications", world.holder_token(digest)) as client:
        inbox = (await client.get("/me/notifications")).json()
    assert [n["source_id"] for n in inbox] == [offering_id], "in-app at once, mail later"

    # The daily run (the worker does this after 07:00 Helsinki time for the previous
    # day); here with a cutoff just after now, against the system's own database.
    settings = system.ns.settings
    pool = await asyncpg.create_pool(settings.service_database_url("notifications"),
                                     min_size=1, max_size=2)
    application = await asyncio.to_thread(lambda: NotificationsApplication(
        application_env(settings, "notifications")))
    try:
        cutoff = datetime.now(UTC) + timedelta(seconds=1)
        await asyncio.sleep(1.1)
        await handover.claim_digests(pool, cutoff, date(2030, 1, 1))
        await handover.issue_due(pool, application)
        await handover.claim_digests(pool, cutoff, date(2030, 1, 1))  # again: nothing new
        await handover.issue_due(pool, application)
    finally:
        await pool.close()
        application.close()

    async def digest_published():
        return [d for d in await stream_events(system, "notifications",
                                                "notification_digest_issued.v1")
                if d["account_id"] == digest] or None

    digests = await eventually(digest_published, timeout=30, message="the digest published")
    assert len(digests) == 1
    assert [i["source_id"] for i in digests[0]["items"]] == [offering_id]
    assert digests[0]["items"][0]["template_key"] == "notification.new_offering"
    assert digests[0]["items"][0]["params"]["title"] == "Museoilta"


# --- hand-over failures -------------------------------------------------------------------


class Unreachable:
    """An application whose database connection cannot be made."""

    def issue_batch(self, *args: object) -> None:
        raise psycopg.OperationalError("connection refused")


async def test_hand_over_failure_is_recorded_retried_with_backoff_and_issued_once(system):
    """A hand-over whose event store fails: attempts, error and next try are
    recorded; it is not retried before the backoff; once the store is back it is
    issued exactly once; a hand-over failing MAX_ATTEMPTS times is parked.

    Runs in a database of its own on the same server, so the system's running
    worker does not pick the claimed batches up first.
    """
    settings = system.ns.settings.model_copy(
        update={"namespace": f"{system.ns.name}_ho"})
    admin = await asyncpg.connect(settings.maintenance_database_url())
    try:
        await admin.execute(f'CREATE DATABASE "{settings.database_name("notifications")}"')
    finally:
        await admin.close()
    pool = await asyncpg.create_pool(settings.service_database_url("notifications"),
                                     min_size=1, max_size=2)
    application = await asyncio.to_thread(lambda: NotificationsApplication(
        application_env(settings, "notifications")))

    async def store_unavailable(unavailable: bool) -> None:
        """A real failure: the event store's table is moved away, then back."""
        names = ("notifications_events", "notifications_events_away")
        old, new = names if unavailable else names[::-1]
        async with pool.acquire() as conn:
            await conn.execute(f"ALTER TABLE {old} RENAME TO {new}")

    try:
        await apply_schema(pool, SCHEMA)
        source, accounts = uuid.uuid4(), [uuid.uuid4() for _ in range(3)]
        async with pool.acquire() as conn:
            await projections.notify_accounts(conn, accounts, source, "bulletin", "Tiedote",
                                              {"title": "Tiedote"})
        assert await handover.claim_batches(pool) == 1
        await store_unavailable(True)
        assert await handover.issue_due(pool, application) == 0
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT state, attempts, last_error, "
                                      "next_attempt_at > now() AS later FROM handover")
        assert (row["state"], row["attempts"], row["later"]) == ("claimed", 1, True)
        assert row["last_error"]
        # Not due yet: a second pass does not retry (no hot loop).
        assert await handover.issue_due(pool, application) == 0
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT attempts FROM handover") == 1
            await conn.execute("UPDATE handover SET next_attempt_at = now()")  # time passes
        await store_unavailable(False)
        assert await handover.issue_due(pool, application) == 1
        assert await handover.issue_due(pool, application) == 0
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT handover_id, state, attempts FROM handover")
            stored = await conn.fetchval("SELECT count(*) FROM notifications_events")
        assert (row["state"], row["attempts"], stored) == ("issued", 2, 1)
        batch = application.repository.get(row["handover_id"])
        assert sorted(batch.account_ids) == sorted(str(a) for a in accounts)

        # A hand-over that never succeeds is parked as failed after MAX_ATTEMPTS.
        async with pool.acquire() as conn:
            await projections.notify_accounts(conn, accounts, uuid.uuid4(), "bulletin",
                                              "Toinen", {"title": "Toinen"})
        await handover.claim_batches(pool)
        # The database unreachable is not the batch's fault: no attempt is spent
        # (the worker's loop waits for the database; see OutageWatch).
        with pytest.raises(psycopg.OperationalError):
            await handover.issue_due(pool, Unreachable())
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT attempts FROM handover "
                                       "WHERE state = 'claimed'") == 0
        await store_unavailable(True)
        for _ in range(handover.MAX_ATTEMPTS):
            async with pool.acquire() as conn:
                await conn.execute("UPDATE handover SET next_attempt_at = now() "
                                   "WHERE state = 'claimed'")
            await handover.issue_due(pool, application)
        async with pool.acquire() as conn:
            parked = await conn.fetchrow("SELECT state, attempts FROM handover "
                                         "WHERE state <> 'issued'")
        assert (parked["state"], parked["attempts"]) == ("failed", handover.MAX_ATTEMPTS)
    finally:
        await pool.close()
        application.close()
        admin = await asyncpg.connect(settings.maintenance_database_url())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS '
                                f'"{settings.database_name("notifications")}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_a_poison_offering_event_goes_to_the_dead_letter_subject(world):
    system = world.system
    poison = {"event_id": str(uuid.uuid4()), "event_type": "offering_published",
              "schema_version": 1, "producer": "venues", "offering_id": "not-a-uuid"}
    await publish(system, OfferingPublishedV1.subject(system.ns.name),
                  json.dumps(poison).encode())

    async def dead_lettered():
        try:
            letters = await stream_events(system, "dlq", f"notifications.{FANOUT}")
        except Exception:  # noqa: BLE001 - the stream exists once a worker started
            return None
        return [x for x in letters if x.get("event_id") == poison["event_id"]] or None

    await eventually(dead_lettered, timeout=30, message="the poison event dead-lettered")
    await eventually(lambda: drained(system, "venues", FANOUT), message="consumer goes on")
