"""OmaKaiku settings: the shared KAIKU_* settings plus omakaiku's own (KAIKU_OMAKAIKU_*).

Secrets, each its own random value, never derived from another (production
refuses to start without them, `kaiku keys generate` makes a set, `kaiku run`
keeps a development set in `.kaiku/keys/`):

- ``KAIKU_HOLDER_SIGNING_KEYS`` (shared settings): the JWK set that signs holder tokens.
- ``KAIKU_OMAKAIKU_MASTER_KEY``: 32 bytes, base64; wraps every holder's own data key.
- ``KAIKU_OMAKAIKU_LOOKUP_KEY``: base64; the HMAC key of the e-mail lookup hash.
- ``KAIKU_OMAKAIKU_CARD_SIGNING_KEY``: 32-byte Ed25519 seed, base64; signs mobile cards.

- ``KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY``: the Web Push (VAPID, RFC 8292) P-256 key,
  its 32-byte scalar base64url or a PEM; ``_VAPID_SUBJECT`` (mailto: or https:)
  tells push services whom to contact.

E-mail: ``KAIKU_OMAKAIKU_SMTP_HOST``/``_PORT`` (unset: no e-mail is sent, the
outcome is recorded as ``not_configured``), ``_SMTP_FROM``, ``_SMTP_USERNAME``/
``_SMTP_PASSWORD``/``_SMTP_STARTTLS`` for a real relay, and ``_PUBLIC_URL`` — the
holder-facing address the sign-in links point to.
"""

from __future__ import annotations

import base64
from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaiku_shared.settings import KaikuSettings, load_settings

from .domain.retention import RetentionPolicy

SERVICE = "omakaiku"


class KeysMissing(RuntimeError):
    pass


class OmaKaikuSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAIKU_OMAKAIKU_", extra="ignore")

    master_key: str | None = None
    lookup_key: str | None = None
    card_signing_key: str | None = None

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "OmaKaiku <omakaiku@kaikukortti.invalid>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    public_url: str = "http://127.0.0.1:8103"

    signin_code_ttl_seconds: int = Field(default=600, ge=60)
    signin_link_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=600)
    signin_window_seconds: int = Field(default=900, ge=60)
    signin_max_requests: int = Field(default=5, ge=1)   # codes asked per e-mail per window
    signin_max_attempts: int = Field(default=5, ge=1)   # wrong codes per e-mail per window
    signin_code_max_tries: int = Field(default=5, ge=1)  # wrong codes that void a code
    # Codes asked from one client address per window. The web asks on its
    # holders' behalf from its own address unless the proxy hops are trusted.
    signin_max_requests_per_client: int = Field(default=50, ge=1)
    signin_global_window_seconds: int = Field(default=60, ge=1)
    signin_max_requests_global: int = Field(default=600, ge=1)  # all addresses together
    # The client's address: KAIKU_TRUSTED_PROXIES (kaiku_shared/client_address.py).
    # A queued code request the worker has not handled by then is dropped.
    signin_request_ttl_seconds: int = Field(default=120, ge=10)
    # The worker is woken by NOTIFY; this poll is the fallback.
    signin_sender_poll_seconds: float = Field(default=1.0, gt=0, le=30)
    mobile_card_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    # Web Push (adapters/push.py): the VAPID key, who push services may contact,
    # and how pushes are sent. Unset key in development: push is off (503).
    vapid_private_key: str | None = None
    vapid_subject: str = Field(default="mailto:omakaiku@kaikukortti.invalid",
                               pattern=r"^(mailto:\S+@\S+|https://\S+)$")
    push_max_devices: int = Field(default=10, ge=1, le=100)
    # Pushes in flight at once; at most 3/4 of them to any one push service.
    push_concurrency: int = Field(default=32, ge=1, le=256)
    push_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    push_ttl_seconds: int = Field(default=24 * 3600, ge=0, le=28 * 24 * 3600)
    push_max_attempts: int = Field(default=8, ge=1, le=50)
    push_poll_seconds: float = Field(default=1.0, gt=0, le=30)

    # Retention (domain/retention.py): an account is erased this many months
    # after its card was closed or expired; 24 = one renewal round's grace for a
    # holder who comes back, and the distributor's questions about past uses.
    retention_months: int = Field(default=24, ge=1, le=120)
    # The holder is e-mailed this many days before.
    retention_notice_days: int = Field(default=30, ge=1, le=365)
    # How often the worker looks for accounts due.
    retention_check_seconds: float = Field(default=3600.0, gt=0, le=86400)
    # Tests only, refused in production: seconds instead of months and days.
    retention_test_keep_seconds: float | None = Field(default=None, gt=0)
    retention_test_notice_seconds: float | None = Field(default=None, gt=0)

    def key_bytes(self, purpose: str) -> bytes:
        """The configured key for ``purpose`` (master, lookup, card-signing)."""
        setting = f"KAIKU_OMAKAIKU_{purpose.upper().replace('-', '_')}_KEY"
        configured = {"master": self.master_key, "lookup": self.lookup_key,
                      "card-signing": self.card_signing_key}[purpose]
        if not configured:
            raise KeysMissing(f"{setting} is not set (see `kaiku keys generate`)")
        try:
            key = base64.b64decode(configured, validate=True)
        except ValueError:
            raise KeysMissing(f"{setting} is not base64") from None
        if len(key) < 32:
            raise KeysMissing(f"{setting} must be at least 32 bytes")
        return key[:32]

    @property
    def vault_configured(self) -> bool:
        """The keys that seal and find personal data are both set."""
        return bool(self.master_key and self.lookup_key)

    @property
    def retention_policy(self) -> RetentionPolicy:
        notice = (timedelta(seconds=self.retention_test_notice_seconds)
                  if self.retention_test_notice_seconds else
                  timedelta(days=self.retention_notice_days))
        keep = (timedelta(seconds=self.retention_test_keep_seconds)
                if self.retention_test_keep_seconds else None)
        return RetentionPolicy(keep_months=self.retention_months, notice=notice,
                               keep_exactly=keep)

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)


def load_omakaiku_settings() -> OmaKaikuSettings:
    return OmaKaikuSettings()


__all__ = ["SERVICE", "KaikuSettings", "KeysMissing", "OmaKaikuSettings", "load_settings",
           "load_omakaiku_settings"]
