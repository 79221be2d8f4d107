"""The local cluster proof: lose a NATS node, the active relay and a worker under load.

Real processes on loopback:

* three ``nats-server`` processes forming one JetStream cluster (nats_cluster.py);
  every stream (the services' and the dead-letter stream) created with 3
  replicas before any service starts;
* Postgres from the ``servers`` fixture, one database per service;
* cards, venues and omakaiku each with two api and two worker replicas, venues
  with two relays (one active by advisory lock, one standby), cards and
  omakaiku with one relay each. Replica 1 of every api and worker and the
  cards and omakaiku relays talk to NATS node n1, replica 2 to n2; connected
  clients learn the other nodes from the cluster's INFO and fail over to them.
  The venues relays are given n2 and n3: a standby relay opens its NATS
  connection only when it takes over, and a single configured URL naming a
  server that died meanwhile leaves it retrying that server while it holds the
  lock (in Kubernetes the URL is the `nats` Service, which routes to live
  servers; KAIKU_NATS_URL may also list several servers, comma-separated).
  Processes restarted after n1 is lost are pointed at n3.

Under a steady load of ticket registrations spread over both venues apis we
SIGKILL, in order: NATS node n1, the active venues relay, one omakaiku worker
(not restarted: its peer must carry on alone). Then we check that every
registration the api acknowledged reached omakaiku's history_view and cards'
usage_view exactly once, that the venues stream holds each ticket_registered
event once (no duplicate publish across the relay fail-over), that the standby
relay took over, that the load went on through every phase, and that the
streams still have 3 replicas. Everything measured is printed (pytest -s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from kaiku_shared.contracts.events import TicketRegisteredV1
from kaiku_shared.relay import ensure_dead_letter_stream, ensure_stream
from kaiku_shared.settings import SERVICES
from kaiku_dev.supervisor import ProcessSpec, Supervisor
from kaiku_dev.testing import Namespace, Servers, eventually, free_port, unique_namespace

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # --import-mode=importlib: the helpers are beside us
    sys.path.insert(0, str(HERE))

from nats_cluster import NatsCluster  # noqa: E402

REPLICATED = ("cards", "venues", "omakaiku")  # notifications is not in this proof
CARDS = 24
LOADERS = 4
PHASE_SECONDS = 4.0


_CAPSYS: pytest.CaptureFixture[str] | None = None


def say(text: str) -> None:
    """Print past pytest's capture: `make test` shows what was killed and verified."""
    line = f"[cluster] {text}" if text else ""
    if _CAPSYS is None:
        print(line, flush=True)
        return
    with _CAPSYS.disabled():
        print(line, flush=True)


@dataclass
class Load:
    """Ticket registrations from LOADERS concurrent clients over both venues apis."""

    venue_urls: list[str]
    venue_token: str
    venue_id: str
    cards: list[str]
    acknowledged: list[tuple[str, float]] = field(default_factory=list)  # (ticket, time)
    refused: Counter = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._loader(i)) for i in range(LOADERS)]

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks)

    def acks_between(self, start: float, end: float) -> int:
        return sum(1 for _, at in self.acknowledged if start <= at < end)

    async def keep_going(self, since: float, *, seconds: float = PHASE_SECONDS,
                         at_least: int = 5) -> None:
        """Let the load run ``seconds``, and on until ``at_least`` registrations were
        acknowledged since ``since``: fails if the load has stopped."""
        await asyncio.sleep(seconds)

        async def enough() -> int:
            count = self.acks_between(since, float("inf"))
            return count if count >= at_least else 0

        await eventually(enough, timeout=60, interval=0.2,
                         message=f"{at_least} registrations acknowledged")

    async def _post(self, index: int, path: str, body: dict) -> httpx.Response | None:
        """POST with an Idempotency-Key; on a transport error retry once, same key,
        on the other api replica (what a load balancer would do)."""
        headers = {"Authorization": f"Bearer {self.venue_token}",
                   "Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(2):
            url = self.venue_urls[(index + attempt) % len(self.venue_urls)]
            try:
                async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                    return await client.post(path, json=body, headers=headers)
            except httpx.HTTPError as error:
                self.refused[type(error).__name__] += 1
        return None

    async def _offering(self, loader: int, round_: int) -> str | None:
        body = {"title": f"Kuormitus {loader}.{round_}", "genres": ["music"],
                "starts_at": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
                "capacity": 400, "card_cap": len(self.cards) + 5}
        response = await self._post(loader, f"/venues/{self.venue_id}/offerings", body)
        if response is None or response.status_code != 201:
            self.refused["offering"] += 1
            return None
        return response.json()["offering_id"]

    async def _loader(self, loader: int) -> None:
        request = 0
        round_ = 0
        while not self.stopping.is_set():
            round_ += 1
            offering = await self._offering(loader, round_)
            if offering is None:
                await asyncio.sleep(0.2)
                continue
            for card in self.cards:
                if self.stopping.is_set():
                    return
                request += 1
                response = await self._post(loader + request, "/tickets", {
                    "card_number": card, "offering_id": offering, "children": 0})
                if response is not None and 200 <= response.status_code < 300:
                    self.acknowledged.append((response.json()["ticket_id"], time.monotonic()))
                elif response is not None:
                    self.refused[str(response.status_code)] += 1


def relay_activations(log_dir: Path, name: str) -> list[str]:
    """Times at which this relay process logged that it became the active one."""
    path = log_dir / f"{name}.log"
    if not path.exists():
        return []
    times = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("message") == "relay active":
                times.append(entry["time"])
    return times


def active_relay(log_dir: Path, names: list[str]) -> str | None:
    latest = {name: max(relay_activations(log_dir, name), default="") for name in names}
    best = max(latest, key=lambda n: latest[n])
    return best if latest[best] else None


async def stream_tickets(nc, ns: Namespace) -> list[str]:
    """Every ticket id in the venues stream's ticket_registered messages, in order."""
    js = nc.jetstream()
    stream = ns.settings.stream_name("venues")
    subject = TicketRegisteredV1.subject(ns.name)
    info = await js.stream_info(stream)
    tickets = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            msg = await js.get_msg(stream, seq)
            if msg.subject == subject:
                tickets.append(json.loads(msg.data)["ticket_id"])
    return tickets


async def view_tickets(ns: Namespace, service: str, table: str) -> list[str]:
    conn = await asyncpg.connect(ns.settings.service_database_url(service))
    try:
        return [str(r["ticket_id"]) for r in await conn.fetch(f"SELECT ticket_id FROM {table}")]
    finally:
        await conn.close()


async def relay_position(ns: Namespace) -> int:
    conn = await asyncpg.connect(ns.settings.service_database_url("venues"))
    try:
        return await conn.fetchval("SELECT position FROM relay_position WHERE stream = $1",
                                   ns.settings.stream_name("venues")) or 0
    finally:
        await conn.close()


async def post(url: str, token: str, path: str, body: dict) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=15,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.timeout(240)
async def test_cluster_survives_losing_a_nats_node_the_active_relay_and_a_worker(
        servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    global _CAPSYS
    _CAPSYS = capsys
    say("")  # off the progress dots' line
    started = time.monotonic()
    cluster = NatsCluster(tmp_path / "nats")
    cluster.start()
    n1, n2, n3 = cluster.nodes
    say(f"NATS cluster up: {', '.join(cluster.urls)}; meta leader {cluster.meta_leader()}")
    # The test's own view goes through n3, which is never killed.
    ns = Namespace(unique_namespace("cl"), Servers(n3.url, servers.database_url))
    supervisor = Supervisor({**ns.env(), **ns.keys.public_env(), "KAIKU_OTEL_EXPORTER": "none",
                             "KAIKU_STREAM_REPLICAS": "3"}, tmp_path / "logs")
    admin = None
    try:
        admin = await nats.connect(n3.url, max_reconnect_attempts=-1)
        js = admin.jetstream()
        # Streams at replication 3, created the way the relay creates them.
        replicated = ns.settings.model_copy(update={"stream_replicas": 3})
        for service in SERVICES:
            await ensure_stream(js, replicated, service)
        await ensure_dead_letter_stream(js, replicated)
        for service in (*SERVICES, "dlq"):
            info = await js.stream_info(ns.settings.stream_name(service))
            assert info.config.num_replicas == 3
            assert len(info.cluster.replicas or []) == 2, info.cluster
        say(f"streams created with 3 replicas in namespace {ns.name}")

        ports: dict[str, int] = {}
        relays = ["venues-relay-1", "venues-relay-2"]
        for service in REPLICATED:
            for replica, node in ((1, n1), (2, n2)):
                env = {"KAIKU_NATS_URL": node.url, **ns.keys.env_for(service)}
                port = ports[f"{service}-{replica}"] = free_port()
                supervisor.add(ProcessSpec(
                    f"{service}-api-{replica}", [sys.executable, "-m", service, "api"],
                    {**env, "KAIKU_HTTP_PORT": str(port)}, port))
                supervisor.add(ProcessSpec(
                    f"{service}-worker-{replica}",
                    [sys.executable, "-m", service, "worker"], env))
                if service == "venues":
                    # A standby connects to NATS only when it takes over, so it is
                    # given a server that is alive then (in Kubernetes: the `nats`
                    # Service). See the module docstring.
                    supervisor.add(ProcessSpec(
                        f"{service}-relay-{replica}",
                        [sys.executable, "-m", service, "relay"],
                        {"KAIKU_NATS_URL": (n2 if replica == 1 else n3).url}))
                elif replica == 1:
                    supervisor.add(ProcessSpec(
                        f"{service}-relay-{replica}",
                        [sys.executable, "-m", service, "relay"], env))
        supervisor.start_all()
        supervisor.wait_ready(timeout=120)
        say(f"{len(supervisor.specs)} service processes ready after "
            f"{time.monotonic() - started:.1f}s: {', '.join(supervisor.specs)}")

        # --- the world: a distributor, a venue, cards venues knows of --------------
        centre = ns.token("kaikukeskus")
        cards_url = f"http://127.0.0.1:{ports['cards-1']}"
        venue_urls = [f"http://127.0.0.1:{ports['venues-1']}",
                      f"http://127.0.0.1:{ports['venues-2']}"]
        distributor = await post(cards_url, centre, "/organisations", {
            "kind": "distributor", "name": "Klusterin jakelija", "municipality": "Imatra"})
        venue_org = await post(cards_url, centre, "/organisations", {
            "kind": "venue", "name": "Klusterin teatteri", "municipality": "Imatra"})
        venue_token = ns.token("venue", organisation_id=venue_org["organisation_id"])
        venue = await post(venue_urls[0], venue_token, "/venues", {
            "organisation_id": venue_org["organisation_id"], "name": "Klusterin teatteri",
            "kind": "performing_arts", "municipality": "imatra"})
        distributor_token = ns.token("distributor",
                                     organisation_id=distributor["organisation_id"])
        cards = []
        for i in range(CARDS):
            card = await post(
                f"http://127.0.0.1:{ports[f'cards-{1 + i % 2}']}", distributor_token, "/cards",
                {"birth_year": 1970 + i, "postal_code": "55100", "municipality": "Imatra",
                 "children": 1})
            cards.append(card["card_number"])

        async def venues_knows_cards() -> bool:
            conn = await asyncpg.connect(ns.settings.service_database_url("venues"))
            try:
                return await conn.fetchval(
                    "SELECT count(*) FROM card_validity_view WHERE card_number = ANY($1) "
                    "AND valid_from IS NOT NULL", cards) == len(cards)
            finally:
                await conn.close()

        await eventually(venues_knows_cards, timeout=60, interval=0.2,
                         message="venues to learn of every card")

        # --- load, and three failures under it -----------------------------------
        load = Load(venue_urls, venue_token, venue["venue_id"], cards)
        load.start()
        marks = [time.monotonic()]
        await load.keep_going(marks[-1])

        # 1. A NATS node. Restarted processes are sent to the nodes that are left,
        #    as a Kubernetes Service stops routing to a dead pod.
        for spec in supervisor.specs.values():
            if spec.env.get("KAIKU_NATS_URL") == n1.url:
                spec.env["KAIKU_NATS_URL"] = n3.url
        cluster.kill(n1)
        marks.append(time.monotonic())
        say(f"KILLED NATS node n1 (SIGKILL; {len(load.acknowledged)} registrations "
            f"acknowledged so far); meta leader now "
            f"{cluster.wait_for_meta_leader(timeout=30)}")
        await load.keep_going(marks[-1])

        # 2. The active venues relay.
        async def some_relay_active() -> str | None:
            return active_relay(supervisor.log_dir, relays)

        await eventually(some_relay_active, timeout=30, message="a venues relay to be active")
        victim = active_relay(supervisor.log_dir, relays)
        assert victim is not None
        before = {r: len(relay_activations(supervisor.log_dir, r)) for r in relays}
        killed_at = time.monotonic()
        supervisor.kill(victim)  # the supervisor restarts it: it comes back as standby
        position_at_kill = await relay_position(ns)
        marks.append(time.monotonic())

        async def new_active() -> str | None:
            # The victim is dead: a new "relay active" line is another process —
            # the standby, or (rarely) the victim's replacement winning the lock.
            return next((r for r in relays
                         if len(relay_activations(supervisor.log_dir, r)) > before[r]), None)

        successor = await eventually(new_active, timeout=30, interval=0.05,
                                     message=f"another venues relay to take over from {victim}")
        takeover = time.monotonic() - killed_at
        successor_kind = ("the standby" if successor != victim
                          else "the victim's restarted replacement")

        async def publishing_again() -> bool:
            return await relay_position(ns) > position_at_kill

        await eventually(publishing_again, timeout=30, interval=0.05,
                         message="the venues relay to publish again")
        first_publish = time.monotonic() - killed_at
        say(f"KILLED active relay {victim} (SIGKILL); {successor} ({successor_kind}) took "
            f"the advisory lock after {takeover:.2f}s and published again after "
            f"{first_publish:.2f}s")
        history = {r: relay_activations(supervisor.log_dir, r) for r in relays}
        say(f"venues relay activations so far (one more than the kills means a relay also "
            f"restarted by itself, e.g. on a publish during a stream-leader election): "
            f"{history}")
        await load.keep_going(marks[-1])

        # 3. One omakaiku worker replica, for good: its peer must carry on alone.
        #    What it had taken but not acknowledged is redelivered after ack_wait.
        with supervisor._lock:  # not restarted: the replica is gone
            gone = supervisor.processes.pop("omakaiku-worker-1")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(gone.pid, signal.SIGKILL)
        gone.wait(timeout=10)
        marks.append(time.monotonic())
        say("KILLED omakaiku-worker-1 (SIGKILL, not restarted); omakaiku-worker-2 remains")
        await load.keep_going(marks[-1])
        await load.stop()
        marks.append(time.monotonic())

        phases = ["steady", "after NATS node loss", "after relay loss", "after worker loss"]
        per_phase = {p: load.acks_between(marks[i], marks[i + 1]) for i, p in enumerate(phases)}
        say(f"load: {len(load.acknowledged)} registrations acknowledged; per phase {per_phase}; "
            f"not acknowledged: {dict(load.refused) or 'none'}")
        for phase, count in per_phase.items():
            assert count > 0, f"no registration was acknowledged {phase}: {per_phase}"

        # --- verification ---------------------------------------------------------
        acked = {ticket for ticket, _ in load.acknowledged}
        assert len(acked) == len(load.acknowledged), "an id was acknowledged twice"

        async def stream_has_every_ack() -> list[str] | None:
            published = await stream_tickets(admin, ns)
            return published if acked <= set(published) else None

        published = await eventually(stream_has_every_ack, timeout=60, interval=0.5,
                                     message="every acknowledged ticket in the venues stream")
        duplicates = [t for t, n in Counter(published).items() if n > 1]
        assert not duplicates, f"ticket_registered published twice: {duplicates[:5]}"
        say(f"venues stream: {len(published)} ticket_registered messages, each once "
            f"(relay fail-over re-published nothing); {len(set(published) - acked)} of them "
            "for requests whose answer the client never saw")

        expected = set(published)

        async def views_caught_up() -> bool:
            history = await view_tickets(ns, "omakaiku", "history_view")
            usage = await view_tickets(ns, "cards", "usage_view")
            return expected <= set(history) and expected <= set(usage)

        await eventually(views_caught_up, timeout=90, interval=0.5,
                         message="omakaiku history and cards usage to hold every ticket")
        history = await view_tickets(ns, "omakaiku", "history_view")
        usage = await view_tickets(ns, "cards", "usage_view")
        for name, rows in (("omakaiku history_view", history), ("cards usage_view", usage)):
            counts = Counter(rows)
            assert set(counts) == expected, f"{name} differs from the stream"
            assert all(n == 1 for n in counts.values()), f"{name} has a ticket twice"
            assert acked <= set(counts)
        say(f"verified: all {len(acked)} acknowledged registrations are in omakaiku "
            f"history_view and cards usage_view exactly once ({len(history)} rows each)")

        for service in (*SERVICES, "dlq"):
            info = await js.stream_info(ns.settings.stream_name(service))
            assert info.config.num_replicas == 3, f"{info.config.name} lost its replicas"
        dlq = await js.stream_info(ns.settings.dead_letter_stream)
        assert dlq.state.messages == 0, "a message was dead-lettered during the failures"
        venues_stream = await js.stream_info(ns.settings.stream_name("venues"))
        peers = {p.name: "offline" if p.offline else ("current" if p.current else "behind")
                 for p in venues_stream.cluster.replicas or []}
        say(f"verified: every stream still has 3 replicas (venues stream: leader "
            f"{venues_stream.cluster.leader}, peers {peers}); no dead letters; "
            f"total {time.monotonic() - started:.1f}s")
    finally:
        supervisor.stop_all()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
        with contextlib.suppress(Exception):
            await ns.drop()
        cluster.stop()
        _CAPSYS = None
