"""Venues' read-model tables, as ordered migrations (``kaiku_shared.db``).

Version 1 is the baseline: exactly the tables, columns and indexes the release
before migrations created on every start, written with IF NOT EXISTS so that
an existing database (``.kaiku/``) adopts it in place and keeps its rows. A
later change is a new migration appended below, never an edit of the baseline.
"""

from __future__ import annotations

from kaiku_shared.db import Migration, Schema, baseline

COMPONENT = "venues"

_CARD_VALIDITY = """
    CREATE TABLE IF NOT EXISTS card_validity_view (
        card_number  text PRIMARY KEY,
        valid_from   date,
        valid_until  date,
        children     integer,
        status       text NOT NULL,
        version      integer NOT NULL
    )
    """

_OFFERING = (
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
    # Added with the guideline's terms; an offering_view of the first release
    # lacks them, so they are added where missing.
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
)

# One row per answer, so a redelivered or repeated FeedbackGiven counts once.
# (Keyed by the ticket until version 2, FEEDBACK_UNLINKED, below.)
_FEEDBACK = (
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
)

# omakaiku's public keys for mobile cards, by kid; several at once (rotation).
_MOBILE_CARD_KEYS = """
    CREATE TABLE IF NOT EXISTS mobile_card_key_view (
        kid          text PRIMARY KEY,
        algorithm    text NOT NULL,
        kty          text NOT NULL,
        crv          text NOT NULL,
        x            text NOT NULL,
        published_at timestamptz NOT NULL
    )
    """

# Venues by organisation and by the ticket agents they list (GET /venues).
_VENUES = (
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

BASELINE = (_CARD_VALIDITY, *_OFFERING, *_FEEDBACK, _MOBILE_CARD_KEYS, *_VENUES)

# Version 2: an answer is no longer linked to the ticket it was given for
# (FeedbackGivenV2). Each answer kept is given a random id; the ticket ids go.
# A new table rather than DROP COLUMN, which would leave every ticket id in the
# old rows on disk until they were rewritten: DROP TABLE removes the file.
FEEDBACK_UNLINKED = (
    """
    CREATE TABLE feedback_view_unlinked (
        feedback_id   uuid PRIMARY KEY,
        venue_id      uuid NOT NULL,
        offering_id   uuid NOT NULL,
        accessibility smallint NOT NULL,
        meaning       smallint NOT NULL,
        interest      smallint NOT NULL
    )
    """,
    # In random order too: nothing of the old order (or the ticket ids) survives.
    "INSERT INTO feedback_view_unlinked (feedback_id, venue_id, offering_id, accessibility, "
    "meaning, interest) SELECT gen_random_uuid(), venue_id, offering_id, accessibility, "
    "meaning, interest FROM feedback_view ORDER BY random()",
    "DROP TABLE feedback_view",
    "ALTER TABLE feedback_view_unlinked RENAME TO feedback_view",
    "ALTER INDEX feedback_view_unlinked_pkey RENAME TO feedback_view_pkey",
    "CREATE INDEX feedback_view_venue ON feedback_view (venue_id)",
)

# Version 3: the box office's list of card tickets per offering (GET
# /offerings/{id}/tickets), fed by TicketRegistered and TicketCancelled. Card
# numbers only: no person's name reaches venues. A new durable starts at the
# stream's beginning, so tickets registered before this version are listed too.
TICKET_LIST = (
    """
    CREATE TABLE ticket_view (
        ticket_id     uuid PRIMARY KEY,
        offering_id   uuid NOT NULL,
        venue_id      uuid NOT NULL,
        card_number   text NOT NULL,
        children      integer NOT NULL,
        status        text NOT NULL,
        registered_at timestamptz NOT NULL,
        cancelled_at  timestamptz
    )
    """,
    "CREATE INDEX ticket_view_offering ON ticket_view (offering_id, registered_at)",
)

SCHEMA = Schema(COMPONENT, (
    *baseline(COMPONENT, BASELINE).migrations,
    Migration(2, "feedback answers keyed by a random id, not the ticket", FEEDBACK_UNLINKED),
    Migration(3, "the box office's list of card tickets per offering", TICKET_LIST),
))
