"""The shared error handlers: a value out of range is a 422 that states the range."""

from __future__ import annotations

from typing import Annotated

import asyncpg
import pytest
from fastapi import FastAPI, Path, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from kaiku_shared.http import install_error_handlers


class Limits(BaseModel):
    max_open: int | None = Field(default=None, ge=1, le=100)


class Body(BaseModel):
    children: int = Field(ge=0, le=30)
    limits: Limits = Field(default_factory=Limits)
    scores: list[Annotated[int, Field(ge=0, le=5)]] = Field(default_factory=list)


def overflowing_argument() -> asyncpg.DataError:
    """What asyncpg raises for an integer past int8 in a query argument."""
    try:
        raise OverflowError("value out of int64 range")
    except OverflowError as cause:
        error = asyncpg.DataError("invalid input for query argument $3: 9223372036854775808")
        error.__cause__ = cause
        return error


def build() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/items")
    async def items(offset: int = Query(default=0, ge=0, le=1_000_000)) -> dict:
        return {"offset": offset}

    @app.get("/rounds/{year}")
    async def rounds(year: Annotated[int, Path(ge=2000, le=2100)]) -> dict:
        return {"year": year}

    @app.post("/things")
    async def things(body: Body) -> dict:
        return body.model_dump()

    @app.get("/overflow")
    async def overflow() -> dict:
        raise overflowing_argument()

    @app.get("/division")
    async def division() -> dict:
        raise asyncpg.DivisionByZeroError("division by zero")

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("path, field, message", [
    ("/items?offset=9223372036854775808", "query.offset", "must be between 0 and 1000000"),
    ("/items?offset=-1", "query.offset", "must be between 0 and 1000000"),
    ("/rounds/99999", "path.year", "must be between 2000 and 2100"),
])
def test_an_out_of_range_parameter_names_the_field_and_the_range(path, field, message):
    response = build().get(path)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"] == [{"field": field, "message": message}]
    assert f"{field}: {message}" in problem["detail"]


@pytest.mark.parametrize("body, field, message", [
    ({"children": 10**30}, "children", "must be between 0 and 30"),
    ({"children": 0, "limits": {"max_open": 0}}, "limits.max_open", "must be between 1 and 100"),
    ({"children": 0, "scores": [3, 6]}, "scores.1", "must be between 0 and 5"),
])
def test_an_out_of_range_body_field_names_the_field_and_the_range(body, field, message):
    response = build().post("/things", json=body)
    assert response.status_code == 422
    assert {"field": field, "message": message} in response.json()["errors"]


def test_other_validation_errors_keep_pydantic_s_message():
    response = build().post("/things", json={})
    assert response.json()["errors"] == [{"field": "children", "message": "Field required"}]
    assert response.json()["detail"] == "Check these fields: children: Field required."


def test_an_integer_postgres_cannot_hold_is_a_422_not_a_500():
    response = build().get("/overflow")
    assert response.status_code == 422
    assert response.json()["type"].endswith("/out-of-range")


def test_other_postgres_data_errors_are_still_our_500():
    response = build().get("/division")
    assert response.status_code == 500
    assert response.json()["type"].endswith("/internal")


@pytest.mark.parametrize("outage", [
    ConnectionRefusedError(111, "Connect call failed"),  # asyncpg, the server gone
    FileNotFoundError(2, "no socket"),  # asyncpg, a unix socket gone with its server
    TimeoutError(),  # the pool exhausted
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in "
                                "progress"),  # seen as PostgreSQL shut down under load
], ids=lambda error: type(error).__name__)
def test_a_database_outage_is_a_503_with_retry_after(outage: Exception) -> None:
    answer = failing_app(outage).post("/tickets")
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("/database-unavailable")


def failing_app(outage: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/tickets")
    async def register() -> None:
        raise outage

    return TestClient(app, raise_server_exceptions=False)


def test_the_event_stores_outage_is_a_503_too() -> None:
    import eventsourcing.persistence as event_store
    import psycopg

    for outage in (psycopg.OperationalError("server closed the connection"),
                   event_store.OperationalError("connection failed")):
        answer = failing_app(outage).post("/tickets")
        assert answer.status_code == 503, (outage, answer.text)


def test_a_bug_is_still_a_500() -> None:
    assert failing_app(KeyError("a bug")).post("/tickets").status_code == 500
