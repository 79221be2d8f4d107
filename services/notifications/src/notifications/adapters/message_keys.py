"""Holders' message keys: crypto-shredding of what holders write and receive.

Each holder (``account:<id>``, or ``card:<number>`` before an account exists) has
one random data key in ``message_key``, stored only wrapped by the service's
master key. A message between a holder and an organisation is sealed with it
before the event records it (domain ``Message.send``), bound to the message id;
read models copy the ciphertext and open it when read. ``AccountErased`` deletes
the rows: every copy — the event store, inboxes, database dumps and backups —
is unreadable from then on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from kaiku_shared.sealing import CannotOpen, MasterKey, is_sealed, open_sealed, seal

from .queries import Db

# The wrapping is bound to the table, not to the holder's name: a card's key is
# renamed when the card is replaced (projections.on_card_replaced).
WRAPPED_FOR = b"notifications.message_key"


class MessageKeys:
    def __init__(self, master_key: bytes) -> None:
        self._master = MasterKey(master_key)

    async def sealer(self, db: Db, holder: str, message_id: UUID) -> Any:
        """A ``Sealer`` for one message: the holder's key (made at first use)."""
        await db.execute(
            "INSERT INTO message_key (holder, wrapped_key) VALUES ($1, $2) "
            "ON CONFLICT (holder) DO NOTHING", holder, self._master.new_wrapped_key(WRAPPED_FOR))
        wrapped = await db.fetchval("SELECT wrapped_key FROM message_key WHERE holder = $1",
                                    holder)
        key = self._master.unwrap(bytes(wrapped), WRAPPED_FOR)

        def sealed(for_holder: str, text: str) -> str:
            if for_holder != holder:
                raise ValueError("a message is sealed for the key it was given")
            return seal(key, text, message_id.bytes)
        return sealed

    async def keys_for(self, db: Db, holders: Iterable[str]) -> dict[str, bytes]:
        """The data keys of those holders that still have one (erased: absent)."""
        rows = await db.fetch("SELECT holder, wrapped_key FROM message_key "
                              "WHERE holder = ANY($1::text[])", list(set(holders)))
        return {r["holder"]: self._master.unwrap(bytes(r["wrapped_key"]), WRAPPED_FOR)
                for r in rows}

    async def open_rows(self, db: Db, rows: list[dict[str, Any]], id_field: str,
                        fields: tuple[str, ...]) -> list[dict[str, Any]]:
        """Rows with their sealed ``fields`` opened; rows whose key is gone are
        left out (their holder was erased)."""
        keys = await self.keys_for(db, (r["sealed_for"] for r in rows if r.get("sealed_for")))
        opened = []
        for row in rows:
            holder = row.get("sealed_for")
            if holder is None:
                opened.append(row)
                continue
            if holder not in keys:
                continue
            try:
                opened.append({**row, **{
                    name: open_sealed(keys[holder], row[name], row[id_field].bytes)
                    if is_sealed(row[name]) else row[name] for name in fields}})
            except CannotOpen:
                continue
        return opened


async def shred(db: Db, holders: list[str]) -> None:
    """Erasure: the keys go, and with them every copy of what they sealed."""
    await db.execute("DELETE FROM message_key WHERE holder = ANY($1::text[])", holders)


ERASED_TEXT = "[erased]"


async def redact_unsealed(db: Db, events_table: str, account_id: UUID,
                          card_number: str | None) -> None:
    """Erasure of messages recorded before sealing (plain text, no ``sealed_for``):
    their subject and body are overwritten in the event store and in every inbox.
    The only change ever made to a stored event, and the reason for it is the law."""
    if not await db.fetchval("SELECT to_regclass($1) IS NOT NULL", events_table):
        return  # a read-model-only database (a rebuild elsewhere): nothing recorded here
    state = "convert_from(state, 'UTF8')::jsonb"
    party = ("(({s}->'{side}'->>'account_id') = $1 OR "
             "($2::text IS NOT NULL AND ({s}->'{side}'->>'card_number') = $2))")
    involved = " OR ".join(party.format(s=state, side=side) for side in ("sender", "recipient"))
    await db.execute(
        f'UPDATE "{events_table}" SET state = convert_to(({state} || jsonb_build_object('
        f"'subject', $3::text, 'body', $3::text))::text, 'UTF8') "
        f"WHERE topic LIKE '%:Message.Sent' AND ({state}->>'sealed_for') IS NULL "
        f"AND ({involved})", str(account_id), card_number, ERASED_TEXT)
    await db.execute(
        "DELETE FROM inbox_item WHERE kind = 'message' AND sealed_for IS NULL AND "
        "((sender->>'account_id') = $1 OR ($2::text IS NOT NULL AND "
        "(sender->>'card_number') = $2))", str(account_id), card_number)
