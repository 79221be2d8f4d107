"""Composition root: builds the notifications processes from settings."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.service import Runtime, create_api, main_for, run_relay, run_worker

from .adapters import read_models
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
        schema=read_models.SCHEMA, setup=setup, routers=[router],
        readiness_consumers=(("omakaiku", read_models.SUBSCRIPTIONS_CONSUMER),
                             ("venues", read_models.FANOUT_CONSUMER)),
    )


async def worker(settings: KaikuSettings) -> None:
    await run_worker(settings, SERVICE, read_models.SCHEMA,
                     lambda runtime: read_models.consumers())


async def relay(settings: KaikuSettings) -> None:
    await run_relay(settings, SERVICE, lambda: build_application(settings), translate)


main = main_for(SERVICE, api=build_api, worker=worker, relay=relay)
