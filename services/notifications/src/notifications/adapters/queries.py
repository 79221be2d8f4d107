"""Every read of notifications' read models, and the few marks the API writes
(a read time, a delivery preference). The routes and projections call these;
no SQL outside ``adapters``.

``db`` is a pool or a connection: the routes pass the pool, a projection its
transaction's connection.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

Db = asyncpg.Pool | asyncpg.Connection


class Place(NamedTuple):
    """A municipality of cards' network and its region, by code."""

    code: str
    region: str


def holder_owners(account_id: UUID, card_number: str | None) -> list[str]:
    """A holder's inboxes: by account, and by card number once the account has one."""
    owners = [f"account:{account_id}"]
    if card_number:
        owners.append(f"card:{card_number}")
    return owners


def staff_owners(subject: str, organisation_id: UUID | None) -> list[str]:
    """A staff user's inboxes: their own and their organisation's."""
    owners = [f"user:{subject}"]
    if organisation_id is not None:
        owners.append(f"organisation:{organisation_id}")
    return owners


# --- holders, cards, accounts ----------------------------------------------------------


async def card_of(db: Db, account_id: UUID) -> str | None:
    return await db.fetchval("SELECT card_number FROM account_view WHERE account_id = $1",
                             account_id)


async def accounts_of_card(db: Db, card_number: str) -> list[UUID]:
    return [r["account_id"] for r in await db.fetch(
        "SELECT account_id FROM account_view WHERE card_number = $1", card_number)]


async def card_known(db: Db, card_number: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM card_view WHERE card_number = $1",
                                  card_number))


async def organisation_registered(db: Db, organisation_id: UUID) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM organisation_view WHERE organisation_id = $1",
                                  organisation_id))


async def ticket_with_venue(db: Db, ticket_id: UUID) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT t.offering_id, t.offering_title, t.starts_at, t.venue_id, v.organisation_id "
        "FROM ticket_view t JOIN venue_view v USING (venue_id) WHERE t.ticket_id = $1",
        ticket_id)


async def ticket_holders(db: Db, offering_id: UUID, statuses: tuple[str, ...]) -> list[UUID]:
    return [r["account_id"] for r in await db.fetch(
        "SELECT DISTINCT a.account_id FROM ticket_view t JOIN account_view a "
        "USING (card_number) WHERE t.offering_id = $1 AND t.status = ANY($2::text[])",
        offering_id, list(statuses))]


async def place_of(db: Db, key: str) -> Place | None:
    """The network's municipality with this code, or with this name in any language
    (``key`` as ``projections.normalise`` writes it); None when the network names none."""
    row = await db.fetchrow(
        "SELECT code, region FROM network_municipality WHERE code = $1 OR $1 = ANY(lookup_keys) "
        "ORDER BY code = $1 DESC, code LIMIT 1", key)
    return Place(row["code"], row["region"]) if row else None


# --- who may write to whom ------------------------------------------------------------------


async def distributor_issued(db: Db, organisation_id: UUID, card_number: str) -> bool:
    return bool(await db.fetchval(
        "SELECT 1 FROM card_view WHERE card_number = $1 AND issuer_organisation_id = $2",
        card_number, organisation_id))


async def venue_sold_to(db: Db, organisation_id: UUID, card_number: str) -> bool:
    return bool(await db.fetchval(
        "SELECT 1 FROM ticket_view t JOIN venue_view v USING (venue_id) "
        "WHERE t.card_number = $1 AND v.organisation_id = $2 LIMIT 1",
        card_number, organisation_id))


async def holder_wrote_to(db: Db, organisation_id: UUID, card_number: str) -> bool:
    """The holder (by card or by account) has written to this organisation."""
    return bool(await db.fetchval(
        """
        SELECT 1 FROM message_view m
        WHERE m.recipient->>'organisation_id' = $1 AND m.sender->>'kind' = 'holder'
          AND (m.sender->>'card_number' = $2 OR (m.sender->>'account_id')::uuid IN
               (SELECT account_id FROM account_view WHERE card_number = $2))
        LIMIT 1
        """, str(organisation_id), card_number))


async def holder_linked_to(db: Db, account_id: UUID, card_number: str,
                           organisation_id: UUID) -> bool:
    """The organisation issued the holder's card, sold them a ticket, or wrote to them."""
    return bool(await db.fetchval(
        """
        SELECT 1 WHERE EXISTS (SELECT 1 FROM card_view WHERE card_number = $1
                               AND issuer_organisation_id = $2)
           OR EXISTS (SELECT 1 FROM ticket_view t JOIN venue_view v USING (venue_id)
                      WHERE t.card_number = $1 AND v.organisation_id = $2)
           OR EXISTS (SELECT 1 FROM inbox_item WHERE owner = ANY($3::text[])
                      AND sender->>'organisation_id' = $4)
        """, card_number, organisation_id, holder_owners(account_id, card_number),
        str(organisation_id)))


# --- notifications and preferences -------------------------------------------------------


async def for_account(db: Db, account_id: UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT source_id, kind, title, payload::text AS payload, created_at, read_at, "
        "delivery, batch_id IS NOT NULL AS handed_over, sealed_for "
        "FROM notification WHERE account_id = $1 ORDER BY created_at DESC LIMIT 200",
        account_id)
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


async def mark_notification_read(db: Db, account_id: UUID, source_id: UUID) -> Any:
    """The first read time (reading again keeps it); None when the holder has no such one."""
    return await db.fetchval(
        "UPDATE notification SET read_at = coalesce(read_at, now()) "
        "WHERE account_id = $1 AND source_id = $2 RETURNING read_at", account_id, source_id)


async def delivery_preference(db: Db, account_id: UUID) -> str:
    return await db.fetchval("SELECT delivery FROM delivery_preference WHERE account_id = $1",
                             account_id) or "immediate"


async def set_delivery_preference(db: Db, account_id: UUID, delivery: str) -> None:
    await db.execute(
        "INSERT INTO delivery_preference (account_id, delivery) VALUES ($1, $2) "
        "ON CONFLICT (account_id) DO UPDATE SET delivery = excluded.delivery, "
        "updated_at = now()", account_id, delivery)


# --- inboxes ------------------------------------------------------------------------------


async def inbox(db: Db, owners: list[str], unread_only: bool) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT item_id, kind, sender::text AS sender, subject, body, payload::text AS "
        "payload, in_reply_to, created_at, read_at, sealed_for FROM inbox_item "
        "WHERE owner = ANY($1::text[]) AND (NOT $2 OR read_at IS NULL) "
        "ORDER BY created_at DESC LIMIT 500",
        owners, unread_only)
    return [{**dict(r), "sender": json.loads(r["sender"]), "payload": json.loads(r["payload"])}
            for r in rows]


async def mark_read(db: Db, owners: list[str], item_id: UUID) -> Any:
    """The first read time (reading again keeps it); None when not in these inboxes."""
    return await db.fetchval(
        "UPDATE inbox_item SET read_at = coalesce(read_at, now()) "
        "WHERE owner = ANY($1::text[]) AND item_id = $2 RETURNING read_at",
        owners, item_id)


# --- sent messages and threads -----------------------------------------------------------

# One copy of each message (a message has one recipient, so one inbox row), with the
# recipient as message_view has it; ``sender_key``/``sender_value`` name the caller
# as a sender. The key is written into the SQL (from this set only), so that the
# indexes on the sender's ids (schema migration 4) serve it.
SENDER_KEYS = ("organisation_id", "user_id", "account_id")


def message_columns(sender_key: str) -> str:
    if sender_key not in SENDER_KEYS:
        raise ValueError(f"not a sender key: {sender_key}")
    return (
        "i.item_id, i.owner, i.sender::text AS sender, m.recipient::text AS recipient, "
        "i.subject, i.body, i.in_reply_to, i.created_at, i.sealed_for, "
        "CASE WHEN i.owner = ANY($1::text[]) THEN i.read_at END AS read_at, "
        f"CASE WHEN i.sender->>'{sender_key}' = $2 THEN 'sent' ELSE 'received' END "
        "AS direction")


def message_rows(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [{**dict(r), "sender": json.loads(r["sender"]),
             "recipient": json.loads(r["recipient"])} for r in rows]


async def sent(db: Db, owners: list[str], sender_key: str, sender_value: str
               ) -> list[dict[str, Any]]:
    """What the caller wrote, newest first."""
    rows = await db.fetch(
        f"SELECT {message_columns(sender_key)} FROM inbox_item i JOIN message_view m "
        f"ON m.message_id = i.item_id WHERE i.kind = 'message' "
        f"AND i.sender->>'{sender_key}' = $2 ORDER BY i.created_at DESC LIMIT 500",
        owners, sender_value)
    return message_rows(rows)


async def thread(db: Db, message_id: UUID, owners: list[str], sender_key: str,
                 sender_value: str) -> list[dict[str, Any]]:
    """The whole thread of a message (up to its first message, then every reply),
    oldest first: only the messages the caller wrote or received."""
    rows = await db.fetch(
        f"""
        WITH RECURSIVE up AS (
            SELECT item_id, in_reply_to, 0 AS depth FROM inbox_item
            WHERE item_id = $3 AND kind = 'message'
            UNION
            SELECT i.item_id, i.in_reply_to, up.depth + 1 FROM inbox_item i
            JOIN up ON i.item_id = up.in_reply_to WHERE i.kind = 'message' AND up.depth < 200
        ), root AS (SELECT item_id FROM up ORDER BY depth DESC LIMIT 1),
        down AS (
            SELECT item_id FROM root
            UNION
            SELECT i.item_id FROM inbox_item i JOIN down ON i.in_reply_to = down.item_id
            WHERE i.kind = 'message'
        )
        SELECT {message_columns(sender_key)} FROM inbox_item i
        JOIN message_view m ON m.message_id = i.item_id
        WHERE i.item_id IN (SELECT item_id FROM down)
          AND (i.owner = ANY($1::text[]) OR i.sender->>'{sender_key}' = $2)
        ORDER BY i.created_at, i.item_id
        """, owners, sender_value, message_id)
    return message_rows(rows)


async def organisations(db: Db) -> list[dict[str, Any]]:
    """Every registered organisation, by name (whom staff may write to)."""
    return [dict(r) for r in await db.fetch(
        "SELECT organisation_id, kind, name FROM organisation_view ORDER BY lower(name)")]


async def holder_organisations(db: Db, account_id: UUID, card_number: str
                               ) -> list[dict[str, Any]]:
    """The organisations a holder may write to (``holder_linked_to``), by name."""
    return [dict(r) for r in await db.fetch(
        """
        SELECT o.organisation_id, o.kind, o.name FROM organisation_view o
        WHERE o.organisation_id IN (
            SELECT issuer_organisation_id FROM card_view WHERE card_number = $1
            UNION SELECT v.organisation_id FROM ticket_view t JOIN venue_view v
                  USING (venue_id) WHERE t.card_number = $1
            UNION SELECT (sender->>'organisation_id')::uuid FROM inbox_item
                  WHERE owner = ANY($2::text[]) AND kind = 'message'
                  AND sender->>'organisation_id' IS NOT NULL)
        ORDER BY lower(o.name)
        """, card_number, holder_owners(account_id, card_number))]


# --- operations ----------------------------------------------------------------------------


async def handovers(db: Db, state: str | None) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT handover_id, kind, source_kind, source_id, recipients, state, attempts, "
        "last_error, next_attempt_at, created_at, issued_at FROM handover "
        "WHERE $1::text IS NULL OR state = $1 ORDER BY created_at DESC LIMIT 500", state)
    return [dict(r) for r in rows]


# --- the holder's own data (GET /me/export) --------------------------------------------


async def holder_export(db: Db, account_id: UUID, owners: list[str]) -> dict[str, Any]:
    """Everything this service holds about one holder, text still sealed."""
    received = await db.fetch(
        "SELECT item_id, kind, sender::text AS sender, subject, body, in_reply_to, "
        "created_at, read_at, sealed_for FROM inbox_item WHERE owner = ANY($1::text[]) "
        "ORDER BY created_at", owners)
    # What the holder wrote lives in the recipients' inboxes (one copy each).
    sent = await db.fetch(
        "SELECT DISTINCT ON (item_id) item_id, owner AS recipient, subject, body, "
        "in_reply_to, created_at, sealed_for FROM inbox_item WHERE kind = 'message' "
        "AND (sender->>'account_id') = $1 ORDER BY item_id, created_at", str(account_id))
    notifications = await db.fetch(
        "SELECT source_id, kind, title, payload::text AS payload, created_at, read_at, "
        "delivery, sealed_for FROM notification WHERE account_id = $1 ORDER BY created_at",
        account_id)
    subscriptions = await db.fetch(
        "SELECT genre, region FROM subscription_view WHERE account_id = $1 ORDER BY genre",
        account_id)
    return {
        "received": [{**dict(r), "sender": json.loads(r["sender"])} for r in received],
        "sent": [dict(r) for r in sent],
        "notifications": [{**dict(r), "payload": json.loads(r["payload"])}
                          for r in notifications],
        "subscriptions": [dict(r) for r in subscriptions],
        "delivery": await delivery_preference(db, account_id),
    }
