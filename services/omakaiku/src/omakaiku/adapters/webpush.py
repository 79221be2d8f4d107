"""Sending Web Push: RFC 8030 (the push message, ``TTL``, ``Urgency``), RFC 8291
(``aes128gcm`` payload encryption, with ``http_ece``) and RFC 8292 (VAPID, with
``py_vapid``). The request itself goes out with httpx: the worker is asyncio,
and pywebpush sends with requests (blocking), so it would need a thread per push.

``PushSender`` takes due rows from the outbox, at most ``concurrency`` in
flight, each its own task with its own timeout, and at most three quarters of
them to any one push service (by the outbox's ``origin_key``): a slow push
service holds only its own pushes and never every slot. 2xx: sent. 404/410: the device is gone, it is deleted. 429/5xx,
a timeout or no connection: tried again later (doubling backoff, never sooner
than ``Retry-After``) up to ``max_attempts``. Anything else: failed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

import asyncpg
import http_ece
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from kaiku_shared.metrics import PUSHES

from ..application.ports import KeyErased, PersonalDataVault
from ..domain.push import b64url_decode, endpoint_origin, retry_delay

log = logging.getLogger("omakaiku.push")

URGENCY = {"new_offering": "normal", "message": "high"}
TITLES: dict[str, dict[str, str]] = {
    "new_offering": {"fi": "Uutta tarjontaa: {title}", "sv": "Nytt utbud: {title}",
                     "en": "New on offer: {title}"},
    "message": {"fi": "Uusi viesti OmaKaikussa", "sv": "Nytt meddelande i OmaKaiku",
                "en": "A new message in OmaKaiku"},
}
URLS = {"new_offering": "/oma/offerings/{reference}", "message": "/oma/messages/{reference}"}
JWT_LIFETIME_SECONDS = 12 * 3600  # RFC 8292: at most 24 h
# Sent and failed rows are kept this long (a redelivered notification finds its
# row and is not pushed again), then removed, once an hour.
KEEP_DONE_DAYS = 30
CLEAN_EVERY_SECONDS = 3600.0


class VapidKeyError(ValueError):
    pass


class VapidKey:
    """The application server's key: signs the VAPID JWT, and its public half
    (``public_key``) is what browsers subscribe with."""

    def __init__(self, configured: str, subject: str) -> None:
        text = configured.strip()
        try:
            if text.startswith("-----BEGIN"):
                self._vapid = Vapid02.from_pem(text.encode())
            else:
                raw = b64url_decode(text)
                if len(raw) != 32:
                    raise ValueError("not 32 bytes")
                self._vapid = Vapid02.from_raw(base64.urlsafe_b64encode(raw).rstrip(b"="))
            if not isinstance(self._vapid.private_key.curve, ec.SECP256R1):
                raise ValueError("not a P-256 key")
        except Exception as error:  # noqa: BLE001 - any unreadable key is the same refusal
            raise VapidKeyError("KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY must be a P-256 private key: "
                                f"its 32 bytes base64url, or a PEM ({error})") from None
        self.subject = subject
        # One signed token per push service, reused until half its life is gone:
        # signing (ECDSA) for every push to the same origin is work done again.
        self._tokens: dict[str, tuple[str, float]] = {}
        point = self._vapid.public_key.public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)
        self.public_key = base64.urlsafe_b64encode(point).rstrip(b"=").decode()

    def authorization(self, endpoint: str) -> str:
        origin, now = endpoint_origin(endpoint), time.time()
        kept = self._tokens.get(origin)
        if kept is not None and now < kept[1]:
            return kept[0]
        claims = {"aud": origin, "sub": self.subject,
                  "exp": int(now) + JWT_LIFETIME_SECONDS}
        header = self._vapid.sign(claims)["Authorization"]
        self._tokens[origin] = (header, now + JWT_LIFETIME_SECONDS / 2)
        return header


def payload(kind: str, reference: str, params: dict[str, str], language: str) -> bytes:
    """``{kind, title, url}`` in the holder's language; ``url`` is the web's page."""
    titles = TITLES[kind]
    title = titles.get(language, titles["fi"]).format(title=params.get("title", ""))
    return json.dumps({"kind": kind, "title": title,
                       "url": URLS[kind].format(reference=reference)},
                      ensure_ascii=False).encode()


def encrypt(body: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291: a fresh server key and salt per message; the key's public half
    and the salt travel in the aes128gcm header."""
    return http_ece.encrypt(body, private_key=ec.generate_private_key(ec.SECP256R1()),
                            dh=b64url_decode(p256dh), auth_secret=b64url_decode(auth),
                            version="aes128gcm")


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class PushSender:
    def __init__(self, pool: asyncpg.Pool, vault: PersonalDataVault, vapid: VapidKey,
                 language_of: Callable[[UUID], str], *, concurrency: int = 16,
                 timeout: float = 10.0, ttl: int = 86400, max_attempts: int = 8,
                 poll_seconds: float = 1.0) -> None:
        self.pool, self.vault, self.vapid = pool, vault, vapid
        self.language_of = language_of
        self.concurrency, self.timeout, self.ttl = concurrency, timeout, ttl
        self.max_attempts, self.poll_seconds = max_attempts, poll_seconds
        self.per_origin = max(1, concurrency * 3 // 4)
        self.in_flight: Counter[bytes] = Counter()
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def run(self, stop: asyncio.Event) -> None:
        running: set[asyncio.Future[Any]] = set()
        stopping = asyncio.ensure_future(stop.wait())
        cleaned = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() - cleaned > CLEAN_EVERY_SECONDS:
                    cleaned = time.monotonic()
                    await self.clean()
                running = {task for task in running if not task.done()}
                free = self.concurrency - len(running)
                try:
                    rows = await self.start(free) if free > 0 else []
                except (OSError, asyncpg.PostgresError) as error:
                    log.warning("push outbox unavailable", extra={"error": str(error)[:200]})
                    rows = []
                running |= set(rows)
                await asyncio.wait({*running, stopping}, timeout=self.poll_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if running:
                await asyncio.wait(running, timeout=self.timeout + 5)
            await self.client.aclose()

    async def clean(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "DELETE FROM push_outbox WHERE status <> 'pending' "
                    "AND created_at < now() - make_interval(days => $1)", KEEP_DONE_DAYS)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("push outbox not cleaned", extra={"error": str(error)[:200]})

    async def start(self, free: int) -> list[asyncio.Future[Any]]:
        """A task per due push, up to ``free``; a push service with its share in
        flight gets no more (its rows claimed meanwhile go back, untouched)."""
        busy = [key for key, count in self.in_flight.items() if count >= self.per_origin]
        tasks, back = [], []
        for row in await self.claim(free, busy):
            key = bytes(row["origin_key"])
            if self.in_flight[key] >= self.per_origin:
                back.append(row["id"])
                continue
            self.in_flight[key] += 1
            task = asyncio.ensure_future(self.push(row))
            task.add_done_callback(lambda _, key=key: self._finished(key))
            tasks.append(task)
        if back:
            async with self.pool.acquire() as conn:
                await conn.execute("UPDATE push_outbox SET claimed_until = NULL, "
                                   "attempts = attempts - 1 WHERE id = ANY($1::bigint[])", back)
        return tasks

    def _finished(self, key: bytes) -> None:
        self.in_flight[key] -= 1
        if self.in_flight[key] <= 0:
            del self.in_flight[key]

    async def claim(self, limit: int, busy: list[bytes]) -> list[asyncpg.Record]:
        """Due rows of push services not ``busy``, each held for a while so that
        a second worker skips them; a worker that dies holding some leaves them
        to be claimed again."""
        async with self.pool.acquire() as conn:
            return await conn.fetch(
                """
                UPDATE push_outbox o SET claimed_until = now() + make_interval(secs => $2),
                       attempts = o.attempts + 1
                  FROM (SELECT id FROM push_outbox
                         WHERE status = 'pending' AND next_attempt_at <= now()
                           AND (claimed_until IS NULL OR claimed_until < now())
                           AND NOT (origin_key = ANY($3::bytea[]))
                         ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
                 WHERE o.id = due.id
                RETURNING o.id, o.subscription_id, o.account_id, o.origin_key, o.kind,
                          o.reference, o.params, o.attempts
                """, limit, self.timeout * 3 + 30, busy)

    async def push(self, row: asyncpg.Record) -> None:
        try:
            outcome = await self._send(row)
        except Exception:  # noqa: BLE001 - one push's bug must not stop the others
            log.exception("push failed unexpectedly", extra={"push_id": row["id"]})
            outcome = ("retry", None, None)
        try:
            await self._record(row, *outcome)
        except (OSError, asyncpg.PostgresError) as error:  # the claim expires; tried again
            log.warning("push outcome not recorded", extra={"error": str(error)[:200]})
        exhausted = outcome[0] == "retry" and row["attempts"] >= self.max_attempts
        PUSHES.labels(outcome="failed" if exhausted else outcome[0]).inc()

    async def _send(self, row: asyncpg.Record) -> tuple[str, int | None, float | None]:
        account_id: UUID = row["account_id"]
        async with self.pool.acquire() as conn:
            sealed = await conn.fetchval(
                "SELECT sealed FROM push_subscriptions WHERE subscription_id = $1",
                row["subscription_id"])
        if sealed is None:
            return "dropped", None, None
        try:
            device = await asyncio.to_thread(self.vault.open, account_id, sealed)
            language = await asyncio.to_thread(self.language_of, account_id)
        except KeyErased:
            return "gone", None, None
        body = encrypt(payload(row["kind"], row["reference"], json.loads(row["params"]),
                               language), device["p256dh"], device["auth"])
        headers = {"TTL": str(self.ttl), "Urgency": URGENCY.get(row["kind"], "normal"),
                   "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream",
                   "Authorization": self.vapid.authorization(device["endpoint"])}
        try:
            response = await self.client.post(device["endpoint"], content=body,
                                              headers=headers)
        except httpx.HTTPError:  # timeout, refused, reset: the push service's trouble
            return "retry", None, None
        status = response.status_code
        if 200 <= status < 300:
            return "sent", status, None
        if status in (404, 410):
            return "gone", status, None
        if status == 429 or status >= 500:
            return "retry", status, retry_after(response)
        return "failed", status, None

    async def _record(self, row: asyncpg.Record, outcome: str, status: int | None,
                      wait: float | None) -> None:
        async with self.pool.acquire() as conn:
            if outcome == "gone":
                await conn.execute("DELETE FROM push_subscriptions WHERE subscription_id = $1",
                                   row["subscription_id"])
                log.info("push device gone; deleted",
                         extra={"subscription_id": str(row["subscription_id"]),
                                "status": status})
            elif outcome == "retry" and row["attempts"] < self.max_attempts:
                await conn.execute(
                    "UPDATE push_outbox SET claimed_until = NULL, last_status = $2, "
                    "next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                    row["id"], status, retry_delay(row["attempts"], wait))
            elif outcome != "dropped":
                await conn.execute(
                    "UPDATE push_outbox SET status = $2, last_status = $3, claimed_until = NULL, "
                    "sent_at = CASE WHEN $2 = 'sent' THEN now() END WHERE id = $1",
                    row["id"], "sent" if outcome == "sent" else "failed", status)
