"""Inboxes from this service's own event store: messages and bulletins.

Messages and bulletins are written through the Application (the event store is
the source of truth). This follower reads the store's notification log after its
recorded position and applies each event to the inboxes in ONE transaction with
the new position (atomic tracking, as eventsourcing's ProjectionRunner does), so
a crash or a second worker replica never applies an event twice: replicas
serialise on the position row (SELECT … FOR UPDATE).

Message subjects and bodies stay in this database: they may hold whatever people
write, so they never go onto NATS (MessageSent carries ids only). Between a
holder and an organisation they are sealed under the holder's key and stay
sealed here too (``sealed_for``); they are opened only when read
(adapters/message_keys.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import date
from typing import Any

import asyncpg
from eventsourcing.persistence import StoredEvent

from kaiku_shared.db import OutageWatch
from kaiku_shared.eventstore import MetaMapper, events_table

from ..domain.model import BULLETIN_DAYS, Bulletin, Message
from .projections import BULLETIN_SENDER, notify_accounts
from .queries import accounts_of_card


NAME = "notifications-inboxes"


def owner_of(party: dict[str, Any]) -> str:
    kind = party["kind"]
    if kind == "organisation":
        return f"organisation:{party['organisation_id']}"
    if kind == "user":
        return f"user:{party['user_id']}"
    if party.get("account_id"):
        return f"account:{party['account_id']}"
    return f"card:{party['card_number']}"


async def apply_message(conn: asyncpg.Connection, event: Message.Sent) -> None:
    sender, recipient = event.sender, event.recipient
    # Sealed under a holder's key since release 3 of the schema; earlier events
    # lack the attribute (the library leaves a missing default unset).
    sealed_for = getattr(event, "sealed_for", None)
    await conn.execute(
        "INSERT INTO message_view (message_id, sender, recipient, created_at) "
        "VALUES ($1, $2::jsonb, $3::jsonb, $4) ON CONFLICT DO NOTHING",
        event.originator_id, json.dumps(sender), json.dumps(recipient), event.timestamp)
    await conn.execute(
        "INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body, in_reply_to, "
        "created_at, sealed_for) VALUES ($1, $2, 'message', $3::jsonb, $4, $5, $6, $7, $8) "
        "ON CONFLICT DO NOTHING",
        owner_of(recipient), event.originator_id, json.dumps(sender), event.subject,
        event.body, event.in_reply_to, event.timestamp, sealed_for)
    if recipient["kind"] == "holder":
        # The in-app notification and the e-mail hand-over name no content: the
        # holder reads the message in OmaKaiku (GET /me/messages).
        accounts = ([recipient["account_id"]] if recipient.get("account_id")
                    else await accounts_of_card(conn, recipient["card_number"]))
        if accounts:
            await notify_accounts(conn, accounts, event.originator_id, "message",
                                  event.subject, {"message_id": str(event.originator_id)},
                                  sealed_for)


def last_day(event: Bulletin.Published) -> date | None:
    valid_until = getattr(event, "valid_until", None)
    return date.fromisoformat(valid_until) if valid_until else None


async def apply_bulletin(conn: asyncpg.Connection, event: Bulletin.Published) -> None:
    # Kept while current, for organisations and accounts that join later
    # (projections.deliver_current_bulletins); older events name no last day.
    await conn.execute(
        "INSERT INTO bulletin_view (bulletin_id, title, body, published_at, valid_until) "
        "VALUES ($1, $2, $3, $4, coalesce((($5::date + 1)::timestamp AT TIME ZONE "
        "'Europe/Helsinki'), $4::timestamptz + make_interval(days => $6))) ON CONFLICT DO NOTHING",
        event.originator_id, event.title, event.body, event.timestamp,
        last_day(event), BULLETIN_DAYS)
    await conn.execute(
        "INSERT INTO inbox_item (owner, item_id, kind, sender, subject, body, created_at) "
        "SELECT 'organisation:' || organisation_id, $1, 'bulletin', $2::jsonb, $3, $4, $5 "
        "FROM organisation_view ON CONFLICT DO NOTHING",
        event.originator_id, BULLETIN_SENDER, event.title, event.body, event.timestamp)
    await conn.execute(
        """
        INSERT INTO notification (account_id, source_id, kind, title, payload, delivery)
        SELECT a.account_id, $1::uuid, 'bulletin', $2::text, $3::jsonb,
               coalesce(p.delivery, 'immediate')
        FROM account_view a LEFT JOIN delivery_preference p USING (account_id)
        ON CONFLICT (account_id, source_id) DO NOTHING
        """,
        event.originator_id, event.title,
        json.dumps({"bulletin_id": str(event.originator_id), "title": event.title,
                    "body": event.body}))


async def project_once(conn: asyncpg.Connection, mapper: MetaMapper, table: str,
                       limit: int = 100) -> int:
    """Apply the next events after the recorded position; how many were read."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO projection_position (name, position) VALUES ($1, 0) "
            "ON CONFLICT DO NOTHING", NAME)
        position = await conn.fetchval(
            "SELECT position FROM projection_position WHERE name = $1 FOR UPDATE", NAME)
        rows = await conn.fetch(
            f'SELECT notification_id, originator_id, originator_version, topic, state '
            f'FROM "{table}" WHERE notification_id > $1 ORDER BY notification_id LIMIT $2',
            position, limit)
        for row in rows:
            event, _ = mapper.decode(StoredEvent(
                originator_id=row["originator_id"], originator_version=row["originator_version"],
                topic=row["topic"], state=bytes(row["state"])))
            if isinstance(event, Message.Sent):
                await apply_message(conn, event)
            elif isinstance(event, Bulletin.Published):
                await apply_bulletin(conn, event)
        if rows:
            await conn.execute("UPDATE projection_position SET position = $2 WHERE name = $1",
                               NAME, rows[-1]["notification_id"])
        return len(rows)


async def run_projection(pool: asyncpg.Pool, mapper: MetaMapper, application_name: str,
                         stop: asyncio.Event, poll: float = 0.1) -> None:
    table = events_table(application_name)
    watch = OutageWatch("inbox projection")
    while not stop.is_set():
        wait = poll
        try:
            async with pool.acquire() as conn:
                while await project_once(conn, mapper, table):
                    pass
            watch.succeeded()
        except Exception as error:  # noqa: BLE001 - keep following; OutageWatch logs it
            wait = watch.failed(error)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
