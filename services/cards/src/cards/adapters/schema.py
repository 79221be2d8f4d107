"""Cards' statistics read-model tables, as ordered migrations (``kaiku_shared.db``).

Version 1 is the baseline: exactly the tables, columns and indexes the release
before migrations created on every start, written with IF NOT EXISTS (and
ADD COLUMN IF NOT EXISTS for the columns added since the first release) so that
an existing database (``.kaiku/``) adopts it in place and keeps its rows. A
later change is a new migration appended below, never an edit of the baseline.

The rebuild (``rebuild.py``) makes its shadow tables from the same statements.
"""

from __future__ import annotations

from kaiku_shared.db import Migration, Schema, baseline

COMPONENT = "cards"

_CARD = (
    """
    CREATE TABLE IF NOT EXISTS card_view (
        card_number   text PRIMARY KEY,
        issuer        uuid,
        birth_year    integer,
        valid_from    date,
        community     boolean,
        issued_at     timestamptz,
        valid_until   date,
        children      integer,
        municipality  text,
        region        text,
        status        text NOT NULL DEFAULT 'open',
        version       integer NOT NULL
    )
    """,
    # Added with replacement cards and closures; a first-release card_view lacks them.
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS replaces text",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS closed_on date",
)

_USAGE = (
    """
    CREATE TABLE IF NOT EXISTS usage_view (
        ticket_id     uuid PRIMARY KEY,
        card_number   text NOT NULL,
        venue_id      uuid,
        offering_id   uuid,
        venue_municipality text,
        starts_at     timestamptz,
        children      integer NOT NULL,
        status        text NOT NULL,
        version       integer NOT NULL
    )
    """,
    "ALTER TABLE usage_view ADD COLUMN IF NOT EXISTS venue_name text",
    "CREATE INDEX IF NOT EXISTS usage_view_card ON usage_view (card_number)",
)

_WELLBEING = """
    CREATE TABLE IF NOT EXISTS wellbeing_view (
        card_number        text    NOT NULL,
        version            integer NOT NULL,
        occasion           text    NOT NULL,   -- issue | renewal
        answered_on        date    NOT NULL,
        region             text    NOT NULL,
        municipality       text    NOT NULL,
        life_satisfaction  integer,            -- NULL: the holder gave no answer
        wellbeing_impact   integer,            -- asked at renewal only
        PRIMARY KEY (card_number, version)
    )
    """

_ORGANISATION = """
    CREATE TABLE IF NOT EXISTS organisation_view (
        organisation_id uuid PRIMARY KEY,
        kind            text,
        name            text,
        municipality    text,
        status          text,
        version         integer NOT NULL
    )
    """

BASELINE = (*_CARD, *_USAGE, _WELLBEING, _ORGANISATION)

# Version 2: the distributor's caseload (GET /cards: a distributor's own cards in
# card-number order, a page at a time) and the uses of the card at swimming halls
# and libraries, counted apart from tickets (one row per SwimmingVisitRegistered
# or LibraryFeeCovered, keyed by its event id: neither is ever cancelled).
CASELOAD_AND_DESK_USES = (
    "CREATE INDEX card_view_issuer ON card_view (issuer, card_number)",
    """
    CREATE TABLE desk_use_view (
        event_id      uuid PRIMARY KEY,
        kind          text NOT NULL,       -- swimming_visit | library_fee
        card_number   text NOT NULL,
        venue_id      uuid NOT NULL,
        used_at       timestamptz NOT NULL,
        children      integer NOT NULL,    -- swimming: children along; library: 0
        amount_cents  integer NOT NULL     -- library: the fee covered; swimming: 0
    )
    """,
    "CREATE INDEX desk_use_view_card ON desk_use_view (card_number)",
)

# Version 3: the public statistics (issue 22). Each venue's kind and each
# offering's genres, kept from the venues' own facts (uses by venue kind and by
# genre), and the public document as last computed (``public_stats``: one row,
# the worker's refresher keeps it; ``adapters/public_stats.py``).
VENUES_OFFERINGS_AND_PUBLIC_STATS = (
    """
    CREATE TABLE venue_view (
        venue_id      uuid PRIMARY KEY,
        kind          text,
        name          text,
        municipality  text,
        version       integer NOT NULL DEFAULT 0  -- the venue's, of the name's fact
    )
    """,
    """
    CREATE TABLE offering_view (
        offering_id   uuid PRIMARY KEY,
        venue_id      uuid,
        genres        text[] NOT NULL DEFAULT '{}'
    )
    """,
    """
    CREATE TABLE public_stats (
        id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        document      text NOT NULL,          -- PublicStatsV1 as JSON
        etag          text NOT NULL,          -- a digest of the figures
        updated_at    timestamptz NOT NULL    -- when a figure last changed
    )
    """,
)

SCHEMA = Schema(COMPONENT, (
    *baseline(COMPONENT, BASELINE).migrations,
    Migration(2, "caseload index; swimming visits and library fees", CASELOAD_AND_DESK_USES),
    Migration(3, "venue kinds, offering genres; the public statistics document",
              VENUES_OFFERINGS_AND_PUBLIC_STATS),
))

_LOGIN_THROTTLE = (
    """
    CREATE TABLE IF NOT EXISTS login_throttle (
        username_hash   bytea NOT NULL,
        address_hash    bytea NOT NULL,
        attempts        integer NOT NULL DEFAULT 0,
        locked_until    timestamptz,
        last_attempt_at timestamptz,
        PRIMARY KEY (username_hash, address_hash)
    )
    """,
    "CREATE INDEX IF NOT EXISTS login_throttle_last_attempt "
    "ON login_throttle (last_attempt_at)",
)

# Staff sign-in's throttle (adapters/login_throttle.py): its own component, so
# the statistics rebuild (statements()) never makes it in its shadow schema.
LOGIN_THROTTLE = baseline("cards-login-throttle", _LOGIN_THROTTLE)

READ_MODEL_TABLES = ("card_view", "usage_view", "wellbeing_view", "organisation_view",
                     "desk_use_view", "venue_view", "offering_view")


def statements() -> tuple[str, ...]:
    """Every migration's statements in order: the tables as the latest version has
    them (the rebuild's shadow schema, made afresh)."""
    return tuple(statement for migration in SCHEMA.migrations
                 for statement in migration.statements)
