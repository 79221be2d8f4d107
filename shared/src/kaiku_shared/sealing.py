"""Data keys wrapped by a master key, and text sealed with a data key (AES-GCM).

Crypto-shredding: each holder's data key is random and stored only wrapped by the
service's master key, in one row; what is sealed with it may be copied anywhere —
events, read models, backups of them — and becomes unreadable everywhere the
moment that row is deleted. The associated data binds a ciphertext to what it
belongs to, so it cannot be moved to another record.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_PREFIX = "sealed:v1:"


class CannotOpen(ValueError):
    """The text was sealed with another key, or for another record."""


class MasterKey:
    """Wraps and unwraps data keys; never seals data itself."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a master key is 32 bytes")
        self._aead = AESGCM(key)

    def new_wrapped_key(self, bound_to: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, AESGCM.generate_key(bit_length=256), bound_to)

    def unwrap(self, wrapped: bytes, bound_to: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], bound_to)
        except InvalidTag:
            raise CannotOpen("the data key was wrapped by another master key") from None


def seal(data_key: bytes, text: str, bound_to: bytes) -> str:
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(data_key).encrypt(nonce, text.encode(), bound_to)
    return SEALED_PREFIX + base64.b64encode(sealed).decode()


def is_sealed(text: str) -> bool:
    return text.startswith(SEALED_PREFIX)


def open_sealed(data_key: bytes, sealed: str, bound_to: bytes) -> str:
    raw = base64.b64decode(sealed.removeprefix(SEALED_PREFIX))
    try:
        return AESGCM(data_key).decrypt(raw[:12], raw[12:], bound_to).decode()
    except InvalidTag:
        raise CannotOpen("sealed with another key or for another record") from None
