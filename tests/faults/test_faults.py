"""Fault injection under load: nothing acknowledged is lost, nothing is doubled.

The suite runs its own embedded NATS and PostgreSQL (so it may restart them)
and the 12 service processes under a supervisor that restarts what dies. A
steady load registers tickets (and cancels some) while, in turn:
SIGKILL venues api, SIGKILL venues relay, SIGKILL omakaiku worker, SIGKILL
cards worker, restart nats-server, restart PostgreSQL.

Afterwards, once everything has caught up:
- every registration that got a 2xx exists exactly once in venues, in
  omakaiku's history and in the cards statistics, with the right status;
- a request that got no answer (or a 5xx) is either fully there or fully absent;
- the stream holds every published event once (JetStream deduplicated the
  relay's re-publishing after its crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from kaiku_shared.audit import stream_bodies
from kaiku_dev.embedded import EmbeddedServers
from kaiku_dev.supervisor import Supervisor, service_specs
from kaiku_dev.testing import Namespace, Servers, free_port, unique_namespace

LOAD_RATE = 20  # requests per second: steady, not a stress test
PAUSE = 4.0  # seconds of load between faults


@dataclass
class Outcomes:
    registered: dict[str, str] = field(default_factory=dict)  # ticket id → card
    cancelled: set[str] = field(default_factory=set)
    unknown_registrations: list[tuple[str, str]] = field(default_factory=list)  # card, offering
    unknown_cancellations: set[str] = field(default_factory=set)
    refused: int = 0


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.servers = EmbeddedServers(tmp / "data")
        nats_url, db_url = self.servers.start()
        self.ns = Namespace(unique_namespace("f"), Servers(nats_url, db_url))
        self.ports = {s: free_port() for s in ("cards", "venues", "omakaiku", "notifications")}
        env = {**self.ns.env(), "KAIKU_CONSUMER_BACKOFF_SECONDS": "[0.2, 0.5, 1, 2, 3]",
               "KAIKU_CONSUMER_MAX_DELIVER": "30"}
        self.supervisor = Supervisor(env, tmp / "logs")
        for spec in service_specs(self.ports, keys=self.ns.keys):
            self.supervisor.add(spec)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def restart_nats(self) -> None:
        self.servers._stop_nats()  # noqa: SLF001 - the test owns these servers
        self.servers._start_nats()  # noqa: SLF001

    def restart_postgres(self) -> None:
        self.servers._stop_postgres()  # noqa: SLF001
        self.servers._start_postgres()  # noqa: SLF001


@pytest.fixture(scope="module")
def harness():
    tmp = Path(tempfile.mkdtemp(prefix="kaiku-faults-"))
    h = Harness(tmp)
    h.supervisor.start_all()
    try:
        h.supervisor.wait_ready(timeout=120)
        yield h
    finally:
        h.supervisor.stop_all()
        h.servers.stop()


async def post(client: httpx.AsyncClient, url: str, token: str, body: dict) -> dict:
    response = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 201), response.text
    return response.json()


async def setup_world(h: Harness, cards: int) -> tuple[str, list[str], list[str]]:
    centre = h.ns.token("kaikukeskus")
    async with httpx.AsyncClient(timeout=30) as client:
        dist = await post(client, f"{h.url('cards')}/organisations", centre,
                          {"kind": "distributor", "name": "Vikasieto", "municipality": "Kuopio"})
        org = await post(client, f"{h.url('cards')}/organisations", centre,
                         {"kind": "venue", "name": "Vikatalo", "municipality": "Kuopio"})
        venue_token = h.ns.token("venue", organisation_id=org["organisation_id"])
        venue = await post(client, f"{h.url('venues')}/venues", venue_token, {
            "organisation_id": org["organisation_id"], "name": "Vikatalo",
            "kind": "performing_arts", "municipality": "kuopio"})
        start = datetime.now(UTC) + timedelta(days=20)
        offerings = [(await post(
            client, f"{h.url('venues')}/venues/{venue['venue_id']}/offerings", venue_token,
            {"title": f"Vikaesitys {n}", "genres": ["theatre"], "capacity": 20_000,
             "card_cap": 1_000, "starts_at": (start + timedelta(days=n)).isoformat()}
        ))["offering_id"] for n in range(12)]
        distributor = h.ns.token("distributor", organisation_id=dist["organisation_id"])
        numbers = []
        for n in range(cards):
            card = await post(client, f"{h.url('cards')}/cards", distributor, {
                "birth_year": 1960 + n % 40, "postal_code": "70100", "municipality": "Kuopio",
                "children": 1})
            numbers.append(card["card_number"])
    conn = await asyncpg.connect(h.ns.settings.service_database_url("venues"))
    try:
        deadline = time.monotonic() + 60
        while await conn.fetchval("SELECT count(*) FROM card_validity_view "
                                  "WHERE valid_from IS NOT NULL") < cards:
            assert time.monotonic() < deadline, "venues never learnt of the cards"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return venue_token, numbers, offerings


async def steady_load(h: Harness, token: str, cards: list[str], offerings: list[str],
                      outcomes: Outcomes, stop: asyncio.Event) -> None:
    pairs = [(c, o) for c in cards for o in offerings]
    random.Random(7).shuffle(pairs)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        while not stop.is_set():
            assert pairs, "the load ran out of card/offering pairs"
            started = time.monotonic()
            if outcomes.registered and random.random() < 0.15:
                ticket = random.choice(list(outcomes.registered))
                if ticket not in outcomes.cancelled and ticket not in \
                        outcomes.unknown_cancellations:
                    try:
                        r = await client.post(f"{h.url('venues')}/tickets/{ticket}/cancellation",
                                              json={}, headers=headers)
                        if r.status_code == 200:
                            outcomes.cancelled.add(ticket)
                        elif r.status_code >= 500:
                            outcomes.unknown_cancellations.add(ticket)
                    except httpx.HTTPError:
                        outcomes.unknown_cancellations.add(ticket)
            else:
                card, offering = pairs.pop()
                try:
                    r = await client.post(f"{h.url('venues')}/tickets", headers=headers, json={
                        "card_number": card, "offering_id": offering, "children": 1})
                    if r.status_code == 201:
                        outcomes.registered[r.json()["ticket_id"]] = card
                    elif r.status_code >= 500:
                        outcomes.unknown_registrations.append((card, offering))
                    else:
                        outcomes.refused += 1
                except httpx.HTTPError:
                    outcomes.unknown_registrations.append((card, offering))
            await asyncio.sleep(max(0.0, 1 / LOAD_RATE - (time.monotonic() - started)))


async def quiesced(h: Harness, timeout: float = 120) -> None:
    """Until every relay has published everything and every consumer is drained."""
    deadline = time.monotonic() + timeout
    settings = h.ns.settings
    while True:
        busy = []
        try:
            nc = await nats.connect(settings.nats_url)
            js = nc.jetstream()
            for stream_service in ("cards", "venues", "omakaiku"):
                for info in await js.consumers_info(settings.stream_name(stream_service)):
                    if info.num_pending or info.num_ack_pending:
                        busy.append(info.name)
            await nc.close()
            for service in ("cards", "venues", "omakaiku"):
                conn = await asyncpg.connect(settings.service_database_url(service))
                behind = await conn.fetchval(
                    f"SELECT (SELECT coalesce(max(notification_id), 0) FROM {service}_events) - "
                    "(SELECT coalesce(max(position), 0) FROM relay_position)")
                await conn.close()
                if behind:
                    busy.append(f"{service}-relay")
        except Exception as error:  # noqa: BLE001 - servers may be coming back
            busy.append(type(error).__name__)
        if not busy:
            return
        assert time.monotonic() < deadline, f"not caught up: {busy}"
        await asyncio.sleep(0.5)


def audit(h: Harness) -> int:
    """`kaiku audit` over the harness's namespace; the number of differences."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "kaiku_dev.cli", "audit"],
                            env={**os.environ, **h.ns.env()}, capture_output=True, text=True,
                            timeout=300)
    print(result.stdout[-3000:], result.stderr[-3000:])
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith("difference(s)"), result.stdout + result.stderr
    return int(last.split()[0])


async def rows(h: Harness, service: str, query: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(h.ns.settings.service_database_url(service))
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_nothing_acknowledged_is_lost_or_doubled_through_faults(harness):
    h = harness
    # 80 cards × 12 offerings: enough distinct registrations for the whole run.
    venue_token, cards, offerings = await setup_world(h, cards=80)
    outcomes = Outcomes()
    stop = asyncio.Event()
    load = asyncio.create_task(steady_load(h, venue_token, cards, offerings, outcomes, stop))

    faults = [
        ("SIGKILL venues-api", lambda: h.supervisor.kill("venues-api", signal.SIGKILL)),
        ("SIGKILL venues-relay", lambda: h.supervisor.kill("venues-relay", signal.SIGKILL)),
        ("SIGKILL omakaiku-worker", lambda: h.supervisor.kill("omakaiku-worker", signal.SIGKILL)),
        ("SIGKILL cards-worker", lambda: h.supervisor.kill("cards-worker", signal.SIGKILL)),
        ("restart nats-server", h.restart_nats),
        ("restart PostgreSQL", h.restart_postgres),
    ]
    try:
        await asyncio.sleep(PAUSE)
        for name, inject in faults:
            before = len(outcomes.registered)
            print(f"injected: {name} (after {before} acknowledged)")
            injected_at = time.monotonic()
            await asyncio.to_thread(inject)
            # Recovery: the load must succeed again before the next fault.
            while len(outcomes.registered) <= before:
                assert time.monotonic() - injected_at < 90, f"no recovery after {name}"
                await asyncio.sleep(0.1)
            print(f"  recovered: registrations succeed again after "
                  f"{time.monotonic() - injected_at:.1f} s")
            await asyncio.sleep(PAUSE)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await load
    await asyncio.to_thread(h.supervisor.wait_ready, 120)
    await quiesced(h)

    acknowledged = set(outcomes.registered)
    assert len(acknowledged) > 100, "the load ran through the faults"
    venue_tickets = {str(r["originator_id"]) for r in await rows(
        h, "venues", "SELECT DISTINCT originator_id FROM venues_events WHERE topic LIKE "
                     "'%Ticket.Registered'")}
    history = await rows(h, "omakaiku", "SELECT ticket_id::text, status FROM history_view")
    usage = await rows(h, "cards", "SELECT ticket_id::text, status FROM usage_view")
    history_ids = [r["ticket_id"] for r in history]
    usage_ids = [r["ticket_id"] for r in usage]
    assert len(history_ids) == len(set(history_ids)) and len(usage_ids) == len(set(usage_ids))

    for where, present in (("venues", venue_tickets), ("omakaiku history", set(history_ids)),
                           ("cards statistics", set(usage_ids))):
        missing = acknowledged - present
        assert not missing, f"{len(missing)} acknowledged tickets missing from {where}"
    # Unanswered requests: all-or-nothing across the three services.
    extra = venue_tickets - acknowledged
    assert extra == (set(history_ids) - acknowledged) == (set(usage_ids) - acknowledged)

    status = {r["ticket_id"]: r["status"] for r in history}
    usage_status = {r["ticket_id"]: r["status"] for r in usage}
    for ticket in outcomes.cancelled:
        assert status[ticket] == usage_status[ticket] == "cancelled", ticket
    for ticket in acknowledged - outcomes.cancelled - outcomes.unknown_cancellations:
        assert status[ticket] == usage_status[ticket] == "registered", ticket

    nc = await nats.connect(h.ns.settings.nats_url)
    try:
        bodies = await stream_bodies(nc.jetstream(), h.ns.settings, "venues")
    finally:
        await nc.close()
    import json

    ids = [json.loads(b)["event_id"] for _, b in bodies]
    assert len(ids) == len(set(ids)), "an event was published twice into the stream"
    differences = audit(h)
    assert differences == 0, "kaiku audit found differences after the faults"
    # The audit itself is shown to see a loss: forget one applied event.
    await rows(h, "omakaiku", "DELETE FROM processed_events WHERE event_id = (SELECT event_id "
                              "FROM processed_events WHERE consumer = 'omakaiku-history' LIMIT 1)")
    assert audit(h) == 1, "the audit did not notice a missing application"
    print(f"verified: {len(acknowledged)} acknowledged registrations, "
          f"{len(outcomes.cancelled)} cancellations, {len(extra)} unanswered-but-done, "
          f"{len(outcomes.unknown_registrations)} unanswered requests in all; each present "
          f"exactly once in venues, omakaiku history and cards statistics; "
          f"{len(ids)} venues events in the stream, no duplicates")
