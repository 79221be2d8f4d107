"""Composition root: cards' parts; the shared ``service_main`` builds its processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from kaiku_shared.auth import TokenSigner
from kaiku_shared.db import create_pool, migrate
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.production import signing_keys_problem
from kaiku_shared.service import Runtime
from kaiku_shared.service_main import ServiceParts, service_main

from .adapters import projections, public_stats
from .adapters.login_throttle import LoginThrottle, ThrottlePolicy
from .adapters.reference import load_network
from .adapters.schema import LOGIN_THROTTLE, SCHEMA
from .adapters.translate import translate
from .application.app import CardsApplication
from .config import SERVICE, CardsSettings, KaikuSettings, load_cards_settings
from .adapters.public_stats_loops import follow
from .entrypoints.api import router
from .entrypoints.public import PublicStatsCache, follow_document
from .entrypoints.public import router as public_router


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
    await follow_public_stats(app, runtime)


def region_names_of(application: CardsApplication
                    ) -> Callable[[], Awaitable[dict[str, str]]]:
    """The network's region names as they stand when asked (Kaikukeskus may edit them)."""
    async def names() -> dict[str, str]:
        return public_stats.region_names(await asyncio.to_thread(lambda: application.network))
    return names


async def follow_public_stats(app: FastAPI, runtime: Runtime) -> None:
    """The public document in memory: loaded at once and kept current by a
    background loop, stopped before the runtime's pool closes."""
    cache = PublicStatsCache(runtime.pool, app.state.cards_settings.suppress_below,
                             region_names_of(app.state.application))
    app.state.public_stats = cache
    stop = asyncio.Event()
    task = asyncio.create_task(follow_document(
        cache, runtime.settings.service_database_url(SERVICE), stop))

    async def close() -> None:
        stop.set()
        await task

    runtime.closers.append(close)


async def refresh_public_stats(settings: KaikuSettings, application: CardsApplication,
                               stop: asyncio.Event) -> None:
    """The worker's refresher (adapters/public_stats_loops.py): recompute the public
    document after statistics change, every few minutes, and on start."""
    pool = await create_pool(settings, SERVICE, size=2)
    try:
        await migrate(pool, SCHEMA)
        threshold = load_cards_settings().suppress_below
        names = region_names_of(application)

        async def work() -> None:
            async with pool.acquire() as conn:
                await public_stats.refresh(conn, await names(), threshold,
                                           public_stats.today())

        await follow("public statistics", settings.service_database_url(SERVICE),
                     projections.STATISTICS_CHANGED, work, stop,
                     every=REFRESH_EVERY_SECONDS, settle=SETTLE_SECONDS)
    finally:
        await pool.close()


# A burst of facts is one recomputation; days and months turn without a fact.
SETTLE_SECONDS = 0.4
REFRESH_EVERY_SECONDS = 180.0


def worker_loops(settings: KaikuSettings, application: Any, stop: asyncio.Event
                 ) -> list[Awaitable[None]]:
    return [refresh_public_stats(settings, application, stop)]


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
    # The public document first: a request is matched against the routes in
    # order, and behind the staff api's routes the match alone took a fifth of
    # its CPU at the public_stats benchmark's max load (bench/README.md). No
    # staff path begins with /public, so the order changes no answer.
    routers=[public_router, router],
    api_setup=api_setup,
    worker_loops=worker_loops,
    signer=TokenSigner.for_staff,
    production_problems=production_problems,
)

# What ``python -m cards`` starts as a process; other commands are operator
# commands (__main__.py dispatches).
PROCESSES = ("api", "worker", "relay", "audit", "check")

main = service_main(PARTS)
