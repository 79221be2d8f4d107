"""OmaKaiku's tables, as ordered migrations (``kaiku_shared.db``).

Version 1 is the baseline: every table, column and index the service made
before migrations existed, written so that it is a no-op on a database an
earlier release made (IF NOT EXISTS; the columns added later by ALTER stay
ALTERs, so a database from before them gains them) and keeps all its rows.
A change from now on is a new migration at the end, never an edit above.

Only ``holder_keys`` links an account to an e-mail — by a keyed hash — and
erasure removes that row.
"""

from __future__ import annotations

from kaiku_shared.db import Migration, Schema

# The cards a distributor may activate, and what the mobile card shows.
_CARDS = (
    """
    CREATE TABLE IF NOT EXISTS card_view (
        card_number  text PRIMARY KEY,
        issuer       uuid,
        status       text NOT NULL,
        version      integer NOT NULL
    )
    """,
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS valid_until date",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS children integer",
    "ALTER TABLE card_view ADD COLUMN IF NOT EXISTS region text",
)

# Each card's tickets, and the published offering for browsing.
_HISTORY_AND_OFFERING = (
    """
    CREATE TABLE IF NOT EXISTS history_view (
        ticket_id      uuid PRIMARY KEY,
        card_number    text NOT NULL,
        offering_id    uuid NOT NULL,
        offering_title text,
        venue_id       uuid NOT NULL,
        venue_name     text,
        starts_at      timestamptz,
        children       integer NOT NULL,
        status         text NOT NULL,
        registered_at  timestamptz,
        cancelled_at   timestamptz,
        version        integer NOT NULL
    )
    """,
    "ALTER TABLE history_view ADD COLUMN IF NOT EXISTS cancellation_refused text",
    "CREATE INDEX IF NOT EXISTS history_view_card ON history_view (card_number, starts_at)",
    """
    CREATE TABLE IF NOT EXISTS offering_view (
        offering_id   uuid PRIMARY KEY,
        venue_id      uuid NOT NULL,
        venue_name    text NOT NULL,
        title         text NOT NULL,
        kind          text NOT NULL,
        genres        text[] NOT NULL,
        subgenres     text[] NOT NULL,
        starts_at     timestamptz NOT NULL,
        municipality  text NOT NULL,
        region        text,
        version       integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS offering_view_starts ON offering_view (starts_at)",
)

# Each holder's data key (the vault) and the e-mail's keyed hash.
_KEYS = (
    """
    CREATE TABLE IF NOT EXISTS holder_keys (
        account_id    uuid PRIMARY KEY,
        wrapped_key   bytea NOT NULL,
        email_lookup  bytea NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS holder_keys_email ON holder_keys (email_lookup)",
)

# Sign-in: codes and links, wrong guesses, the request queue and its limits.
_SIGNIN = (
    """
    CREATE TABLE IF NOT EXISTS signin_codes (
        id            bigserial PRIMARY KEY,
        email_lookup  bytea NOT NULL,
        kind          text NOT NULL,           -- 'code' (typed) or 'link' (welcome e-mail)
        secret_hash   bytea NOT NULL,
        account_id    uuid,
        expires_at    timestamptz NOT NULL,
        used_at       timestamptz,
        attempts      integer NOT NULL DEFAULT 0,
        created_at    timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS signin_codes_lookup ON signin_codes (email_lookup, created_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS signin_codes_secret ON signin_codes (secret_hash)",
    """
    CREATE TABLE IF NOT EXISTS signin_attempts (
        email_lookup  bytea NOT NULL,
        kind          text NOT NULL,           -- 'failure' ('request': before signin_rate)
        at            timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS signin_attempts_lookup ON signin_attempts (email_lookup, at)",
    """
    CREATE TABLE IF NOT EXISTS signin_requests (
        id            bigserial PRIMARY KEY,
        email_lookup  bytea NOT NULL,          -- HMAC of the address, never the address
        language      text,                    -- the language the holder chose, if any
        expires_at    timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS signin_rate (
        scope           text NOT NULL,         -- 'address', 'client' or 'global'
        subject         bytea NOT NULL,        -- keyed hash of the address or client
        window_seconds  integer NOT NULL,
        window_start    timestamptz NOT NULL,
        hits            integer NOT NULL,
        PRIMARY KEY (scope, subject, window_seconds, window_start)
    )
    """,
    "CREATE INDEX IF NOT EXISTS signin_rate_start ON signin_rate (window_start)",
)

# The outcome of every e-mail, by account (never the address); a notification
# is sent at most once per account and reference.
_MAIL = (
    """
    CREATE TABLE IF NOT EXISTS mail_deliveries (
        id            bigserial PRIMARY KEY,
        account_id    uuid NOT NULL,
        kind          text NOT NULL,
        reference     text,
        outcome       text NOT NULL,           -- sent | failed | not_configured | no_key
        detail        text,
        at            timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS mail_deliveries_account ON mail_deliveries (account_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS mail_deliveries_once ON mail_deliveries "
    "(account_id, kind, reference) WHERE outcome = 'sent'",
)

BASELINE = Migration(1, "baseline",
                     (*_CARDS, *_HISTORY_AND_OFFERING, *_KEYS, *_SIGNIN, *_MAIL))

# The network's regions and municipalities, as cards publishes them
# (NetworkChangedV1); before this the service read a copy of cards' file.
# ``folded_names``: the code and every name, folded, the code first.
NETWORK = Migration(2, "the network's reference data from cards", (
    """
    CREATE TABLE network_regions (
        code        text PRIMARY KEY,
        name        jsonb NOT NULL,            -- by language: fi, sv, en
        country     text NOT NULL,
        changed_at  timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE network_municipalities (
        code          text PRIMARY KEY,
        name          jsonb NOT NULL,
        region        text NOT NULL,
        status        text NOT NULL,
        country       text NOT NULL,
        folded_names  text[] NOT NULL,
        changed_at    timestamptz NOT NULL
    )
    """,
    "CREATE INDEX network_municipalities_names ON network_municipalities "
    "USING gin (folded_names)",
))

# Retention (issue 20): when a card was closed (``closed_at``; a card closed
# before this migration counts from the migration, the most it can have been
# known here), the retention notices sent, and the staff audit of erasures.
# ``retention_settled_for``: the card's end for which the retention job found
# nothing (left) to do, so that it does not look at the card again.
# ``erasures`` holds no account id, card number or personal datum: a random id,
# a keyed pseudonym of the account (so one erasure is one row) and who did it.
RETENTION = Migration(3, "card end times, retention notices and the erasure audit", (
    "ALTER TABLE card_view ADD COLUMN closed_at timestamptz",
    "UPDATE card_view SET closed_at = now() WHERE status = 'closed'",
    "ALTER TABLE card_view ADD COLUMN retention_settled_for timestamptz",
    """
    CREATE TABLE retention_notices (
        account_id     uuid PRIMARY KEY,
        card_ended_at  timestamptz NOT NULL,   -- the card end this notice was about
        erase_after    timestamptz NOT NULL,   -- as the e-mail said
        notified_at    timestamptz NOT NULL,
        outcome        text NOT NULL           -- sent | not_configured
    )
    """,
    """
    CREATE TABLE erasures (
        erasure_id         uuid PRIMARY KEY,
        account_pseudonym  bytea NOT NULL UNIQUE,  -- HMAC of the account id
        requested_at       timestamptz NOT NULL DEFAULT now(),
        completed_at       timestamptz,
        erased_by          text NOT NULL,          -- holder | distributor | retention
        staff_user_id      uuid,
        organisation_id    uuid,
        reason             text NOT NULL
    )
    """,
    "CREATE INDEX erasures_requested ON erasures (requested_at)",
))

# What a holder needs to get a card ticket, from venues' events (no personal data:
# places by ticket id, never by card): each venue's public contact, each
# offering's terms and card cap, and the places each ticket takes. The history
# also shows swimming visits and library fees (``kind``; ``detail`` says how many
# visits or which fee), which have no offering.
OFFERING_DETAILS = Migration(4, "offering details for holders; swimming and library uses", (
    """
    CREATE TABLE venue_view (
        venue_id      uuid PRIMARY KEY,
        name          text NOT NULL,
        kind          text NOT NULL,
        municipality  text NOT NULL,
        contact       jsonb NOT NULL DEFAULT '{}',   -- phone, email, url, box_office
        version       integer NOT NULL
    )
    """,
    """
    CREATE TABLE offering_terms (
        offering_id            uuid PRIMARY KEY,
        card_cap               integer,
        cap_version            integer NOT NULL DEFAULT 0,
        venue_kind             text,
        production             text,
        sales_opens_at         timestamptz,
        card_tickets_excluded  text,
        limits                 jsonb                 -- as OfferingTermsPublished says
    )
    """,
    """
    CREATE TABLE offering_places (
        ticket_id    uuid PRIMARY KEY,
        offering_id  uuid NOT NULL,
        places       integer NOT NULL,
        cancelled    boolean NOT NULL DEFAULT false
    )
    """,
    "CREATE INDEX offering_places_offering ON offering_places (offering_id) "
    "WHERE NOT cancelled",
    "ALTER TABLE history_view ADD COLUMN kind text NOT NULL DEFAULT 'ticket'",
    "ALTER TABLE history_view ALTER COLUMN offering_id DROP NOT NULL",
    "ALTER TABLE history_view ADD COLUMN detail jsonb",
))

# Web Push (issue 23). A device's endpoint, keys, label and origin are sealed
# under the holder's key (``sealed``), so erasure shreds them; it is found again
# by ``endpoint_lookup``, an HMAC of the endpoint under the lookup key;
# ``origin_key`` (an HMAC of its origin) lets the sender cap the pushes in flight
# to one push service, so a slow one cannot take every slot. The
# outbox holds one row per (device, notification): the pending pushes survive a
# restart, and a redelivered notification finds its row and is not pushed twice.
# ``params`` are the notification's public words (an offering's title), never
# anything personal.
PUSH = Migration(5, "web push devices, preferences and the push outbox", (
    """
    CREATE TABLE push_subscriptions (
        subscription_id  uuid PRIMARY KEY,
        account_id       uuid NOT NULL,
        endpoint_lookup  bytea NOT NULL,
        origin_key       bytea NOT NULL,       -- keyed hash of the push service's origin
        sealed           text NOT NULL,
        created_at       timestamptz NOT NULL DEFAULT now(),
        UNIQUE (account_id, endpoint_lookup)
    )
    """,
    "CREATE INDEX push_subscriptions_lookup ON push_subscriptions (endpoint_lookup)",
    """
    CREATE TABLE push_preferences (
        account_id     uuid PRIMARY KEY,
        new_offerings  boolean NOT NULL DEFAULT true,
        messages       boolean NOT NULL DEFAULT true,
        muted          boolean NOT NULL DEFAULT false,
        changed_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE push_outbox (
        id               bigserial PRIMARY KEY,
        subscription_id  uuid NOT NULL
                         REFERENCES push_subscriptions ON DELETE CASCADE,
        account_id       uuid NOT NULL,
        origin_key       bytea NOT NULL,           -- as the device's: pushes per service
        kind             text NOT NULL,            -- new_offering | message
        reference        text NOT NULL,            -- the offering or message id
        params           jsonb NOT NULL DEFAULT '{}',
        status           text NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts         integer NOT NULL DEFAULT 0,
        next_attempt_at  timestamptz NOT NULL DEFAULT now(),
        claimed_until    timestamptz,
        last_status      integer,                  -- the push service's last answer
        created_at       timestamptz NOT NULL DEFAULT now(),
        sent_at          timestamptz,
        UNIQUE (subscription_id, kind, reference)
    )
    """,
    "CREATE INDEX push_outbox_due ON push_outbox (next_attempt_at) WHERE status = 'pending'",
    "CREATE INDEX push_outbox_account ON push_outbox (account_id)",
))

SCHEMA = Schema("omakaiku", (BASELINE, NETWORK, RETENTION, OFFERING_DETAILS, PUSH))
