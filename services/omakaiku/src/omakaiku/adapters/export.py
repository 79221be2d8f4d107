"""What omakaiku's tables hold about one holder, for the holder's own export
(``GET /me/export``). Read-only; the personal fields themselves are sealed in
the event store and opened by the application, not here."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(record) for record in records]


async def holder_records(pool: asyncpg.Pool, account_id: UUID, card_number: str,
                         card_numbers: list[str]) -> dict[str, Any]:
    """The card, every ticket of the account's cards, and the sign-in and e-mail
    records kept for the account (by its id or its e-mail's lookup hash)."""
    async with pool.acquire() as conn:
        card = await conn.fetchrow(
            "SELECT card_number, issuer, status, valid_until, children, region "
            "FROM card_view WHERE card_number = $1", card_number)
        tickets = await conn.fetch(
            "SELECT ticket_id, card_number, offering_id, offering_title, venue_id, "
            "venue_name, starts_at, children, status, registered_at, cancelled_at, "
            "cancellation_refused FROM history_view WHERE card_number = ANY($1::text[]) "
            "ORDER BY starts_at DESC NULLS LAST", card_numbers)
        keyed = await conn.fetchrow(
            "SELECT email_lookup, created_at FROM holder_keys WHERE account_id = $1",
            account_id)
        lookup = keyed["email_lookup"] if keyed else None
        codes = await conn.fetch(
            "SELECT kind, created_at, expires_at, used_at, attempts AS wrong_tries "
            "FROM signin_codes WHERE account_id = $1 ORDER BY created_at", account_id)
        wrong = await conn.fetch(
            "SELECT at FROM signin_attempts WHERE email_lookup = $1 AND kind = 'failure' "
            "ORDER BY at", lookup)
        pending = await conn.fetch(
            "SELECT language, expires_at FROM signin_requests WHERE email_lookup = $1 "
            "ORDER BY id", lookup)
        mails = await conn.fetch(
            "SELECT kind, reference, outcome, detail, at FROM mail_deliveries "
            "WHERE account_id = $1 ORDER BY at", account_id)
    return {
        "card": dict(card) if card else None,
        "tickets": _rows(tickets),
        "activated_at": keyed["created_at"] if keyed else None,
        "sign_in": {"codes_and_links": _rows(codes), "wrong_codes": _rows(wrong),
                    "code_requests_waiting": _rows(pending)},
        "emails": _rows(mails),
    }
