"""The push sender against a real database and two real local push services:
one slow push service with more pushes than the sender has slots never holds up
the other's, and every push is delivered once."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import UUID, uuid4

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kaiku_shared.keys import generate_vapid_key
from omakaiku.adapters.push import PushDevices, enqueue_pushes
from omakaiku.adapters.vault import MemoryKeyStore, Vault
from omakaiku.adapters.webpush import PushSender, VapidKey
from omakaiku.domain.push import check_subscription

SLOW_SECONDS = 2.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def push_service(delay: float) -> tuple[ThreadingHTTPServer, list[tuple[str, bytes, float]]]:
    received: list[tuple[str, bytes, float]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay)
            with lock:
                received.append((self.path, body, time.monotonic()))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


async def test_a_slow_push_service_never_takes_every_slot(own_database):
    slow, slow_got = push_service(SLOW_SECONDS)
    fast, fast_got = push_service(0.0)
    store = MemoryKeyStore()
    vault = Vault(store, b"m" * 32, b"l" * 32)
    browser = ec.generate_private_key(ec.SECP256R1())
    p256dh = b64url(browser.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    auth = b"0123456789abcdef"
    try:
        async with own_database(f"omakaikupush{uuid4().hex[:8]}") as pool:
            devices = PushDevices(pool, vault, b"l" * 32, max_devices=10)
            accounts: dict[str, list[UUID]] = {"slow": [], "fast": []}
            for name, server, count in (("slow", slow, 8), ("fast", fast, 2)):
                for _ in range(count):
                    account_id = uuid4()
                    vault.create_key(account_id, f"{account_id}@example.org")
                    endpoint = f"http://127.0.0.1:{server.server_address[1]}/{account_id}"
                    await devices.subscribe(account_id, check_subscription(
                        endpoint, p256dh, b64url(auth), development=True), None)
                    accounts[name].append(account_id)
            async with pool.acquire() as conn:
                # The slow service's pushes first in the queue.
                await enqueue_pushes(conn, accounts["slow"], "new_offering", "o1", {"title": "T"})
                await enqueue_pushes(conn, accounts["fast"], "new_offering", "o1", {"title": "T"})
            sender = PushSender(pool, vault, VapidKey(generate_vapid_key(), "mailto:a@b.fi"),
                                lambda _: "en", concurrency=4, timeout=10,
                                poll_seconds=0.1)
            stop = asyncio.Event()
            started = time.monotonic()
            running = asyncio.ensure_future(sender.run(stop))
            try:
                while len(fast_got) < 2 and time.monotonic() - started < 10:
                    await asyncio.sleep(0.05)
                fast_done = time.monotonic() - started
                while len(slow_got) < 8 and time.monotonic() - started < 30:
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await running
            statuses = await pool.fetch("SELECT status, count(*) FROM push_outbox GROUP BY 1")
    finally:
        slow.shutdown()
        fast.shutdown()
    # 4 slots, at most 3 to one service: the fast service's pushes went out
    # while the slow one's first round was still being answered.
    assert fast_done < SLOW_SECONDS, fast_done
    assert len(fast_got) == 2 and len(slow_got) == 8
    assert {path for path, _, _ in slow_got} == {f"/{a}" for a in accounts["slow"]}
    opened = http_ece.decrypt(fast_got[0][1], private_key=browser, auth_secret=auth,
                              version="aes128gcm")
    assert b'"url": "/oma/offerings/o1"' in opened
    assert [tuple(r) for r in statuses] == [("sent", 10)]
