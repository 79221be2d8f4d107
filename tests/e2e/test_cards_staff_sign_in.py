"""Staff sign-in under attack and password changes, over HTTP against the running
system: parallel guesses never get more than the limit evaluated, a lock holds
only for the guessing address and grows, and changing one's own password needs
the current one."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import httpx
import pytest

from cards.adapters.login_throttle import username_hash
from kaiku_dev.ports import free_port
from kaiku_dev.supervisor import ProcessSpec, Supervisor

pytestmark = pytest.mark.e2e

PASSWORD = "kaikukortti-salasana-1"
LIMIT = 5  # the default KAIKU_CARDS_LOGIN_ATTEMPTS


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


async def new_user(system, *, admin: bool = False, organisation_id: str | None = None
                   ) -> dict:
    centre = system.token("kaikukeskus")
    async with system.client("cards", centre) as client:
        if organisation_id is None:
            created = await client.post("/organisations", json={
                "kind": "distributor", "name": "Kirjautumisen jakaja",
                "municipality": "Kokkola"})
            assert created.status_code == 201, created.text
            organisation_id = created.json()["organisation_id"]
        response = await client.post("/users", json={
            "username": unique("kirjautuja"), "password": PASSWORD,
            "organisation_id": organisation_id, "admin": admin})
    assert response.status_code == 201, response.text
    return response.json()


def client_from(base_url: str, local_address: str | None = None, **headers: str
                ) -> httpx.AsyncClient:
    """A client whose connections leave from ``local_address`` (any 127.x.y.z is
    this machine's loopback): another client address without a proxy."""
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30,
                             headers=headers)


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


def raw_json(body: object) -> dict:
    """As JSON with \\u escapes: httpx's own encoding cannot carry a lone surrogate."""
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


def assert_locked(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/rate-limited")
    retry_after = int(response.headers["Retry-After"])
    assert retry_after > 0
    return retry_after


async def test_twenty_parallel_guesses_get_five_evaluated_and_lock_only_that_address(system):
    user = await new_user(system)
    name = user["username"]
    async with client_from(system.url("cards")) as client:
        answers = await asyncio.gather(*(sign_in(client, name, f"arvaus-{n}-salasana")
                                         for n in range(20)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [401] * LIMIT + [429] * (20 - LIMIT), statuses
        for refused in (r for r in answers if r.status_code == 429):
            assert_locked(refused)
        # the right password, from the guessing address: still refused
        assert_locked(await sign_in(client, name, PASSWORD))
    # X-Forwarded-For is not believed without a trusted proxy in front
    async with client_from(system.url("cards"), **{"X-Forwarded-For": "203.0.113.5"}
                           ) as spoofing:
        assert_locked(await sign_in(spoofing, name, PASSWORD))
    # the user, from another address, is not locked out by the guesser
    async with client_from(system.url("cards"), local_address="127.0.0.2") as elsewhere:
        response = await sign_in(elsewhere, name, PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user["user_id"]


async def let_the_lock_pass(system, username: str) -> None:
    """What waiting out the lock would do, without the wait."""
    conn = await system.database("cards")
    try:
        await conn.execute("UPDATE login_throttle SET locked_until = now() - interval '1 s' "
                           "WHERE username_hash = $1", username_hash(username))
    finally:
        await conn.close()


async def test_each_guess_after_a_lock_locks_twice_as_long(system):
    name = (await new_user(system))["username"]
    waits = []
    async with client_from(system.url("cards")) as client:
        for n in range(LIMIT):
            assert (await sign_in(client, name, f"arvaus-{n}-salasana")).status_code == 401
        waits.append(assert_locked(await sign_in(client, name, PASSWORD)))
        for n in range(2):
            await let_the_lock_pass(system, name)
            assert (await sign_in(client, name, f"uusi-arvaus-{n}")).status_code == 401
            waits.append(assert_locked(await sign_in(client, name, PASSWORD)))
    assert 55 <= waits[0] <= 60 and 115 <= waits[1] <= 120 and 235 <= waits[2] <= 240, waits


async def test_an_own_password_change_needs_the_current_password(system):
    admin = await new_user(system, admin=True)
    user = await new_user(system, organisation_id=admin["organisation_id"])
    name, path = user["username"], f"/users/{user['user_id']}/password"
    async with client_from(system.url("cards")) as client:
        token = (await sign_in(client, name, PASSWORD)).json()["access_token"]
        own = {"Authorization": f"Bearer {token}"}
        new = PASSWORD + "-uusi"
        missing = await client.put(path, json={"password": new}, headers=own)
        wrong = await client.put(path, json={"password": new,
                                             "current_password": "ei-tama-salasana"},
                                 headers=own)
        for refused, rule in ((missing, "current-password-needed"),
                              (wrong, "current-password-wrong")):
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["type"].endswith(f"/{rule}")
            assert "current password" in refused.json()["detail"]
        changed = await client.put(path, json={"password": new, "current_password": PASSWORD},
                                   headers=own)
        assert changed.status_code == 200, changed.text
        assert (await sign_in(client, name, PASSWORD)).status_code == 401
        assert (await sign_in(client, name, new)).status_code == 200


async def test_an_admin_sets_another_users_password_without_the_current_one(system):
    admin = await new_user(system, admin=True)
    user = await new_user(system, organisation_id=admin["organisation_id"])
    async with client_from(system.url("cards")) as client:
        answer = await sign_in(client, admin["username"], PASSWORD)
        as_admin = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        reset = await client.put(f"/users/{user['user_id']}/password",
                                 json={"password": "admin-asettama-1"}, headers=as_admin)
        assert reset.status_code == 200, reset.text
        assert (await sign_in(client, user["username"], "admin-asettama-1")).status_code == 200
        # for their own password, admins too give the current one
        own = await client.put(f"/users/{admin['user_id']}/password",
                               json={"password": "admin-oma-uusi-1"}, headers=as_admin)
        assert own.status_code == 403, own.text
    async with system.client("cards", system.token("kaikukeskus")) as centre:
        reset = await centre.put(f"/users/{user['user_id']}/password",
                                 json={"password": "keskuksen-asettama-1"})
    assert reset.status_code == 200, reset.text


async def test_guessing_the_current_password_counts_with_sign_in_guesses(system):
    user = await new_user(system)
    name, path = user["username"], f"/users/{user['user_id']}/password"
    async with client_from(system.url("cards")) as client:
        token = (await sign_in(client, name, PASSWORD)).json()["access_token"]
        own = {"Authorization": f"Bearer {token}"}
        for n in range(LIMIT):
            wrong = await client.put(path, headers=own, json={
                "password": "uusi-salasana-123", "current_password": f"arvaus-{n}"})
            assert wrong.status_code == 403, wrong.text
        assert_locked(await client.put(path, headers=own, json={
            "password": "uusi-salasana-123", "current_password": PASSWORD}))
        assert_locked(await sign_in(client, name, PASSWORD))


@pytest.mark.parametrize("body", [
    {"username": "kuka.tahansa", "password": "\ud800\udc00\ud800"},
    {"username": "kuka\ud800", "password": "salasana-123456"},
    {"username": "x" * 101, "password": "salasana-123456"},
    {"username": "kuka.tahansa", "password": ""},
    {"username": ["kuka"], "password": 5},
    {"username": "kuka.tahansa"},
])
async def test_bad_sign_in_input_is_a_422(system, body):
    async with system.client("cards") as client:
        response = await client.post("/auth/login", **raw_json(body))
    assert response.status_code == 422, response.text


async def test_bad_password_change_input_is_a_422(system):
    user = await new_user(system)
    async with system.client("cards") as client:
        token = (await sign_in(client, user["username"], PASSWORD)).json()["access_token"]
        own = {"Authorization": f"Bearer {token}"}
        path = f"/users/{user['user_id']}/password"
        for body in ({"password": "uusi-salasana-123", "current_password": "a\ud800"},
                     {"password": "uusi-salasana-123", "current_password": "x" * 257},
                     {"password": "uusi-salasana-123", "current_password": 12},
                     {"password": "\ud800" * 20, "current_password": PASSWORD},
                     {"current_password": PASSWORD}):
            request = raw_json(body)
            response = await client.put(path, content=request["content"],
                                        headers={**own, **request["headers"]})
            assert response.status_code == 422, (body, response.text)
        weak = await client.put(path, json={"password": "lyhyt", "current_password": PASSWORD},
                                headers=own)
        assert weak.status_code == 422 and weak.json()["type"].endswith("/weak-password")


@pytest.fixture
def cards_behind_one_proxy(system):
    """Another cards api on the session's database that takes loopback (here: the
    test itself) for a trusted proxy in front of it."""
    port = free_port()
    supervisor = Supervisor({**system.supervisor.base_env, "KAIKU_OTEL_EXPORTER": "none"},
                            system.log_dir, restart_crashed=False)
    supervisor.add(ProcessSpec("cards-api-proxied", [sys.executable, "-m", "cards", "api"],
                               {"KAIKU_HTTP_PORT": str(port),
                                "KAIKU_TRUSTED_PROXIES": "127.0.0.1"}, port))
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        supervisor.stop_all()


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(system,
                                                                   cards_behind_one_proxy):
    name = (await new_user(system))["username"]
    guesser = {"X-Forwarded-For": "198.51.100.1"}
    async with client_from(cards_behind_one_proxy, **guesser) as proxied:
        for n in range(LIMIT):
            assert (await sign_in(proxied, name, f"arvaus-{n}-salasana")).status_code == 401
        assert_locked(await sign_in(proxied, name, PASSWORD))
    # what the client wrote before the proxy's entry changes nothing
    async with client_from(cards_behind_one_proxy,
                           **{"X-Forwarded-For": "198.51.100.2, 198.51.100.1"}) as prefixed:
        assert_locked(await sign_in(prefixed, name, PASSWORD))
    async with client_from(cards_behind_one_proxy,
                           **{"X-Forwarded-For": "198.51.100.2"}) as other:
        assert (await sign_in(other, name, PASSWORD)).status_code == 200
