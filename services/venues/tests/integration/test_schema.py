"""venues' read models on a real Postgres: the baseline migration adopts a
database made by an earlier release's DDL in place, keeping its rows, and
leaves it exactly like a database made fresh; the projections then apply the
golden fixtures to it with their real SQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest

import kaiku_shared.contracts as contracts
from kaiku_shared.contracts import IntegrationEvent
from kaiku_shared.db import Schema, create_pool, ensure_database, migrate
from kaiku_dev.testing import Namespace, unique_namespace
from venues.adapters import projections, queries
from venues.adapters.schema import COMPONENT, SCHEMA

# The DDL of the release before migrations, copied as it was (not imported: it
# must not change with the schema it is checked against). Each start ran it all.
PREVIOUS_RELEASE = (
    """
    CREATE TABLE IF NOT EXISTS card_validity_view (
        card_number  text PRIMARY KEY,
        valid_from   date,
        valid_until  date,
        children     integer,
        status       text NOT NULL,
        version      integer NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS offering_view (
        offering_id  uuid PRIMARY KEY,
        venue_id     uuid NOT NULL,
        venue_name   text NOT NULL,
        title        text NOT NULL,
        kind         text NOT NULL,
        genres       text[] NOT NULL,
        subgenres    text[] NOT NULL,
        starts_at    timestamptz NOT NULL,
        municipality text NOT NULL,
        capacity     integer NOT NULL,
        card_cap     integer NOT NULL,
        version      integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS offering_view_starts ON offering_view (starts_at)",
    # Added with the guideline's terms; ADD COLUMN keeps older databases working.
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS status text NOT NULL "
    "DEFAULT 'published'",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS cancel_reason text",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS production text NOT NULL "
    "DEFAULT 'own'",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS venue_kind text",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS sales_opens_at timestamptz",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS card_tickets_excluded text",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS limits jsonb NOT NULL "
    "DEFAULT '{}'::jsonb",
    "ALTER TABLE offering_view ADD COLUMN IF NOT EXISTS contact jsonb NOT NULL "
    "DEFAULT '{}'::jsonb",
    # One row per answer, so a redelivered or repeated FeedbackGiven counts once;
    # only averages over at least 3 answers ever left.
    """
    CREATE TABLE IF NOT EXISTS feedback_view (
        ticket_id     uuid PRIMARY KEY,
        venue_id      uuid NOT NULL,
        offering_id   uuid NOT NULL,
        accessibility smallint NOT NULL,
        meaning       smallint NOT NULL,
        interest      smallint NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS feedback_view_venue ON feedback_view (venue_id)",
    # omakaiku's public keys for mobile cards, by kid; several at once (rotation).
    """
    CREATE TABLE IF NOT EXISTS mobile_card_key_view (
        kid          text PRIMARY KEY,
        algorithm    text NOT NULL,
        kty          text NOT NULL,
        crv          text NOT NULL,
        x            text NOT NULL,
        published_at timestamptz NOT NULL
    )
    """,
    # Venues by organisation and by the ticket agents they list (GET /venues). A
    # venue's profile and limits are fixed when it is registered, so one row per
    # VenueRegistered is the whole story.
    """
    CREATE TABLE IF NOT EXISTS venue_view (
        venue_id        uuid PRIMARY KEY,
        organisation_id uuid NOT NULL,
        name            text NOT NULL,
        kind            text NOT NULL,
        municipality    text NOT NULL,
        timezone        text NOT NULL,
        ticket_agents   uuid[] NOT NULL DEFAULT '{}',
        contact         jsonb NOT NULL DEFAULT '{}'::jsonb,
        limits          jsonb NOT NULL DEFAULT '{}'::jsonb,
        version         integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS venue_view_organisation ON venue_view (organisation_id)",
    "CREATE INDEX IF NOT EXISTS venue_view_agents ON venue_view USING gin (ticket_agents)",
)


# The first release's DDL: no offering terms, feedback, keys or venue list yet.
FIRST_RELEASE = PREVIOUS_RELEASE[:3]

TABLES = ("card_validity_view", "offering_view", "feedback_view", "mobile_card_key_view",
          "venue_view")
FIXTURES = Path(contracts.__file__).parent / "fixtures"
VENUE = UUID("0d9a7c3b-1e52-4b8f-a6d4-73c2e91f5a08")
OLD_OFFERING = UUID("9f1d3b57-0c2e-4a68-8e4f-6b2d0a9c7e13")
OLD_VENUE = UUID("a3c5e7f9-2b4d-4e6f-8a0c-1d3f5b7d9e2a")
ORG = UUID("b81e4d02-6a3f-4f9c-8c55-2e7a1d9b6f30")


@pytest.fixture
async def databases(servers):
    """Two databases named as venues' own: one to adopt, one made fresh."""
    made = []
    for prefix in ("vold", "vnew"):
        ns = Namespace(unique_namespace(prefix), servers)
        await ensure_database(ns.settings, "venues")
        made.append((ns, await create_pool(ns.settings, "venues", size=2)))
    yield [pool for _, pool in made]
    for ns, pool in made:
        await pool.close()
        await ns.drop()


async def run_ddl(pool: asyncpg.Pool, statements: tuple[str, ...]) -> None:
    async with pool.acquire() as conn:
        for statement in statements:
            await conn.execute(statement)


async def layout(pool: asyncpg.Pool) -> dict[str, Any]:
    """The tables' columns (in order, with type, nullability, default) and indexes."""
    columns = await pool.fetch(
        "SELECT table_name, ordinal_position, column_name, data_type, udt_name, "
        "is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = ANY($1) "
        "ORDER BY table_name, ordinal_position", list(TABLES))
    indexes = await pool.fetch(
        "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = 'public' AND tablename = ANY($1) ORDER BY indexname",
        list(TABLES))
    return {"columns": [tuple(r) for r in columns], "indexes": [tuple(r) for r in indexes]}


async def old_rows(pool: asyncpg.Pool) -> None:
    """What a database of the first release holds: a card and an offering."""
    await pool.execute(
        "INSERT INTO card_validity_view VALUES ('KXB-54321', '2025-01-01', '2026-12-31', 1, "
        "'open', 3)")
    await pool.execute(
        "INSERT INTO offering_view VALUES ($1, $2, 'Kulttuuritalo', 'Talvikonsertti', "
        "'performance', '{music}', '{classical}', '2026-02-01T17:00:00Z', 'oulu', 300, 9, 1)",
        OLD_OFFERING, OLD_VENUE)


async def test_a_first_release_database_adopts_the_baseline_and_keeps_its_rows(
        databases) -> None:
    old, fresh = databases
    await run_ddl(old, FIRST_RELEASE)
    await old_rows(old)
    assert (await migrate(old, SCHEMA))[COMPONENT] == [1, 2, 3]
    await migrate(fresh, SCHEMA)
    assert await layout(old) == await layout(fresh)
    card = await queries.card_standing(old, "KXB-54321")
    assert (card.status, card.children, str(card.valid_until)) == ("open", 1, "2026-12-31")
    rows, total = await queries.list_offerings(
        old, genre="music", subgenre=None, municipality="Oulu", starts_from=None,
        limit=10, offset=0)
    assert total == 1
    # The columns added since take their defaults for the rows already there.
    assert (rows[0]["offering_id"], rows[0]["status"], rows[0]["production"],
            rows[0]["card_cap"]) == (OLD_OFFERING, "published", "own", 9)


async def test_a_database_of_the_release_before_migrations_keeps_every_table(
        databases) -> None:
    old, fresh = databases
    await run_ddl(old, PREVIOUS_RELEASE)
    await run_ddl(old, PREVIOUS_RELEASE)  # each start ran it again
    await old_rows(old)
    await old.execute(
        "INSERT INTO venue_view VALUES ($1, $2, 'Kulttuuritalo', 'performing_arts', 'oulu', "
        "'Europe/Helsinki', '{}', '{}', '{\"ticket_agents\": []}', 1)", OLD_VENUE, ORG)
    await old.executemany(
        "INSERT INTO feedback_view VALUES (gen_random_uuid(), $1, $2, $3, 4, 5)",
        [(OLD_VENUE, OLD_OFFERING, score) for score in (1, 2, 3, 2, 2)])
    await old.execute("INSERT INTO mobile_card_key_view VALUES ('k1', 'EdDSA', 'OKP', "
                      "'Ed25519', 'x1', now())")
    before = await layout(old)
    assert (await migrate(old, SCHEMA))[COMPONENT] == [1, 2, 3]
    assert await migrate(old, SCHEMA) == {}  # the next start finds it done
    await migrate(fresh, SCHEMA)
    assert await layout(old) == await layout(fresh)
    # The baseline is exactly that release's tables: only version 2's feedback_view
    # (re-keyed) and version 3's new ticket_view differ from them.
    assert without_feedback(await layout(old)) == without_feedback(before)
    assert [r["name"] for r in (await queries.list_venues(
        old, organisation_id=ORG, limit=10, offset=0))[0]] == ["Kulttuuritalo"]
    feedback = await queries.feedback_averages(old, OLD_VENUE, now=AFTER_WINDOW)
    assert feedback["overall"]["responses"] == 5
    assert feedback["overall"]["accessibility"] == 2.0
    assert feedback["offerings"][0]["title"] == "Talvikonsertti"
    assert set(await queries.mobile_card_keys(old)) == {"k1"}
    assert await old.fetchval("SELECT count(*) FROM card_validity_view") == 1
    assert await queries.offering_tickets(old, OLD_OFFERING, None) == []  # version 3's list


def without_feedback(tables: dict[str, Any]) -> dict[str, Any]:
    return {kind: [row for row in rows
                   if not str(row[0]).startswith(("feedback_view", "ticket_view"))]
            for kind, rows in tables.items()}


# OLD_OFFERING starts 2026-02-01: its feedback window is long closed by then.
AFTER_WINDOW = datetime(2026, 6, 1, tzinfo=UTC)


async def test_a_previous_release_database_re_keys_its_feedback_keeping_every_answer(
        databases) -> None:
    """Version 1 kept each answer under the ticket it was given for. Version 2
    gives every answer a random id and forgets the tickets: every answer stays,
    with its venue, offering and scores; no ticket id is left in the table."""
    old, fresh = databases
    await run_ddl(old, PREVIOUS_RELEASE)
    await old_rows(old)
    assert (await migrate(old, Schema(COMPONENT, SCHEMA.migrations[:1])))[COMPONENT] == [1]
    other_offering = UUID("6e8a0c2f-4b1d-4f3e-9a5c-7d9b1e3f5a60")
    answers = [(uuid4(), OLD_VENUE, OLD_OFFERING, a, m, i)
               for a, m, i in ((5, 4, 3), (3, 3, 3), (4, 5, 2), (1, 0, 5), (2, 2, 2), (4, 4, 4))]
    answers += [(uuid4(), OLD_VENUE, other_offering, 3, 3, 3),
                (uuid4(), ORG, OLD_OFFERING, 0, 0, 0)]
    await old.executemany("INSERT INTO feedback_view (ticket_id, venue_id, offering_id, "
                          "accessibility, meaning, interest) VALUES ($1, $2, $3, $4, $5, $6)",
                          answers)
    before = await queries.feedback_averages(old, OLD_VENUE, now=AFTER_WINDOW)

    assert (await migrate(old, SCHEMA))[COMPONENT] == [2, 3]
    assert await migrate(old, SCHEMA) == {}
    await migrate(fresh, SCHEMA)
    assert await layout(old) == await layout(fresh)

    rows = await old.fetch("SELECT * FROM feedback_view")
    assert "ticket_id" not in rows[0].keys()
    assert sorted(tuple(r.values())[1:] for r in rows) == sorted(a[1:] for a in answers)
    feedback_ids = {r["feedback_id"] for r in rows}
    assert len(feedback_ids) == len(answers)
    tickets = {a[0] for a in answers}
    assert not feedback_ids & tickets
    assert not [r for r in rows if any(str(t) in str(tuple(r.values())) for t in tickets)]
    assert await queries.feedback_averages(old, OLD_VENUE, now=AFTER_WINDOW) == before
    assert before["overall"]["responses"] == 6 and before["overall"]["meaning"] == 3.0
    # The projection writes the new table as it is.
    async with old.acquire() as conn, conn.transaction():
        event = golden(contracts.FeedbackGivenV2)
        await projections.on_feedback_given(event, conn, None)
        await projections.on_feedback_given(event, conn, None)
    assert await old.fetchval("SELECT count(*) FROM feedback_view") == len(answers) + 1


def golden(contract: type[IntegrationEvent]) -> Any:
    path = FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json"
    return contract.model_validate(json.loads(path.read_text(encoding="utf-8")))


async def apply(pool: asyncpg.Pool, contract: type[IntegrationEvent]) -> None:
    (handler,) = [h for table in projections.PROJECTIONS.values()
                  for c, h in table.items() if c is contract]
    async with pool.acquire() as conn, conn.transaction():
        await handler(golden(contract), conn, None)


async def test_the_projections_apply_the_golden_fixtures_to_an_adopted_database(
        databases) -> None:
    old, _ = databases
    await run_ddl(old, PREVIOUS_RELEASE)
    await migrate(old, SCHEMA)
    c = contracts
    # Out of order, as a redelivery may bring them: the change before the issue.
    for contract in (c.CardChangedV1, c.CardIssuedV1, c.CardRenewedV1):
        await apply(old, contract)
    card = await queries.card_standing(old, "KXA-12345")
    assert (card.children, str(card.valid_from), str(card.valid_until)) == (
        3, "2025-03-03", "2027-02-19")
    await apply(old, c.CardClosedV1)
    assert (await queries.card_standing(old, "KXA-12345")).status == "closed"

    with pytest.raises(projections.NotYetKnown):
        await apply(old, c.OfferingTermsPublishedV1)
    for contract in (c.OfferingPublishedV1, c.OfferingTermsPublishedV1, c.OfferingChangedV1,
                     c.OfferingChangedV1, c.OfferingCancelledV1, c.FeedbackGivenV1,
                     c.FeedbackGivenV1, c.FeedbackGivenV2, c.FeedbackGivenV2,
                     c.VenueRegisteredV1, c.VenueChangedV1,
                     c.MobileCardKeyPublishedV1):
        await apply(old, contract)
    rows, total = await queries.list_offerings(
        old, genre=None, subgenre=None, municipality=None, starts_from=None, venue_id=VENUE,
        include_cancelled=True, limit=10, offset=0)
    assert total == 1
    offering = rows[0]
    assert (offering["title"], offering["status"], offering["cancel_reason"],
            offering["production"], offering["version"]) == (
        "Nummisuutarit (lisäesitys)", "cancelled", "lead actor ill", "visiting", 5)
    # The V1 answer and the V2 one, each once; two answers are too few to show.
    assert await old.fetchval("SELECT count(*) FROM feedback_view") == 2
    feedback = await queries.feedback_averages(old, VENUE)
    assert feedback["overall"]["responses"] == 0 and feedback["offerings"] == []
    assert [(w["title"], w["reason"]) for w in feedback["withheld"]] == [
        ("Nummisuutarit (lisäesitys)", "too-few-responses")]
    (venue,), _ = await queries.list_venues(old, organisation_id=ORG, limit=10, offset=0)
    assert venue["ticket_agents"] == [UUID("c4d2e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f")]
    assert set(await queries.mobile_card_keys(old)) == {"zu4CZFmnVHAbh1ZB"}
