"""Notifications settings: the shared KAIKU_* settings plus its own (KAIKU_NOTIFICATIONS_*).

``KAIKU_NOTIFICATIONS_MASTER_KEY`` (32 bytes, base64; `kaiku keys generate` makes
one, `kaiku run` keeps a development one in `.kaiku/keys/`) wraps each holder's
message key: what holders write and receive is sealed under it, and erasure
deletes the key (adapters/message_keys.py). Production refuses to start without it.
"""

from __future__ import annotations

import base64

from pydantic_settings import BaseSettings, SettingsConfigDict

from kaiku_shared.settings import KaikuSettings, load_settings

SERVICE = "notifications"
MASTER_KEY_SETTING = "KAIKU_NOTIFICATIONS_MASTER_KEY"


class NotificationsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAIKU_NOTIFICATIONS_", extra="ignore")

    master_key: str | None = None

    def master_key_bytes(self) -> bytes | None:
        """The configured master key; None when unset. Malformed is an error."""
        if not self.master_key:
            return None
        try:
            key = base64.b64decode(self.master_key, validate=True)
        except ValueError:
            raise ValueError(f"{MASTER_KEY_SETTING} is not base64") from None
        if len(key) < 32:
            raise ValueError(f"{MASTER_KEY_SETTING} must be at least 32 bytes")
        return key[:32]


__all__ = ["MASTER_KEY_SETTING", "SERVICE", "KaikuSettings", "NotificationsSettings",
           "load_settings"]
