"""Composition root: omakaiku's parts, wired by ``kaiku_shared.service_main``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI

from kaiku_shared.auth import TokenSigner
from kaiku_shared.consumer import Consumer
from kaiku_shared.db import apply_schema, create_pool
from kaiku_shared.eventstore import application_env, construct_application
from kaiku_shared.production import secret_problem, signing_keys_problem
from kaiku_shared.service import Runtime
from kaiku_shared.service_main import ServiceParts, service_main

from .adapters import projections
from .adapters.delivery import Deliverer, delivery_consumer
from .adapters.mail import Mailer
from .adapters.mobile_card import CardSigner
from .adapters.schema import SCHEMA
from .adapters.signin import SignIn, expires_in_minutes
from .adapters.signin_queue import CodeRequests, CodeSender, Limit
from .adapters.push import PushDevices
from .adapters.translate import translate
from .adapters.vault import PostgresKeyStore, Vault
from .adapters.webpush import PushSender, VapidKey, VapidKeyError
from .application.app import OmaKaikuApplication
from .config import SERVICE, KaikuSettings, OmaKaikuSettings, load_omakaiku_settings
from .entrypoints.api import router
from .entrypoints.erasure import Eraser
from .entrypoints.erasures_api import router as erasures_router
from .entrypoints.export import router as export_router
from .entrypoints.push_api import router as push_router
from .entrypoints.retention import RetentionJob

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


def application_for(settings: KaikuSettings) -> OmaKaikuApplication:
    """With the vault where its keys are configured (the api and worker need it;
    the relay and an audit never open personal data)."""
    omakaiku = load_omakaiku_settings()
    return build_application(settings, omakaiku if omakaiku.vault_configured else None)


async def setup_api(app: FastAPI, runtime: Runtime) -> None:
    omakaiku = load_omakaiku_settings()
    # Fail at start, not at the first request, when keys are missing.
    omakaiku.key_bytes("master")
    signer = CardSigner(omakaiku.key_bytes("card-signing"))
    app.state.omakaiku = omakaiku
    # Before the first card is signed: venues learn the key from its event.
    # Recorded once per kid, so a restart publishes nothing new.
    if await asyncio.to_thread(app.state.application.publish_mobile_card_key,
                               **signer.published_key(), now=datetime.now(UTC)):
        log.info("mobile-card key recorded for publishing", extra={"kid": signer.kid})
    app.state.mailer = Mailer(omakaiku)
    app.state.card_signer = signer
    app.state.signin = build_signin(runtime.pool, omakaiku)
    app.state.code_requests = build_code_requests(runtime.pool, omakaiku)
    app.state.eraser = Eraser(runtime.pool, app.state.application,
                              omakaiku.key_bytes("lookup"))
    app.state.vapid = vapid_key(omakaiku)
    app.state.push_devices = PushDevices(runtime.pool, app.state.application.vault,
                                         omakaiku.key_bytes("lookup"), omakaiku.push_max_devices)


def vapid_key(omakaiku: OmaKaikuSettings) -> VapidKey | None:
    """The VAPID key; None (push off) when development has none configured."""
    if not omakaiku.vapid_private_key:
        log.warning("KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY is not set: Web Push is off")
        return None
    return VapidKey(omakaiku.vapid_private_key, omakaiku.vapid_subject)


def build_signin(pool: asyncpg.Pool, omakaiku: OmaKaikuSettings) -> SignIn:
    return SignIn(pool, omakaiku.key_bytes("lookup"),
                  code_ttl=omakaiku.signin_code_ttl_seconds,
                  link_ttl=omakaiku.signin_link_ttl_seconds,
                  window=omakaiku.signin_window_seconds,
                  max_attempts=omakaiku.signin_max_attempts,
                  code_max_tries=omakaiku.signin_code_max_tries)


def build_code_requests(pool: asyncpg.Pool, omakaiku: OmaKaikuSettings) -> CodeRequests:
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


class WorkerPool:
    """A pool of the worker's own, opened at its first use. The deliverer needs
    one: a handler already holds one of the consumers' connections, and taking
    a second from the same pool could exhaust it. The worker's settings are
    given (``open_with``) before its consumers receive anything."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._settings: KaikuSettings | None = None
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    def open_with(self, settings: KaikuSettings) -> None:
        self._settings = settings

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._opening:
            if self._pool is None:
                if self._settings is None:
                    raise RuntimeError("the worker's pool was used before open_with")
                self._pool = await create_pool(self._settings, SERVICE, size=self.size)
        async with self._pool.acquire() as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def consumers_for(application: OmaKaikuApplication | None,
                  delivery_pool: WorkerPool | None = None) -> list[Consumer]:
    """The worker's consumers; without an application (an audit, readiness) their
    names and contracts only, no handler is called."""
    if application is None:
        return [*projections.consumers(None), delivery_consumer(None)]  # type: ignore[arg-type]

    async def move_card(old: str, new: str) -> None:
        await asyncio.to_thread(application.move_card, old, new)

    omakaiku = load_omakaiku_settings()
    deliverer = Deliverer(delivery_pool, Mailer(omakaiku), omakaiku.public_url.rstrip("/"),
                          application.get_profile)
    return [*projections.consumers(move_card), delivery_consumer(deliverer)]


async def send_codes(settings: KaikuSettings, application: OmaKaikuApplication,
                     stop: asyncio.Event) -> None:
    """Sign-in codes are sent here, never in the request that asked for them."""
    omakaiku = load_omakaiku_settings()
    pool = await create_pool(settings, SERVICE, size=4)
    try:
        await apply_schema(pool, SCHEMA)  # its tables before its first query
        sender = CodeSender(pool, settings.service_database_url(SERVICE),
                            build_signin(pool, omakaiku), Mailer(omakaiku),
                            application.signin_holder,
                            code_minutes=expires_in_minutes(omakaiku.signin_code_ttl_seconds),
                            poll_seconds=omakaiku.signin_sender_poll_seconds)
        sending = asyncio.ensure_future(sender.run())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sending, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sender.stop()
            stopping.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sending, timeout=10)
    finally:
        await pool.close()


async def keep_retention(settings: KaikuSettings, application: OmaKaikuApplication,
                         stop: asyncio.Event) -> None:
    """The retention job (entrypoints/retention.py), every RETENTION_CHECK_SECONDS."""
    omakaiku = load_omakaiku_settings()
    pool = await create_pool(settings, SERVICE, size=2)
    try:
        await apply_schema(pool, SCHEMA)
        job = RetentionJob(pool, application,
                           Eraser(pool, application, omakaiku.key_bytes("lookup")),
                           Mailer(omakaiku), omakaiku.retention_policy)
        await job.run(omakaiku.retention_check_seconds, stop)
    finally:
        await pool.close()


async def send_pushes(settings: KaikuSettings, application: OmaKaikuApplication,
                      stop: asyncio.Event) -> None:
    """The push outbox's sender (adapters/webpush.py), while the worker runs."""
    omakaiku = load_omakaiku_settings()
    vapid = vapid_key(omakaiku)
    if vapid is None or application.vault is None:
        return
    pool = await create_pool(settings, SERVICE, size=4)
    try:
        await apply_schema(pool, SCHEMA)
        sender = PushSender(pool, application.vault, vapid,
                            lambda account_id: application.load_account(account_id).language,
                            concurrency=omakaiku.push_concurrency,
                            timeout=omakaiku.push_timeout_seconds,
                            ttl=omakaiku.push_ttl_seconds,
                            max_attempts=omakaiku.push_max_attempts,
                            poll_seconds=omakaiku.push_poll_seconds)
        await sender.run(stop)
    finally:
        await pool.close()


async def close_when_stopped(pool: WorkerPool, stop: asyncio.Event) -> None:
    await stop.wait()
    await pool.close()  # waits for the deliveries in flight to release theirs


def omakaiku_parts() -> ServiceParts:
    delivery_pool = WorkerPool()

    def worker_loops(settings: KaikuSettings, application: Any,
                     stop: asyncio.Event) -> list[Awaitable[None]]:
        delivery_pool.open_with(settings)
        return [send_codes(settings, application, stop),
                keep_retention(settings, application, stop),
                send_pushes(settings, application, stop),
                close_when_stopped(delivery_pool, stop)]

    return ServiceParts(
        service=SERVICE, title="OmaKaiku — the holder's own service",
        description="The only service that knows who a holder is.",
        application=application_for, translate=translate,
        consumers=lambda application: consumers_for(application, delivery_pool),
        schema=SCHEMA, routers=[router, erasures_router, export_router, push_router], api_setup=setup_api,
        signer=TokenSigner.for_holders, production_problems=production_problems,
        worker_loops=worker_loops)


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
    for setting, value in (("RETENTION_TEST_KEEP_SECONDS", omakaiku.retention_test_keep_seconds),
                           ("RETENTION_TEST_NOTICE_SECONDS",
                            omakaiku.retention_test_notice_seconds)):
        if value is not None:
            problems.append(f"KAIKU_OMAKAIKU_{setting} is a test setting and must be unset")
    problems.append(vapid_problem(omakaiku))
    if not omakaiku.smtp_configured:
        problems.append("KAIKU_OMAKAIKU_SMTP_HOST is not set: holders could never receive "
                        "a sign-in code")
    return [problem for problem in problems if problem]


def vapid_problem(omakaiku: OmaKaikuSettings) -> str | None:
    if not omakaiku.vapid_private_key:
        return ("KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY is not set: no Web Push could be sent "
                "(see `kaiku keys generate`)")
    try:
        VapidKey(omakaiku.vapid_private_key, omakaiku.vapid_subject)
    except VapidKeyError as error:
        return str(error)
    return None


def smtp_sink(argv: list[str]) -> None:
    from .smtp_sink import main as sink_main

    sink_main(argv)


def main(argv: list[str] | None = None) -> None:
    """``python -m omakaiku api|worker|relay|audit|check|smtp-sink``."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "smtp-sink":
        smtp_sink(args[1:])
        return
    service_main(omakaiku_parts())(args)
