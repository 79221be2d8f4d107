"""HTTP plumbing every service's FastAPI app shares.

- RFC 9457 problem+json for every error, with a message a person can act on;
  validation errors list the fields; nothing unexpected leaks as a bare 500.
- Bearer-token principals and role checks as dependencies.
- An ASGI middleware per request: body-size limit (413), a server span whose
  context is stored with the command's events, the correlation id, metrics.
- ``Idempotency-Key`` on POSTs: the same key and body returns the first answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from eventsourcing.persistence import IntegrityError as EventStoreConflict
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import KeysUnavailable, Principal, Role, TokenError
from .db import DATABASE_UNAVAILABLE, is_database_unavailable
from .eventstore import command_meta
from .kernel.errors import NotFound, RuleViolation
from .metrics import HTTP_REQUESTS
from .problems import DEFAULT_LANGUAGE, header_language, translated
from .problems import fields as field_texts
from .settings import KaikuSettings

log = logging.getLogger("kaiku.http")
tracer = trace.get_tracer("kaiku.http")

PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 1_000_000
PROBLEM_BASE = "https://kaikukortti.fi/problems/"
# The deepest page any list serves: past it a client is crawling, not reading,
# and Postgres would still read and drop every row before the page.
MAX_OFFSET = 1_000_000


class Problem(Exception):
    """A refusal with an HTTP status; ``kind`` names the rule for clients.

    Written in English (``language`` says otherwise when it was composed in the
    reader's language); ``response`` answers in the language asked for, from
    the catalogue (``kaiku_shared.problems``).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors
        self.headers = headers
        self.language = language

    def response(self, instance: str | None = None,
                 language: str = DEFAULT_LANGUAGE) -> JSONResponse:
        """The problem+json answer in ``language`` when the catalogue has this
        kind in it, else as written; ``type``, ``status`` and the fields named
        in ``errors`` are the same in every language."""
        title, detail, errors = self.title, self.detail, self.errors
        written_in = self.language
        local = translated(self.kind, language, self.detail) \
            if language != written_in and written_in == DEFAULT_LANGUAGE else None
        if local is not None:
            title, detail = local
            written_in = language
            # unprocessable() repeats the detail as its field's message.
            errors = [{**e, "message": detail} if e.get("message") == self.detail else e
                      for e in errors or ()] or None
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": title,
            "status": self.status,
            "detail": detail,
        }
        if instance:
            body["instance"] = instance
        if errors:
            body["errors"] = errors
        headers = {**(self.headers or {}), "Content-Language": written_in,
                   "Vary": "Accept-Language"}
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM,
                            headers=headers)

    def respond_to(self, request: Request) -> JSONResponse:
        """The answer to ``request``, in the language its Accept-Language asks for."""
        return self.response(request.url.path, header_language(request.headers))

    def asgi_response(self, scope: dict) -> JSONResponse:
        """The answer sent from a middleware, before routing (no ``instance``)."""
        return self.response(None, header_language(scope.get("headers") or []))


class ProblemDetail(BaseModel):
    """RFC 9457 problem details, as every error of every service is sent."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


# Every problem says which language its title and detail are in (Accept-Language).
_LANGUAGE_HEADERS = {
    "Content-Language": {"description": "fi, sv or en: the language of title, detail and "
                                        "the field messages, as Accept-Language asked",
                         "schema": {"type": "string", "enum": ["fi", "sv", "en"]}},
    "Vary": {"description": "Accept-Language", "schema": {"type": "string"}},
}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "model": ProblemDetail, "headers": _LANGUAGE_HEADERS,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}


# Declared on every route so clients (and schema checkers) know the error shapes.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_response("The body is not valid JSON"),
    401: _problem_response("Not signed in, or the token is not valid"),
    403: _problem_response("Signed in, but this role or organisation may not do this"),
    404: _problem_response("Not found"),
    409: _problem_response("Refused by a business rule (the type names the rule)"),
    413: _problem_response("Request body too large"),
    422: _problem_response("Invalid input (field-level errors listed)"),
    429: _problem_response("Too many attempts; Retry-After says when to try again"),
    503: _problem_response("Busy or a dependency unavailable; retry shortly"),
}


def not_found(what: str, detail: str) -> Problem:
    return Problem(404, f"{what} not found", detail, kind=f"{what.lower()}-not-found")


def conflict(kind: str, detail: str) -> Problem:
    return Problem(409, "Refused by a rule", detail, kind=kind)


def unprocessable(kind: str, detail: str, field: str | None = None) -> Problem:
    errors = [{"field": field, "message": detail}] if field else None
    return Problem(422, "Invalid request", detail, kind=kind, errors=errors)


def problem_for(error: RuleViolation) -> Problem:
    """The one answer every service gives for a refused rule."""
    if isinstance(error, NotFound):
        return not_found(error.what.capitalize(), str(error))
    if error.status == 403:
        return Problem(403, "Forbidden", str(error), kind=error.rule)
    if error.status == 409:
        return conflict(error.rule, str(error))
    if error.status == 404:
        return Problem(404, "Not found", str(error), kind=error.rule)
    return unprocessable(error.rule, str(error), error.field)


async def _problem(request: Request, exc: Problem) -> JSONResponse:
    return exc.respond_to(request)


async def _rule_violation(request: Request, exc: RuleViolation) -> JSONResponse:
    return problem_for(exc).respond_to(request)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each field's message, composed in the reader's language."""
    language = header_language(request.headers)
    errors = [
        {"field": _field_name(err.get("loc", ())),
         "message": _field_message(request, err, language)}
        for err in exc.errors()
    ]
    whole_body = field_texts.WHOLE_BODY[language]
    fields = "; ".join(f"{e['field'] or whole_body}: {e['message']}" for e in errors[:5])
    title, _ = translated("validation", language, "") or ("Invalid request", "")
    return Problem(
        422, title, field_texts.CHECK_FIELDS[language].format(fields=fields),
        kind="validation", errors=errors, language=language,
    ).respond_to(request)


_HTTP_TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed",
                401: "Not signed in", 403: "Forbidden", 413: "Request too large"}


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})
    detail = str(exc.detail) if exc.detail else _HTTP_TITLES.get(exc.status_code, "Refused")
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods.
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; use {', '.join(allowed)}."
    return Problem(exc.status_code, _HTTP_TITLES.get(exc.status_code, "Request refused"),
                   detail, headers=headers or None).respond_to(request)


async def _contention(request: Request, exc: Exception) -> JSONResponse:
    # Retries ran out on a very hot aggregate: nothing was written.
    return Problem(
        503, "Busy", "Many people are booking the same thing right now and this request "
        "was not saved. Try again in a moment.", kind="busy",
        headers={"Retry-After": "1"},
    ).respond_to(request)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    if not is_database_unavailable(exc):
        return await _unexpected(request, exc)
    log.warning("database unavailable", extra={"path": request.url.path,
                                                "error": type(exc).__name__})
    return Problem(
        503, "Service unavailable", "This service cannot reach a system it needs (its "
        "database) just now. Try again in a moment.", kind="database-unavailable",
        headers={"Retry-After": "5"},
    ).respond_to(request)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", extra={"path": request.url.path})
    return Problem(
        500, "Internal error",
        "Something went wrong on our side; nothing was changed by this request "
        "unless a later read shows it. Try again, and if it persists, tell support.",
        kind="internal",
    ).respond_to(request)


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    if not _out_of_range(exc):
        return await _unexpected(request, exc)
    # The request's fault, not ours; logged so the missing bound at the edge
    # gets added.
    log.warning("value out of range for the database",
                extra={"path": request.url.path, "error": str(exc)[:200]})
    return Problem(
        422, "Invalid request", "A number or date in this request is out of the range "
        "this service handles; check the limits in the API documentation.",
        kind="out-of-range",
    ).respond_to(request)


_ERROR_HANDLERS: tuple[tuple[type[Exception], Callable[..., Awaitable[JSONResponse]]], ...] = (
    (Problem, _problem),
    (RuleViolation, _rule_violation),
    (RequestValidationError, _invalid),
    (StarletteHTTPException, _http),
    (EventStoreConflict, _contention),
    (Exception, _unexpected),
    (asyncpg.DataError, _data_error),
    *((unavailable, _unavailable) for unavailable in DATABASE_UNAVAILABLE),
)


def install_error_handlers(app: FastAPI) -> None:
    for exception, handler in _ERROR_HANDLERS:
        app.add_exception_handler(exception, handler)


def _out_of_range(exc: Exception) -> bool:
    """Postgres could not take a value the edge let through: an argument asyncpg
    cannot encode (an integer past int8 is an OverflowError inside asyncpg's
    DataError), or a number or date past its type's range in the query."""
    return isinstance(exc.__cause__, OverflowError) or isinstance(
        exc, (asyncpg.NumericValueOutOfRangeError, asyncpg.DatetimeFieldOverflowError))


def _field_name(loc: tuple | list) -> str:
    return ".".join(str(p) for p in loc if p != "body")


_RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


def _field_message(request: Request, err: dict[str, Any], language: str) -> str:
    """pydantic's message (in Finnish or Swedish where its type is known), except
    that a number out of range gets the whole range its schema declares ("must
    be between 0 and 1000000"), not one end."""
    message = err.get("msg", "invalid")
    if language != DEFAULT_LANGUAGE:
        message = field_texts.field_message(err, language) or message
    if err.get("type") not in _RANGE_ERRORS:
        return message
    try:
        schema = _declared_schema(request, tuple(err.get("loc", ())))
    except (KeyError, IndexError, TypeError, AttributeError, StopIteration):
        return message
    return _range_phrase(schema, language) or message


def _declared_schema(request: Request, loc: tuple) -> dict[str, Any]:
    """The OpenAPI schema of the request field at ``loc`` (pydantic's error location)."""
    spec = request.app.openapi()
    operation = spec["paths"][request.scope["route"].path_format][request.method.lower()]
    where, *steps = loc
    if where == "body":
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
    else:
        name, *steps = steps
        schema = next(p["schema"] for p in operation.get("parameters", ())
                      if p["in"] == where and p["name"] == name)
    for step in steps:
        schema = _child_schema(spec, schema, step)
    return _resolved(spec, schema)


def _resolved(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _child_schema(spec: dict[str, Any], schema: dict[str, Any], step: str | int
                  ) -> dict[str, Any]:
    schema = _resolved(spec, schema)
    for member in (schema, *(_resolved(spec, m) for m in schema.get("anyOf", ()))):
        if isinstance(step, int) and "items" in member:
            return member["items"]
        if step in member.get("properties", {}):
            return member["properties"][step]
        if isinstance(member.get("additionalProperties"), dict):
            return member["additionalProperties"]
    return schema  # a union member's tag (e.g. "int"): still the same field


def _range_phrase(schema: dict[str, Any], language: str) -> str | None:
    def number(value: float | None) -> str:
        if value is None:
            return ""
        return str(int(value)) if float(value).is_integer() else str(value)

    for member in (schema, *schema.get("anyOf", ())):
        low, high = member.get("minimum"), member.get("maximum")
        if low is None and high is None:
            continue
        shape = "between" if low is not None and high is not None else \
            "at_least" if low is not None else "at_most"
        return field_texts.RANGES[shape][language].format(low=number(low), high=number(high))
    return None


async def _nul_refused(scope: dict, receive: Callable, send: Callable) -> None:
    problem = Problem(422, "Invalid request", "Text may not contain NUL (\\u0000) characters.",
                      kind="nul-character")
    language = header_language(scope.get("headers") or [])
    await problem.response(scope.get("path"), language)(scope, receive, send)


def _failpoints(scope: dict) -> set[str]:
    app = scope.get("app")
    settings = getattr(getattr(app, "state", None), "settings", None)
    return set(filter(None, (settings.failpoints if settings else "").split(",")))


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


# --- authentication -----------------------------------------------------------


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "Not signed in", "Send 'Authorization: Bearer <token>'.",
                      kind="unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


# Dependencies are async on purpose: FastAPI runs a plain ``def`` dependency in a
# worker thread, a hop per dependency per request for a few microseconds of work.
async def current_principal(request: Request) -> Principal:
    try:
        return await request.app.state.verifier.verify(_bearer(request))
    except TokenError as error:
        raise Problem(401, "Not signed in", str(error), kind="unauthenticated",
                      headers={"WWW-Authenticate": "Bearer"}) from None
    except KeysUnavailable as error:
        raise Problem(503, "Cannot check sign-in now", str(error), kind="keys-unavailable",
                      headers={"Retry-After": "5"}) from None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Problem(
                403, "Forbidden",
                f"This needs one of the roles {', '.join(roles)}; you are signed in as "
                f"{principal.role}.",
                kind="wrong-role",
            )
        return principal

    return check


# --- per-request middleware ---------------------------------------------------


_TOO_LARGE = (413, "Request too large", f"Bodies are limited to {MAX_BODY_BYTES} bytes.")


async def _screened(scope: dict, receive: Callable, send: Callable,
                    headers: dict[str, str]) -> Callable | None:
    """The request's ``receive`` if it may go on; None once it has been refused
    (too large, or a NUL that Postgres text cannot hold)."""
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        await Problem(*_TOO_LARGE, kind="too-large").asgi_response(scope)(scope, receive, send)
        return None
    if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
        await _nul_refused(scope, receive, send)
        return None
    if scope["method"] not in ("POST", "PUT", "PATCH"):
        return receive
    body = await _read_body(receive)
    if len(body) > MAX_BODY_BYTES:  # chunked, without a Content-Length
        await Problem(*_TOO_LARGE, kind="too-large").asgi_response(scope)(scope, receive, send)
        return None
    if b"\\u0000" in body or b"\x00" in body:
        await _nul_refused(scope, receive, send)
        return None
    return _replay(body)


class RequestMiddleware:
    """Body limit, server span, correlation id and metrics, as plain ASGI."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        screened = await _screened(scope, receive, send, headers)
        if screened is not None:
            await self._traced(scope, screened, send, headers)

    async def _traced(self, scope: dict, receive: Callable, send: Callable,
                      headers: dict[str, str]) -> None:
        method, path = scope["method"], scope["path"]
        correlation_id = headers.get("x-correlation-id") or str(uuid.uuid4())
        status_holder = {"status": 500}
        crash_after_commit = "crash-after-commit" in _failpoints(scope) and \
            headers.get("x-kaiku-failpoint") == "crash-after-commit"

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                if crash_after_commit and message["status"] < 300:
                    # The use case has committed; die before anyone hears of it.
                    os._exit(137)
                status_holder["status"] = message["status"]
                message.setdefault("headers", []).append(
                    (b"x-correlation-id", correlation_id.encode()))
            await send(message)

        started = time.perf_counter()
        with tracer.start_as_current_span(
            f"{method} {path}", context=propagate.extract(headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path,
                        "kaiku.service": self.service},
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            token = command_meta.set({"traceparent": carrier.get("traceparent", ""),
                                      "correlation_id": correlation_id})
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                command_meta.reset(token)
                self._observed(scope, span, status_holder["status"], started)

    def _observed(self, scope: dict, span: Any, status: int, started: float) -> None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        route_path = getattr(scope.get("route"), "path", "unmatched")
        span.update_name(f"{scope['method']} {route_path}")
        HTTP_REQUESTS.labels(self.service, scope["method"], route_path, str(status)).observe(
            time.perf_counter() - started)


# --- idempotency keys ------------------------------------------------------------

_KEY_REUSED = Problem(
    422, "Invalid request", "This Idempotency-Key was used with a different request; "
    "use a new key for a new request.", kind="idempotency-key-reused")
_IN_PROGRESS = Problem(
    409, "Request in progress", "A request with this Idempotency-Key is still being handled; "
    "retry in a moment.", kind="idempotency-in-progress")


class IdempotencyMiddleware:
    """Replays the stored answer for a POST retried with the same Idempotency-Key.

    The key is scoped to the caller (their token's principal). A retry with a
    different body is refused (422). A retry while the first is still running
    gets 409. Use cases that create things also derive their new ids from the
    key, so even a crash between commit and storing the answer cannot act twice.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        if not key:
            await self.app(scope, receive, send)
            return
        if len(key) > 200:
            await Problem(422, "Invalid request", "Idempotency-Key is at most 200 characters.",
                          kind="idempotency-key").asgi_response(scope)(scope, receive, send)
            return
        token = headers.get("authorization", "").partition(" ")[2].strip()
        try:
            principal_key = (await scope["app"].state.verifier.verify(token)).key
        except (TokenError, KeysUnavailable):
            await self.app(scope, receive, send)  # the route answers 401 itself
            return
        body = await _read_body(receive)
        await self._keyed(scope, _replay(body), send, (principal_key, key), body)

    async def _keyed(self, scope: dict, receive: Callable, send: Callable,
                     claim: tuple[str, str], body: bytes) -> None:
        pool: asyncpg.Pool = scope["app"].state.pool
        digest = hashlib.sha256(scope["path"].encode() + b"\n" + body).hexdigest()
        existing = await _claim(pool, claim, scope["path"], digest)
        if existing is not None:
            stale = scope["app"].state.settings.idempotency_stale_seconds
            if existing["request_hash"] != digest:
                await _KEY_REUSED.asgi_response(scope)(scope, receive, send)
                return
            if existing["status_code"] is not None:
                await _send_stored(send, existing, claim[1])
                return
            if existing["age"] < stale:
                await _IN_PROGRESS.asgi_response(scope)(scope, receive, send)
                return
            # The first attempt died mid-way; its use case derives ids from the
            # key, so running again finds what it already did.
        # The answer is stored before it is sent: a retry arriving the moment the
        # client sees it must get the stored answer, not "in progress".
        messages: list[dict] = []

        async def capture(message: dict) -> None:
            messages.append(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await _store_answer(pool, claim, messages)
        for message in messages:
            await send(message)


async def _claim(pool: asyncpg.Pool, claim: tuple[str, str], path: str,
                 digest: str) -> asyncpg.Record | None:
    """Claim the key for this request; None when it was free, else its row."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO idempotency_keys(principal, key, method, path, request_hash) "
            "VALUES ($1, $2, 'POST', $3, $4) ON CONFLICT (principal, key) DO NOTHING "
            "RETURNING key", *claim, path, digest)
        if row is not None:
            return None
        return await conn.fetchrow(
            "SELECT request_hash, status_code, response_body, content_type, "
            "extract(epoch from now() - created_at) AS age "
            "FROM idempotency_keys WHERE principal = $1 AND key = $2", *claim)


async def _store_answer(pool: asyncpg.Pool, claim: tuple[str, str],
                        messages: list[dict]) -> None:
    """Keep the answer for retries; forget the key when there is none worth
    replaying (a crash, a 5xx, or another attempt's "in progress")."""
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    status = start["status"] if start else None
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    async with pool.acquire() as conn:
        if status is None or status >= 500 or status == 409 and (
            b"idempotency-in-progress" in body
        ):
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2", *claim)
            return
        content_type = next((v.decode() for k, v in start.get("headers", [])
                             if k == b"content-type"), "application/json")
        await conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, response_body = $4, "
            "content_type = $5 WHERE principal = $1 AND key = $2",
            *claim, status, body, content_type)


async def _read_body(receive: Callable) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            break
        if not message.get("more_body"):
            return body
    return body


def _replay(body: bytes) -> Callable:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _send_stored(send: Callable, row: asyncpg.Record, key: str) -> None:
    await send({
        "type": "http.response.start",
        "status": row["status_code"],
        "headers": [(b"content-type", row["content_type"].encode()),
                    (b"idempotent-replayed", b"true")],
    })
    await send({"type": "http.response.body", "body": bytes(row["response_body"])})


def idempotency_key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


def json_dumps(value: Any) -> str:
    return json.dumps(value, default=str)
