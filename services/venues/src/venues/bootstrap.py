"""Composition root: venues' parts; the shared ``service_main`` builds its processes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from kaiku_shared.consumer import Consumer
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.service import Runtime
from kaiku_shared.service_main import ServiceParts, service_main

from .adapters import holder_requests, projections, queries
from .adapters.mobile_card import MobileCardKeys
from .adapters.schema import SCHEMA
from .adapters.translate import translate
from .application.app import VenuesApplication
from .config import SERVICE, KaikuSettings
from .entrypoints.api import router


def build_application(settings: KaikuSettings) -> VenuesApplication:
    return construct_application(lambda: VenuesApplication(application_env(settings, SERVICE)))


async def api_setup(app: FastAPI, runtime: Runtime) -> None:
    app.state.mobile_card_keys = MobileCardKeys(lambda: queries.mobile_card_keys(runtime.pool))


def consumers(application: Any) -> list[Consumer]:
    """The projections and the holders' cancellation requests; ``application`` is
    None in an audit, which only reads the consumers' names and contracts."""
    return projections.consumers(application) + holder_requests.consumers(application)


PARTS = ServiceParts(
    service=SERVICE,
    title="Kaikukortti venues",
    description="Venues, their offering and the card's use: ticket registration.",
    application=build_application,
    translate=translate,
    consumers=consumers,
    schema=SCHEMA,
    routers=[router],
    api_setup=api_setup,
)

main = service_main(PARTS)
