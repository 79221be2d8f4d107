"""OmaKaiku's tables on a real Postgres: the migrations adopt a database the
previous release made (its rows kept), every projection's SQL runs against them
with the golden fixtures, and cards' NetworkChangedV1 places the offering."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

import kaiku_shared.contracts as contracts
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    IntegrationEvent,
    LibraryFeeCoveredV1,
    NetworkChangedV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OfferingTermsPublishedV1,
    SwimmingVisitRegisteredV1,
    TicketCancellationRefusedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueChangedV1,
    VenueRegisteredV1,
)
from kaiku_shared.db import create_pool, ensure_database, migrate
from omakaiku.adapters import projections, queries
from omakaiku.adapters.schema import SCHEMA

FIXTURES = Path(contracts.__file__).parent / "fixtures"

# What the release before migrations ran on every start (read_models.SCHEMA,
# delivery.DELIVERY_SCHEMA, signin_queue.SIGNIN_QUEUE_SCHEMA), verbatim.
PREVIOUS_RELEASE_DDL = (
    """CREATE TABLE IF NOT EXISTS card_view (
        card_number  text PRIMARY KEY, issuer uuid, status text NOT NULL,
        version integer NOT NULL)""",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS valid_until date",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS children integer",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS region text",
    """CREATE TABLE IF NOT EXISTS history_view (
        ticket_id uuid PRIMARY KEY, card_number text NOT NULL, offering_id uuid NOT NULL,
        offering_title text, venue_id uuid NOT NULL, venue_name text, starts_at timestamptz,
        children integer NOT NULL, status text NOT NULL, registered_at timestamptz,
        cancelled_at timestamptz, version integer NOT NULL)""",
    "ALTER TABLE history_view ADD COLUMN IF NOT EXISTS cancellation_refused text",
    "CREATE INDEX IF NOT EXISTS history_view_card ON history_view (card_number, starts_at)",
    """CREATE TABLE IF NOT EXISTS offering_view (
        offering_id uuid PRIMARY KEY, venue_id uuid NOT NULL, venue_name text NOT NULL,
        title text NOT NULL, kind text NOT NULL, genres text[] NOT NULL,
        subgenres text[] NOT NULL, starts_at timestamptz NOT NULL,
        municipality text NOT NULL, region text, version integer NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS offering_view_starts ON offering_view (starts_at)",
    """CREATE TABLE IF NOT EXISTS holder_keys (
        account_id uuid PRIMARY KEY, wrapped_key bytea NOT NULL, email_lookup bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
    "CREATE INDEX IF NOT EXISTS holder_keys_email ON holder_keys (email_lookup)",
    """CREATE TABLE IF NOT EXISTS signin_codes (
        id bigserial PRIMARY KEY, email_lookup bytea NOT NULL, kind text NOT NULL,
        secret_hash bytea NOT NULL, account_id uuid, expires_at timestamptz NOT NULL,
        used_at timestamptz, attempts integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now())""",
    "CREATE INDEX IF NOT EXISTS signin_codes_lookup ON signin_codes (email_lookup, created_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS signin_codes_secret ON signin_codes (secret_hash)",
    """CREATE TABLE IF NOT EXISTS signin_attempts (
        email_lookup bytea NOT NULL, kind text NOT NULL,
        at timestamptz NOT NULL DEFAULT now())""",
    "CREATE INDEX IF NOT EXISTS signin_attempts_lookup ON signin_attempts (email_lookup, at)",
    """CREATE TABLE IF NOT EXISTS mail_deliveries (
        id bigserial PRIMARY KEY, account_id uuid NOT NULL, kind text NOT NULL,
        reference text, outcome text NOT NULL, detail text,
        at timestamptz NOT NULL DEFAULT now())""",
    "CREATE INDEX IF NOT EXISTS mail_deliveries_account ON mail_deliveries (account_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS mail_deliveries_once ON mail_deliveries "
    "(account_id, kind, reference) WHERE outcome = 'sent'",
    """CREATE TABLE IF NOT EXISTS signin_requests (
        id bigserial PRIMARY KEY, email_lookup bytea NOT NULL, language text,
        expires_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS signin_rate (
        scope text NOT NULL, subject bytea NOT NULL, window_seconds integer NOT NULL,
        window_start timestamptz NOT NULL, hits integer NOT NULL,
        PRIMARY KEY (scope, subject, window_seconds, window_start))""",
    "CREATE INDEX IF NOT EXISTS signin_rate_start ON signin_rate (window_start)",
)

# Columns later migrations add to the previous release's tables.
ADDED_SINCE = {"card_view": {"closed_at", "retention_settled_for"},
               "history_view": {"kind", "detail"}}

OLD_ROWS = {
    "card_view": "INSERT INTO card_view VALUES ('KXA-11111', $1, 'open', 2, '2027-01-31', 3, "
                 "'etela-karjala')",
    "history_view": "INSERT INTO history_view VALUES ($2, 'KXA-11111', $2, 'Ooppera', $1, "
                    "'Teatteri', now(), 1, 'registered', now(), NULL, 1, 'ei käy')",
    "offering_view": "INSERT INTO offering_view VALUES ($2, $1, 'Teatteri', 'Ooppera', "
                     "'performance', '{music}', '{opera}', now() + interval '9 days', "
                     "'imatra', 'etela-karjala', 1)",
    "holder_keys": "INSERT INTO holder_keys (account_id, wrapped_key, email_lookup) "
                   "VALUES ($1, '\\x01', '\\x02')",
    "signin_codes": "INSERT INTO signin_codes (email_lookup, kind, secret_hash, account_id, "
                    "expires_at) VALUES ('\\x02', 'code', '\\x03', $1, now())",
    "signin_attempts": "INSERT INTO signin_attempts (email_lookup, kind) VALUES ('\\x02', "
                       "'failure')",
    "mail_deliveries": "INSERT INTO mail_deliveries (account_id, kind, reference, outcome) "
                       "VALUES ($1, 'welcome', 'r', 'sent')",
    "signin_requests": "INSERT INTO signin_requests (email_lookup, expires_at) "
                       "VALUES ('\\x02', now())",
    "signin_rate": "INSERT INTO signin_rate VALUES ('address', '\\x02', 60, now(), 1)",
}


# Columns that migrations after the baseline add to the previous release's tables.


def golden(contract: type[IntegrationEvent], **changes: Any) -> Any:
    path = FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json"
    return contract.model_validate({**json.loads(path.read_text(encoding="utf-8")), **changes})


@pytest.fixture
async def database(namespace):
    """A database of its own, dropped afterwards; each test gets a fresh one."""
    service = f"omakaikuschema{uuid4().hex[:8]}"
    await ensure_database(namespace.settings, service)
    pool = await create_pool(namespace.settings, service, size=4)
    yield pool
    await pool.close()
    conn = await asyncpg.connect(namespace.settings.maintenance_database_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS '
                           f'"{namespace.settings.database_name(service)}" WITH (FORCE)')
    finally:
        await conn.close()


async def columns(conn: asyncpg.Connection) -> dict[str, set[str]]:
    rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = 'public'")
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


async def test_the_migrations_adopt_the_previous_releases_database_with_its_rows(database):
    account, other = uuid4(), uuid4()
    async with database.acquire() as conn:
        for statement in PREVIOUS_RELEASE_DDL:
            await conn.execute(statement)
        for table, insert in OLD_ROWS.items():
            used = max((int(n) for n in re.findall(r"\$(\d)", insert)), default=0)
            await conn.execute(insert, *(account, other)[:used])
        before = await columns(conn)
        rows_before = {table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")]
                       for table in OLD_ROWS}

    assert await migrate(database, SCHEMA) == {"kaiku-infrastructure": [1],
                                               "omakaiku": [1, 2, 3, 4, 5]}

    async with database.acquire() as conn:
        after = await columns(conn)
        for table, rows in rows_before.items():
            now = [dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")]
            assert [{k: r[k] for k in before[table]} for r in now] == rows, table
            # nothing lost; added only what the migrations after the baseline add
            assert after[table] == before[table] | ADDED_SINCE.get(table, set()), table
        assert {"network_regions", "network_municipalities"} <= set(after)
        assert {"push_subscriptions", "push_preferences", "push_outbox"} <= set(after)
        # a ticket from before the uses of other kinds is a ticket
        assert await conn.fetchval("SELECT kind FROM history_view") == "ticket"
        versions = await conn.fetch("SELECT version, name FROM schema_migrations "
                                    "WHERE component = 'omakaiku' ORDER BY version")
    assert [(r["version"], r["name"]) for r in versions] == [
        (1, "baseline"), (2, "the network's reference data from cards"),
        (3, "card end times, retention notices and the erasure audit"),
        (4, "offering details for holders; swimming and library uses"),
        (5, "web push devices, preferences and the push outbox")]
    assert await migrate(database, SCHEMA) == {}  # the next start: nothing to do
    # The adopted tables keep working for the queries.
    assert (await queries.card(database, "KXA-11111"))["children"] == 3
    assert [r["ticket_id"] for r in await queries.history(database, ["KXA-11111"])] == [other]


async def test_a_card_closed_before_retention_counts_from_the_migration(database):
    """Migration 3: the closing time was never kept, so it counts from the
    migration — never sooner than the truth."""
    async with database.acquire() as conn:
        for statement in PREVIOUS_RELEASE_DDL:
            await conn.execute(statement)
        await conn.execute("INSERT INTO card_view VALUES ('KXA-33333', $1, 'closed', 2, "
                           "'2027-01-31', 0, 'etela-karjala')", uuid4())
        await conn.execute("INSERT INTO card_view VALUES ('KXA-44444', $1, 'open', 2, "
                           "'2027-01-31', 0, 'etela-karjala')", uuid4())
        started = await conn.fetchval("SELECT now()")
    await migrate(database, SCHEMA)
    async with database.acquire() as conn:
        rows = {r["card_number"]: r["closed_at"] for r in await conn.fetch(
            "SELECT card_number, closed_at FROM card_view")}
    assert rows["KXA-33333"] >= started and rows["KXA-44444"] is None


async def test_a_first_release_database_gains_the_columns_added_since(database):
    async with database.acquire() as conn:
        await conn.execute("CREATE TABLE card_view (card_number text PRIMARY KEY, issuer uuid, "
                           "status text NOT NULL, version integer NOT NULL)")
        await conn.execute("INSERT INTO card_view VALUES ('KXA-22222', $1, 'open', 1)", uuid4())
    await migrate(database, SCHEMA)
    async with database.acquire() as conn:
        assert {"valid_until", "children", "region"} <= (await columns(conn))["card_view"]
        assert await conn.fetchval("SELECT status FROM card_view") == "open"


async def apply(pool: asyncpg.Pool, consumer: str, event: Any) -> None:
    handler = projections.PROJECTIONS[consumer][1][type(event)]
    async with pool.acquire() as conn, conn.transaction():
        await handler(event, conn)


async def test_every_projection_runs_on_the_tables_with_its_golden_fixture(database):
    await migrate(database, SCHEMA)
    for contract in (CardIssuedV1, CardRenewedV1, CardChangedV1, CardReplacedV1):
        await apply(database, "omakaiku-cards", golden(contract))
    card = await queries.card(database, "KXA-12345")
    assert (card["status"], card["children"], card["version"]) == ("open", 3, 3)
    replacement = await queries.card(database, "MTR-40721")
    assert (replacement["issuer"], replacement["children"]) == (card["issuer"], 3)
    closing = golden(CardClosedV1)
    await apply(database, "omakaiku-cards", closing)
    closed = await queries.card(database, "KXA-12345")
    assert (closed["status"], closed["closed_at"]) == ("closed", closing.occurred_at)

    for contract in (TicketRegisteredV1, TicketCancellationRefusedV1):
        await apply(database, "omakaiku-history", golden(contract))
    await apply(database, "omakaiku-history", golden(OfferingChangedV1))
    (entry,) = await queries.history(database, ["KXA-12345"])
    assert (entry["status"], entry["offering_title"], entry["cancellation_refused"]) == (
        "registered", "Nummisuutarit (lisäesitys)",
        "The event has started; the ticket can no longer be cancelled.")
    await apply(database, "omakaiku-history", golden(TicketCancelledV1))
    assert (await queries.history(database, ["KXA-12345"]))[0]["status"] == "cancelled"


async def test_network_changed_projects_and_places_the_offering(database):
    await migrate(database, SCHEMA)
    now = datetime.now(UTC)
    soon = now + timedelta(days=10)

    async def offerings(**filters: Any) -> list[tuple[str, str | None]]:
        rows = await queries.offerings(database, now=now, **filters)
        return sorted((r["municipality"], r["region"]) for r in rows)

    # Before the network: no regions, an offering kept by its folded municipality.
    assert await queries.region_codes(database) == []
    await apply(database, "omakaiku-offering", golden(
        OfferingPublishedV1, starts_at=soon.isoformat(), municipality="Imatra"))
    await apply(database, "omakaiku-offering", golden(
        OfferingPublishedV1, offering_id=str(uuid4()), starts_at=soon.isoformat(),
        municipality="Villmanstrand"))
    assert await offerings() == [("imatra", None), ("villmanstrand", None)]
    assert await offerings(municipality="imatra") == [("imatra", None)]

    # The whole network (the golden fixture: Etelä-Karjala with Imatra).
    await apply(database, "omakaiku-network", golden(NetworkChangedV1))
    assert await queries.region_codes(database) == ["etela-karjala"]
    assert await offerings(region="etela-karjala") == [("imatra", "etela-karjala")]

    # Then one municipality changed: Lappeenranta, also known as Villmanstrand.
    changed = golden(NetworkChangedV1, occurred_at=(now - timedelta(days=1)).isoformat(),
                     regions=[], municipalities=[{
                         "code": "lappeenranta", "region": "etela-karjala", "status": "in_use",
                         "name": {"fi": "Lappeenranta", "sv": "Villmanstrand",
                                  "en": "Lappeenranta"}}])
    await apply(database, "omakaiku-network", changed)
    assert await offerings(municipality="Villmanstrand") == [("lappeenranta", "etela-karjala")]
    assert await offerings(municipality="LAPPEENRANTA") == [("lappeenranta", "etela-karjala")]
    assert await offerings(region="etela-karjala") == [
        ("imatra", "etela-karjala"), ("lappeenranta", "etela-karjala")]

    # A later offering in a known municipality is placed when it arrives.
    await apply(database, "omakaiku-offering", golden(
        OfferingPublishedV1, offering_id=str(uuid4()), starts_at=soon.isoformat(),
        municipality="villmanstrand"))
    assert await offerings(municipality="lappeenranta") == [
        ("lappeenranta", "etela-karjala")] * 2

    # An older change delivered late does not undo the newer one.
    stale = golden(NetworkChangedV1, occurred_at="2020-01-01T00:00:00Z", regions=[],
                   municipalities=[{"code": "imatra", "region": "kymenlaakso",
                                    "status": "pilot", "name": {"fi": "Imatra"}}])
    await apply(database, "omakaiku-network", stale)
    async with database.acquire() as conn:
        assert await conn.fetchval("SELECT region FROM network_municipalities "
                                   "WHERE code = 'imatra'") == "etela-karjala"
    assert await offerings(municipality="imatra") == [("imatra", "etela-karjala")]


# --- offering details (migration 3) ----------------------------------------------------


async def offering_in_view(database) -> None:
    """The offering as omakaiku-offering keeps it (the details join onto it)."""
    await apply(database, "omakaiku-offering", golden(OfferingPublishedV1))


async def test_card_places_left_whatever_the_order_and_however_often(database):
    await migrate(database, SCHEMA)
    await offering_in_view(database)
    details = "omakaiku-offering-details"
    offering_id = golden(OfferingPublishedV1).offering_id
    await apply(database, details, golden(OfferingPublishedV1))
    assert (await queries.offering(database, offering_id))["card_places_left"] == 10
    registered = golden(TicketRegisteredV1)  # two places (the holder and a child)
    for _ in range(2):  # a redelivery counts once
        await apply(database, details, registered)
    assert (await queries.offering(database, offering_id))["card_places_left"] == 8
    # A cancellation that arrives before its registration still releases it.
    early = uuid4()
    await apply(database, details, golden(TicketCancelledV1, ticket_id=early))
    await apply(database, details, golden(TicketRegisteredV1, ticket_id=early, places=3))
    assert (await queries.offering(database, offering_id))["card_places_left"] == 8
    await apply(database, details, golden(TicketCancelledV1))
    assert (await queries.offering(database, offering_id))["card_places_left"] == 10
    # An older event's places (before they travelled): the holder and the children.
    await apply(database, details, golden(TicketRegisteredV1, ticket_id=uuid4(), places=None,
                                          children=3))
    assert (await queries.offering(database, offering_id))["card_places_left"] == 6
    # A changed card cap counts; an older one arriving late does not.
    await apply(database, details, golden(OfferingChangedV1, card_cap=20, aggregate_version=9))
    await apply(database, details, golden(OfferingChangedV1, card_cap=5, aggregate_version=8))
    assert (await queries.offering(database, offering_id))["card_places_left"] == 16


async def test_venue_contact_and_terms_reach_the_offering(database):
    await migrate(database, SCHEMA)
    await offering_in_view(database)
    details = "omakaiku-offering-details"
    offering_id = golden(OfferingPublishedV1).offering_id
    await apply(database, details, golden(VenueRegisteredV1, aggregate_version=1))
    await apply(database, details, golden(OfferingTermsPublishedV1))
    row = await queries.offering(database, offering_id)
    assert json.loads(row["venue_contact"]) == golden(VenueRegisteredV1).contact.model_dump(
        exclude_none=True)
    assert json.loads(row["limits"])["one_ticket_per_card"] == golden(
        OfferingTermsPublishedV1).one_ticket_per_card
    # A change without name or contact (an event from before they travelled) keeps them.
    await apply(database, details, golden(VenueChangedV1, name=None, contact=None,
                                          aggregate_version=3))
    assert (await queries.offering(database, offering_id))["venue_display_name"] == golden(
        VenueRegisteredV1).name
    await apply(database, details, golden(VenueChangedV1, name="Uusi", aggregate_version=4))
    assert (await queries.offering(database, offering_id))["venue_display_name"] == "Uusi"


async def test_swimming_visits_and_library_fees_join_the_history_once(database):
    await migrate(database, SCHEMA)
    visit = golden(SwimmingVisitRegisteredV1)
    for _ in range(2):
        await apply(database, "omakaiku-history", visit)
    await apply(database, "omakaiku-history", golden(LibraryFeeCoveredV1))
    rows = await queries.history(database, [visit.card_number])
    assert sorted(r["kind"] for r in rows) == ["library_fee", "swimming_visit"]
    assert all(r["offering_id"] is None and r["status"] == "used" for r in rows)
    # Not a ticket: nothing to cancel, nothing upcoming.
    assert await queries.ticket(database, visit.event_id) is None
