"""A service's composition root, declared: its parts in, its processes out.

Every service has the same three processes (api, worker, relay) and an audit;
what differs is its parts. A ``bootstrap.py`` fills one ``ServiceParts`` and
calls ``service_main``; the wiring below is then the same for all four.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from .auth import TokenSigner
from .consumer import Consumer
from .db import ensure_database
from .relay import Translator
from .service import (
    Runtime,
    Tables,
    create_api,
    main_for,
    run_audit,
    run_relay,
    run_worker,
    stop_on_signals,
)
from .settings import KaikuSettings

# What the worker runs beside its consumers (a projection loop, a mail sender):
# given the settings, the application and the event that stops the worker.
WorkerLoops = Callable[[KaikuSettings, Any, asyncio.Event], Sequence[Awaitable[None]]]


@dataclass(frozen=True)
class ServiceParts:
    """What makes one service itself; everything else is shared."""

    service: str
    title: str
    description: str
    application: Callable[[KaikuSettings], Any]  # builds its eventsourcing application
    translate: Translator  # domain events → published contracts
    # Its durable consumers, given the application (None in an audit, which only
    # reads their names and contracts).
    consumers: Callable[[Any], list[Consumer]]
    schema: Tables
    routers: Sequence[Any]
    # Extra api state, once the application is built (``app.state.application``).
    api_setup: Callable[[FastAPI, Runtime], Awaitable[None]] | None = None
    signer: Callable[[KaikuSettings], TokenSigner] | None = None
    production_problems: Callable[[KaikuSettings], list[str]] = field(
        default=lambda settings: [])
    worker_loops: WorkerLoops | None = None

    def readiness(self) -> tuple[tuple[str, str], ...]:
        return tuple((consumer.source, consumer.name) for consumer in self.consumers(None))


def build_api(parts: ServiceParts, settings: KaikuSettings) -> FastAPI:
    async def setup(app: FastAPI, runtime: Runtime) -> None:
        app.state.application = await asyncio.to_thread(parts.application, settings)
        if parts.api_setup is not None:
            await parts.api_setup(app, runtime)

    return create_api(service=parts.service, settings=settings, title=parts.title,
                      description=parts.description, schema=parts.schema, setup=setup,
                      routers=list(parts.routers), readiness_consumers=parts.readiness(),
                      signer=parts.signer, consumers=parts.consumers(None))


async def run_service_worker(parts: ServiceParts, settings: KaikuSettings,
                             stop: asyncio.Event | None = None) -> None:
    """The consumers, and the service's own loops beside them; one failing
    stops the others, so the supervisor restarts the whole process."""
    await ensure_database(settings, parts.service)
    application = await asyncio.to_thread(parts.application, settings)
    stop = stop or stop_on_signals()
    consuming = run_worker(settings, parts.service, parts.schema,
                           lambda runtime: parts.consumers(application), stop=stop)
    loops = parts.worker_loops(settings, application, stop) if parts.worker_loops else ()
    tasks = [asyncio.ensure_future(coroutine) for coroutine in (consuming, *loops)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def service_main(parts: ServiceParts) -> Callable[[list[str] | None], None]:
    """``python -m <service> api|worker|relay|audit|check`` for these parts."""

    async def relay(settings: KaikuSettings) -> None:
        await run_relay(settings, parts.service, lambda: parts.application(settings),
                        parts.translate)

    async def audit(settings: KaikuSettings) -> int:
        return await run_audit(settings, parts.service, lambda: parts.application(settings),
                               parts.translate, parts.consumers(None))

    return main_for(parts.service, api=lambda settings: build_api(parts, settings),
                    worker=lambda settings: run_service_worker(parts, settings),
                    relay=relay, audit=audit, production_problems=parts.production_problems)
