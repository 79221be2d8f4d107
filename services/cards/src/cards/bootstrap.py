"""Composition root: builds the cards processes from settings."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from kaiku_shared.auth import TokenSigner
from kaiku_shared.production import signing_keys_problem
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.service import (
    Runtime,
    create_api,
    main_for,
    run_audit,
    run_relay,
    run_worker,
)

from .adapters import login_throttle, statistics
from .adapters.login_throttle import LoginThrottle, ThrottlePolicy
from .adapters.reference import load_network
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


def build_api(settings: KaikuSettings) -> FastAPI:
    async def setup(app: FastAPI, runtime: Runtime) -> None:
        app.state.application = await asyncio.to_thread(build_application, settings)
        app.state.cards_settings = load_cards_settings()
        app.state.login_throttle = LoginThrottle(runtime.pool,
                                                 throttle_policy(app.state.cards_settings))
        # The editable network is seeded from the reference data on first start.
        await asyncio.to_thread(app.state.application.ensure_network)

    return create_api(
        service=SERVICE, settings=settings, title="Kaikukanta — the Kaikukortti registry",
        description="The national card registry. It never identifies a person.",
        schema=(*statistics.SCHEMA, *login_throttle.SCHEMA), setup=setup, routers=[router],
        readiness_consumers=(("cards", statistics.STATISTICS_CONSUMER),
                             ("venues", statistics.USAGE_CONSUMER)),
        signer=TokenSigner.for_staff,
    )


async def worker(settings: KaikuSettings) -> None:
    await run_worker(settings, SERVICE, statistics.SCHEMA, lambda runtime: statistics.consumers())


async def relay(settings: KaikuSettings) -> None:
    await run_relay(settings, SERVICE, lambda: build_application(settings), translate)


async def audit(settings: KaikuSettings) -> int:
    # The handlers' collaborators are not called by an audit: only names and types.
    return await run_audit(settings, SERVICE, lambda: build_application(settings), translate,
                           statistics.consumers())


def production_problems(settings: KaikuSettings) -> list[str]:
    """Cards signs staff tokens: production needs a real key set."""
    problem = signing_keys_problem(settings.staff_signing_keys, "KAIKU_STAFF_SIGNING_KEYS")
    return [problem] if problem else []


# What ``python -m cards`` starts as a process; other commands are operator
# commands (__main__.py dispatches).
PROCESSES = ("api", "worker", "relay", "audit", "check")

main = main_for(SERVICE, api=build_api, worker=worker, relay=relay, audit=audit,
                production_problems=production_problems)
