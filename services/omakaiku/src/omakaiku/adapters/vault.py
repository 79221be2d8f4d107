"""Per-holder encryption of personal data, and crypto-shredding.

Each account gets its own random 256-bit data key. The key is stored only in the
``holder_keys`` table, wrapped (AES-GCM) by the service's master key, never in
the event store. Personal fields are sealed with the data key (AES-GCM, the
account id as associated data, so a ciphertext cannot be moved to another
account) before an event records them. Erasure deletes the key row: every copy
of the ciphertext — events, backups of them — is then unreadable.

The same row holds the keyed hash (HMAC-SHA256) of the holder's normalised
e-mail, the only way to find an account by e-mail; it goes with the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import unicodedata
from typing import Any, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..application.ports import KeyErased

SEAL_PREFIX = "v1:"


class KeyStore(Protocol):
    def put(self, account_id: UUID, wrapped_key: bytes, email_lookup: bytes) -> bytes: ...
    def get(self, account_id: UUID) -> bytes | None: ...
    def delete(self, account_id: UUID) -> None: ...
    def find(self, email_lookup: bytes) -> list[UUID]: ...


def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


class Vault:
    """Seal and open a holder's personal fields; shred them by deleting the key.
    The application's ``PersonalDataVault``."""

    def __init__(self, store: KeyStore, master_key: bytes, lookup_key: bytes) -> None:
        self.store = store
        self._master = AESGCM(master_key)
        self._lookup_key = lookup_key

    def email_lookup(self, email: str) -> bytes:
        return hmac.new(self._lookup_key, normalise_email(email).encode(),
                        hashlib.sha256).digest()

    def create_key(self, account_id: UUID, email: str) -> bytes:
        """A new data key for the account (or the one a retried request made)."""
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        wrapped = nonce + self._master.encrypt(nonce, key, account_id.bytes)
        stored = self.store.put(account_id, wrapped, self.email_lookup(email))
        return self._unwrap(account_id, stored)

    def seal(self, account_id: UUID, fields: dict[str, Any], key: bytes | None = None) -> str:
        key = key or self._key(account_id)
        nonce = os.urandom(12)
        data = json.dumps(fields, separators=(",", ":")).encode()
        sealed = nonce + AESGCM(key).encrypt(nonce, data, account_id.bytes)
        return SEAL_PREFIX + base64.b64encode(sealed).decode()

    def open(self, account_id: UUID, sealed: str) -> dict[str, Any]:
        key = self._key(account_id)
        raw = base64.b64decode(sealed.removeprefix(SEAL_PREFIX))
        try:
            return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], account_id.bytes))
        except InvalidTag:
            raise KeyErased(f"the data of account {account_id} cannot be opened") from None

    def shred(self, account_id: UUID) -> None:
        self.store.delete(account_id)

    def accounts_for(self, email: str) -> list[UUID]:
        return self.store.find(self.email_lookup(email))

    def accounts_for_lookup(self, email_lookup: bytes) -> list[UUID]:
        """Newest first; for work queued under the hash without the address."""
        return self.store.find(email_lookup)

    def _key(self, account_id: UUID) -> bytes:
        wrapped = self.store.get(account_id)
        if wrapped is None:
            raise KeyErased(f"account {account_id} has no key")
        return self._unwrap(account_id, wrapped)

    def _unwrap(self, account_id: UUID, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:12], wrapped[12:], account_id.bytes)


class MemoryKeyStore:
    """For unit tests: the same behaviour without a database."""

    def __init__(self) -> None:
        self.rows: dict[UUID, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()

    def put(self, account_id: UUID, wrapped_key: bytes, email_lookup: bytes) -> bytes:
        with self._lock:
            self.rows.setdefault(account_id, (wrapped_key, email_lookup))
            return self.rows[account_id][0]

    def get(self, account_id: UUID) -> bytes | None:
        row = self.rows.get(account_id)
        return row[0] if row else None

    def delete(self, account_id: UUID) -> None:
        with self._lock:
            self.rows.pop(account_id, None)

    def find(self, email_lookup: bytes) -> list[UUID]:
        return [a for a, (_, lookup) in self.rows.items() if lookup == email_lookup]


class PostgresKeyStore:
    """The key table in omakaiku's database, used from the (synchronous) use cases."""

    def __init__(self, conninfo: str) -> None:
        from psycopg_pool import ConnectionPool

        # The table itself is made by the service's migrations (adapters/schema.py).
        # Opened at the first use: a process that never opens personal data (the
        # relay) holds no connection for it.
        self.pool = ConnectionPool(conninfo, min_size=1, max_size=4, open=False,
                                   kwargs={"autocommit": True})
        self._opened = False
        self._opening = threading.Lock()

    def _connection(self) -> Any:
        if not self._opened:
            with self._opening:
                if not self._opened:
                    self.pool.open()
                    self._opened = True
        return self.pool.connection()

    def put(self, account_id: UUID, wrapped_key: bytes, email_lookup: bytes) -> bytes:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO holder_keys (account_id, wrapped_key, email_lookup) "
                "VALUES (%s, %s, %s) ON CONFLICT (account_id) DO NOTHING",
                (account_id, wrapped_key, email_lookup))
            row = conn.execute("SELECT wrapped_key FROM holder_keys WHERE account_id = %s",
                               (account_id,)).fetchone()
        return bytes(row[0])

    def get(self, account_id: UUID) -> bytes | None:
        with self._connection() as conn:
            row = conn.execute("SELECT wrapped_key FROM holder_keys WHERE account_id = %s",
                               (account_id,)).fetchone()
        return bytes(row[0]) if row else None

    def delete(self, account_id: UUID) -> None:
        with self._connection() as conn:
            conn.execute("DELETE FROM holder_keys WHERE account_id = %s", (account_id,))

    def find(self, email_lookup: bytes) -> list[UUID]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT account_id FROM holder_keys WHERE email_lookup = %s "
                "ORDER BY created_at DESC", (email_lookup,)).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self.pool.close()
