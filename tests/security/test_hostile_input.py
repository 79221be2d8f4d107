"""Hostile input the fuzzer does not send: huge bodies, NUL characters, password guessing."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e


async def chunks():
    """A body sent chunked: no Content-Length for the server to check up front."""
    for part in (b"{", b" " * 1_100_000, b"}"):
        yield part


@pytest.mark.parametrize("service", ["cards", "venues", "omakaiku", "notifications"])
async def test_an_oversized_body_is_refused_with_413(world, service):
    async with world.system.client(service, world.centre_token) as client:
        response = await client.post("/messages" if service == "notifications" else "/cards",
                                     content=b"{" + b" " * 1_100_000 + b"}",
                                     headers={"Content-Type": "application/json"})
        chunked = await client.post("/cards", content=chunks(),
                                    headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert chunked.status_code == 413, "also without a Content-Length"


async def test_nul_characters_are_a_clear_422(world):
    async with world.system.client("cards", world.distributor_token) as client:
        body = await client.post("/cards", json={"birth_year": 1980, "postal_code": "55100",
                                                 "municipality": "Ima\u0000tra", "children": 0})
    async with httpx.AsyncClient() as client:
        query = await client.get(world.system.url("venues", "/offerings?municipality=a%00b"))
    for response in (body, query):
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("/nul-character")


async def test_password_guessing_is_rate_limited(world):
    username = f"arvaaja.{uuid.uuid4().hex[:8]}"
    async with world.system.client("cards", world.centre_token) as client:
        created = await client.post("/users", json={
            "username": username, "password": "oikea-salasana-123",
            "organisation_id": world.distributor_id})
        assert created.status_code == 201, created.text
        wrong = [await client.post("/auth/login", json={"username": username,
                                                        "password": f"vaara-{n}"})
                 for n in range(5)]
        right_but_locked = await client.post("/auth/login", json={
            "username": username, "password": "oikea-salasana-123"})
    assert [r.status_code for r in wrong] == [401] * 5
    assert right_but_locked.status_code == 429, right_but_locked.text
    assert int(right_but_locked.headers["Retry-After"]) > 0
