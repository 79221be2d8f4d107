"""How a service's three processes start: api, worker and relay.

Each service's ``bootstrap`` hands these functions its own parts (routes,
consumers, translator, read-model schema); the processes themselves are alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from concurrent.futures import ThreadPoolExecutor
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import revocation
from .asyncapi import service_document
from .auth import STAFF_ONLY_SERVICES, TokenSigner, TokenVerifier
from .consumer import Consumer, build_broker, reconcile_durables, supports_filter_subjects
from .db import Schema, apply_schema, create_pool, ensure_database, keep_expiring_idempotency
from .eventstore import MetaMapper
from .http import (
    PROBLEM_RESPONSES,
    IdempotencyMiddleware,
    RequestMiddleware,
    install_error_handlers,
)
from .relay import Relay, Translator, ensure_dead_letter_stream, ensure_stream
from .settings import KaikuSettings
from .telemetry import setup_telemetry, shutdown_telemetry
from .tls import connect_nats

log = logging.getLogger("kaiku.service")


@dataclass
class Runtime:
    """The connections one process holds, built once at start-up."""

    settings: KaikuSettings
    service: str
    pool: asyncpg.Pool
    nc: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    # Closed first, newest first: what the api's setup started on this runtime
    # (a background loop), stopped before its pool goes.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        while self.closers:
            with contextlib.suppress(Exception):
                await self.closers.pop()()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        await self.pool.close()


# A service's tables: its migrations (a ``Schema``, or several), or bare statements.
Tables = Schema | tuple[Schema | str, ...]


def _with_revocations(schema: Tables) -> tuple[Schema | str, ...]:
    return (schema, revocation.SCHEMA) if isinstance(schema, Schema) else (
        *schema, revocation.SCHEMA)


async def open_runtime(
    settings: KaikuSettings, service: str, schema: Tables, *, with_nats: bool = True
) -> Runtime:
    await ensure_database(settings, service)
    pool = await create_pool(settings, service)
    await apply_schema(pool, *((schema,) if isinstance(schema, Schema) else schema))
    nc = None
    if with_nats:
        nc = await connect_nats(settings, name=f"{service}", max_reconnect_attempts=-1,
                                connect_timeout=5,
                                inbox_prefix=settings.inbox_prefix(service).encode())
    return Runtime(settings, service, pool, nc)


def settle_heap() -> None:
    """Exclude everything made while starting from the cyclic garbage collector.

    Imports and set-up leave about a million long-lived objects in each process
    (FastAPI, pydantic, faststream, OpenTelemetry, eventsourcing). Every full
    collection walked them all again: 80-300 ms with the process holding a core,
    measured at the registration benchmark's half load, where those pauses in
    the api, its relay and the workers made the p99. Frozen, they are never
    walked; what is made later is collected as before."""
    gc.collect()
    gc.freeze()


# --- api ------------------------------------------------------------------------


def create_api(
    *,
    service: str,
    settings: KaikuSettings,
    title: str,
    description: str,
    schema: Tables,
    setup: Callable[[FastAPI, Runtime], Awaitable[None]],
    routers: list[Any],
    readiness_consumers: tuple[tuple[str, str], ...] = (),
    signer: Callable[[KaikuSettings], TokenSigner] | None = None,
    consumers: Sequence[Consumer] = (),
) -> FastAPI:
    """A FastAPI app with health, readiness, metrics, errors, idempotency and
    token verification (with revocations); an issuer (``signer``) also serves
    its public keys at /.well-known/jwks.json. Beside /openapi.json it serves
    /asyncapi.json: the events it publishes and those its ``consumers`` take."""
    own = signer(settings) if signer is not None else None
    app = FastAPI(title=title, description=description, version="1.0.0",
                  lifespan=_api_lifespan(service, settings, schema, setup, own))
    app.state.settings = settings
    app.state.signer = own
    install_error_handlers(app)
    if own is not None:
        _serve_jwks(app, own)
    for router in routers:
        app.include_router(router, responses=PROBLEM_RESPONSES)
    _serve_operations(app, settings, readiness_consumers)
    _serve_asyncapi(app, service, settings, consumers)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RequestMiddleware, service=service)
    return app


def _api_lifespan(service: str, settings: KaikuSettings, schema: Tables,
                  setup: Callable[[FastAPI, Runtime], Awaitable[None]],
                  own: TokenSigner | None) -> Callable[[FastAPI], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_telemetry(settings, service, "api")
        # Use cases run in threads; more than the default ~6 lets concurrent
        # requests meet in one group commit instead of queueing for a thread.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=settings.api_threads, thread_name_prefix="usecase"))
        runtime = await open_runtime(settings, service, _with_revocations(schema))
        app.state.runtime = runtime
        app.state.pool = runtime.pool
        await setup(app, runtime)
        async with revocation.followed(revocation.RevocationList(), runtime.pool,
                                       settings.revocation_refresh_seconds) as revoked:
            app.state.verifier = TokenVerifier.from_settings(
                settings, own=own, revocations=revoked,
                holders=service not in STAFF_ONLY_SERVICES)
            settle_heap()
            expiry = asyncio.create_task(keep_expiring_idempotency(
                runtime.pool, settings.idempotency_retention_seconds))
            log.info("api ready", extra={"service": service})
            try:
                yield
            finally:
                expiry.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await expiry
                await runtime.close()
                shutdown_telemetry()

    return lifespan


def _serve_jwks(app: FastAPI, own: TokenSigner) -> None:
    @app.get("/.well-known/jwks.json", tags=["operations"],
             summary="The public keys that verify this service's tokens")
    async def jwks() -> JSONResponse:
        return JSONResponse(own.public_jwks(), headers={"Cache-Control": "max-age=300"})


def _serve_operations(app: FastAPI, settings: KaikuSettings,
                      readiness_consumers: tuple[tuple[str, str], ...]) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Readiness: database, NATS, consumer lag")
    async def readyz() -> JSONResponse:
        return await _readiness(app.state.runtime, settings, readiness_consumers)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _readiness(runtime: Runtime, settings: KaikuSettings,
                     readiness_consumers: tuple[tuple[str, str], ...]) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with runtime.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:  # noqa: BLE001
        checks["database"] = f"unavailable: {type(error).__name__}"
    checks["nats"] = "ok" if runtime.nc and runtime.nc.is_connected else "unavailable"
    lag: dict[str, int | str] = {}
    if runtime.nc and runtime.nc.is_connected:
        js = runtime.nc.jetstream()
        for stream_service, durable in readiness_consumers:
            try:
                info = await js.consumer_info(settings.stream_name(stream_service), durable)
                lag[durable] = info.num_pending + info.num_ack_pending
            except Exception:  # noqa: BLE001 - the worker may not have made it yet
                lag[durable] = "not started"
    checks["consumer_lag"] = lag
    ready = checks["database"] == "ok" and checks["nats"] == "ok"
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


def _serve_asyncapi(app: FastAPI, service: str, settings: KaikuSettings,
                    consumers: Sequence[Consumer]) -> None:
    """The service's part of docs/asyncapi/kaikukortti.json, for this deployment's
    namespace; built at the first request (not at start-up), then kept."""
    built: list[dict[str, Any]] = []

    @app.get("/asyncapi.json", tags=["operations"],
             summary="The events this service publishes and consumes (AsyncAPI 3.0.0)")
    async def asyncapi() -> JSONResponse:
        if not built:
            built.append(service_document(service, list(consumers), settings))
        return JSONResponse(built[0], headers={"Cache-Control": "max-age=300"})


def run_loop(main: Awaitable[Any]) -> Any:
    """``asyncio.run`` on uvloop where it is installed (it is not on Windows):
    the C event loop costs workers and relays less per delivery."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def serve_api(app: FastAPI, settings: KaikuSettings, service: str) -> None:
    # uvicorn's defaults pick uvloop and the httptools parser when installed.
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any
    # client on 127.0.0.1 as its address; a service that needs the client's
    # address decides itself how many proxies it trusts (the sign-in limits).
    uvicorn.run(app, host=settings.http_host, port=settings.port_for(service),
                log_config=None, access_log=False, timeout_graceful_shutdown=5,
                proxy_headers=False)


# --- worker -----------------------------------------------------------------------


async def run_worker(
    settings: KaikuSettings,
    service: str,
    schema: Tables,
    consumers: Callable[[Runtime], list[Consumer]],
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Consume until SIGTERM/SIGINT (or ``stop``), then finish in-flight messages."""
    setup_telemetry(settings, service, "worker")
    runtime = await open_runtime(settings, service, _with_revocations(schema))
    js = runtime.nc.jetstream()
    chosen = [*consumers(runtime), *revocation.consumers(service)]
    # Streams are created idempotently by whoever starts first, so start order
    # between one service's worker and another's relay does not matter. Where
    # NATS permissions forbid creating another service's stream, wait for it.
    for source in sorted({c.source for c in chosen}):
        await _stream_ready(js, settings, source)
    await ensure_dead_letter_stream(js, settings)
    middlewares: tuple[Any, ...] = ()
    if settings.otel_exporter != "none":
        from faststream.nats.opentelemetry import NatsTelemetryMiddleware

        middlewares = (NatsTelemetryMiddleware(),)
    filtered = supports_filter_subjects(runtime.nc)
    await reconcile_durables(js, settings, chosen, filtered=filtered)
    broker = build_broker(settings, service, runtime.pool, chosen, middlewares=middlewares,
                          filtered=filtered)
    stop = stop or stop_on_signals()
    await broker.start()
    lags: dict[str, int] = {}
    metrics = _serve_metrics(settings, ready=lambda: _worker_readiness(runtime, chosen, lags))
    lag_reporter = asyncio.create_task(_report_consumer_lag(js, settings, chosen, lags))
    settle_heap()
    log.info("worker consuming", extra={"service": service,
                                         "consumers": ",".join(c.name for c in chosen)})
    try:
        await stop.wait()
    finally:
        lag_reporter.cancel()
        if metrics:
            metrics.stop()
        await broker.stop()
        await runtime.close()
        shutdown_telemetry()


# --- relay ---------------------------------------------------------------------


async def run_relay(
    settings: KaikuSettings,
    service: str,
    build_application: Callable[[], Any],
    translate: Translator,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Publish the service's events until stopped; ``build_application`` gives
    the eventsourcing Application whose events table and mapper the relay uses."""
    setup_telemetry(settings, service, "relay")
    await ensure_database(settings, service)
    pool = await create_pool(settings, service, size=2)
    await apply_schema(pool)
    await pool.close()
    # Building the application creates its events table, so the relay can
    # start before the api has written anything.
    application = await asyncio.to_thread(build_application)
    mapper = application.mapper
    if not isinstance(mapper, MetaMapper):
        raise TypeError("the application must use MetaMapper (see application_env)")
    settle_heap()
    relay = Relay(settings, service, application.name, mapper, translate,
                  batch_size=settings.relay_batch_size)
    stop = stop or stop_on_signals()
    # Ready = this relay is the active one (the standby answers 503).
    metrics = _serve_metrics(settings, ready=lambda: (
        relay.active.is_set(), {"active": relay.active.is_set(), "lag": relay.lag}))
    task = asyncio.create_task(relay.run())
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # a crash is an error exit, so the supervisor restarts us
    finally:
        relay.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=5)
        stopper.cancel()
        if metrics:
            metrics.stop()
        shutdown_telemetry()


async def _report_consumer_lag(js: Any, settings: KaikuSettings, consumers: list[Consumer],
                               lags: dict[str, int], every: float = 5.0) -> None:
    """Consumer lag as a gauge (and in ``lags``, for /readyz): what JetStream
    says each durable still has to deliver."""
    from .metrics import CONSUMER_LAG

    while True:
        for consumer in consumers:
            with contextlib.suppress(Exception):  # NATS may be reconnecting
                info = await js.consumer_info(settings.stream_name(consumer.source),
                                              consumer.name)
                lags[consumer.name] = info.num_pending + info.num_ack_pending
                CONSUMER_LAG.labels(consumer.name).set(lags[consumer.name])
        await asyncio.sleep(every)


def _worker_readiness(runtime: Runtime, consumers: list[Consumer],
                      lags: dict[str, int]) -> tuple[bool, dict[str, Any]]:
    """Ready while connected to NATS and no consumer is held by an outage; the
    body says which are paused and each durable's lag."""
    from .consumer import PAUSED

    paused = sorted(consumer.name for consumer in consumers if consumer.name in PAUSED)
    connected = runtime.nc.is_connected
    return connected and not paused, {"nats_connected": connected, "paused": paused,
                                      "lag": dict(sorted(lags.items()))}


def _serve_metrics(settings: KaikuSettings, ready: Callable[[], Any]) -> Any:
    if settings.metrics_port is None:
        return None
    from .metrics_server import start_metrics_server

    return start_metrics_server(settings.metrics_port, settings.http_host, ready=ready)


async def _stream_ready(js: Any, settings: KaikuSettings, source: str) -> None:
    from nats.js.errors import NotFoundError

    for attempt in range(600):
        try:
            await js.stream_info(settings.stream_name(source))
            return
        except NotFoundError:
            pass
        try:
            await ensure_stream(js, settings, source)
            return
        except Exception:  # noqa: BLE001 - not ours to create: its relay will
            if attempt % 20 == 0:
                log.info("waiting for stream", extra={"stream": settings.stream_name(source)})
            await asyncio.sleep(0.5)
    raise TimeoutError(f"stream {settings.stream_name(source)} never appeared")


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_audit(
    settings: KaikuSettings,
    service: str,
    build_application: Callable[[], Any],
    translate: Translator,
    consumers: list[Consumer],
) -> int:
    """Print the reconciliation report as JSON; exit status 1 when anything differs."""
    import json

    from .audit import audit_service

    await ensure_database(settings, service)
    pool = await create_pool(settings, service, size=1)
    await apply_schema(pool)  # an audit of a service that never ran still answers
    await pool.close()
    application = await asyncio.to_thread(build_application)
    report = await audit_service(settings, service, application, translate, consumers)
    print(json.dumps(report.as_dict()))
    return 1 if report.differences else 0


def main_for(
    service: str,
    *,
    api: Callable[[KaikuSettings], FastAPI],
    worker: Callable[[KaikuSettings], Awaitable[None]],
    relay: Callable[[KaikuSettings], Awaitable[None]],
    audit: Callable[[KaikuSettings], Awaitable[int]] | None = None,
    production_problems: Callable[[KaikuSettings], list[str]] = lambda settings: [],
) -> Callable[[list[str] | None], None]:
    """``python -m <service> api|worker|relay|audit``; in production each first
    refuses to start on unsafe settings (``production.py``)."""

    def main(argv: list[str] | None = None) -> None:
        import sys

        from .production import refuse_unsafe_start
        from .settings import load_settings

        args = sys.argv[1:] if argv is None else argv
        role = args[0] if args else ""
        settings = load_settings()
        refuse_unsafe_start(settings, lambda: production_problems(settings))
        if role == "check":
            return  # the production check above passed (or this is development)
        if role == "api":
            serve_api(api(settings), settings, service)
        elif role == "worker":
            run_loop(worker(settings))
        elif role == "relay":
            run_loop(relay(settings))
        elif role == "audit" and audit is not None:
            raise SystemExit(run_loop(audit(settings)))
        else:
            raise SystemExit(f"usage: python -m {service} api|worker|relay|check"
                             + ("|audit" if audit else ""))

    return main
