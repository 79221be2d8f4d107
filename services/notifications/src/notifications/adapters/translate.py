"""Domain events → integration contracts (none published yet)."""

from __future__ import annotations

from typing import Any

from kaiku_shared.contracts import IntegrationEvent


def translate(event: Any, envelope: dict[str, Any]) -> IntegrationEvent | None:
    return None
