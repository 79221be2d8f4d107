"""Notifications' read-model tables, as ordered migrations (``kaiku_shared.db``).

Version 1 is the baseline: exactly the statements the service ran on every
start before it had migrations (all ``IF NOT EXISTS``), so a database made by an
earlier release adopts it in place and keeps its rows. The three ``ADD COLUMN IF
NOT EXISTS`` give a database from the very first release (before the region
filter and the e-mail hand-over) the columns every later release assumed.

Holders appear as account ids (from omakaiku) or card numbers (from cards and
venues); organisations and venues by id. No names of people, e-mails or phones.
"""

from __future__ import annotations

from kaiku_shared.db import Migration, Schema

COMPONENT = "notifications"

BASELINE = (
    # One row per (genre or subgenre, account); ``region`` is the holder's optional
    # region filter, repeated on each row so the fan-out needs no join.
    """
    CREATE TABLE IF NOT EXISTS subscription_view (
        account_id  uuid NOT NULL,
        genre       text NOT NULL,
        version     integer NOT NULL,
        region      text,
        PRIMARY KEY (genre, account_id)
    )
    """,
    "ALTER TABLE subscription_view ADD COLUMN IF NOT EXISTS region text",
    "CREATE INDEX IF NOT EXISTS subscription_by_account ON subscription_view (account_id)",
    """
    CREATE TABLE IF NOT EXISTS subscription_version (
        account_id  uuid PRIMARY KEY,
        version     integer NOT NULL
    )
    """,
    # Immediate e-mail or a daily digest: the holder chooses here (GET/PUT /me/preferences).
    """
    CREATE TABLE IF NOT EXISTS delivery_preference (
        account_id  uuid PRIMARY KEY,
        delivery    text NOT NULL CHECK (delivery IN ('immediate', 'daily_digest')),
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS account_view (
        account_id   uuid PRIMARY KEY,
        card_number  text NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS account_by_card ON account_view (card_number)",
    """
    CREATE TABLE IF NOT EXISTS card_view (
        card_number             text PRIMARY KEY,
        issuer_organisation_id  uuid NOT NULL
    )
    """,
    # Learnt from cards' card events until cards published its network; migration 2
    # moves its rows into network_municipality and drops it.
    """
    CREATE TABLE IF NOT EXISTS municipality_region_view (
        municipality  text PRIMARY KEY,
        region        text NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS organisation_view (
        organisation_id  uuid PRIMARY KEY,
        kind             text NOT NULL,
        name             text NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS venue_view (
        venue_id         uuid PRIMARY KEY,
        organisation_id  uuid NOT NULL,
        name             text NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ticket_view (
        ticket_id       uuid PRIMARY KEY,
        offering_id     uuid NOT NULL,
        offering_title  text NOT NULL,
        venue_id        uuid NOT NULL,
        card_number     text NOT NULL,
        starts_at       timestamptz NOT NULL,
        status          text NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS ticket_by_card ON ticket_view (card_number)",
    # In-app notifications. ``delivery`` is fixed when the row is made;
    # ``batch_id`` is set when the row is claimed for the hand-over to omakaiku.
    """
    CREATE TABLE IF NOT EXISTS notification (
        account_id    uuid NOT NULL,
        source_id     uuid NOT NULL,
        kind          text NOT NULL,
        title         text NOT NULL,
        payload       jsonb NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        read_at       timestamptz,
        delivery      text NOT NULL DEFAULT 'immediate',
        batch_id      uuid,
        PRIMARY KEY (account_id, source_id)
    )
    """,
    "ALTER TABLE notification ADD COLUMN IF NOT EXISTS delivery text NOT NULL "
    "DEFAULT 'immediate'",
    "ALTER TABLE notification ADD COLUMN IF NOT EXISTS batch_id uuid",
    "CREATE INDEX IF NOT EXISTS notification_pending ON notification (delivery, source_id) "
    "WHERE batch_id IS NULL",
    "CREATE INDEX IF NOT EXISTS notification_by_batch ON notification (batch_id)",
    # The hand-over log: every batch or digest claimed, its attempts and outcome.
    """
    CREATE TABLE IF NOT EXISTS handover (
        handover_id      uuid PRIMARY KEY,
        kind             text NOT NULL CHECK (kind IN ('batch', 'digest')),
        source_kind      text,
        source_id        uuid,
        account_id       uuid,
        digest_date      date,
        template_key     text,
        params           jsonb,
        recipients       integer NOT NULL,
        state            text NOT NULL CHECK (state IN ('claimed', 'issued', 'failed')),
        attempts         integer NOT NULL DEFAULT 0,
        last_error       text,
        next_attempt_at  timestamptz NOT NULL DEFAULT now(),
        created_at       timestamptz NOT NULL DEFAULT now(),
        issued_at        timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS handover_due ON handover (next_attempt_at) "
    "WHERE state = 'claimed'",
    # Every inbox: owner is 'organisation:<id>', 'user:<id>', 'account:<id>' or
    # 'card:<number>' (a holder addressed by card number, read once they sign in).
    """
    CREATE TABLE IF NOT EXISTS inbox_item (
        owner        text NOT NULL,
        item_id      uuid NOT NULL,
        kind         text NOT NULL,
        sender       jsonb NOT NULL,
        subject      text NOT NULL,
        body         text NOT NULL,
        payload      jsonb NOT NULL DEFAULT '{}',
        in_reply_to  uuid,
        created_at   timestamptz NOT NULL DEFAULT now(),
        read_at      timestamptz,
        PRIMARY KEY (owner, item_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS inbox_by_item ON inbox_item (item_id)",
    # Who took part in a message, for the reply rule.
    """
    CREATE TABLE IF NOT EXISTS message_view (
        message_id  uuid PRIMARY KEY,
        sender      jsonb NOT NULL,
        recipient   jsonb NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS projection_position (
        name      text PRIMARY KEY,
        position  bigint NOT NULL
    )
    """,
)

# Cards owns the network (NetworkChangedV1). ``changed_at`` is the event's time, so
# an older change arriving late never overwrites a newer one; ``lookup_keys`` are a
# municipality's code and names, normalised, as venues may write any of them.
# What card events taught before (municipality_region_view) seeds the table, from
# the beginning of time, so the first network event overwrites it.
NETWORK = (
    """
    CREATE TABLE network_region (
        code        text PRIMARY KEY,
        name        jsonb NOT NULL,
        country     text NOT NULL,
        changed_at  timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE network_municipality (
        code         text PRIMARY KEY,
        region       text NOT NULL,
        name         jsonb NOT NULL,
        status       text NOT NULL,
        country      text NOT NULL,
        lookup_keys  text[] NOT NULL,
        changed_at   timestamptz NOT NULL
    )
    """,
    """
    INSERT INTO network_municipality (code, region, name, status, country, lookup_keys,
                                      changed_at)
    SELECT municipality, region, '{}', 'unknown', 'FI', ARRAY[municipality], '-infinity'
    FROM municipality_region_view
    """,
    "DROP TABLE municipality_region_view",
    # Offerings whose municipality the network did not name when they were fanned
    # out: holders with a region filter get them once it does (projections.py).
    """
    CREATE TABLE fanout_awaiting_network (
        offering_id   uuid PRIMARY KEY,
        municipality  text NOT NULL,
        starts_at     timestamptz NOT NULL,
        event         jsonb NOT NULL,
        parked_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
)

# What holders write and receive is sealed under a key of their own, one row per
# holder (adapters/message_keys.py); erasure deletes the row. ``sealed_for`` names
# the key a row's text is sealed with (NULL: written before sealing, or staff-only).
MESSAGE_KEYS = (
    """
    CREATE TABLE message_key (
        holder       text PRIMARY KEY,
        wrapped_key  bytea NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now()
    )
    """,
    "ALTER TABLE inbox_item ADD COLUMN sealed_for text",
    "ALTER TABLE notification ADD COLUMN sealed_for text",
)

# Bulletins while they are current: organisations registered and accounts activated
# after a bulletin was published still get it until ``valid_until``. Bulletins of an
# earlier release are current for BULLETIN_DAYS from publication (as new ones are
# when Kaikukeskus names no end).
BULLETINS = (
    """
    CREATE TABLE bulletin_view (
        bulletin_id   uuid PRIMARY KEY,
        title         text NOT NULL,
        body          text NOT NULL,
        published_at  timestamptz NOT NULL,
        valid_until   timestamptz NOT NULL
    )
    """,
    "CREATE INDEX bulletin_current ON bulletin_view (valid_until)",
    # Sent lists and threads (adapters/queries.py: sent, thread).
    "CREATE INDEX inbox_sent_by_organisation ON inbox_item ((sender->>'organisation_id'), "
    "created_at) WHERE kind = 'message'",
    "CREATE INDEX inbox_sent_by_account ON inbox_item ((sender->>'account_id'), created_at) "
    "WHERE kind = 'message'",
    "CREATE INDEX inbox_sent_by_user ON inbox_item ((sender->>'user_id'), created_at) "
    "WHERE kind = 'message'",
    "CREATE INDEX inbox_by_reply ON inbox_item (in_reply_to) WHERE in_reply_to IS NOT NULL",
    """
    INSERT INTO bulletin_view (bulletin_id, title, body, published_at, valid_until)
    SELECT DISTINCT ON (item_id) item_id, subject, body, created_at,
           created_at + interval '30 days'
    FROM inbox_item WHERE kind = 'bulletin' ORDER BY item_id, created_at
    """,
)

SCHEMA = Schema(COMPONENT, (
    Migration(1, "baseline", BASELINE),
    Migration(2, "cards' network replaces the region copy", NETWORK),
    Migration(3, "holders' message keys", MESSAGE_KEYS),
    Migration(4, "current bulletins reach later organisations and accounts; sent lists "
              "and threads", BULLETINS),
))
