"""Venues settings: the shared KAIKU_* settings; this service adds none yet."""

from kaiku_shared.settings import KaikuSettings, load_settings

SERVICE = "venues"

__all__ = ["SERVICE", "KaikuSettings", "load_settings"]
