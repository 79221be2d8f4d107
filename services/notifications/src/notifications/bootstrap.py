"""Composition root: notifications' parts, wired by ``kaiku_shared.service_main``.

The worker runs three loops in one process: the NATS consumers (fan-out,
subscriptions, venues/cards facts, cards' network), the inbox projection of this
service's own event store, and the hand-over to omakaiku. Each is safe with
several worker replicas (idempotent consumers; a locked projection position;
locked claims).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import FastAPI

from kaiku_shared.db import create_pool, migrate
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.production import secret_problem
from kaiku_shared.service import Runtime
from kaiku_shared.service_main import ServiceParts, service_main

from .adapters import projections
from .adapters.handover import run_handover
from .adapters.inbox_projection import run_projection
from .adapters.schema import SCHEMA
from .adapters.translate import translate
from .application.app import NotificationsApplication
from .adapters.message_keys import MessageKeys
from .config import MASTER_KEY_SETTING, SERVICE, KaikuSettings, NotificationsSettings
from .entrypoints.api import router


def build_application(settings: KaikuSettings) -> NotificationsApplication:
    return construct_application(
        lambda: NotificationsApplication(application_env(settings, SERVICE)))


async def _with_pool(settings: KaikuSettings,
                     loop: Callable[[asyncpg.Pool], Awaitable[None]]) -> None:
    """A loop beside the consumers, on a pool of its own and a migrated schema (the
    consumers' start migrates too: whichever comes first, under the schema lock)."""
    pool = await create_pool(settings, SERVICE, size=2)
    try:
        await migrate(pool, SCHEMA)
        await loop(pool)
    finally:
        await pool.close()


def worker_loops(settings: KaikuSettings, application: NotificationsApplication,
                 stop: asyncio.Event) -> list[Awaitable[None]]:
    return [
        _with_pool(settings, lambda pool: run_projection(pool, application.mapper,
                                                         application.name, stop)),
        _with_pool(settings, lambda pool: run_handover(pool, application, stop)),
    ]


async def api_setup(app: FastAPI, runtime: Runtime) -> None:
    """The holders' message keys (None without a master key: development only,
    and then holders' messages answer 503; production refuses to start)."""
    master_key = NotificationsSettings().master_key_bytes()
    app.state.message_keys = MessageKeys(master_key) if master_key else None


def production_problems(settings: KaikuSettings) -> list[str]:
    """Notifications seals holders' messages: production needs its own master key."""
    problem = secret_problem(NotificationsSettings().master_key, MASTER_KEY_SETTING,
                             base64_bytes=32)
    return [problem] if problem else []


PARTS = ServiceParts(
    service=SERVICE,
    title="Kaikukortti notifications",
    description="Who gets what: genre fan-out, messages, bulletins. No personal data.",
    application=build_application,
    translate=translate,
    consumers=projections.consumers,
    schema=SCHEMA,
    routers=[router],
    worker_loops=worker_loops,
    api_setup=api_setup,
    production_problems=production_problems,
)

main = service_main(PARTS)
