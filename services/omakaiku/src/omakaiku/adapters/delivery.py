"""Delivery of holder notifications by e-mail and Web Push: notifications decides who gets
what (by account id); only omakaiku can open the address, render the text in the
holder's language, send it, and record the outcome (without the address).

A redelivered batch does not e-mail anyone twice: each outcome is committed
as soon as it is known, and an account with ``sent`` for the same reference is
skipped. Pushes (a new offering, a message to the holder) are queued in the
push outbox in the handler's transaction, one row per device, and sent by the
worker's PushSender (adapters/webpush.py); a digest is not pushed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    MessageSentV1,
    NotificationBatchIssuedV1,
    NotificationDigestIssuedV1,
)

from .mail import Mailer, render
from .push import enqueue_pushes

log = logging.getLogger("omakaiku.delivery")

DELIVERY_CONSUMER = "omakaiku-delivery"

# kind → (title, body) per language, from the notification's non-personal params.
KIND_TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "new_offering": {
        "fi": ("Uutta tarjontaa: {title}", "{venue_name} — {title}, {when}."),
        "sv": ("Nytt utbud: {title}", "{venue_name} — {title}, {when}."),
        "en": ("New on offer: {title}", "{venue_name} — {title}, {when}."),
    },
    "offering_changed": {
        "fi": ("Muutos: {title}", "Tapahtumaan {title} on tullut muutos: {when}."),
        "sv": ("Ändring: {title}", "Evenemanget {title} har ändrats: {when}."),
        "en": ("Changed: {title}", "The event {title} has changed: {when}."),
    },
    "offering_cancelled": {
        "fi": ("Peruttu: {title}", "Tapahtuma {title} on peruttu."),
        "sv": ("Inställt: {title}", "Evenemanget {title} är inställt."),
        "en": ("Cancelled: {title}", "The event {title} has been cancelled."),
    },
    "ticket_cancelled": {
        "fi": ("Lippu peruttu: {offering_title}", "Lippusi tapahtumaan {offering_title} on peruttu."),
        "sv": ("Biljett avbokad: {offering_title}", "Din biljett till {offering_title} är avbokad."),
        "en": ("Ticket cancelled: {offering_title}", "Your ticket to {offering_title} is cancelled."),
    },
    "_default": {
        "fi": ("Uusi ilmoitus", "Sinulle on uusi ilmoitus OmaKaikussa."),
        "sv": ("Nytt meddelande", "Du har ett nytt meddelande i OmaKaiku."),
        "en": ("New notification", "You have a new notification in OmaKaiku."),
    },
}
DIGEST_TITLE = {"fi": "Päivän koonti", "sv": "Dagens sammandrag", "en": "Your daily digest"}


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return ""


def notification_text(kind: str, params: dict[str, str], language: str) -> tuple[str, str]:
    texts = KIND_TEXTS.get(kind, KIND_TEXTS["_default"])
    title, body = texts.get(language, texts["fi"])
    values = _Params(params)
    if params.get("starts_at"):
        try:
            values["when"] = datetime.fromisoformat(params["starts_at"]).strftime("%d.%m.%Y %H:%M")
        except ValueError:
            values["when"] = params["starts_at"]
    return title.format_map(values), body.format_map(values)


class Deliverer:
    """Opens the holder's address with ``profile`` (a thread-safe use case) and mails.

    ``pool`` must not be the pool the consumer's handlers run in: a handler holds
    one of those connections while it waits for the deliveries."""

    def __init__(self, pool: asyncpg.Pool, mailer: Mailer, public_url: str,
                 profile: Callable[[UUID], Any], concurrency: int = 8) -> None:
        self.pool = pool
        self.mailer = mailer
        self.public_url = public_url
        self.profile = profile
        self._limit = asyncio.Semaphore(concurrency)

    async def deliver(self, account_id: UUID, kind: str, reference: str,
                      texts: Callable[[str], tuple[str, str]]) -> str:
        async with self._limit:
            async with self.pool.acquire() as conn:
                if await conn.fetchval(
                        "SELECT 1 FROM mail_deliveries WHERE account_id = $1 AND kind = $2 "
                        "AND reference = $3 AND outcome = 'sent'", account_id, kind, reference):
                    return "sent"
            try:
                profile = await asyncio.to_thread(self.profile, account_id)
            except Exception:  # noqa: BLE001 - erased or unknown: nobody to write to
                outcome, detail = "no_account", None
            else:
                language = profile.account.language
                title, body = texts(language)
                subject, text = render("notification", language, title=title, body=body,
                                       link=f"{self.public_url}/me")
                outcome, detail = await self.mailer.send(profile.personal.email, subject, text,
                                                         language=language)
            if outcome != "no_account":
                async with self.pool.acquire() as conn:
                    await conn.execute(
                        "INSERT INTO mail_deliveries (account_id, kind, reference, outcome, detail) "
                        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        account_id, kind, reference, outcome, detail)
            log.info("notification e-mail", extra={"account_id": str(account_id),
                                                  "kind": kind, "outcome": outcome})
            return outcome


def delivery_consumer(deliverer: Deliverer) -> Consumer:
    consumer = Consumer(DELIVERY_CONSUMER, "notifications")

    @consumer.on(NotificationBatchIssuedV1)
    async def on_notification_batch_issued(event: NotificationBatchIssuedV1,
                                           conn: asyncpg.Connection) -> None:
        params = dict(event.params)
        await enqueue_pushes(conn, list(event.account_ids), event.kind, str(event.source_id),
                             {"title": params.get("title", "")})
        await asyncio.gather(*(
            deliverer.deliver(account_id, event.kind, str(event.source_id),
                              lambda language: notification_text(event.kind, params, language))
            for account_id in event.account_ids))

    @consumer.on(NotificationDigestIssuedV1)
    async def on_notification_digest_issued(event: NotificationDigestIssuedV1,
                                            conn: asyncpg.Connection) -> None:
        def texts(language: str) -> tuple[str, str]:
            lines = [notification_text(item.kind, dict(item.params), language)[0]
                     for item in event.items]
            return (f"{DIGEST_TITLE.get(language, DIGEST_TITLE['fi'])} "
                    f"{event.digest_date.strftime('%d.%m.%Y')}",
                    "\n".join(f"• {line}" for line in lines))

        await deliverer.deliver(event.account_id, "digest", str(event.digest_id), texts)

    @consumer.on(MessageSentV1)
    async def on_message_sent(event: MessageSentV1, conn: asyncpg.Connection) -> None:
        """A message to a holder is pushed: only ids travel. A message addressed
        by card number reaches the holder's accounts through the batch (kind
        ``message``) instead; both name the message id, so a device gets one push."""
        if event.recipient_kind == "holder" and event.recipient_account_id is not None:
            await enqueue_pushes(conn, [event.recipient_account_id], "message",
                                 str(event.message_id), {})

    return consumer
