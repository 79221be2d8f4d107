"""The retention job on a real Postgres: holders of ended cards are told first,
erased after the notice period through the same path as DELETE /me (key row,
stored answers and all), recorded in the audit without personal data; never
told twice, not even by two workers at once; a failed e-mail holds the erasure.

Its own database; time is the job's clock, moved by the test. The mailer
records instead of sending (the SMTP path is in tests/e2e/test_retention.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from eventsourcing.utils import get_topic

from kaiku_shared.eventstore import MetaMapper
from omakaiku.adapters.vault import PostgresKeyStore, Vault
from omakaiku.application.app import NotFound, OmaKaikuApplication, PersonalData
from omakaiku.domain.retention import RetentionPolicy
from omakaiku.entrypoints.erasure import Eraser
from omakaiku.entrypoints.retention import RetentionJob

SERVICE = "omakaikuretention"
LOOKUP = b"l" * 32
DISTRIBUTOR = UUID("3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14")
NOW = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
POLICY = RetentionPolicy(keep_months=24, notice=timedelta(days=30))


class RecordingMailer:
    def __init__(self, outcome: str = "sent") -> None:
        self.outcome = outcome
        self.sent: list[tuple[str, str, str, str]] = []

    async def send(self, to: str, subject: str, body: str, *, language: str):
        await asyncio.sleep(0.01)  # an SMTP round trip, so two jobs overlap
        self.sent.append((to, subject, body, language))
        return self.outcome, None


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
async def pool(own_database):
    async with own_database(SERVICE) as pool:
        yield pool


@pytest.fixture(scope="module")
def app(namespace, pool) -> OmaKaikuApplication:
    app = OmaKaikuApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                   "MAPPER_TOPIC": get_topic(MetaMapper)})
    store = PostgresKeyStore(namespace.settings.service_database_url(SERVICE))
    app.vault = Vault(store, b"m" * 32, LOOKUP)
    return app


@pytest.fixture
async def clean(pool):
    async with pool.acquire() as conn:
        for table in ("card_view", "retention_notices", "erasures", "idempotency_keys",
                      "mail_deliveries"):
            await conn.execute(f"DELETE FROM {table}")
    return pool


def job(pool, app, mailer, clock) -> RetentionJob:
    return RetentionJob(pool, app, Eraser(pool, app, LOOKUP), mailer, POLICY, now=clock)


async def card(pool, *, status: str = "open", closed_at: datetime | None = None,
               valid_until: date = date(2030, 12, 31)) -> str:
    number = f"RET-{uuid4().hex[:6].upper()}"
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO card_view (card_number, issuer, status, version, valid_until, "
            "closed_at) VALUES ($1, $2, $3, 1, $4, $5)",
            number, DISTRIBUTOR, status, valid_until, closed_at)
    return number


async def account(app, card_number: str, *, language: str = "fi",
                  account_id: UUID | None = None) -> tuple[UUID, str]:
    email = f"holder.{uuid4().hex[:8]}@example.org"
    personal = PersonalData(first_name="Aino", last_name="Virtanen", email=email, phone=None,
                            municipality="Imatra")
    made = await asyncio.to_thread(app.activate_account, account_id=account_id or uuid4(),
                                   card_number=card_number, personal=personal,
                                   language=language, activated_by=DISTRIBUTOR)
    return made.id, email


async def key_row(pool, account_id: UUID) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM holder_keys WHERE account_id = $1",
                                        account_id))


async def test_holders_are_told_first_and_erased_after_the_notice_period(clean, app):
    pool, clock, mailer = clean, Clock(), RecordingMailer()
    closed = await card(pool, status="closed", closed_at=datetime(2025, 6, 20, tzinfo=UTC))
    expired = await card(pool, valid_until=date(2025, 6, 15))
    still_valid = await card(pool)
    ended_recently = await card(pool, status="closed", closed_at=datetime(2026, 1, 1,
                                                                          tzinfo=UTC))
    (closed_id, closed_email), (expired_id, _) = (await account(app, closed),
                                                  await account(app, expired, language="sv"))
    kept = [(await account(app, still_valid))[0], (await account(app, ended_recently))[0]]

    report = await job(pool, app, mailer, clock).round()
    assert sorted(report.notified) == sorted([closed_id, expired_id]) and not report.erased
    by_address = {to: (subject, body, language) for to, subject, body, language in mailer.sent}
    subject, body, language = by_address[closed_email]
    assert language == "fi" and "poistetaan" in subject and "Aino" in body
    assert "20.6.2025" in body and "1.7.2027" in body  # ended; now + 30 days
    assert any(lang == "sv" and "raderas" in subj for _, subj, _, lang in mailer.sent)

    clock.now += timedelta(days=29)
    report = await job(pool, app, mailer, clock).round()
    assert not report.notified and not report.erased and len(mailer.sent) == 2  # told once

    clock.now += timedelta(days=1)
    report = await job(pool, app, mailer, clock).round()
    assert sorted(report.erased) == sorted([closed_id, expired_id])
    for erased in (closed_id, expired_id):
        assert not await key_row(pool, erased)
        with pytest.raises(NotFound):
            await asyncio.to_thread(app.get_account, erased)
    for live in kept:
        assert await key_row(pool, live)
        await asyncio.to_thread(app.get_profile, live)

    async with pool.acquire() as conn:
        audit = [dict(row) for row in await conn.fetch("SELECT * FROM erasures")]
        notices = await conn.fetchval("SELECT count(*) FROM retention_notices")
    assert sorted(row["reason"] for row in audit) == ["retention-card-closed",
                                                      "retention-card-expired"]
    assert all(row["erased_by"] == "retention" and row["completed_at"] for row in audit)
    text = repr(audit)
    for secret in (str(closed_id), str(expired_id), closed, expired, closed_email, "Aino"):
        assert secret not in text
    assert notices == 0

    report = await job(pool, app, mailer, clock).round()  # settled: nothing more to do
    assert (report.notified, report.erased, report.settled) == ([], [], 0)


async def test_a_failed_e_mail_is_tried_again_and_the_erasure_waits_for_it(clean, app):
    pool, clock = clean, Clock()
    closed = await card(pool, status="closed", closed_at=datetime(2024, 1, 1, tzinfo=UTC))
    account_id, _ = await account(app, closed)
    failing = RecordingMailer("failed")
    assert not (await job(pool, app, failing, clock).round()).notified
    clock.now += timedelta(days=60)
    report = await job(pool, app, failing, clock).round()
    assert not report.notified and not report.erased and len(failing.sent) == 2
    assert await key_row(pool, account_id)

    working = RecordingMailer()
    assert (await job(pool, app, working, clock).round()).notified == [account_id]
    clock.now += timedelta(days=30)
    assert (await job(pool, app, working, clock).round()).erased == [account_id]


async def test_two_workers_at_once_tell_a_holder_once(clean, app):
    pool, clock, mailer = clean, Clock(), RecordingMailer()
    for _ in range(3):
        await account(app, await card(pool, status="closed",
                                      closed_at=datetime(2024, 1, 1, tzinfo=UTC)))
    reports = await asyncio.gather(*(job(pool, app, mailer, clock).round() for _ in range(2)))
    assert sum(len(report.notified) for report in reports) == 3
    assert len(mailer.sent) == 3


async def test_every_ended_card_is_read_however_many_there_are(clean, app):
    from omakaiku.adapters.retention import ended_cards

    pool = clean
    made = {await card(pool, status="closed", closed_at=datetime(2024, 1, 1, tzinfo=UTC))
            for _ in range(7)}
    await card(pool)  # open: not read
    read = [row["card_number"] async for row in ended_cards(pool, NOW, batch=3)]
    assert sorted(read) == sorted(made)


async def test_a_replaced_card_leaves_its_account_alone(clean, app):
    """The old card is closed, but the account lives on on the new one."""
    pool, clock, mailer = clean, Clock(), RecordingMailer()
    old = await card(pool, status="closed", closed_at=datetime(2024, 1, 1, tzinfo=UTC))
    new = await card(pool)
    account_id, _ = await account(app, old)
    await asyncio.to_thread(app.move_card, old, new)
    report = await job(pool, app, mailer, clock).round()
    assert (report.notified, report.erased, report.settled) == ([], [], 1)
    assert await key_row(pool, account_id) and not mailer.sent


async def test_erasure_purges_the_account_s_stored_answers(clean, app):
    """The holder's own, and the distributor's POST /accounts that made the
    account (its id derives from the key; the row keeps a hash of the body)."""
    pool = clean
    key = f"activation-{uuid4()}"
    account_id = uuid5(NAMESPACE_URL, f"/accounts/distributor:{DISTRIBUTOR}/{key}")
    account_id, _ = await account(app, await card(pool), account_id=account_id)
    rows = [(f"holder:{account_id}", "k1", "/me/sign-out", b""),
            (f"distributor:{DISTRIBUTOR}", key, "/accounts", b"{}"),
            (f"distributor:{DISTRIBUTOR}", "k3", "/accounts/erasure",
             f'{{"account_id":"{account_id}"}}'.encode()),
            (f"distributor:{DISTRIBUTOR}", "someone-else", "/accounts", b"{}")]
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO idempotency_keys (principal, key, method, path, request_hash, "
            "status_code, response_body) VALUES ($1, $2, 'POST', $3, 'h', 201, $4)", rows)
    from omakaiku.entrypoints.erasure import HOLDER

    await Eraser(pool, app, LOOKUP).erase(account_id, HOLDER)
    async with pool.acquire() as conn:
        left = [row["key"] for row in await conn.fetch("SELECT key FROM idempotency_keys")]
        audit = await conn.fetch("SELECT erased_by, reason FROM erasures")
    assert left == ["someone-else"]
    assert [tuple(row) for row in audit] == [("holder", "holder-request")]
    await Eraser(pool, app, LOOKUP).erase(account_id, HOLDER)  # repeated: one audit row
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM erasures") == 1
