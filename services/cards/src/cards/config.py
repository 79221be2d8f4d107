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


def load_cards_settings() -> CardsSettings:
    return CardsSettings()


__all__ = ["SERVICE", "CardsSettings", "KaikuSettings", "load_cards_settings",
           "load_settings"]
