"""Every service's api serves its part of the event contracts at GET /asyncapi.json
(beside /openapi.json), and what it says is what the running system does: the
subjects in the test's namespace, the durable consumers on their streams, the
Nats-Msg-Id header on a published event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from kaiku_shared.contracts import REGISTRY
from kaiku_shared.settings import SERVICES
from kaiku_dev.testing import eventually, stream_messages
from kaiku_shared.tls import connect_nats

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ASYNCAPI_SCHEMA = json.loads((REPO / "shared" / "tests" / "schemas" / "asyncapi-3.0.0.json")
                             .read_text(encoding="utf-8"))
COMMITTED = json.loads((REPO / "docs" / "asyncapi" / "kaikukortti.json")
                       .read_text(encoding="utf-8"))


async def served(system, service: str) -> dict[str, Any]:
    async with system.client(service) as client:  # no token: public, like /openapi.json
        response = await client.get("/asyncapi.json")
        openapi = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "/asyncapi.json" in openapi.json()["paths"]
    return response.json()


def receivers(document: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    return {name: operation for name, operation in document["operations"].items()
            if operation["action"] == "receive"
            and operation["x-kaiku-durable"]["service"] == service}


async def test_every_api_serves_valid_asyncapi_for_what_it_publishes_and_consumes(system):
    namespace = system.ns.settings.namespace
    for service in SERVICES:
        document = await served(system, service)
        errors = [error.message[:200] for error in
                  Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(document)]
        assert errors == [], (service, errors)
        for contract in REGISTRY.values():
            if contract.PRODUCER == service:
                channel = document["channels"][f"{service}.{contract.EVENT_TYPE}"
                                               f".v{contract.VERSION}"]
                assert channel["address"] == f"{namespace}.{service}.{contract.EVENT_TYPE}" \
                                             f".v{contract.VERSION}"
        # The same consumers as the committed document (which is in namespace kaiku).
        assert receivers(document, service).keys() == receivers(COMMITTED, service).keys()
        assert receivers(document, service), service


async def test_the_served_durables_exist_and_events_carry_the_documented_headers(system,
                                                                                  world):
    settings = system.ns.settings
    durables = {(operation["x-kaiku-durable"]["stream"], operation["x-kaiku-durable"]["name"])
                for service in SERVICES
                for operation in receivers(await served(system, service), service).values()}
    nc = await connect_nats(settings)
    try:
        js = nc.jetstream()

        async def missing() -> list[tuple[str, str]]:
            absent = []
            for stream, durable in sorted(durables):
                try:
                    await js.consumer_info(stream, durable)
                except Exception:  # noqa: BLE001 - not made yet by its worker
                    absent.append((stream, durable))
            return absent

        await eventually(lambda: _none(missing), timeout=60,
                         message="every documented durable on its stream")
    finally:
        await nc.close()
    cards = await served(system, "cards")
    address = cards["channels"]["cards.organisation_registered.v1"]["address"]
    messages = await stream_messages(system, "cards", "organisation_registered.*")
    assert messages, "the world's organisations were published"
    for message in messages:
        assert message.subject == address
        assert message.headers["Nats-Msg-Id"] == json.loads(message.data)["event_id"]


async def _none(check) -> bool:
    return not await check()


async def test_readyz_reports_the_lag_of_the_consumers_each_api_watches(system):
    """create_api was split into functions; its readiness answer is unchanged."""
    for service in SERVICES:
        async with system.client(service) as client:
            response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        checks = response.json()["checks"]
        assert checks["database"] == "ok" and checks["nats"] == "ok"
        assert checks["consumer_lag"], service
        assert all(isinstance(lag, int) or lag == "not started"
                   for lag in checks["consumer_lag"].values())
