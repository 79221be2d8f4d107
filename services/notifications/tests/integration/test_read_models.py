"""Notifications' read models on a real Postgres.

- A database made by the previous release (its statements, run as it ran them)
  migrates in place: every row kept, the regions it learnt moved into the network.
- The golden fixtures, through the real consumers (``MessageProcessor.apply``:
  the handler and the processed event id in one transaction), project as the
  README says, NetworkChangedV1 included, and an offering whose municipality the
  network does not name yet waits for it.

Each test has a database of its own on the test server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

import kaiku_shared.contracts as contracts
from kaiku_shared.consumer import MessageProcessor
from kaiku_shared.contracts import (
    AccountActivatedV1,
    AccountErasedV1,
    CardIssuedV1,
    CardReplacedV1,
    GenreSubscriptionsChangedV1,
    IntegrationEvent,
    NetworkChangedV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OrganisationRegisteredV1,
    TicketCancellationRequestedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueRegisteredV1,
)
from kaiku_shared.db import apply_schema, create_pool, ensure_database, migrate
from kaiku_dev.testing import Namespace, unique_namespace
from notifications.adapters import projections, queries
from notifications.adapters.queries import Place
from notifications.adapters.schema import SCHEMA

FIXTURES = Path(contracts.__file__).parent / "fixtures"
ACCOUNT = UUID("7b3f9e2d-4c81-4a6e-9f05-d2b8a1c6e347")  # the fixtures' holder
OFFERING = UUID("5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95")
NEXT_MONTH = (datetime.now(UTC) + timedelta(days=30)).isoformat()

# The previous release's statements, as its worker and api ran them on every start
# (``apply_schema(pool, *read_models.SCHEMA)``), verbatim.
PREVIOUS_RELEASE = (
    """CREATE TABLE IF NOT EXISTS subscription_view (account_id uuid NOT NULL,
       genre text NOT NULL, version integer NOT NULL, region text,
       PRIMARY KEY (genre, account_id))""",
    "CREATE INDEX IF NOT EXISTS subscription_by_account ON subscription_view (account_id)",
    """CREATE TABLE IF NOT EXISTS subscription_version (account_id uuid PRIMARY KEY,
       version integer NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS delivery_preference (account_id uuid PRIMARY KEY,
       delivery text NOT NULL CHECK (delivery IN ('immediate', 'daily_digest')),
       updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS account_view (account_id uuid PRIMARY KEY,
       card_number text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS account_by_card ON account_view (card_number)",
    """CREATE TABLE IF NOT EXISTS card_view (card_number text PRIMARY KEY,
       issuer_organisation_id uuid NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS municipality_region_view (municipality text PRIMARY KEY,
       region text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS organisation_view (organisation_id uuid PRIMARY KEY,
       kind text NOT NULL, name text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS venue_view (venue_id uuid PRIMARY KEY,
       organisation_id uuid NOT NULL, name text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ticket_view (ticket_id uuid PRIMARY KEY,
       offering_id uuid NOT NULL, offering_title text NOT NULL, venue_id uuid NOT NULL,
       card_number text NOT NULL, starts_at timestamptz NOT NULL, status text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ticket_by_card ON ticket_view (card_number)",
    """CREATE TABLE IF NOT EXISTS notification (account_id uuid NOT NULL,
       source_id uuid NOT NULL, kind text NOT NULL, title text NOT NULL,
       payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
       read_at timestamptz, delivery text NOT NULL DEFAULT 'immediate', batch_id uuid,
       PRIMARY KEY (account_id, source_id))""",
    "CREATE INDEX IF NOT EXISTS notification_pending ON notification (delivery, source_id) "
    "WHERE batch_id IS NULL",
    "CREATE INDEX IF NOT EXISTS notification_by_batch ON notification (batch_id)",
    """CREATE TABLE IF NOT EXISTS handover (handover_id uuid PRIMARY KEY,
       kind text NOT NULL CHECK (kind IN ('batch', 'digest')), source_kind text,
       source_id uuid, account_id uuid, digest_date date, template_key text, params jsonb,
       recipients integer NOT NULL,
       state text NOT NULL CHECK (state IN ('claimed', 'issued', 'failed')),
       attempts integer NOT NULL DEFAULT 0, last_error text,
       next_attempt_at timestamptz NOT NULL DEFAULT now(),
       created_at timestamptz NOT NULL DEFAULT now(), issued_at timestamptz)""",
    "CREATE INDEX IF NOT EXISTS handover_due ON handover (next_attempt_at) "
    "WHERE state = 'claimed'",
    """CREATE TABLE IF NOT EXISTS inbox_item (owner text NOT NULL, item_id uuid NOT NULL,
       kind text NOT NULL, sender jsonb NOT NULL, subject text NOT NULL, body text NOT NULL,
       payload jsonb NOT NULL DEFAULT '{}', in_reply_to uuid,
       created_at timestamptz NOT NULL DEFAULT now(), read_at timestamptz,
       PRIMARY KEY (owner, item_id))""",
    "CREATE INDEX IF NOT EXISTS inbox_by_item ON inbox_item (item_id)",
    """CREATE TABLE IF NOT EXISTS message_view (message_id uuid PRIMARY KEY,
       sender jsonb NOT NULL, recipient jsonb NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS projection_position (name text PRIMARY KEY,
       position bigint NOT NULL)""",
)
# The first release's two tables (before the region filter and the hand-over).
FIRST_RELEASE = (
    """CREATE TABLE IF NOT EXISTS subscription_view (account_id uuid NOT NULL,
       genre text NOT NULL, version integer NOT NULL, PRIMARY KEY (genre, account_id))""",
    """CREATE TABLE IF NOT EXISTS notification (account_id uuid NOT NULL,
       source_id uuid NOT NULL, kind text NOT NULL, title text NOT NULL,
       payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
       read_at timestamptz, PRIMARY KEY (account_id, source_id))""",
)
KEPT_TABLES = ("subscription_view", "subscription_version", "delivery_preference",
               "account_view", "card_view", "organisation_view", "venue_view", "ticket_view",
               "notification", "handover", "inbox_item", "message_view",
               "projection_position", "processed_events")


@pytest.fixture
async def pool(servers):
    ns = Namespace(unique_namespace("nt"), servers)
    await ensure_database(ns.settings, "notifications")
    pool = await create_pool(ns.settings, "notifications", size=4)
    yield pool
    await pool.close()
    await ns.drop()


@pytest.fixture
async def migrated(pool):
    await migrate(pool, SCHEMA)
    return pool


def golden(contract: type[IntegrationEvent], **changes: Any) -> Any:
    data = json.loads((FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json")
                      .read_text(encoding="utf-8"))
    return contract.model_validate({**data, **changes})


async def apply(pool, event: IntegrationEvent) -> bool:
    """Through the real consumer of its contract, as the worker applies it."""
    (consumer,) = [c for c in projections.consumers() if type(event) in c.handlers]
    return await MessageProcessor(consumer, pool).apply(event)


async def table_rows(pool, table: str) -> list[str]:
    # Columns added since (NULL in old rows) are not part of what was kept.
    return sorted(r["row"] for r in await pool.fetch(
        f"SELECT (to_jsonb(t) - 'sealed_for')::text AS row FROM {table} t"))


async def notified(pool, source_id: UUID) -> list[UUID]:
    return sorted(r["account_id"] for r in await pool.fetch(
        "SELECT account_id FROM notification WHERE source_id = $1", source_id))


# --- migrations ------------------------------------------------------------------------------


async def fill_previous_release(pool) -> None:
    """One row in each table, as the previous release wrote them."""
    account, source, handover = uuid4(), uuid4(), uuid4()
    statements = [
        ("INSERT INTO subscription_view VALUES ($1, 'theatre', 3, 'etela-karjala')", account),
        ("INSERT INTO subscription_version VALUES ($1, 3)", account),
        ("INSERT INTO delivery_preference (account_id, delivery) VALUES ($1, 'daily_digest')",
         account),
        ("INSERT INTO account_view VALUES ($1, 'KXA-12345')", account),
        ("INSERT INTO card_view VALUES ('KXA-12345', $1)", uuid4()),
        ("INSERT INTO municipality_region_view VALUES ('imatra', 'etela-karjala'), "
         "('lappeenranta', 'etela-karjala')",),
        ("INSERT INTO organisation_view VALUES ($1, 'venue', 'Imatran Teatteri')", uuid4()),
        ("INSERT INTO venue_view VALUES ($1, $2, 'Imatran Teatteri')", uuid4(), uuid4()),
        ("INSERT INTO ticket_view VALUES ($1, $2, 'Runoilta', $3, 'KXA-12345', now(), "
         "'registered')", uuid4(), uuid4(), uuid4()),
        ("INSERT INTO notification (account_id, source_id, kind, title, payload, delivery, "
         "batch_id) VALUES ($1, $2, 'new_offering', 'Runoilta', '{\"region\": \"\"}', "
         "'immediate', $3)", account, source, handover),
        ("INSERT INTO handover (handover_id, kind, source_kind, source_id, template_key, "
         "params, recipients, state) VALUES ($1, 'batch', 'new_offering', $2, "
         "'notification.new_offering', '{}', 1, 'issued')", handover, source),
        ("INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body) VALUES "
         "('card:KXA-12345', $1, 'message', '{\"kind\": \"organisation\"}', 'Hei', 'Ovet')",
         uuid4()),
        ("INSERT INTO message_view (message_id, sender, recipient) VALUES ($1, '{}', '{}')",
         uuid4()),
        ("INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body, created_at) "
         "VALUES ('organisation:o', $1, 'bulletin', '{\"kind\": \"organisation\"}', "
         "'Tiedote', 'Kevät', now() - interval '10 days')", uuid4()),
        ("INSERT INTO projection_position VALUES ('notifications-inboxes', 42)",),
        ("INSERT INTO processed_events (consumer, event_id) VALUES ('notifications-cards', $1)",
         uuid4()),
    ]
    for statement, *args in statements:
        await pool.execute(statement, *args)


async def test_a_database_of_the_previous_release_migrates_in_place_keeping_every_row(pool):
    await apply_schema(pool, *PREVIOUS_RELEASE)  # as the previous release started
    await fill_previous_release(pool)
    before = {table: await table_rows(pool, table) for table in KEPT_TABLES}

    assert (await migrate(pool, SCHEMA))["notifications"] == [1, 2, 3, 4]

    assert {table: await table_rows(pool, table) for table in KEPT_TABLES} == before
    assert all(before.values())
    # What card events taught stays known, until cards' network overwrites it.
    assert await queries.place_of(pool, "lappeenranta") == Place("lappeenranta",
                                                                 "etela-karjala")
    assert not await pool.fetchval("SELECT to_regclass('municipality_region_view')")
    await apply(pool, golden(NetworkChangedV1))
    assert await pool.fetchval("SELECT status FROM network_municipality "
                               "WHERE code = 'imatra'") == "in_use"
    # A bulletin of the previous release is current for 30 days from publication.
    assert await pool.fetchval("SELECT valid_until - published_at FROM bulletin_view "
                               "WHERE title = 'Tiedote'") == timedelta(days=30)
    assert await migrate(pool, SCHEMA) == {}  # the next start finds it done


async def test_a_database_of_the_first_release_gets_the_columns_added_since(pool):
    await apply_schema(pool, *FIRST_RELEASE)
    account, source = uuid4(), uuid4()
    await pool.execute("INSERT INTO subscription_view VALUES ($1, 'dance', 1)", account)
    await pool.execute("INSERT INTO notification (account_id, source_id, kind, title, payload) "
                       "VALUES ($1, $2, 'new_offering', 'Tanssi', '{}')", account, source)

    await migrate(pool, SCHEMA)

    assert await pool.fetchrow("SELECT genre, region FROM subscription_view") == (
        "dance", None)
    assert await pool.fetchrow("SELECT title, delivery, batch_id FROM notification") == (
        "Tanssi", "immediate", None)


# --- cards' network ------------------------------------------------------------------------------


def municipality(code: str, region: str, **names: str) -> dict[str, Any]:
    return {"code": code, "region": region, "status": "in_use", "country": "FI",
            "name": names or {"fi": code.capitalize()}}


async def test_network_changes_project_newest_first_wins_by_code_or_any_name(migrated):
    pool = migrated
    whole = golden(NetworkChangedV1)
    assert await apply(pool, whole)
    assert not await apply(pool, whole)  # a redelivery changes nothing
    assert await table_rows(pool, "network_region") == [json.dumps(
        {"code": "etela-karjala", "name": {"en": "South Karelia", "fi": "Etelä-Karjala",
                                           "sv": "Södra Karelen"},
         "country": "FI", "changed_at": "2025-01-02T08:00:00.204518+00:00"},
        ensure_ascii=False)]
    assert await queries.place_of(pool, "imatra") == Place("imatra", "etela-karjala")

    later = whole.occurred_at + timedelta(days=30)
    added = golden(NetworkChangedV1, event_id=str(uuid4()), occurred_at=later.isoformat(),
                   regions=[], municipalities=[municipality(
                       "lappeenranta", "etela-karjala", fi="Lappeenranta",
                       sv="Villmanstrand", en="Lappeenranta")])
    await apply(pool, added)
    assert await queries.place_of(pool, projections.normalise("Villmanstrand")) == Place(
        "lappeenranta", "etela-karjala")

    moved = golden(NetworkChangedV1, event_id=str(uuid4()), occurred_at=later.isoformat(),
                   regions=[], municipalities=[municipality("imatra", "kaakko")])
    stale = golden(NetworkChangedV1, event_id=str(uuid4()), regions=[],
                   municipalities=[municipality("imatra", "vanha-alue")])
    await apply(pool, moved)
    await apply(pool, stale)  # older than the move: arrives late, changes nothing
    assert await queries.place_of(pool, "imatra") == Place("imatra", "kaakko")
    assert await queries.place_of(pool, "nowhere") is None
    assert await pool.fetchval("SELECT count(*) FROM network_municipality") == 2


async def subscribe(pool, region: str | None) -> UUID:
    account = uuid4()
    await apply(pool, golden(GenreSubscriptionsChangedV1, event_id=str(uuid4()),
                             account_id=str(account), aggregate_id=str(account),
                             genres=["theatre"], subgenres=[], region=region))
    return account


async def test_an_offering_waits_for_the_network_that_names_its_municipality(migrated):
    pool = migrated
    local, anywhere = await subscribe(pool, "etela-karjala"), await subscribe(pool, None)
    elsewhere = await subscribe(pool, "pirkanmaa")

    await apply(pool, golden(OfferingPublishedV1, starts_at=NEXT_MONTH))  # before the network
    assert await notified(pool, OFFERING) == [anywhere]
    assert await pool.fetchval("SELECT municipality FROM fanout_awaiting_network "
                               "WHERE offering_id = $1", OFFERING) == "imatra"

    await apply(pool, golden(NetworkChangedV1))
    assert await notified(pool, OFFERING) == sorted([local, anywhere])
    assert not await pool.fetchval("SELECT count(*) FROM fanout_awaiting_network")
    payload = json.loads(await pool.fetchval(
        "SELECT payload::text FROM notification WHERE account_id = $1", local))
    assert (payload["municipality"], payload["region"]) == ("imatra", "etela-karjala")

    # A replay under a new event id, now that the network is known: nothing new.
    await apply(pool, golden(OfferingPublishedV1, event_id=str(uuid4()), starts_at=NEXT_MONTH))
    assert await notified(pool, OFFERING) == sorted([local, anywhere])
    assert elsewhere not in await notified(pool, OFFERING)


async def test_a_municipality_the_network_never_names_waits_without_failing(migrated):
    pool = migrated
    anywhere, local = await subscribe(pool, None), await subscribe(pool, "etela-karjala")
    await apply(pool, golden(NetworkChangedV1))
    await apply(pool, golden(OfferingPublishedV1, municipality="Atlantis", starts_at=NEXT_MONTH))
    assert await notified(pool, OFFERING) == [anywhere]
    await apply(pool, golden(NetworkChangedV1, event_id=str(uuid4())))  # still not named
    assert await pool.fetchval("SELECT count(*) FROM fanout_awaiting_network") == 1
    assert local not in await notified(pool, OFFERING)


async def test_an_offering_that_began_while_waiting_stops_waiting(migrated):
    pool = migrated
    anywhere, local = await subscribe(pool, None), await subscribe(pool, "etela-karjala")
    await apply(pool, golden(OfferingPublishedV1))  # the fixture's offering was in 2025
    assert await pool.fetchval("SELECT count(*) FROM fanout_awaiting_network") == 1
    await apply(pool, golden(NetworkChangedV1))
    assert await pool.fetchval("SELECT count(*) FROM fanout_awaiting_network") == 0
    assert await notified(pool, OFFERING) == [anywhere]  # no news of the past for `local`
    assert local != anywhere


# --- every handler on its golden fixture, in the order of the fixtures' story --------------------


async def test_the_golden_fixtures_project_as_the_readme_says(migrated):
    pool = migrated
    organisation = golden(OrganisationRegisteredV1)
    for contract in (OrganisationRegisteredV1, CardIssuedV1, AccountActivatedV1,
                     VenueRegisteredV1, GenreSubscriptionsChangedV1, NetworkChangedV1,
                     OfferingPublishedV1, TicketRegisteredV1):
        assert await apply(pool, golden(contract)), contract.__name__
    assert await pool.fetchval("SELECT name FROM organisation_view WHERE organisation_id = "
                               "$1", organisation.organisation_id) == organisation.name
    assert await queries.card_of(pool, ACCOUNT) == "KXA-12345"
    assert await queries.distributor_issued(pool, organisation.organisation_id, "KXA-12345")
    venue = golden(VenueRegisteredV1)
    assert await queries.venue_sold_to(pool, venue.organisation_id, "KXA-12345")
    assert await notified(pool, OFFERING) == [ACCOUNT]  # theatre, in South Karelia

    await apply(pool, golden(OfferingChangedV1))
    changed = projections.offering_changed_notice(golden(OfferingChangedV1))[0]
    assert await notified(pool, changed) == [ACCOUNT]
    await apply(pool, golden(TicketCancellationRequestedV1))
    (request,) = await queries.inbox(pool, [f"organisation:{venue.organisation_id}"], True)
    assert request["kind"] == "ticket_cancellation_request"
    assert request["subject"] == "Cancellation request: Nummisuutarit (lisäesitys)"
    cancelled = golden(TicketCancelledV1)
    await apply(pool, cancelled)
    assert await notified(pool, cancelled.ticket_id) == [ACCOUNT]
    assert await queries.ticket_holders(pool, OFFERING, ("registered",)) == []

    await pool.execute("INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body) "
                       "VALUES ('card:KXA-12345', $1, 'message', '{}', 'Hei', 'Ovet')", uuid4())
    await apply(pool, golden(CardReplacedV1))
    assert await queries.card_of(pool, ACCOUNT) == "MTR-40721"
    assert await queries.distributor_issued(pool, organisation.organisation_id, "MTR-40721")
    assert len(await queries.inbox(pool, ["card:MTR-40721"], False)) == 1

    await apply(pool, golden(AccountErasedV1))
    for table in ("subscription_view", "subscription_version", "account_view", "notification"):
        assert not await pool.fetchval(f"SELECT count(*) FROM {table} WHERE account_id = $1",
                                       ACCOUNT), table
    assert await queries.inbox(pool, ["card:MTR-40721", f"account:{ACCOUNT}"], False) == []
