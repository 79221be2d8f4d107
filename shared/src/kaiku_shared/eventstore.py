"""Event-store setup shared by the services' eventsourcing Applications.

Each command runs with a small metadata dict (trace context, correlation and
causation ids) in a context variable. ``MetaMapper`` stores it with every event
the command records, so the relay can continue the command's trace and keep its
correlation id when it publishes the events, without the domain knowing.
"""

from __future__ import annotations

import contextvars
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from eventsourcing.application import Application
from datetime import date

from eventsourcing.persistence import (
    IntegrityError,
    PersistenceError,
    JSONTranscoder,
    Mapper,
    RecordConflictError,
    StoredEvent,
    Transcoding,
)
from eventsourcing.utils import get_topic

from .settings import LIBPQ_TLS_PARAMS, KaikuSettings, postgres_params

META_KEY = "__meta__"
command_meta: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "command_meta", default=None
)


@contextmanager
def meta_scope(**meta: str | None) -> Iterator[None]:
    """Attach metadata to every event recorded inside the block."""
    token = command_meta.set({k: v for k, v in meta.items() if v})
    try:
        yield
    finally:
        command_meta.reset(token)


class MetaMapper(Mapper):
    """The library's mapper, plus the command metadata stored beside each event."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        # Same steps as Mapper.to_stored_event, with the metadata added.
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        meta = command_meta.get()
        if meta:
            event_state[META_KEY] = meta
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(type(domain_event)),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event, _ = self.decode(stored_event)
        return event

    def decode(self, stored_event: StoredEvent) -> tuple[Any, dict[str, str]]:
        """The domain event and the command metadata it was recorded with."""
        event = super().to_domain_event(stored_event)
        meta = event.__dict__.pop(META_KEY, None) or {}
        return event, meta


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class KaikuApplication(Application):
    """Base for the services' Applications: shared transcodings, group commit."""

    # Concurrent saves share one transaction (see group_commit). Off with
    # KAIKU_GROUP_COMMIT=n in the application's environment (benchmarks compare).
    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        from .group_commit import GroupCommitter

        enabled = self.env.get("KAIKU_GROUP_COMMIT", "y").lower() not in ("n", "no", "0")
        self.group_committer = GroupCommitter(self.events.put) if enabled else None

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def save_once(self, aggregate: Any) -> bool:
        """Save a new aggregate whose id derives from what it records (a signed-out
        token, say); False when it was saved already, so doing it twice is once."""
        from eventsourcing.persistence import IntegrityError

        try:
            self.save(aggregate)
        except IntegrityError:
            return False
        return True

    def _record(self, processing_event: Any) -> Any:
        if self.group_committer is None or processing_event.tracking is not None \
                or processing_event.saved_kwargs:
            return super()._record(processing_event)
        recordings = self.group_committer.put(processing_event.events)
        if self.repository.cache and not self.repository.fastforward:
            for aggregate_id, aggregate in processing_event.aggregates.items():
                self.repository.cache.put(aggregate_id, aggregate)
        return recordings


def application_env(settings: KaikuSettings, service: str, **extra: str) -> dict[str, str]:
    """Environment for an eventsourcing Application in ``service``'s database."""
    params = postgres_params(settings.service_database_url(service))
    env = {
        # eventsourcing.postgres, plus the URL's TLS parameters (pgstore).
        "PERSISTENCE_MODULE": "kaiku_shared.pgstore:TlsPostgresFactory",
        "POSTGRES_DBNAME": params["dbname"],
        "POSTGRES_HOST": params["host"],
        "POSTGRES_PORT": params["port"],
        "POSTGRES_USER": params["user"],
        "POSTGRES_PASSWORD": params["password"],
        # Small pools that grow under load: twelve processes share one server's
        # connections; group commit needs only one of them to write a batch.
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "14",
        "POSTGRES_LOCK_TIMEOUT": "5",
        # Check pooled connections before use: a Postgres restart must not leave
        # a process holding dead connections.
        "POSTGRES_PRE_PING": "y",
        "CREATE_TABLE": "y",
        "MAPPER_TOPIC": get_topic(MetaMapper),
    }
    env.update({f"POSTGRES_{name.upper()}": params[name]
                for name in LIBPQ_TLS_PARAMS if name in params})
    env.update(extra)
    return env


def construct_application(factory: Callable[[], T]) -> T:
    """Build an Application; retry when replicas race to create its tables.

    eventsourcing's CREATE TABLE/TYPE statements are not safe to run at the
    same moment from several processes (duplicate type, "tuple concurrently
    updated"); the loser simply tries again.
    """
    for attempt in range(10):
        try:
            return factory()
        except PersistenceError:
            if attempt == 9:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def events_table(application_name: str) -> str:
    """The table eventsourcing.postgres uses for an application's events."""
    return f"{application_name.lower()}_events"


T = TypeVar("T")


def retry_on_conflict(attempts: int = 1000, budget_seconds: float = 10.0
                      ) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Re-run a get → decide → save use case when another writer won the race.

    Optimistic concurrency: the loser reloads the aggregate and decides again
    against the new state, so caps and limits hold under concurrent writers.
    Backoff grows with jitter (many writers on one hot aggregate spread out);
    after the time budget the conflict is raised for the caller to report as
    "busy, try again" — never as a wrong answer.
    """

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        def wrapper(*args: Any, **kwargs: Any) -> T:
            deadline = time.monotonic() + budget_seconds
            for attempt in range(attempts):
                try:
                    return func(*args, **kwargs)
                except (RecordConflictError, IntegrityError):
                    if attempt == attempts - 1 or time.monotonic() > deadline:
                        raise
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
            raise AssertionError("unreachable")

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        return wrapper

    return decorate


def decode_meta(raw_state: bytes) -> dict[str, str]:
    """Read the stored metadata without decoding the whole event (audits, tools)."""
    try:
        return json.loads(raw_state).get(META_KEY) or {}
    except ValueError:
        return {}


__all__ = [
    "Application",
    "KaikuApplication",
    "MetaMapper",
    "application_env",
    "command_meta",
    "events_table",
    "meta_scope",
    "retry_on_conflict",
]
