"""The published event contracts as an AsyncAPI 3.0.0 document.

Built from the contract registry (``contracts.REGISTRY``: each contract's producer,
event type, version and pydantic schema) and from the durable consumers the
services declare (given in, since kaiku_shared never imports a service). The
same function writes the committed document (``tools/asyncapi.py``, every
service) and the part each api serves at ``GET /asyncapi.json`` (one service).

Subjects, streams and dead-letter subjects come from ``KaikuSettings``, the
headers from what ``relay.Relay`` and ``consumer._Delivery`` put on a message;
payload schemas are the contracts' validation schemas, which is what our own
consumers accept (a field with a default may be absent from older messages).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Collection, Mapping, Sequence
from importlib import resources
from typing import Any

from pydantic.json_schema import models_json_schema

from . import revocation
from .consumer import Consumer
from .contracts import REGISTRY, IntegrationEvent
from .relay import DUPLICATE_WINDOW
from .settings import SERVICES, KaikuSettings

ASYNCAPI_VERSION = "3.0.0"
# The envelope's generation (contracts.base.IntegrationEvent): a breaking change
# of the envelope would be 2.0.0. Each message carries its own contract version.
DOCUMENT_VERSION = "1.0.0"
SCHEMAS = "#/components/schemas/"

SERVICE_ROLES = {
    "cards": "Kaikukanta, the national card registry: organisations, cards, staff, "
             "the network's reference data.",
    "venues": "Venues, their offering and the card's use (tickets, visits, fees).",
    "omakaiku": "The holder's own service; the only one that knows who a holder is.",
    "notifications": "Who gets what: genre fan-out, messages, bulletins.",
}

ENVELOPE = {
    "event_id": "Unique id of this event; the same stored event always has the same id "
                "(also the Nats-Msg-Id header). Deduplicate on it.",
    "event_type": "The event type; with `schema_version` it names the contract.",
    "schema_version": "The contract's version (the subject's `vN`).",
    "occurred_at": "When the fact happened (UTC, ISO 8601).",
    "producer": "The service that published the event.",
    "aggregate_id": "The thing the event is about.",
    "aggregate_version": "Its version there: an event with a lower version than one "
                         "already applied for the same aggregate is older news.",
    "correlation_id": "The request that started the chain of events, if known.",
    "causation_id": "The event or command that caused this one, if known.",
    "traceparent": "W3C Trace Context of the command that recorded the event, if traced.",
}


def build_document(
    consumers: Mapping[str, Sequence[Consumer]],
    *,
    settings: KaikuSettings | None = None,
    producers: Collection[str] | None = None,
    title: str = "Kaikukortti integration events",
) -> dict[str, Any]:
    """The AsyncAPI document of the events ``producers`` publish (every producer's
    when None) and of the events the given services' durable consumers take.

    ``consumers``: service → the consumers its bootstrap declares; the revocation
    consumers every worker runs (``revocation.consumers``) are added here."""
    settings = settings or KaikuSettings(namespace="kaiku")
    durables = {service: sorted([*declared, *revocation.consumers(service)],
                                key=lambda consumer: consumer.name)
                for service, declared in sorted(consumers.items())}
    taken = {contract for declared in durables.values() for consumer in declared
             for contract in consumer.handlers}
    contracts = sorted((contract for contract in REGISTRY.values()
                        if producers is None or contract.PRODUCER in producers
                        or contract in taken),
                       key=lambda c: (c.PRODUCER, c.EVENT_TYPE, c.VERSION))
    channels = {channel_id(c): _channel(c, settings, durables) for c in contracts}
    operations = {f"send.{channel_id(c)}": _send_operation(c) for c in contracts}
    for service, declared in durables.items():
        for consumer in declared:
            for contract in sorted(consumer.handlers, key=lambda c: channel_id(c)):
                operations[f"receive.{consumer.name}.{channel_id(contract)}"] = (
                    _receive_operation(contract, service, consumer, settings))
    if durables:
        channels["deadLetters"] = _dead_letter_channel(settings, durables)
        for service in durables:
            operations[f"send.deadLetters.{service}"] = _dead_letter_operation(service)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(title, settings),
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": channels,
        "operations": operations,
        "components": _components(contracts),
    }


def service_document(service: str, consumers: Sequence[Consumer],
                     settings: KaikuSettings) -> dict[str, Any]:
    """What one service's api serves: the events it publishes and those it consumes."""
    return build_document({service: consumers}, settings=settings, producers=(service,),
                          title=f"Kaikukortti integration events: {service}")


def channel_id(contract: type[IntegrationEvent]) -> str:
    """The channel's id: its subject without the namespace (the same in every deployment)."""
    return f"{contract.PRODUCER}.{contract.EVENT_TYPE}.v{contract.VERSION}"


def render(document: dict[str, Any]) -> str:
    """The document as committed: stable key order, two-space indent, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- top level -------------------------------------------------------------------


def _info(title: str, settings: KaikuSettings) -> dict[str, Any]:
    ns = settings.namespace
    return {
        "title": title,
        "version": DOCUMENT_VERSION,
        "description": (
            "Every integration event Kaikukortti's services publish on NATS JetStream, "
            "generated from the pydantic contracts in `kaiku_shared.contracts` "
            "(docs/asyncapi/README.md).\n\n"
            f"* Subject: `{ns}.<producer>.<event_type>.v<version>`; a breaking change is "
            "a new version on a new subject, a compatible one (a new optional field) "
            "is not. Ignore fields you do not know.\n"
            f"* Stream: each producer has one, `{settings.stream_name('<producer>')}` "
            f"holding `{ns}.<producer>.>`, with a "
            f"{int(DUPLICATE_WINDOW.total_seconds())}-second duplicate window.\n"
            "* Delivery is at least once: deduplicate on `event_id`; order within one "
            "aggregate by `aggregate_version`.\n"
            "* Consume through a durable pull consumer with explicit acks, filtered to "
            f"`{ns}.<producer>.<event_type>.*` so that a version you do not handle yet "
            "still reaches you (dead-letter it, do not drop it).\n"
            "* No event carries personal data: holders appear only as card numbers or "
            "opaque account ids."
        ),
        "tags": [{"name": service, "description": SERVICE_ROLES[service]}
                 for service in SERVICES],
    }


def _servers() -> dict[str, Any]:
    # Fixed defaults, never the configured URL: KAIKU_NATS_URL may hold a password.
    return {"nats": {
        "host": "{host}:{port}",
        "protocol": "nats",
        "title": "NATS with JetStream",
        "description": "The deployment's NATS server or cluster (KAIKU_NATS_URL). With "
                       "KAIKU_NATS_TLS_CA set, TLS starts before any protocol byte "
                       "(handshake first).",
        "variables": {
            "host": {"default": "127.0.0.1", "description": "The NATS host (127.0.0.1 "
                     "in development, `nats` in docker-compose)."},
            "port": {"default": "4222"},
        },
        "security": [{"$ref": "#/components/securitySchemes/natsUser"}],
    }}


# --- channels and operations ----------------------------------------------------------


def _stream(settings: KaikuSettings, producer: str) -> dict[str, Any]:
    return {"name": settings.stream_name(producer),
            "subjects": [f"{settings.subject_root(producer)}.>"],
            "storage": "file", "retention": "limits", "discard": "old",
            "duplicateWindowSeconds": int(DUPLICATE_WINDOW.total_seconds())}


def _channel(contract: type[IntegrationEvent], settings: KaikuSettings,
             durables: Mapping[str, Sequence[Consumer]]) -> dict[str, Any]:
    name = contract.__name__
    takers = [{"service": service, "durable": consumer.name}
              for service, declared in durables.items() for consumer in declared
              if contract in consumer.handlers]
    return {
        "address": contract.subject(settings.namespace),
        "title": _title(contract),
        "description": f"Published by {contract.PRODUCER} on stream "
                       f"{settings.stream_name(contract.PRODUCER)}.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        "x-kaiku-stream": _stream(settings, contract.PRODUCER),
        "x-kaiku-consumers": takers,
    }


def _send_operation(contract: type[IntegrationEvent]) -> dict[str, Any]:
    ref = channel_id(contract)
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{ref}"},
        "title": f"{contract.PRODUCER} publishes {contract.__name__}",
        "summary": "Published by the service's outbox relay after the event is stored, "
                   "with Nats-Msg-Id = event_id.",
        "messages": [{"$ref": f"#/channels/{ref}/messages/{contract.__name__}"}],
        "tags": [{"name": contract.PRODUCER}],
    }


def _receive_operation(contract: type[IntegrationEvent], service: str, consumer: Consumer,
                       settings: KaikuSettings) -> dict[str, Any]:
    ref = channel_id(contract)
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{ref}"},
        "title": f"{consumer.name} takes {contract.__name__}",
        "summary": f"{service}'s durable pull consumer {consumer.name} applies it once "
                   "(by event_id), with explicit acks.",
        "messages": [{"$ref": f"#/channels/{ref}/messages/{contract.__name__}"}],
        "tags": [{"name": service}],
        "x-kaiku-durable": {
            "name": consumer.name,
            "service": service,
            "stream": settings.stream_name(consumer.source),
            "filterSubject": f"{settings.subject_root(consumer.source)}."
                             f"{contract.EVENT_TYPE}.*",
            "deliverPolicy": "all",
            "ackPolicy": "explicit",
            # The server redelivers without limit (an outage never exhausts
            # deliveries); a message that fails by itself is dead-lettered on
            # this delivery.
            "maxDeliver": -1,
            "poisonAfterDeliveries": settings.consumer_max_deliver,
            "deadLetterSubject": settings.dead_letter_subject(service, consumer.name),
        },
    }


def _dead_letter_channel(settings: KaikuSettings,
                         durables: Mapping[str, Sequence[Consumer]]) -> dict[str, Any]:
    return {
        "address": f"{settings.namespace}.dlq.{{service}}.{{consumer}}",
        "title": "Dead letters",
        "description": (
            "A message a durable consumer can never apply (not JSON, an unknown version, "
            "invalid for its contract, or failing on every allowed delivery), kept with "
            f"the reason on stream {settings.dead_letter_stream}. For operators "
            "(`kaiku dlq list|replay`): no service user may read or change this stream. "
            "A replay publishes the body again on its original subject."
        ),
        "parameters": {
            "service": {"description": "The consuming service.", "enum": list(durables)},
            "consumer": {"description": "Its durable consumer.",
                         "enum": sorted(c.name for declared in durables.values()
                                        for c in declared)},
        },
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        "x-kaiku-stream": {"name": settings.dead_letter_stream,
                           "subjects": [f"{settings.namespace}.dlq.>"], "storage": "file",
                           "duplicateWindowSeconds": int(DUPLICATE_WINDOW.total_seconds())},
    }


def _dead_letter_operation(service: str) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": {"$ref": "#/channels/deadLetters"},
        "title": f"{service} dead-letters what its consumers cannot apply",
        "messages": [{"$ref": "#/channels/deadLetters/messages/DeadLetter"}],
        "tags": [{"name": service}],
    }


# --- components ----------------------------------------------------------------------


def _components(contracts: Sequence[type[IntegrationEvent]]) -> dict[str, Any]:
    schemas = payload_schemas(contracts)
    schemas["EventHeaders"] = EVENT_HEADERS
    schemas["DeadLetterHeaders"] = DEAD_LETTER_HEADERS
    messages = {contract.__name__: _message(contract) for contract in contracts}
    messages["DeadLetter"] = DEAD_LETTER_MESSAGE
    return {
        "schemas": schemas,
        "messages": messages,
        "securitySchemes": {"natsUser": {
            "type": "userPassword",
            "description": "Each service has its own NATS user (deploy/nats/nats.conf), "
                           "allowed to publish only its own subjects and to pull only "
                           "through its own durable consumers. An outside consumer is "
                           "given a user and durable names the same way.",
        }},
        "correlationIds": {"correlationId": {
            "description": "The request that started the chain of events.",
            "location": "$message.payload#/correlation_id",
        }},
    }


def payload_schemas(contracts: Sequence[type[IntegrationEvent]]) -> dict[str, Any]:
    """Each contract's JSON schema (and the models it nests), as components/schemas.
    The type, version and producer fields are pinned to the contract's values."""
    refs, top = models_json_schema([(c, "validation") for c in contracts],
                                   ref_template=SCHEMAS + "{model}")
    schemas: dict[str, Any] = dict(sorted(top.get("$defs", {}).items()))
    for contract in contracts:
        schema = schemas[refs[(contract, "validation")]["$ref"].removeprefix(SCHEMAS)]
        properties = schema["properties"]
        for field, value in (("event_type", contract.EVENT_TYPE),
                             ("schema_version", contract.VERSION),
                             ("producer", contract.PRODUCER)):
            properties[field]["const"] = value
        for field, description in ENVELOPE.items():
            properties[field].setdefault("description", description)
    for schema in schemas.values():
        if "description" in schema:
            schema["description"] = schema["description"].replace("``", "`")
    return schemas


def _title(contract: type[IntegrationEvent]) -> str:
    return f"{contract.EVENT_TYPE.replace('_', ' ').capitalize()} (v{contract.VERSION})"


def _message(contract: type[IntegrationEvent]) -> dict[str, Any]:
    name = contract.__name__
    doc = inspect.cleandoc(contract.__doc__ or "").replace("``", "`")
    message: dict[str, Any] = {"name": name, "title": _title(contract)}
    if doc:
        message["summary"] = " ".join(doc.split("\n\n")[0].split())
        message["description"] = doc
    message.update({
        "contentType": "application/json",
        "headers": {"$ref": SCHEMAS + "EventHeaders"},
        "payload": {"$ref": SCHEMAS + name},
        "correlationId": {"$ref": "#/components/correlationIds/correlationId"},
        "tags": [{"name": contract.PRODUCER}],
        "x-kaiku-contract": {"producer": contract.PRODUCER,
                             "eventType": contract.EVENT_TYPE, "version": contract.VERSION},
    })
    example = golden_example(contract)
    if example is not None:
        message["examples"] = [example]
    return message


def golden_example(contract: type[IntegrationEvent]) -> dict[str, Any] | None:
    """The contract's golden fixture (what its producer puts on the wire), as an example."""
    fixture = (resources.files("kaiku_shared.contracts") / "fixtures"
               / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json")
    if not fixture.is_file():
        return None
    payload = json.loads(fixture.read_text(encoding="utf-8"))
    headers = {"Nats-Msg-Id": payload["event_id"]}
    if payload.get("traceparent"):
        headers["traceparent"] = payload["traceparent"]
    return {"name": "golden", "summary": "The contract's golden fixture",
            "headers": headers, "payload": payload}


EVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "NATS headers of an event.",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "The event's `event_id`: JetStream drops a re-publish with the "
                           "same id inside the stream's duplicate window. A dead letter "
                           "replayed by an operator has `replay:<stream>:<sequence>` "
                           "instead, so always deduplicate on the payload's `event_id`.",
        },
        "traceparent": {
            "type": "string",
            "description": "W3C Trace Context of the publish span, when tracing is on or "
                           "the command was traced.",
        },
        "tracestate": {"type": "string", "description": "W3C Trace Context vendor state."},
        "Kaiku-Replayed-From": {
            "type": "string",
            "description": "Only on a replayed dead letter: its sequence in the "
                           "dead-letter stream.",
        },
    },
    "required": ["Nats-Msg-Id"],
}

DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Why and where from: what `kaiku dlq list` shows.",
    "properties": {
        "Kaiku-Dead-Letter-Reason": {"type": "string", "maxLength": 1000},
        "Kaiku-Original-Subject": {"type": "string"},
        "Kaiku-Original-Stream": {"type": "string"},
        "Kaiku-Original-Sequence": {"type": "string", "pattern": "^[0-9]+$"},
        "Kaiku-Deliveries": {"type": "string", "pattern": "^[0-9]+$"},
        "Nats-Msg-Id": {"type": "string",
                        "description": "`dlq:<consumer>:<stream>:<sequence>`: a dead letter "
                                       "re-sent after a crash is stored once."},
    },
    "required": ["Kaiku-Dead-Letter-Reason", "Kaiku-Original-Subject",
                 "Kaiku-Original-Stream", "Kaiku-Original-Sequence", "Kaiku-Deliveries",
                 "Nats-Msg-Id"],
}

DEAD_LETTER_MESSAGE: dict[str, Any] = {
    "name": "DeadLetter",
    "title": "Dead letter",
    "summary": "The original message's body, byte for byte, with the reason in headers.",
    "contentType": "application/octet-stream",
    "headers": {"$ref": SCHEMAS + "DeadLetterHeaders"},
    "payload": {"description": "The original body: usually one of the events here, but "
                               "possibly not JSON at all (that may be why it is here)."},
}
