"""Web Push end to end: a local RFC 8030 push service (an HTTP server started
here, on 127.0.0.1 — accepted because the system runs in the development
setting) receives what the system's omakaiku worker sends. Each push is
decrypted with the subscription's own private key and auth secret (RFC 8291),
its VAPID JWT verified against ``GET /push/public-key`` (RFC 8292), and counted:
exactly one push per device per matching offering, none for other genres, one
for a message to the holder; a 410 device is dropped; a 429 is retried after
``Retry-After``; preferences mute; erasure leaves no endpoint anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import UUID

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kaiku_dev.testing import database_dump, eventually, every_stream_message

pytestmark = pytest.mark.e2e

# A genre no other test publishes or subscribes to, so every push counted here is ours.
GENRE, SUBGENRE = "festivals", "cultural_festival"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float


@dataclass
class PushService:
    """Records every push; answers 201 unless told otherwise for a path."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    # path → answers to give in turn: (status, headers) or (status, headers, delay_s)
    scripted: dict[str, list[tuple]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str) -> tuple[int, dict[str, str], float]:
        with self.lock:
            queue = self.scripted.get(path)
            status, headers, *delay = queue.pop(0) if queue else (201, {})
        return status, headers, (delay[0] if delay else 0.0)

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def start_push_service() -> tuple[PushService, ThreadingHTTPServer]:
    service = PushService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, headers, delay = service.answer(self.path)
            time.sleep(delay)  # a slow push service
            with service.lock:
                service.received.append(Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, status,
                    time.monotonic()))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return service, server


@pytest.fixture(scope="module")
def push_service():
    service, server = start_push_service()
    yield service
    server.shutdown()


@dataclass
class Browser:
    """One browser's push subscription: its own P-256 key and auth secret."""

    path: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: uuid.uuid4().bytes)

    def subscription(self, origin: str, **extra) -> dict:
        point = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": origin + self.path, "expirationTime": None,
                "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)}, **extra}

    def open(self, push: Received) -> dict:
        return json.loads(http_ece.decrypt(push.body, private_key=self.key,
                                           auth_secret=self.auth, version="aes128gcm"))


def new_browser() -> Browser:
    return Browser(f"/push/{uuid.uuid4().hex}")


def check_vapid(push: Received, public_key: str, origin: str) -> None:
    scheme, _, params = push.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    parts = dict(part.strip().split("=", 1) for part in params.split(","))
    assert parts["k"] == public_key
    verifying = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                             unb64url(public_key))
    claims = jwt.decode(parts["t"], verifying, algorithms=["ES256"], audience=origin)
    assert claims["aud"] == origin
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert claims["sub"].startswith(("mailto:", "https://"))


async def pushes(service: PushService, browser: Browser, count: int, *, answered=None,
                 timeout: float = 30) -> list[Received]:
    async def arrived():
        found = [r for r in service.to(browser.path)
                 if answered is None or r.answered == answered]
        return found if len(found) >= count else None

    return await eventually(arrived, timeout=timeout,
                            message=f"{count} push(es) to {browser.path}")


async def subscribed_in_notifications(system, account_id: str) -> None:
    async def known() -> bool:
        conn = await system.database("notifications")
        try:
            return bool(await conn.fetchval(
                "SELECT 1 FROM subscription_view WHERE account_id = $1", UUID(account_id)))
        finally:
            await conn.close()

    await eventually(known, timeout=30, message="notifications to learn the subscription")


def about(browser: Browser, pushes_: list[Received], reference: str) -> list[dict]:
    return [p for p in (browser.open(r) for r in pushes_) if p["url"].endswith(reference)]


async def publish(world, tag: str, *, genre: str = GENRE, subgenre: str = SUBGENRE) -> str:
    return await world.publish_offering(title=f"Festari {tag}", genres=[genre],
                                        subgenres=[subgenre])


async def test_validation_and_device_list(world, push_service):
    system = world.system
    card = await world.issue_card()
    account_id = await world.activate_account(card["card_number"])
    token = world.holder_token(account_id)
    other = world.holder_token(await world.activate_account(
        (await world.issue_card())["card_number"]))
    good = new_browser().subscription(push_service.origin)
    bad_key = {**good, "keys": {**good["keys"], "p256dh": b64url(b"\x04" + b"\x01" * 64)}}
    async with system.client("omakaiku", token) as client:
        answers = {
            "http elsewhere": await client.post("/me/push-subscriptions", json={
                **good, "endpoint": "http://push.example.org/x"}),
            "not a url": await client.post("/me/push-subscriptions", json={
                **good, "endpoint": "push service"}),
            "p256dh off the curve": await client.post("/me/push-subscriptions", json=bad_key),
            "short auth": await client.post("/me/push-subscriptions", json={
                **good, "keys": {**good["keys"], "auth": b64url(b"x" * 15)}}),
            "long label": await client.post("/me/push-subscriptions",
                                            json={**good, "label": "x" * 81}),
        }
        created = await client.post("/me/push-subscriptions", json={**good, "label": "Firefox"})
        again = await client.post("/me/push-subscriptions", json={**good, "label": "Firefox"})
        listed = await client.get("/me/push-subscriptions")
        unknown = await client.delete(f"/me/push-subscriptions/{uuid.uuid4()}")
    for what, answer in answers.items():
        assert answer.status_code == 422, (what, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json"), what
    assert answers["http elsewhere"].json()["type"].endswith("/push-endpoint-invalid")
    assert "https://" in answers["http elsewhere"].json()["detail"]
    assert answers["p256dh off the curve"].json()["type"].endswith("/push-key-invalid")
    assert answers["short auth"].json()["type"].endswith("/push-key-invalid")
    assert created.status_code == 201, created.text
    assert again.status_code == 200 and again.json() == created.json()
    subscription_id = created.json()["subscription_id"]
    items = listed.json()["items"]
    assert [(i["subscription_id"], i["label"], i["endpoint_origin"]) for i in items] == [
        (subscription_id, "Firefox", push_service.origin)]
    assert good["endpoint"] not in listed.text
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/push-subscription-not-found")
    async with system.client("omakaiku", other) as client:
        foreign = await client.delete(f"/me/push-subscriptions/{subscription_id}")
    assert foreign.status_code == 404
    async with system.client("omakaiku") as client:
        anonymous = await client.post("/me/push-subscriptions", json=good)
        public = await client.get("/push/public-key")
    assert anonymous.status_code == 401
    assert public.status_code == 200 and len(unb64url(public.json()["public_key"])) == 65
    async with system.client("omakaiku", token) as client:
        removed = await client.delete(f"/me/push-subscriptions/{subscription_id}")
        left = (await client.get("/me/push-subscriptions")).json()["items"]
    assert removed.status_code == 204 and left == []


async def test_ten_devices_at_most(world, push_service):
    account_id = await world.activate_account((await world.issue_card())["card_number"])
    async with world.system.client("omakaiku", world.holder_token(account_id)) as client:
        ids = []
        for _ in range(10):
            added = await client.post("/me/push-subscriptions",
                                      json=new_browser().subscription(push_service.origin))
            assert added.status_code == 201, added.text
            ids.append(added.json()["subscription_id"])
        eleventh = await client.post("/me/push-subscriptions",
                                     json=new_browser().subscription(push_service.origin))
        removed = await client.delete(f"/me/push-subscriptions/{ids[0]}")
        after = (await client.get("/me/push-subscriptions")).json()["items"]
        for subscription_id in ids[1:]:  # push to no one later
            await client.delete(f"/me/push-subscriptions/{subscription_id}")
    assert eleventh.status_code == 409 and "remove one" in eleventh.json()["detail"]
    assert eleventh.json()["type"].endswith("/push-devices-limit")
    assert removed.status_code == 204
    assert [i["subscription_id"] for i in after] == ids[1:]


@dataclass
class Holder:
    """A holder (language sv) with two subscribed browsers."""

    card_number: str
    account_id: str
    token: str
    first: Browser
    second: Browser
    public_key: str


async def holder_with_two_devices(world, push_service: PushService) -> Holder:
    system = world.system
    card = await world.issue_card()
    account_id = await world.activate_account(card["card_number"], language="sv")
    token = world.holder_token(account_id)
    first, second = new_browser(), new_browser()
    async with system.client("omakaiku", token) as client:
        public_key = (await client.get("/push/public-key")).json()["public_key"]
        for browser, label in ((first, "Puhelin"), (second, "Läppäri")):
            added = await client.post("/me/push-subscriptions",
                                      json=browser.subscription(push_service.origin, label=label))
            assert added.status_code == 201, added.text
        chosen = await client.put("/me/subscriptions", json={"genres": [GENRE],
                                                             "subgenres": [SUBGENRE]})
        assert chosen.status_code == 200, chosen.text
        preferences = await client.get("/me/push-preferences")
    assert preferences.json() == {"new_offerings": True, "messages": True, "muted": False}
    await subscribed_in_notifications(system, account_id)
    return Holder(card["card_number"], account_id, token, first, second, public_key)


async def message_to(world, card_number: str, body: str) -> str:
    async with world.system.client("notifications", world.distributor_token) as client:
        sent = await client.post("/messages", json={
            "to": {"card_number": card_number}, "subject": "Hei", "body": body})
    assert sent.status_code == 201, sent.text
    return sent.json()["message_id"]


async def test_pushes_reach_each_device_once(world, push_service):
    holder = await holder_with_two_devices(world, push_service)
    tag = uuid.uuid4().hex[:6]
    elsewhere = await publish(world, f"{tag}-muu", genre="music", subgenre="classical")
    matching = await publish(world, tag)
    for browser in (holder.first, holder.second):
        (push,) = await pushes(push_service, browser, 1)
        assert browser.open(push) == {"kind": "new_offering",
                                      "title": f"Nytt utbud: Festari {tag}",
                                      "url": f"/oma/offerings/{matching}"}
        assert push.headers["content-encoding"] == "aes128gcm"
        assert push.headers["ttl"] == "86400" and push.headers["urgency"] == "normal"
        check_vapid(push, holder.public_key, push_service.origin)

    # A message to the holder: one push per device, the most urgent kind.
    message_id = await message_to(world, holder.card_number, "Tervetuloa")
    for browser in (holder.first, holder.second):
        got = await pushes(push_service, browser, 2)
        assert about(browser, got, message_id) == [{
            "kind": "message", "title": "Nytt meddelande i OmaKaiku",
            "url": f"/oma/messages/{message_id}"}]
        assert got[1].headers["urgency"] == "high"

    later = await _busy_and_gone(world, holder, push_service, tag)
    silent, quiet, last = await _preferences_apply(world, holder, push_service, tag)
    got = push_service.to(holder.second.path)
    urls = [holder.second.open(r)["url"] for r in got if r.answered == 201]
    assert urls == [f"/oma/offerings/{matching}", f"/oma/messages/{message_id}",
                    f"/oma/offerings/{later}", f"/oma/offerings/{last}"], urls
    assert not any(elsewhere in u or silent in u or quiet in u for u in urls)
    await _export_and_erase(world, holder.account_id, holder.token, holder.second,
                            push_service)


async def _busy_and_gone(world, holder: Holder, push_service: PushService, tag: str) -> str:
    """The second device is busy (429, Retry-After: 1) once; the first is gone (410)."""
    first, second = holder.first, holder.second
    push_service.scripted[second.path] = [(429, {"Retry-After": "1"})]
    push_service.scripted[first.path] = [(410, {})]
    later = await publish(world, f"{tag}-2")
    got = await pushes(push_service, second, 4)
    refused, delivered = got[2], got[3]
    assert refused.answered == 429 and delivered.answered == 201
    assert delivered.at - refused.at >= 1.0, "Retry-After was honoured"
    assert [p["url"] for p in (second.open(refused), second.open(delivered))] == [
        f"/oma/offerings/{later}"] * 2

    async def first_dropped():
        async with world.system.client("omakaiku", holder.token) as client:
            items = (await client.get("/me/push-subscriptions")).json()["items"]
        return [i["label"] for i in items] == ["Läppäri"]

    await eventually(first_dropped, timeout=30, message="the 410 device to be dropped")
    assert len(push_service.to(first.path)) == 3  # offering, message, the 410
    return later


async def _preferences_apply(world, holder: Holder, push_service: PushService,
                             tag: str) -> tuple[str, str, str]:
    """Muted: nothing. Then new offerings only (messages off): the offering, no
    message. The ids of the muted offering, the unpushed message, the last offering."""
    system = world.system
    async with system.client("omakaiku", holder.token) as client:
        muted = await client.put("/me/push-preferences", json={
            "new_offerings": True, "messages": True, "muted": True})
        assert muted.json()["muted"] is True
    silent = await publish(world, f"{tag}-hiljaa")
    await _notified(system, holder.account_id, silent)
    async with system.client("omakaiku", holder.token) as client:
        await client.put("/me/push-preferences", json={
            "new_offerings": True, "messages": False, "muted": False})
    quiet = await message_to(world, holder.card_number, "2")
    last = await publish(world, f"{tag}-3")
    await pushes(push_service, holder.second, 5)
    await asyncio.sleep(2)  # time for anything that should not have come
    return silent, quiet, last


async def _notified(system, account_id: str, offering_id: str) -> None:
    """Omakaiku's delivery has handled this offering's notification to the holder
    (its e-mail outcome is recorded after the pushes were queued or not)."""
    async def handled():
        conn = await system.database("omakaiku")
        try:
            return await conn.fetchval(
                "SELECT 1 FROM mail_deliveries WHERE account_id = $1 AND kind = "
                "'new_offering' AND reference = $2", UUID(account_id), offering_id)
        finally:
            await conn.close()

    await eventually(handled, timeout=30, message="notifications to notify the holder")


async def _export_and_erase(world, account_id: str, token: str, browser: Browser,
                            service: PushService) -> None:
    system = world.system
    async with system.client("omakaiku", token) as client:
        exported = (await client.get("/me/export")).json()
    assert [(d["label"], d["endpoint_origin"]) for d in exported["push_devices"]] == [
        ("Läppäri", service.origin)]
    assert exported["push_preferences"] == {"new_offerings": True, "messages": False,
                                            "muted": False}
    # Sealed even before erasure: no table, stream or log line holds the endpoint.
    assert browser.path not in await database_dump(system, "omakaiku")
    assert browser.path not in await every_stream_message(system)
    assert browser.path not in system.log_text()
    async with system.client("omakaiku", token) as client:
        erased = await client.delete("/me")
    assert erased.status_code == 202, erased.text
    conn = await system.database("omakaiku")
    try:
        left = [await conn.fetchval(f"SELECT count(*) FROM {table} WHERE account_id = $1",
                                    UUID(account_id))
                for table in ("push_subscriptions", "push_outbox", "push_preferences")]
    finally:
        await conn.close()
    assert left == [0, 0, 0]
    assert browser.path not in await database_dump(system, "omakaiku")


async def test_a_slow_push_service_holds_up_no_one_else(world, push_service):
    """One device's push service takes 8 s to answer; the holder's other device,
    and another holder's, get theirs at once."""
    system = world.system
    slow, fast, elsewhere = new_browser(), new_browser(), new_browser()
    push_service.scripted[slow.path] = [(201, {}, 8.0)]
    accounts = []
    for browsers in ((slow, fast), (elsewhere,)):
        card = await world.issue_card()
        account_id = await world.activate_account(card["card_number"])
        accounts.append(account_id)
        async with system.client("omakaiku", world.holder_token(account_id)) as client:
            for browser in browsers:
                added = await client.post("/me/push-subscriptions",
                                          json=browser.subscription(push_service.origin))
                assert added.status_code == 201, added.text
            chosen = await client.put("/me/subscriptions", json={"genres": [GENRE]})
            assert chosen.status_code == 200, chosen.text
    for account_id in accounts:
        await subscribed_in_notifications(system, account_id)
    offering = await publish(world, uuid.uuid4().hex[:6])
    await pushes(push_service, fast, 1)
    await pushes(push_service, elsewhere, 1)
    assert push_service.to(slow.path) == [], "the slow one is still being answered"
    (late,) = await pushes(push_service, slow, 1)
    assert slow.open(late)["url"] == f"/oma/offerings/{offering}"
    for account_id in accounts:  # leave no subscriber of this genre behind
        async with system.client("omakaiku", world.holder_token(account_id)) as client:
            await client.put("/me/subscriptions", json={"genres": []})
