"""Composition root: cards' parts; the shared ``service_main`` builds its processes."""

from __future__ import annotations

import asyncio
from fastapi import FastAPI

from kaiku_shared.auth import TokenSigner
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.production import signing_keys_problem
from kaiku_shared.service import Runtime
from kaiku_shared.service_main import ServiceParts, service_main

from .adapters import projections
from .adapters.login_throttle import LoginThrottle, ThrottlePolicy
from .adapters.reference import load_network
from .adapters.schema import LOGIN_THROTTLE, SCHEMA
from .adapters.translate import translate
from .application.app import CardsApplication
from .config import SERVICE, CardsSettings, KaikuSettings, load_cards_settings
from .entrypoints.api import router


def build_application(settings: KaikuSettings) -> CardsApplication:
    return construct_application(
        lambda: CardsApplication(application_env(settings, SERVICE), network=load_network())
    )


def throttle_policy(cards: CardsSettings) -> ThrottlePolicy:
    return ThrottlePolicy(limit=cards.login_attempts, lock_seconds=cards.login_lock_seconds,
                          max_lock_seconds=cards.login_lock_max_seconds,
                          forget_seconds=cards.login_forget_seconds)


async def api_setup(app: FastAPI, runtime: Runtime) -> None:
    app.state.cards_settings = load_cards_settings()
    app.state.login_throttle = LoginThrottle(runtime.pool,
                                             throttle_policy(app.state.cards_settings))
    # The editable network is seeded from the reference data on first start, and
    # published whole once (also by a store seeded before it was published).
    await asyncio.to_thread(app.state.application.ensure_network)


def production_problems(settings: KaikuSettings) -> list[str]:
    """Cards signs staff tokens: production needs a real key set."""
    problem = signing_keys_problem(settings.staff_signing_keys, "KAIKU_STAFF_SIGNING_KEYS")
    return [problem] if problem else []


PARTS = ServiceParts(
    service=SERVICE,
    title="Kaikukanta — the Kaikukortti registry",
    description="The national card registry. It never identifies a person.",
    application=build_application,
    translate=translate,
    consumers=projections.consumers,
    schema=(SCHEMA, LOGIN_THROTTLE),
    routers=[router],
    api_setup=api_setup,
    signer=TokenSigner.for_staff,
    production_problems=production_problems,
)

# What ``python -m cards`` starts as a process; other commands are operator
# commands (__main__.py dispatches).
PROCESSES = ("api", "worker", "relay", "audit", "check")

main = service_main(PARTS)
