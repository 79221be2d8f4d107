"""Integration-event contracts: the only thing services share about each other."""

from .base import (
    REGISTRY,
    IntegrationEvent,
    UnknownContract,
    contract_for,
    event_id_for,
)
from .events import *  # noqa: F403
from .events import __dict__ as _events

__all__ = [
    "REGISTRY",
    "IntegrationEvent",
    "UnknownContract",
    "contract_for",
    "event_id_for",
    *[name for name in _events if name.endswith("V1")],
]
