"""What the use cases need from outside, declared here and implemented by adapters.

The composition root (``bootstrap``) hands an adapter in; the application never
imports one.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID


class KeyErased(Exception):
    """The holder's key is gone: the data it sealed can never be read again."""


class PersonalDataVault(Protocol):
    """Seals a holder's personal fields with the holder's own key; shredding the
    key makes every sealed copy unreadable (``open`` then raises ``KeyErased``)."""

    def email_lookup(self, email: str) -> bytes: ...

    def create_key(self, account_id: UUID, email: str) -> bytes: ...

    def seal(self, account_id: UUID, fields: dict[str, Any],
             key: bytes | None = None) -> str: ...

    def open(self, account_id: UUID, sealed: str) -> dict[str, Any]: ...

    def shred(self, account_id: UUID) -> None: ...

    def accounts_for(self, email: str) -> list[UUID]: ...

    def accounts_for_lookup(self, email_lookup: bytes) -> list[UUID]: ...
