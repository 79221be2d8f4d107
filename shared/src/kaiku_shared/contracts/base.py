"""The integration-event envelope every message on NATS carries.

Contracts are frozen pydantic models that ignore unknown fields, so a producer may
add a field without breaking consumers; a breaking change is a new ``VERSION``
(a new class and subject), never an edit of an existing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from hashlib import sha1
from uuid import UUID, SafeUUID

from pydantic import BaseModel, ConfigDict, Field

# Namespace for deterministic event ids: the same stored event always maps to
# the same event_id, so a relay re-publishing it is deduplicated by JetStream.
EVENT_ID_NAMESPACE = UUID("6a1c4f7e-3b0d-5c2e-9f8a-4b6d2e1c0a97")


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
_VERSION_BITS_CLEARED = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_5_RFC_4122 = (5 << 76) | (0x8000 << 48)


def event_id_for(producer: str, notification_id: int) -> UUID:
    """``uuid5(EVENT_ID_NAMESPACE, f"{producer}/{notification_id}")``, in a third of
    its time: the relay and the rebuild call it for every stored event, and
    ``UUID.__init__``'s checks were an eighth of the rebuild (bench/profiles/).
    Set as ``UUID.__init__`` itself sets its (immutable) fields."""
    digest = sha1(_NAMESPACE_BYTES + f"{producer}/{notification_id}".encode()).digest()
    event_id = object.__new__(UUID)
    object.__setattr__(event_id, "int", (int.from_bytes(digest[:16], "big")
                                         & _VERSION_BITS_CLEARED) | _VERSION_5_RFC_4122)
    object.__setattr__(event_id, "is_safe", SafeUUID.unknown)
    return event_id


class IntegrationEvent(BaseModel):
    """Envelope fields + the event's own fields, flat, as one JSON object."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    PRODUCER: ClassVar[str]
    EVENT_TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    event_id: UUID
    event_type: str
    schema_version: int
    occurred_at: datetime
    producer: str
    # The aggregate the event is about and its version there: lets a consumer
    # ignore an older fact arriving after a newer one.
    aggregate_id: UUID
    aggregate_version: int = Field(ge=1)
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None

    @classmethod
    def subject(cls, namespace: str = "kaiku") -> str:
        return f"{namespace}.{cls.PRODUCER}.{cls.EVENT_TYPE}.v{cls.VERSION}"

    @classmethod
    def build(cls, **fields: Any) -> IntegrationEvent:
        """Fill the type/version/producer fields that the class itself fixes."""
        fields.setdefault("event_type", cls.EVENT_TYPE)
        fields.setdefault("schema_version", cls.VERSION)
        fields.setdefault("producer", cls.PRODUCER)
        return cls(**fields)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


REGISTRY: dict[tuple[str, str, int], type[IntegrationEvent]] = {}


def contract(cls: type[IntegrationEvent]) -> type[IntegrationEvent]:
    """Class decorator: register a contract under (producer, event_type, version)."""
    key = (cls.PRODUCER, cls.EVENT_TYPE, cls.VERSION)
    if key in REGISTRY:
        raise TypeError(f"contract {key} declared twice")
    REGISTRY[key] = cls
    return cls


class UnknownContract(LookupError):
    pass


def contract_for(producer: str, event_type: str, version: int) -> type[IntegrationEvent]:
    try:
        return REGISTRY[(producer, event_type, version)]
    except KeyError:
        raise UnknownContract(
            f"no contract {producer}.{event_type} version {version}"
        ) from None
