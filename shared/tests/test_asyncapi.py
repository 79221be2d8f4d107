"""The published event contracts as AsyncAPI (kaiku_shared.asyncapi, tools/asyncapi.py).

* The committed docs/asyncapi/kaikukortti.json is what the code generates now
  (``tools/asyncapi.py --check``): CI fails when a contract or a consumer changes
  without the document.
* It is valid AsyncAPI 3.0.0: checked against the official JSON Schema from
  @asyncapi/specs (shared/tests/schemas/, Apache-2.0), and every reference in it
  resolves.
* Its payload schemas describe the wire: every golden fixture is valid against its
  message's schema, and a message of another type or version is not.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from kaiku_shared.asyncapi import build_document, channel_id, render, service_document
from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    REGISTRY,
    CardIssuedV1,
    OfferingPublishedV1,
    TicketRegisteredV1,
)
from kaiku_shared.settings import KaikuSettings

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "docs" / "asyncapi" / "kaikukortti.json"
TOOL = REPO / "tools" / "asyncapi.py"
ASYNCAPI_SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "asyncapi-3.0.0.json").read_text(encoding="utf-8"))
FIXTURES = REPO / "shared" / "src" / "kaiku_shared" / "contracts" / "fixtures"


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    return [f"{error.json_path}: {error.message[:200]}"
            for error in Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(document)]


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def every_ref(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*([node["$ref"]] if isinstance(node.get("$ref"), str) else []),
                *(ref for value in node.values() for ref in every_ref(value))]
    if isinstance(node, list):
        return [ref for value in node for ref in every_ref(value)]
    return []


def payload_validator(document: dict[str, Any], message: str) -> Draft7Validator:
    """A validator of one message's payload, its $refs resolved in the document."""
    registry = Registry().with_resource("urn:kaikukortti",
                                        Resource(contents=document, specification=DRAFT7))
    ref = document["components"]["messages"][message]["payload"]["$ref"]
    return Draft7Validator({"$ref": "urn:kaikukortti" + ref}, registry=registry)


# --- the committed document --------------------------------------------------------


def test_the_committed_document_is_what_the_code_generates() -> None:
    run = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr


def test_the_check_fails_on_a_document_that_drifted(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("asyncapi_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    drifted = tmp_path / "kaikukortti.json"
    monkeypatch.setattr(tool, "DOCUMENT", drifted)
    monkeypatch.setattr(tool, "REPO", tmp_path)
    monkeypatch.setattr(tool, "current_document", lambda: DOCUMENT.read_text(encoding="utf-8"))
    drifted.write_text(DOCUMENT.read_text(encoding="utf-8").replace(
        '"kaiku.cards.card_issued.v1"', '"kaiku.cards.card_issued.v9"'), encoding="utf-8")
    assert tool.main(["--check"]) == 1
    assert tool.main([]) == 0  # regenerating writes it back
    assert tool.main(["--check"]) == 0


def test_the_committed_document_is_valid_asyncapi_3(committed: dict[str, Any]) -> None:
    assert committed["asyncapi"] == "3.0.0"
    assert asyncapi_errors(committed) == []


def test_the_official_schema_does_reject_an_invalid_document(committed) -> None:
    """Guards the test above against a schema that accepts anything."""
    broken = copy.deepcopy(committed)
    broken["operations"]["send.cards.card_issued.v1"]["action"] = "publish"  # AsyncAPI 2
    del broken["channels"]["cards.card_closed.v1"]["messages"]
    broken["channels"]["cards.card_closed.v1"]["messages"] = "CardClosedV1"
    errors = asyncapi_errors(broken)
    assert any("send.cards.card_issued.v1" in error for error in errors), errors
    assert any("cards.card_closed.v1" in error for error in errors), errors


def test_every_reference_resolves_and_operations_take_their_channels_messages(
        committed) -> None:
    for ref in every_ref(committed):
        resolve(committed, ref)
    for name, operation in committed["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name


def test_every_contract_has_a_channel_a_publisher_and_its_version(committed) -> None:
    for contract in REGISTRY.values():
        channel = committed["channels"][channel_id(contract)]
        assert channel["address"] == f"kaiku.{contract.PRODUCER}.{contract.EVENT_TYPE}" \
                                     f".v{contract.VERSION}"
        assert channel["x-kaiku-stream"]["name"] == f"KAIKU_{contract.PRODUCER.upper()}"
        send = committed["operations"][f"send.{channel_id(contract)}"]
        assert send["action"] == "send" and send["tags"] == [{"name": contract.PRODUCER}]
        message = committed["components"]["messages"][contract.__name__]
        assert message["x-kaiku-contract"]["version"] == contract.VERSION
        assert message["headers"] == {"$ref": "#/components/schemas/EventHeaders"}


def test_consumers_are_listed_with_their_durables(committed) -> None:
    takers = committed["channels"]["venues.ticket_registered.v1"]["x-kaiku-consumers"]
    assert {"service": "omakaiku", "durable": "omakaiku-history"} in takers
    assert {"service": "cards", "durable": "cards-usage"} in takers
    receive = committed["operations"]["receive.omakaiku-history.venues.ticket_registered.v1"]
    assert receive["action"] == "receive"
    assert receive["x-kaiku-durable"]["stream"] == "KAIKU_VENUES"
    assert receive["x-kaiku-durable"]["filterSubject"] == "kaiku.venues.ticket_registered.*"
    assert receive["x-kaiku-durable"]["deadLetterSubject"] == \
        "kaiku.dlq.omakaiku.omakaiku-history"
    # Every worker's revocation consumers, added by the generator as run_worker adds them.
    assert "receive.venues-staff-revocations.cards.staff_access_revoked.v1" in \
        committed["operations"]
    dead = committed["channels"]["deadLetters"]
    assert dead["address"] == "kaiku.dlq.{service}.{consumer}"
    assert "omakaiku-history" in dead["parameters"]["consumer"]["enum"]


# --- payload schemas ------------------------------------------------------------------


@pytest.mark.parametrize("contract", sorted(REGISTRY.values(), key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_every_golden_fixture_is_valid_against_its_message(committed, contract) -> None:
    fixture = json.loads((FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json")
                         .read_text(encoding="utf-8"))
    validator = payload_validator(committed, contract.__name__)
    assert list(validator.iter_errors(fixture)) == []
    assert committed["components"]["messages"][contract.__name__]["examples"][0][
        "payload"] == fixture
    for field, wrong in (("event_type", "something_else"),
                         ("schema_version", contract.VERSION + 1), ("producer", "elsewhere")):
        assert not validator.is_valid({**fixture, field: wrong}), field
    required = committed["components"]["schemas"][contract.__name__]["required"]
    assert not validator.is_valid({k: v for k, v in fixture.items() if k != required[-1]})


def test_payload_schemas_are_json_schema_draft_7(committed) -> None:
    """AsyncAPI's default schema format is a superset of draft 7: no 2019/2020 keywords."""
    for name, schema in committed["components"]["schemas"].items():
        Draft7Validator.check_schema(schema)
        text = json.dumps(schema)
        for keyword in ("$defs", "prefixItems", "unevaluatedProperties", "dependentRequired"):
            assert f'"{keyword}"' not in text, (name, keyword)


# --- the generator ---------------------------------------------------------------------


async def _ignore(event, conn) -> None:  # a handler is never called by the generator
    return None


def test_a_services_part_has_what_it_publishes_and_what_it_consumes() -> None:
    offering = Consumer("venues-test-offering", "venues")
    offering.on(OfferingPublishedV1)(_ignore)
    cards = Consumer("venues-test-cards", "cards")
    cards.on(CardIssuedV1)(_ignore)
    settings = KaikuSettings(namespace="elsewhere")
    document = service_document("venues", [offering, cards], settings)
    assert asyncapi_errors(document) == []
    channels = document["channels"]
    assert channels["venues.ticket_registered.v1"]["address"] == \
        "elsewhere.venues.ticket_registered.v1"
    assert channels["cards.card_issued.v1"]["x-kaiku-consumers"] == [
        {"service": "venues", "durable": "venues-test-cards"}]
    assert "receive.venues-test-cards.cards.card_issued.v1" in document["operations"]
    assert "send.cards.card_issued.v1" in document["operations"]  # the channel's publisher
    # Another service's event that venues does not take is not in venues' part.
    assert "notifications.bulletin_published.v1" not in channels
    assert "BulletinPublishedV1" not in document["components"]["messages"]
    assert channels["deadLetters"]["address"] == "elsewhere.dlq.{service}.{consumer}"
    assert channels["deadLetters"]["parameters"]["service"]["enum"] == ["venues"]
    assert document["operations"]["receive.venues-test-offering.venues.offering_published.v1"][
        "x-kaiku-durable"]["stream"] == "ELSEWHERE_VENUES"


def test_without_consumers_there_is_no_dead_letter_channel_and_no_receiver() -> None:
    document = build_document({})
    assert "deadLetters" not in document["channels"]
    assert not [name for name in document["operations"] if name.startswith("receive.")]
    assert len(document["channels"]) == len(REGISTRY)
    assert asyncapi_errors(document) == []


def test_the_document_is_rendered_the_same_every_time() -> None:
    consumer = Consumer("omakaiku-test", "venues")
    consumer.on(TicketRegisteredV1)(_ignore)
    assert render(build_document({"omakaiku": [consumer]})) == \
        render(build_document({"omakaiku": [consumer]}))


async def test_service_parts_hand_their_consumers_to_the_served_document() -> None:
    """ServiceParts → create_api → GET /asyncapi.json, without servers (no lifespan)."""
    import httpx

    from kaiku_shared.service_main import ServiceParts, build_api

    def consumers(application: Any) -> list[Consumer]:
        assert application is None  # the api reads names and contracts only
        consumer = Consumer("notifications-test-tickets", "venues")
        consumer.on(TicketRegisteredV1)(_ignore)
        return [consumer]

    parts = ServiceParts(service="notifications", title="t", description="d",
                         application=lambda settings: None, translate=lambda e, m: None,
                         consumers=consumers, schema=(), routers=())
    app = build_api(parts, KaikuSettings(namespace="unit"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:
        response = await client.get("/asyncapi.json")
        openapi = (await client.get("/openapi.json")).json()
    assert response.status_code == 200
    document = response.json()
    assert asyncapi_errors(document) == []
    assert document["info"]["title"].endswith("notifications")
    assert "receive.notifications-test-tickets.venues.ticket_registered.v1" in \
        document["operations"]
    assert document["channels"]["notifications.message_sent.v1"]["address"] == \
        "unit.notifications.message_sent.v1"
    assert "/asyncapi.json" in openapi["paths"]
