"""The sign-in queue on a real Postgres: limits counted identically for every
address, each queued request handled exactly once by competing senders, codes
that refuse in one voice.

Its own database (not the namespace's omakaiku one), so these senders never
take requests queued by a running system in the same test session. The mailer
records instead of sending; the real SMTP path is in tests/e2e.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from types import SimpleNamespace
from uuid import uuid4

import pytest

from kaiku_shared.db import apply_schema
from omakaiku.adapters.signin import CODE_REFUSED, CodeRejected, RateLimited, SignIn
from omakaiku.adapters.signin_queue import CodeRequests, CodeSender, Limit
from omakaiku.adapters.schema import SCHEMA

SERVICE = "omakaikusignin"
KEY = b"k" * 32


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str, *, language: str):
        await asyncio.sleep(0.002)  # an SMTP round trip, so senders overlap
        self.sent.append((to, body, language))
        return "sent", None


def lookup_of(email: str) -> bytes:
    return hmac.new(KEY, email.encode(), hashlib.sha256).digest()


@pytest.fixture(scope="module")
async def pool(own_database):
    async with own_database(SERVICE) as pool:
        yield pool


@pytest.fixture
async def empty_queue(pool):
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM signin_requests")
    return pool


def requests(pool, *, per_address=5, per_client=1000, overall=100_000, ttl=60) -> CodeRequests:
    return CodeRequests(pool, KEY,
                        per_address=Limit("address", per_address, 900, "address"),
                        per_client=Limit("client", per_client, 900, "client"),
                        overall=Limit("global", overall, 3600, "global"), request_ttl=ttl)


def signin(pool, **overrides) -> SignIn:
    settings = {"code_ttl": 600, "link_ttl": 3600, "window": 900, "max_attempts": 50,
                "code_max_tries": 3, **overrides}
    return SignIn(pool, KEY, **settings)


def holders(*emails: str):
    """``holder_for`` over fake accounts: lookup hash → profile-like object."""
    known = {lookup_of(e): SimpleNamespace(account=SimpleNamespace(id=uuid4(), language="fi"),
                                           personal=SimpleNamespace(email=e)) for e in emails}
    return known.get


def sender(pool, mailer, holder_for, namespace) -> CodeSender:
    return CodeSender(pool, namespace.settings.service_database_url(SERVICE), signin(pool),
                      mailer, holder_for, code_minutes=10, poll_seconds=0.2)


async def test_the_schema_is_applied_again_on_an_existing_database(pool):
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO signin_rate VALUES ('global', '', 1, now(), 1)")
    await apply_schema(pool, SCHEMA)  # a restart, or another replica starting
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM signin_rate "
                                   "WHERE window_seconds = 1") == 1


async def test_the_per_address_limit_refuses_known_and_unknown_addresses_alike(empty_queue):
    queue = requests(empty_queue, per_address=3)
    outcomes = {}
    for email in (f"known.{uuid4().hex}@example.org", f"unknown.{uuid4().hex}@example.org"):
        answers = []
        for n in range(5):
            try:
                await queue.enqueue(lookup_of(email), f"198.51.100.{n}", None)
                answers.append("queued")
            except RateLimited as refusal:
                assert 1 <= refusal.retry_after <= 900
                answers.append(str(refusal))
        outcomes[email.split(".")[0]] = answers
    assert outcomes["known"] == outcomes["unknown"] == ["queued"] * 3 + ["address"] * 2


async def test_refused_requests_count_against_no_limit(empty_queue):
    queue = requests(empty_queue, per_address=1, per_client=2)
    client = f"203.0.113.{uuid4().int % 250}-{uuid4().hex}"
    await queue.enqueue(lookup_of(f"a.{uuid4().hex}@example.org"), client, None)
    same = lookup_of(f"b.{uuid4().hex}@example.org")
    await queue.enqueue(same, client, None)
    with pytest.raises(RateLimited, match="client"):
        await queue.enqueue(lookup_of(f"c.{uuid4().hex}@example.org"), client, None)
    # The client's refused request did not use up that address's one request.
    fresh = lookup_of(f"c2.{uuid4().hex}@example.org")
    with pytest.raises(RateLimited, match="client"):
        await queue.enqueue(fresh, client, None)
    await queue.enqueue(fresh, "another client " + uuid4().hex, None)


async def test_competing_senders_handle_each_request_exactly_once(empty_queue, namespace):
    pool = empty_queue
    known = f"known.{uuid4().hex}@example.org"
    unknown = f"unknown.{uuid4().hex}@example.org"
    queue = requests(pool, per_address=1000)
    for n in range(40):
        await queue.enqueue(lookup_of(known), f"client-{n}", "sv" if n % 2 else None)
        await queue.enqueue(lookup_of(unknown), f"client-{n}", None)
    mailer = RecordingMailer()
    holder_for = holders(known)
    first, second = sender(pool, mailer, holder_for, namespace), sender(pool, mailer,
                                                                          holder_for, namespace)
    handled = await asyncio.gather(first.drain(), second.drain())
    assert sum(handled) == 80 and all(handled), handled  # both took part
    assert len(mailer.sent) == 40 and {to for to, _, _ in mailer.sent} == {known}
    assert sorted(language for _, _, language in mailer.sent) == ["fi"] * 20 + ["sv"] * 20
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM signin_requests") == 0
        stored = await conn.fetchval("SELECT count(*) FROM signin_codes WHERE email_lookup = $1",
                                     lookup_of(known))
        nothing = await conn.fetchval("SELECT count(*) FROM signin_codes "
                                      "WHERE email_lookup = $1", lookup_of(unknown))
    assert (stored, nothing) == (40, 0)


async def test_a_running_sender_is_woken_by_the_request_and_expired_requests_go_unsent(
        empty_queue, namespace):
    pool = empty_queue
    known = f"known.{uuid4().hex}@example.org"
    mailer = RecordingMailer()
    expired = requests(pool, per_address=1000, ttl=60)
    await expired.enqueue(lookup_of(known), "c", None)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE signin_requests SET expires_at = now() - interval '1 s'")
    running = sender(pool, mailer, holders(known), namespace)
    running.poll_seconds = 30  # only NOTIFY can wake it in time
    task = asyncio.create_task(running.run())
    try:
        await asyncio.sleep(0.5)  # it has drained (nothing live) and is waiting
        assert mailer.sent == []
        await requests(pool, per_address=1000).enqueue(lookup_of(known), "c", None)
        for _ in range(100):
            if mailer.sent:
                break
            await asyncio.sleep(0.02)
        assert len(mailer.sent) == 1, "NOTIFY did not wake the sender within 2 s"
    finally:
        running.stop()
        await asyncio.wait_for(task, 5)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM signin_requests") == 0


async def test_every_refused_code_reads_the_same_and_a_code_dies_after_its_tries(pool):
    known = lookup_of(f"known.{uuid4().hex}@example.org")
    account_id = uuid4()
    codes = signin(pool, code_max_tries=3)
    async with pool.acquire() as conn, conn.transaction():
        code = await codes.store_code(conn, known, account_id)
        expiring = await codes.store_code(conn, known, account_id)
        await conn.execute("UPDATE signin_codes SET expires_at = now() - interval '1 s' "
                           "WHERE email_lookup = $1 AND secret_hash = $2",
                           known, codes._hash(known, expiring))
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    if wrong == expiring:
        wrong = f"{(int(code) + 2) % 1_000_000:06d}"
    refusals = []
    for lookup, attempt in ((lookup_of(f"nobody.{uuid4().hex}@example.org"), code),
                            (known, expiring), (known, wrong)):
        with pytest.raises(CodeRejected) as refused:
            await codes.redeem_code(lookup, attempt)
        refusals.append(str(refused.value))
    assert refusals == [CODE_REFUSED] * 3
    assert await codes.redeem_code(known, code) == account_id
    with pytest.raises(CodeRejected) as used:
        await codes.redeem_code(known, code)
    assert str(used.value) == CODE_REFUSED  # used: the same words again

    async with pool.acquire() as conn, conn.transaction():
        fresh = await codes.store_code(conn, known, account_id)
    other = f"{(int(fresh) + 1) % 1_000_000:06d}"
    for _ in range(3):
        with pytest.raises(CodeRejected):
            await codes.redeem_code(known, other)
    with pytest.raises(CodeRejected):
        await codes.redeem_code(known, fresh)  # three wrong tries voided it


async def test_too_many_wrong_codes_are_refused_alike_for_any_address(pool):
    codes = signin(pool, max_attempts=2)
    answers = {}
    for name in ("known", "unknown"):
        lookup = lookup_of(f"{name}.{uuid4().hex}@example.org")
        if name == "known":
            async with pool.acquire() as conn, conn.transaction():
                await codes.store_code(conn, lookup, uuid4())
        got = []
        for _ in range(3):
            try:
                await codes.redeem_code(lookup, "000000")
                got.append("signed in")
            except CodeRejected:
                got.append(401)
            except RateLimited as limited:
                got.append((429, limited.retry_after))
        answers[name] = got
    assert answers["known"] == answers["unknown"] == [401, 401, (429, 900)]
