"""Composition root: builds the omakaiku processes from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI

from kaiku_shared.auth import TokenSigner
from kaiku_shared.production import secret_problem, signing_keys_problem
from kaiku_shared.db import apply_schema, create_pool, ensure_database
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
from .adapters.delivery import DELIVERY_CONSUMER, Deliverer, delivery_consumer
from .adapters.mail import Mailer
from .adapters.mobile_card import CardSigner
from .adapters.signin import SignIn, expires_in_minutes
from .adapters.schema import SCHEMA
from .adapters.signin_queue import CodeRequests, CodeSender, Limit
from .adapters.vault import PostgresKeyStore, Vault
from .application.app import OmaKaikuApplication
from .config import SERVICE, KaikuSettings, OmaKaikuSettings, load_omakaiku_settings

log = logging.getLogger("omakaiku.bootstrap")


def build_application(settings: KaikuSettings,
                      omakaiku: OmaKaikuSettings | None = None) -> OmaKaikuApplication:
    """The application; with ``omakaiku`` settings also its vault (api, worker)."""
    vault = None
    if omakaiku is not None:
        vault = Vault(PostgresKeyStore(settings.service_database_url(SERVICE)),
                      omakaiku.key_bytes("master"), omakaiku.key_bytes("lookup"))
    return construct_application(
        lambda: OmaKaikuApplication(application_env(settings, SERVICE), vault=vault))


def build_api(settings: KaikuSettings, omakaiku: OmaKaikuSettings | None = None) -> FastAPI:
    omakaiku = omakaiku or load_omakaiku_settings()
    # Fail at start, not at the first request, when keys are missing.
    omakaiku.key_bytes("master")
    signer = CardSigner(omakaiku.key_bytes("card-signing"))

    async def setup(app: FastAPI, runtime: Runtime) -> None:
        app.state.omakaiku = omakaiku
        app.state.application = await asyncio.to_thread(build_application, settings, omakaiku)
        # Before the first card is signed: venues learn the key from its event.
        # Recorded once per kid, so a restart publishes nothing new.
        if await asyncio.to_thread(app.state.application.publish_mobile_card_key,
                                   **signer.published_key(), now=datetime.now(UTC)):
            log.info("mobile-card key recorded for publishing", extra={"kid": signer.kid})
        app.state.mailer = Mailer(omakaiku)
        app.state.card_signer = signer
        app.state.signin = build_signin(runtime.pool, settings, omakaiku)
        app.state.code_requests = build_code_requests(runtime.pool, settings, omakaiku)

    from .entrypoints.api import router

    return create_api(
        service=SERVICE, settings=settings, title="OmaKaiku — the holder's own service",
        description="The only service that knows who a holder is.",
        schema=SCHEMA, setup=setup, routers=[router],
        readiness_consumers=(("cards", projections.CARD_CONSUMER),
                             ("venues", projections.HISTORY_CONSUMER),
                             ("venues", projections.OFFERING_CONSUMER),
                             ("notifications", DELIVERY_CONSUMER)),
        signer=TokenSigner.for_holders,
    )


def build_signin(pool: asyncpg.Pool, settings: KaikuSettings,
                 omakaiku: OmaKaikuSettings) -> SignIn:
    return SignIn(pool, omakaiku.key_bytes("lookup"),
                  code_ttl=omakaiku.signin_code_ttl_seconds,
                  link_ttl=omakaiku.signin_link_ttl_seconds,
                  window=omakaiku.signin_window_seconds,
                  max_attempts=omakaiku.signin_max_attempts,
                  code_max_tries=omakaiku.signin_code_max_tries)


def build_code_requests(pool: asyncpg.Pool, settings: KaikuSettings,
                        omakaiku: OmaKaikuSettings) -> CodeRequests:
    window = omakaiku.signin_window_seconds
    return CodeRequests(
        pool, omakaiku.key_bytes("lookup"),
        per_address=Limit("address", omakaiku.signin_max_requests, window,
                          "Too many codes asked for this address; try again later."),
        per_client=Limit("client", omakaiku.signin_max_requests_per_client, window,
                         "Too many codes asked from your network; try again later."),
        overall=Limit("global", omakaiku.signin_max_requests_global,
                      omakaiku.signin_global_window_seconds,
                      "Sign-in is very busy right now; try again in a moment."),
        request_ttl=omakaiku.signin_request_ttl_seconds)


def build_code_sender(pool: asyncpg.Pool, settings: KaikuSettings,
                      omakaiku: OmaKaikuSettings,
                      application: OmaKaikuApplication) -> CodeSender:
    return CodeSender(pool, settings.service_database_url(SERVICE),
                      build_signin(pool, settings, omakaiku), Mailer(omakaiku),
                      application.signin_holder,
                      code_minutes=expires_in_minutes(omakaiku.signin_code_ttl_seconds),
                      poll_seconds=omakaiku.signin_sender_poll_seconds)


async def worker(settings: KaikuSettings) -> None:
    omakaiku = load_omakaiku_settings()
    await ensure_database(settings, SERVICE)
    # The deliverer's own pool: a handler already holds one of the runtime pool's
    # connections, and taking a second from the same pool could exhaust it.
    delivery_pool = await create_pool(settings, SERVICE, size=4)
    await apply_schema(delivery_pool, SCHEMA)
    application = await asyncio.to_thread(build_application, settings, omakaiku)

    async def move_card(old: str, new: str) -> None:
        await asyncio.to_thread(application.move_card, old, new)

    def consumers(runtime: Runtime) -> list:
        deliverer = Deliverer(delivery_pool, Mailer(omakaiku),
                              omakaiku.public_url.rstrip("/"), application.get_profile)
        return [*projections.consumers(move_card), delivery_consumer(deliverer)]

    # Sign-in codes are sent here, never in the request that asked for them.
    signin_pool = await create_pool(settings, SERVICE, size=4)
    sender = build_code_sender(signin_pool, settings, omakaiku, application)
    sending = asyncio.create_task(sender.run())
    try:
        await run_worker(settings, SERVICE, SCHEMA, consumers)
    finally:
        sender.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sending, timeout=10)
        await signin_pool.close()
        await delivery_pool.close()


async def relay(settings: KaikuSettings) -> None:
    await run_relay(settings, SERVICE, lambda: build_application(settings), translate_events)


def translate_events(event, envelope):
    from .adapters.translate import translate

    return translate(event, envelope)


def smtp_sink(argv: list[str]) -> None:
    from .smtp_sink import main as sink_main

    sink_main(argv)


async def audit(settings: KaikuSettings) -> int:
    # The handlers' collaborators are not called by an audit: only names and types.
    return await run_audit(settings, SERVICE, lambda: build_application(settings),
                           translate_events, [*projections.consumers(None),
                                              delivery_consumer(None)])


def production_problems(settings: KaikuSettings) -> list[str]:
    """OmaKaiku signs holder tokens and mobile cards, seals personal data and sends
    the sign-in codes: production needs every one of its own keys and a relay."""
    omakaiku = load_omakaiku_settings()
    problems = [signing_keys_problem(settings.holder_signing_keys, "KAIKU_HOLDER_SIGNING_KEYS")]
    values = {}
    for purpose, value in (("master", omakaiku.master_key), ("lookup", omakaiku.lookup_key),
                           ("card_signing", omakaiku.card_signing_key)):
        setting = f"KAIKU_OMAKAIKU_{purpose.upper()}_KEY"
        problems.append(secret_problem(value, setting, base64_bytes=32))
        if value and value in values.values():
            problems.append(f"{setting} is the same as another key; each must be its own")
        values[purpose] = value
    if not omakaiku.smtp_configured:
        problems.append("KAIKU_OMAKAIKU_SMTP_HOST is not set: holders could never receive "
                        "a sign-in code")
    return [problem for problem in problems if problem]


_main = main_for(SERVICE, api=build_api, worker=worker, relay=relay, audit=audit,
                 production_problems=production_problems)


def main(argv: list[str] | None = None) -> None:
    """``python -m omakaiku api|worker|relay|audit|smtp-sink``."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "smtp-sink":
        smtp_sink(args[1:])
        return
    _main(args)
