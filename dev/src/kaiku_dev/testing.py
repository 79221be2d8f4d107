"""pytest fixtures for integration and end-to-end tests against real servers.

- ``servers``: real NATS (JetStream) and PostgreSQL — those named by
  ``KAIKU_NATS_URL`` / ``KAIKU_DATABASE_URL``, otherwise embedded ones started
  from the wheels for this test session.
- ``namespace``: unique per session, so databases, streams and consumers never
  collide with another run on the same servers; dropped at the end.
- ``system``: every service's api, worker and relay as real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from kaiku_shared.auth import TokenSigner
from kaiku_shared.keys import KeyMaterial
from kaiku_shared.settings import SERVICES, KaikuSettings
from kaiku_shared.tls import connect_nats

from .ports import free_port
from .supervisor import Supervisor, jwks_urls, mail_sink, service_specs


@dataclass
class Servers:
    nats_url: str
    database_url: str


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    nats_url = os.environ.get("KAIKU_NATS_URL")
    database_url = os.environ.get("KAIKU_DATABASE_URL")
    if nats_url and database_url:
        yield Servers(nats_url, database_url)
        return
    from .embedded import EmbeddedServers

    # Short path: the Postgres socket path must stay under ~100 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="kaiku-test-"))
    embedded = EmbeddedServers(data_dir, nats_url=nats_url, database_url=database_url)
    started_nats, started_db = embedded.start()
    try:
        yield Servers(started_nats, started_db)
    finally:
        embedded.stop()


def unique_namespace(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Namespace:
    """One isolated copy of the system's names on the shared servers."""

    name: str
    servers: Servers
    settings: KaikuSettings = field(init=False)

    def __post_init__(self) -> None:
        # This run's own keys; processes get only their own (service_specs).
        self.keys = KeyMaterial.generate(development=True)
        self.settings = KaikuSettings(
            nats_url=self.servers.nats_url, database_url=self.servers.database_url,
            namespace=self.name,
            staff_signing_keys=self.keys.values["KAIKU_STAFF_SIGNING_KEYS"],
            holder_signing_keys=self.keys.values["KAIKU_HOLDER_SIGNING_KEYS"],
        )
        self.staff_signer = TokenSigner.for_staff(self.settings)
        self.holder_signer = TokenSigner.for_holders(self.settings)

    def env(self) -> dict[str, str]:
        """Every process's environment. No public keys are configured: the
        verifiers fetch them from the issuers' /.well-known/jwks.json, as a
        deployment does."""
        return {
            "KAIKU_NATS_URL": self.settings.nats_url,
            "KAIKU_DATABASE_URL": self.settings.database_url,
            "KAIKU_NAMESPACE": self.name,
            # Fast retries so failure tests finish quickly.
            "KAIKU_CONSUMER_BACKOFF_SECONDS": "[0.1, 0.2, 0.5]",
        }

    def token(self, role: str, **ids: Any) -> str:
        signer = self.holder_signer if role == "holder" else self.staff_signer
        return signer.issue(role=role, **ids)  # type: ignore[arg-type]

    async def drop(self) -> None:
        """Remove this namespace's databases and streams from the shared servers."""
        with contextlib.suppress(Exception):
            nc = await connect_nats(self.settings)
            js = nc.jetstream()
            for service in (*SERVICES, "dlq"):
                with contextlib.suppress(Exception):
                    await js.delete_stream(self.settings.stream_name(service))
            await nc.close()
        conn = await asyncpg.connect(self.settings.maintenance_database_url())
        try:
            for service in SERVICES:
                await conn.execute(
                    f'DROP DATABASE IF EXISTS "{self.settings.database_name(service)}" '
                    "WITH (FORCE)"
                )
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def namespace(servers: Servers) -> Iterator[Namespace]:
    ns = Namespace(unique_namespace(), servers)
    yield ns
    if not os.environ.get("KAIKU_KEEP_TEST_DATA"):
        asyncio.run(ns.drop())


@dataclass
class System:
    """The whole system running as real processes in one namespace."""

    ns: Namespace
    supervisor: Supervisor
    ports: dict[str, int]
    spans_file: Path
    log_dir: Path
    mail_dir: Path

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def token(self, role: str, **ids: Any) -> str:
        return self.ns.token(role, **ids)

    def client(self, service: str, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url(service), headers=headers, timeout=15)

    def spans(self) -> list[dict[str, Any]]:
        if not self.spans_file.exists():
            return []
        return [json.loads(line) for line in self.spans_file.read_text().splitlines() if line]

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.iterdir()))

    async def database(self, service: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.ns.settings.service_database_url(service))


@pytest.fixture(scope="session")
def system(namespace: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    work = tmp_path_factory.mktemp("system")
    ports = {service: free_port() for service in SERVICES}
    spans_file = work / "spans.jsonl"
    sink, mail_env = mail_sink(work / "mail", free_port(), ports["omakaiku"])
    # Extra processes a test starts from this base (a second api, a crashing one)
    # need the keys too, so in a test run every process can read every secret.
    # Which service gets which secret in a deployment is tested in tests/deploy;
    # only cards and omakaiku sign, by code, whatever their environment holds.
    env = {**namespace.env(), **jwks_urls(ports), **mail_env, "KAIKU_OTEL_EXPORTER": "file",
           "KAIKU_OTEL_FILE": str(spans_file)}
    supervisor = Supervisor(env, work / "logs")
    supervisor.base_env.update(namespace.keys.values)
    supervisor.add(sink)
    for spec in service_specs(ports, keys=namespace.keys):
        supervisor.add(spec)
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=90)
        yield System(namespace, supervisor, ports, spans_file, work / "logs", work / "mail")
    finally:
        supervisor.stop_all()


async def eventually(check, *, timeout: float = 15.0, interval: float = 0.05,
                     message: str = "condition not met") -> Any:
    """Poll an async ``check`` until it returns a truthy value (eventual consistency)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{message} within {timeout}s (last: {last!r})")


# --- reading what the system wrote (read-only helpers for assertions) --------------


async def stream_messages(system: System, service: str, subject_suffix: str = ">") -> list:
    """Every message now in ``service``'s stream on the subject filter, oldest first.

    A read-only ephemeral consumer (no acks, so a large stream never stalls it)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    settings = system.ns.settings
    nc = await connect_nats(settings)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            f"{settings.subject_root(service)}.{subject_suffix}",
            stream=settings.stream_name(service),
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30,
                                  ack_policy=AckPolicy.NONE))
        messages: list = []
        remaining = (await sub.consumer_info()).num_pending  # this subject's, not the stream's
        idle = 0
        while remaining > 0 and idle < 5:
            try:
                batch = await sub.fetch(min(remaining, 500), timeout=5)
            except (TimeoutError, nats.errors.TimeoutError):
                idle += 1  # a busy machine: ask again, a few times
                continue
            messages.extend(batch)
            remaining -= len(batch)
        await sub.unsubscribe()
        return messages
    finally:
        await nc.close()


async def stream_events(system: System, service: str, subject_suffix: str = ">"
                        ) -> list[dict[str, Any]]:
    """The JSON events in ``service``'s stream on the subject filter, oldest first.

    Bodies that are not a JSON object are skipped: failure tests publish such
    poison messages on real subjects on purpose, and the session shares streams."""
    events = []
    for message in await stream_messages(system, service, subject_suffix):
        try:
            body = json.loads(message.data)
        except ValueError:
            continue
        if isinstance(body, dict):
            events.append(body)
    return events


async def every_stream_message(system: System) -> str:
    """Subjects, headers and bodies of every message of every stream, as text."""
    from nats.js.errors import NotFoundError

    parts = []
    for service in (*SERVICES, "dlq"):
        try:
            messages = await stream_messages(system, service)
        except NotFoundError:
            continue
        for message in messages:
            parts += [message.subject, repr(message.headers),
                      message.data.decode("utf-8", "replace")]
    return "\n".join(parts)


async def database_dump(system: System, service: str) -> str:
    """Every row of every table of a service's database, as text."""
    conn = await system.database(service)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")
        parts = []
        for table in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{table["table_name"]}" t')
            parts.extend(row["row"] for row in rows)
        return "\n".join(parts)
    finally:
        await conn.close()


# --- token revocation: is a token refused by every service? ------------------------
# Each probe asks a route that answers 401 only when the token itself is refused:
# a valid token of the wrong role gets 403, 404 or 422 there instead.

REVOCATION_LIMIT = 2.0  # seconds, the issue's promise

# (service, method, path, body): every service that trusts staff, or holder, tokens
# (cards trusts staff tokens only: auth.STAFF_ONLY_SERVICES).
STAFF_PROBES = [("cards", "GET", "/auth/me", None), ("venues", "GET", "/venues", None),
                ("notifications", "GET", "/inbox", None),
                ("omakaiku", "POST", "/accounts", {})]
HOLDER_PROBES = [("omakaiku", "GET", "/me/subscriptions", None),
                 ("notifications", "GET", "/me/notifications", None),
                 ("venues", "GET", "/venues", None)]


async def statuses(system, token: str, probes) -> dict[str, int]:
    async def ask(service, method, path, body) -> tuple[str, int]:
        async with system.client(service, token) as client:
            response = await client.request(method, path, json=body)
        return service, response.status_code

    return dict(await asyncio.gather(*(ask(*probe) for probe in probes)))


async def accepted_everywhere(system, token: str, probes) -> None:
    seen = await statuses(system, token, probes)
    assert 401 not in seen.values(), f"a fresh token is refused: {seen}"


async def seconds_until_refused_everywhere(system, token: str, probes,
                                           since: float) -> float:
    """Poll every service until each answers 401; the time since ``since``."""
    deadline = since + 15
    while time.monotonic() < deadline:
        seen = await statuses(system, token, probes)
        if set(seen.values()) == {401}:
            return time.monotonic() - since
        await asyncio.sleep(0.05)
    raise AssertionError(f"still accepted after 15 s: {seen}")


def reported(what: str, delay: float) -> None:
    print(f"\nrevocation ({what}): refused by every service after {delay * 1000:.0f} ms")
    assert delay <= REVOCATION_LIMIT, f"{what}: {delay:.2f} s > {REVOCATION_LIMIT} s"
