"""Cards settings: the shared KAIKU_* settings plus this service's own KAIKU_CARDS_*."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaiku_shared.settings import KaikuSettings, load_settings

SERVICE = "cards"


class CardsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAIKU_CARDS_", extra="ignore")

    # Statistics: counts from 1 to this minus one are shown as null (could point at
    # one person); wellbeing averages need at least this many answers.
    suppress_below: int = Field(default=5, ge=1)
    # Lifetime of the token /auth/login gives a staff member.
    login_token_seconds: int = Field(default=8 * 3600, ge=60)
    # Sign-in throttle, per username and client address: the attempt that reaches
    # the limit locks the pair for login_lock_seconds, each later one for twice as
    # long as the last (up to the cap); a day without attempts forgets them.
    login_attempts: int = Field(default=5, ge=1)
    login_lock_seconds: int = Field(default=60, ge=1)
    login_lock_max_seconds: int = Field(default=3600, ge=1)
    login_forget_seconds: int = Field(default=24 * 3600, ge=60)
    # The client's address: KAIKU_TRUSTED_PROXIES (kaiku_shared/client_address.py).


def load_cards_settings() -> CardsSettings:
    return CardsSettings()


__all__ = ["SERVICE", "CardsSettings", "KaikuSettings", "load_cards_settings",
           "load_settings"]
