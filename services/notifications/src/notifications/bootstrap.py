"""Composition root: builds the notifications processes from settings.

The worker runs three loops in one process: the NATS consumers (fan-out,
subscriptions, venues/cards facts), the inbox projection of this service's own
event store, and the hand-over to omakaiku. Each is safe with several worker
replicas (idempotent consumers; a locked projection position; locked claims).
"""

from __future__ import annotations

import asyncio
import signal

from fastapi import FastAPI

from kaiku_shared.db import create_pool, ensure_database, migrate
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.service import (
    Runtime,
    create_api,
    main_for,
    run_audit,
    run_relay,
    run_worker,
)

from .adapters import projections
from .adapters.handover import run_handover
from .adapters.inbox_projection import run_projection
from .adapters.schema import SCHEMA
from .adapters.translate import translate
from .application.app import NotificationsApplication
from .config import SERVICE, KaikuSettings
from .entrypoints.api import router


def build_application(settings: KaikuSettings) -> NotificationsApplication:
    return construct_application(
        lambda: NotificationsApplication(application_env(settings, SERVICE)))


def build_api(settings: KaikuSettings) -> FastAPI:
    async def setup(app: FastAPI, runtime: Runtime) -> None:
        app.state.application = await asyncio.to_thread(build_application, settings)

    return create_api(
        service=SERVICE, settings=settings, title="Kaikukortti notifications",
        description="Who gets what: genre fan-out, messages, bulletins. No personal data.",
        schema=SCHEMA, setup=setup, routers=[router],
        readiness_consumers=projections.CONSUMERS,
    )


async def worker(settings: KaikuSettings, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await ensure_database(settings, SERVICE)
    pool = await create_pool(settings, SERVICE, size=4)
    try:
        await migrate(pool, SCHEMA)
        application = await asyncio.to_thread(build_application, settings)
        tasks = [asyncio.create_task(t) for t in (
            run_worker(settings, SERVICE, SCHEMA,
                       lambda runtime: projections.consumers(), stop=stop),
            run_projection(pool, application.mapper, application.name, stop),
            run_handover(pool, application, stop),
        )]
        # One loop failing stops the others: the supervisor restarts the process.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        await pool.close()


async def relay(settings: KaikuSettings) -> None:
    await run_relay(settings, SERVICE, lambda: build_application(settings), translate)


async def audit(settings: KaikuSettings) -> int:
    return await run_audit(settings, SERVICE, lambda: build_application(settings), translate,
                           projections.consumers())


main = main_for(SERVICE, api=build_api, worker=worker, relay=relay, audit=audit)
