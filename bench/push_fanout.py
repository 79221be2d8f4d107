"""The Web Push leg of notifications_fanout.py: omakaiku's own push code, driven
in this process, sending to bench/push_sink.py.

Why not the whole chain (notifications → NotificationBatchIssued → omakaiku's
worker)? Omakaiku's sender asks each push's holder for their language by
replaying the account from omakaiku's event store, so every device would need a
real account (card registry, activation, welcome mail): far slower to set up
than the benchmark itself. Instead, with omakaiku's own adapters on omakaiku's
own schema (a fresh database in the benchmark's namespace):

- **setup**: each sampled holder gets a data key (``Vault.create_key``, in
  ``holder_keys``) and one device through ``PushDevices.subscribe``, the very
  call behind ``POST /me/push-subscriptions`` (the endpoint sealed under the
  holder's key, its keyed hashes), the endpoint
  ``http://127.0.0.1:PORT/push/<n>`` (loopback http: the development setting);
- **per run**: ``enqueue_pushes`` in 1,000-holder batches, each its own
  transaction, as the delivery consumer does per NotificationBatchIssued; then
  ``PushSender`` with the worker's defaults (32 in flight, at most 3/4 of them to
  one push service, since every device here is on the one sink) until the sink
  has every push. Each push opens the sealed device under the holder's key, signs a
  VAPID JWT (ES256), encrypts the payload (aes128gcm, a fresh ECDH key) and
  POSTs it over httpx, then records the outcome in the outbox. The one stand-in:
  the holder's language is "fi" rather than replayed from an account.
- **baseline, same run**: plain httpx POSTs of a body of the same size to the
  same sink, 32 in flight, no crypto and no outbox: what the HTTP alone costs.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kaiku_shared.db import apply_schema, create_pool, ensure_database
from omakaiku.adapters.push import PushDevices, enqueue_pushes
from omakaiku.adapters.schema import SCHEMA
from omakaiku.adapters.vault import PostgresKeyStore, Vault
from omakaiku.adapters.webpush import PushSender, VapidKey
from omakaiku.domain.push import PushSubscription

HERE = Path(__file__).parent
BATCH = 1000
IN_FLIGHT = 32  # KAIKU_OMAKAIKU_PUSH_CONCURRENCY's default


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def start_sink(port: int) -> subprocess.Popen:
    sink = subprocess.Popen([sys.executable, str(HERE / "push_sink.py"), str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    return sink


class PushLeg:
    def __init__(self, settings, port: int) -> None:
        self.settings = settings
        self.sink_url = f"http://127.0.0.1:{port}"
        self.vault = Vault(PostgresKeyStore(settings.service_database_url("omakaiku")),
                           os.urandom(32), os.urandom(32))
        self.lookup_key = os.urandom(32)
        private = ec.generate_private_key(ec.SECP256R1())
        self.vapid = VapidKey(b64url(private.private_numbers().private_value.to_bytes(32, "big")),
                              "mailto:bench@example.invalid")
        self.account_ids: list[uuid.UUID] = []
        self.pool: asyncpg.Pool | None = None

    async def setup(self, account_ids: list[uuid.UUID]) -> float:
        """Seconds to give each holder a key and one device (omakaiku's own calls)."""
        await ensure_database(self.settings, "omakaiku")
        self.pool = await create_pool(self.settings, "omakaiku", size=4)
        await apply_schema(self.pool, SCHEMA)
        receiver = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        devices = PushDevices(self.pool, self.vault, self.lookup_key, 10)
        limit = asyncio.Semaphore(4)
        started = time.perf_counter()

        async def one(n: int, account_id: uuid.UUID) -> None:
            async with limit:
                await asyncio.to_thread(self.vault.create_key, account_id,
                                        f"holder{n}@bench.invalid")
                await devices.subscribe(account_id, PushSubscription(
                    f"{self.sink_url}/push/{n}", b64url(receiver), b64url(os.urandom(16))),
                    "bench")

        await asyncio.gather(*(one(n, a) for n, a in enumerate(account_ids)))
        self.account_ids = account_ids
        return time.perf_counter() - started

    async def push_once(self) -> tuple[float, int]:
        """(seconds from the first enqueue until the sink has every push, pushes)."""
        assert self.pool is not None
        async with httpx.AsyncClient() as client:
            await client.post(f"{self.sink_url}/reset")
            reference = str(uuid.uuid4())
            stop = asyncio.Event()
            started = time.time()
            for start in range(0, len(self.account_ids), BATCH):
                async with self.pool.acquire() as conn, conn.transaction():
                    await enqueue_pushes(conn, self.account_ids[start:start + BATCH],
                                         "new_offering", reference, {"title": "Suurkonsertti"})
            sender = PushSender(self.pool, self.vault, self.vapid, lambda _: "fi",
                                concurrency=IN_FLIGHT)
            sending = asyncio.create_task(sender.run(stop))
            stats = await self._until_all(client, len(self.account_ids), started)
            stop.set()
            await sending
        async with self.pool.acquire() as conn:
            sent = await conn.fetchval("SELECT count(*) FROM push_outbox WHERE reference = $1 "
                                       "AND status = 'sent'", reference)
        assert stats["bad"] == 0, f"{stats['bad']} pushes the sink refused: {stats}"
        assert sent == len(self.account_ids), f"{sent} outbox rows sent"
        return stats["last_at"] - started, stats["received"]

    async def _until_all(self, client: httpx.AsyncClient, expected: int,
                         started: float) -> dict:
        while True:
            stats = (await client.get(f"{self.sink_url}/stats")).json()
            if stats["received"] >= expected or stats["bad"]:
                return stats
            if time.time() - started > 1800:
                raise TimeoutError(f"{stats['received']} of {expected} pushes arrived")
            await asyncio.sleep(0.05)

    async def http_baseline(self, count: int) -> float:
        """Seconds for ``count`` plain POSTs (a 120-byte body), 32 in flight."""
        headers = {"TTL": "86400", "Content-Encoding": "aes128gcm",
                   "Authorization": "vapid t=bench.bench.bench, k=bench"}
        body = os.urandom(120)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=IN_FLIGHT)) as client:
            await client.post(f"{self.sink_url}/reset")
            queue = iter(range(count))
            started = time.perf_counter()

            async def lane() -> None:
                for n in queue:
                    response = await client.post(f"{self.sink_url}/push/{n}", content=body,
                                                 headers=headers)
                    assert response.status_code == 201

            await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
            return time.perf_counter() - started

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        self.vault.store.pool.close()
