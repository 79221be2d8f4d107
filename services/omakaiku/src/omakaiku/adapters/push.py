"""Web Push: the holder's devices and preferences, and the push outbox.

A device (a browser's PushSubscription) is personal data: its endpoint, keys,
label and origin are sealed with the holder's key (``Vault.seal``), so erasure
shreds them; ``endpoint_lookup`` (an HMAC under the lookup key, like the
e-mail's) finds a device posted again. Nothing here logs an endpoint.

The outbox (``push_outbox``) has one row per (device, notification). The
notifications consumer adds the rows in its own transaction; ``PushSender``
(the worker) sends them (adapters/webpush.py) and records each outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from ..application.ports import KeyErased, PersonalDataVault
from ..domain.push import PUSHED_KINDS, PushPreferences, PushSubscription


class TooManyDevices(Exception):
    pass


@dataclass(frozen=True)
class Device:
    subscription_id: UUID
    label: str | None
    created_at: datetime
    endpoint_origin: str


def endpoint_lookup(lookup_key: bytes, endpoint: str) -> bytes:
    return hmac.new(lookup_key, b"push-endpoint\0" + endpoint.encode(), hashlib.sha256).digest()


def origin_key(lookup_key: bytes, origin: str) -> bytes:
    """Which push service, without naming it (16 bytes are plenty to tell apart)."""
    return hmac.new(lookup_key, b"push-origin\0" + origin.encode(), hashlib.sha256).digest()[:16]


class PushDevices:
    """The holder's devices and preferences in omakaiku's database."""

    def __init__(self, pool: asyncpg.Pool, vault: PersonalDataVault, lookup_key: bytes,
                 max_devices: int) -> None:
        self.pool = pool
        self.vault = vault
        self.lookup_key = lookup_key
        self.max_devices = max_devices

    async def subscribe(self, account_id: UUID, subscription: PushSubscription,
                        label: str | None) -> tuple[UUID, bool]:
        """The device's id and whether it is new. The same endpoint again is the
        same device (its keys and label renewed); an endpoint another account
        had moves here: a browser delivers to whoever subscribed it last."""
        lookup = endpoint_lookup(self.lookup_key, subscription.endpoint)
        sealed = await asyncio.to_thread(self.vault.seal, account_id, {
            "endpoint": subscription.endpoint, "p256dh": subscription.p256dh,
            "auth": subscription.auth, "label": label, "origin": subscription.origin})
        async with self.pool.acquire() as conn, conn.transaction():
            # One holder's subscriptions one at a time: the limit holds under races.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))",
                               str(account_id))
            existing = await conn.fetchval(
                "UPDATE push_subscriptions SET sealed = $3 WHERE account_id = $1 "
                "AND endpoint_lookup = $2 RETURNING subscription_id",
                account_id, lookup, sealed)
            if existing is not None:
                return existing, False
            count = await conn.fetchval(
                "SELECT count(*) FROM push_subscriptions WHERE account_id = $1", account_id)
            if count >= self.max_devices:
                raise TooManyDevices
            await conn.execute("DELETE FROM push_subscriptions WHERE endpoint_lookup = $1",
                               lookup)
            subscription_id = uuid4()
            await conn.execute(
                "INSERT INTO push_subscriptions (subscription_id, account_id, endpoint_lookup, "
                "origin_key, sealed) VALUES ($1, $2, $3, $4, $5)", subscription_id, account_id,
                lookup, origin_key(self.lookup_key, subscription.origin), sealed)
        return subscription_id, True

    async def devices(self, account_id: UUID) -> list[Device]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT subscription_id, sealed, created_at FROM push_subscriptions "
                "WHERE account_id = $1 ORDER BY created_at, subscription_id", account_id)

        def opened() -> list[Device]:
            found = []
            for row in rows:
                try:
                    fields = self.vault.open(account_id, row["sealed"])
                except KeyErased:
                    continue
                found.append(Device(row["subscription_id"], fields.get("label"),
                                    row["created_at"], fields["origin"]))
            return found

        return await asyncio.to_thread(opened) if rows else []

    async def unsubscribe(self, account_id: UUID, subscription_id: UUID) -> bool:
        async with self.pool.acquire() as conn:
            deleted = await conn.fetchval(
                "DELETE FROM push_subscriptions WHERE account_id = $1 AND subscription_id = $2 "
                "RETURNING 1", account_id, subscription_id)
        return bool(deleted)

    async def preferences(self, account_id: UUID) -> PushPreferences:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT new_offerings, messages, muted FROM push_preferences "
                "WHERE account_id = $1", account_id)
        return PushPreferences(**dict(row)) if row else PushPreferences()

    async def set_preferences(self, account_id: UUID, chosen: PushPreferences) -> PushPreferences:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO push_preferences (account_id, new_offerings, messages, muted) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO UPDATE SET "
                "new_offerings = $2, messages = $3, muted = $4, changed_at = now()",
                account_id, chosen.new_offerings, chosen.messages, chosen.muted)
        return chosen


async def enqueue_pushes(conn: asyncpg.Connection, account_ids: list[UUID], kind: str,
                         reference: str, params: dict[str, str]) -> int:
    """One outbox row per device of each account that wants ``kind`` pushed;
    a row already there (a redelivered notification) is kept as it is."""
    choice = PUSHED_KINDS.get(kind)
    if choice is None or not account_ids:
        return 0
    result = await conn.execute(
        f"""
        INSERT INTO push_outbox (subscription_id, account_id, origin_key, kind, reference,
                                 params)
        SELECT s.subscription_id, s.account_id, s.origin_key, $2, $3, $4::jsonb
          FROM push_subscriptions s
          LEFT JOIN push_preferences p ON p.account_id = s.account_id
         WHERE s.account_id = ANY($1::uuid[])
           AND NOT coalesce(p.muted, false) AND coalesce(p.{choice}, true)
        ON CONFLICT (subscription_id, kind, reference) DO NOTHING
        """, account_ids, kind, reference, json.dumps(params))
    return int(result.split()[-1])


async def drop_devices(conn: asyncpg.Connection, account_id: UUID) -> None:
    """Erasure: the devices (and their pending pushes) and the preferences."""
    await conn.execute("DELETE FROM push_subscriptions WHERE account_id = $1", account_id)
    await conn.execute("DELETE FROM push_outbox WHERE account_id = $1", account_id)
    await conn.execute("DELETE FROM push_preferences WHERE account_id = $1", account_id)


async def export_records(pool: asyncpg.Pool, vault: PersonalDataVault,
                         account_id: UUID) -> dict[str, Any]:
    """The holder's devices (label, origin, when added) and preferences."""
    devices = PushDevices(pool, vault, b"", 0)
    found = await devices.devices(account_id)
    chosen = await devices.preferences(account_id)
    return {"devices": [{"subscription_id": d.subscription_id, "label": d.label,
                         "created_at": d.created_at, "endpoint_origin": d.endpoint_origin}
                        for d in found],
            "preferences": {"new_offerings": chosen.new_offerings,
                            "messages": chosen.messages, "muted": chosen.muted}}

