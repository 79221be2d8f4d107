"""A POST retried with the same Idempotency-Key after the api died between commit
and answer never acts twice.

Extra cards and venues api processes run with the test-only failpoint
`crash-after-commit`: a request carrying the header X-Kaiku-Failpoint makes the
process exit right after its use case committed, before the answer is sent.
The client sees no answer, retries with the same key against the restarted
process, and gets the first attempt's result; the event store holds one.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from kaiku_dev.supervisor import ProcessSpec, Supervisor
from kaiku_dev.testing import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def crashing_apis(system, tmp_path_factory):
    ports = {"cards": free_port(), "venues": free_port()}
    env = {**system.supervisor.base_env, "KAIKU_FAILPOINTS": "crash-after-commit",
           "KAIKU_IDEMPOTENCY_STALE_SECONDS": "1"}
    supervisor = Supervisor(env, tmp_path_factory.mktemp("crashing") / "logs")
    for service, port in ports.items():
        supervisor.add(ProcessSpec(f"{service}-api-crashing",
                                   [system.supervisor.specs[f"{service}-api"].argv[0], "-m",
                                    service, "api"],
                                   {**system.ns.keys.env_for(service),
                                    "KAIKU_HTTP_PORT": str(port)}, port))
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=60)
        yield {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}, supervisor
    finally:
        supervisor.stop_all()


async def post_crashing(url: str, token: str, key: str, body: dict) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(httpx.TransportError):
            await client.post(url, json=body, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": key,
                "X-Kaiku-Failpoint": "crash-after-commit"})


async def retry_after_restart(url: str, token: str, key: str, body: dict,
                              supervisor: Supervisor) -> httpx.Response:
    await asyncio.to_thread(supervisor.wait_ready, 60)
    await asyncio.sleep(1.2)  # past the (test-short) in-progress window
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, json=body, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": key})


async def count_events(system, service: str, topic_suffix: str, needle: str) -> int:
    conn = await system.database(service)
    try:
        return await conn.fetchval(
            f"SELECT count(*) FROM {service}_events WHERE topic LIKE $1 "
            "AND position($2::bytea in state) > 0", f"%{topic_suffix}", needle.encode())
    finally:
        await conn.close()


async def test_card_issued_once_when_the_api_dies_before_answering(world, crashing_apis):
    urls, supervisor = crashing_apis
    system = world.system
    key = f"issue-{uuid.uuid4()}"
    body = {"birth_year": 1975, "postal_code": "55120", "municipality": "Imatra",
            "children": 3}
    await post_crashing(f"{urls['cards']}/cards", world.distributor_token, key, body)
    print("injected: cards api exited after committing POST /cards, before answering")
    retried = await retry_after_restart(f"{urls['cards']}/cards", world.distributor_token, key,
                                        body, supervisor)
    assert retried.status_code == 201, retried.text
    # The card was made by the first attempt: exactly one Card.Issued for this key.
    assert await count_events(system, "cards", "Card.Issued", key) == 1
    again = await retry_after_restart(f"{urls['cards']}/cards", world.distributor_token, key,
                                      body, supervisor)
    assert again.json()["card_number"] == retried.json()["card_number"]
    print(f"verified: one card ({retried.json()['card_number']}) for the key, "
          "the retry answered with it")


async def test_ticket_registered_once_when_the_api_dies_before_answering(world, crashing_apis):
    urls, supervisor = crashing_apis
    system = world.system
    card = await world.issue_card(children=0)
    offering_id = await world.publish_offering(card_cap=10)
    await world.wait_for_card_in_venues(card["card_number"])
    key = f"ticket-{uuid.uuid4()}"
    body = {"card_number": card["card_number"], "offering_id": offering_id, "children": 0}
    await post_crashing(f"{urls['venues']}/tickets", world.venue_token, key, body)
    print("injected: venues api exited after committing POST /tickets, before answering")
    retried = await retry_after_restart(f"{urls['venues']}/tickets", world.venue_token, key,
                                        body, supervisor)
    assert retried.status_code == 201, retried.text
    assert await count_events(system, "venues", "Ticket.Registered", card["card_number"]) == 1
    print(f"verified: one ticket ({retried.json()['ticket_id']}) for the key")
