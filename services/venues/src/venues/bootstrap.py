"""Composition root: builds the venues processes from settings."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from kaiku_shared.db import ensure_database
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.service import (
    Runtime,
    create_api,
    main_for,
    run_audit,
    run_relay,
    run_worker,
)

from .adapters import holder_requests, read_models
from .adapters.mobile_card import MobileCardKeys
from .adapters.translate import translate
from .application.app import VenuesApplication
from .config import SERVICE, KaikuSettings
from .entrypoints.api import router


def build_application(settings: KaikuSettings) -> VenuesApplication:
    return construct_application(lambda: VenuesApplication(application_env(settings, SERVICE)))


def build_api(settings: KaikuSettings) -> FastAPI:
    async def setup(app: FastAPI, runtime: Runtime) -> None:
        app.state.application = await asyncio.to_thread(build_application, settings)
        app.state.mobile_card_keys = MobileCardKeys(
            lambda: read_models.mobile_card_keys(runtime.pool))

    return create_api(
        service=SERVICE, settings=settings, title="Kaikukortti venues",
        description="Venues, their offering and the card's use: ticket registration.",
        schema=read_models.SCHEMA, setup=setup, routers=[router],
        readiness_consumers=(("cards", read_models.CARD_CONSUMER),
                             ("venues", read_models.OFFERING_CONSUMER),
                             ("venues", read_models.VENUE_CONSUMER),
                             ("omakaiku", holder_requests.CONSUMER),
                             ("omakaiku", read_models.FEEDBACK_CONSUMER),
                             ("omakaiku", read_models.MOBILE_CARD_KEY_CONSUMER)),
        consumers=read_models.consumers(None) + holder_requests.consumers(None),
    )


async def worker(settings: KaikuSettings) -> None:
    await ensure_database(settings, SERVICE)
    application = await asyncio.to_thread(build_application, settings)
    await run_worker(
        settings, SERVICE, read_models.SCHEMA,
        lambda runtime: (read_models.consumers(application)
                         + holder_requests.consumers(application)),
    )


async def relay(settings: KaikuSettings) -> None:
    await run_relay(settings, SERVICE, lambda: build_application(settings), translate)


async def audit(settings: KaikuSettings) -> int:
    # The handlers' collaborators are not called by an audit: only names and types.
    return await run_audit(settings, SERVICE, lambda: build_application(settings), translate,
                           read_models.consumers(None) + holder_requests.consumers(None))


main = main_for(SERVICE, api=build_api, worker=worker, relay=relay, audit=audit)
