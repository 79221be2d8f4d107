"""Integration-event contracts: the only thing services share about each other."""

import re

from .base import (
    REGISTRY,
    IntegrationEvent,
    UnknownContract,
    contract_for,
    event_id_for,
)
from .events import *  # noqa: F403
from .events import __dict__ as _events

_CONTRACT_NAME = re.compile(r"[A-Z]\w*V[0-9]+")

__all__ = [
    "FEEDBACK_WINDOW",
    "REGISTRY",
    "IntegrationEvent",
    "UnknownContract",
    "contract_for",
    "event_id_for",
    *[name for name in _events if _CONTRACT_NAME.fullmatch(name)],
]
