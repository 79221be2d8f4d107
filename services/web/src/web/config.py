"""Web settings: the shared KAIKU_* settings plus the web's own (KAIKU_WEB_*).

The web keeps no data of its own: it calls the four service APIs with the
signed-in person's bearer token, which it keeps in a signed session cookie.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8100


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAIKU_WEB_", extra="ignore")

    cards_url: str = "http://127.0.0.1:8101"
    venues_url: str = "http://127.0.0.1:8102"
    omakaiku_url: str = "http://127.0.0.1:8103"
    notifications_url: str = "http://127.0.0.1:8104"
    # Signs the session and CSRF cookies: a random value of its own (required).
    session_secret: str | None = None
    # Mark cookies Secure (behind TLS in production).
    secure_cookies: bool = False
    session_seconds: int = 12 * 3600
    # Development only: staff may sign in by pasting a token (`kaiku token`).
    dev_token_signin: bool = False
    api_timeout_seconds: float = 15.0

    def service_url(self, service: str) -> str:
        return {"cards": self.cards_url, "venues": self.venues_url,
                "omakaiku": self.omakaiku_url,
                "notifications": self.notifications_url}[service].rstrip("/")
