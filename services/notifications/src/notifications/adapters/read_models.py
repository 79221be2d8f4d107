"""Subscriptions and in-app notifications, by opaque account id only.

Fan-out is exactly once per (account, offering): the primary key makes a
redelivered or replayed OfferingPublished insert nothing new, whichever worker
replica handles it.
"""

from __future__ import annotations

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    AccountErasedV1,
    GenreSubscriptionsChangedV1,
    OfferingPublishedV1,
)

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS subscription_view (
        account_id  uuid NOT NULL,
        genre       text NOT NULL,
        version     integer NOT NULL,
        PRIMARY KEY (genre, account_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS notification (
        account_id    uuid NOT NULL,
        source_id     uuid NOT NULL,
        kind          text NOT NULL,
        title         text NOT NULL,
        payload       jsonb NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        read_at       timestamptz,
        PRIMARY KEY (account_id, source_id)
    )
    """,
)

SUBSCRIPTIONS_CONSUMER = "notifications-subscriptions"
FANOUT_CONSUMER = "notifications-offering-fanout"


def consumers() -> list[Consumer]:
    subscriptions = Consumer(SUBSCRIPTIONS_CONSUMER, "omakaiku")
    fanout = Consumer(FANOUT_CONSUMER, "venues")

    @subscriptions.on(GenreSubscriptionsChangedV1)
    async def on_genre_subscriptions_changed(event: GenreSubscriptionsChangedV1,
                                             conn: asyncpg.Connection) -> None:
        current = await conn.fetchval(
            "SELECT max(version) FROM subscription_view WHERE account_id = $1", event.account_id)
        if current is not None and current >= event.aggregate_version:
            return  # an older choice arriving late
        await conn.execute("DELETE FROM subscription_view WHERE account_id = $1",
                           event.account_id)
        await conn.executemany(
            "INSERT INTO subscription_view (account_id, genre, version) VALUES ($1, $2, $3)",
            [(event.account_id, g, event.aggregate_version)
             for g in {*event.genres, *event.subgenres}],
        )

    @subscriptions.on(AccountErasedV1)
    async def on_account_erased(event: AccountErasedV1, conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM subscription_view WHERE account_id = $1",
                           event.account_id)
        await conn.execute("DELETE FROM notification WHERE account_id = $1", event.account_id)

    @fanout.on(OfferingPublishedV1)
    async def on_offering_published(event: OfferingPublishedV1,
                                    conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO notification (account_id, source_id, kind, title, payload)
            SELECT DISTINCT s.account_id, $1::uuid, 'new_offering', $2::text,
                   jsonb_build_object('offering_id', $1::uuid, 'venue_name', $3::text,
                                      'starts_at', $4::timestamptz, 'municipality', $5::text)
            FROM subscription_view s WHERE s.genre = ANY($6::text[])
            ON CONFLICT (account_id, source_id) DO NOTHING
            """,
            event.offering_id, event.title, event.venue_name, event.starts_at,
            event.municipality, [*event.genres, *event.subgenres],
        )

    return [subscriptions, fanout]


async def for_account(pool: asyncpg.Pool, account_id: object) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT source_id, kind, title, payload::text AS payload, created_at, read_at "
            "FROM notification WHERE account_id = $1 ORDER BY created_at DESC LIMIT 200",
            account_id,
        )
