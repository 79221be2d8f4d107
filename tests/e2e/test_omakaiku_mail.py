"""OmaKaiku with a real SMTP path: the welcome e-mail, password-free sign-in,
notification e-mails, and the privacy promises — canaries never leave omakaiku
(no other database, no JetStream message, no log line), are never in clear even
in omakaiku's own database, and after erasure cannot be recovered at all.

These tests start an SMTP sink (aiosmtpd) and one more omakaiku api process, on
the same namespace, whose mail goes to the sink (KAIKU_OMAKAIKU_SMTP_HOST/PORT):
the welcome e-mails. Sign-in codes are sent by the `system` fixture's omakaiku
worker, never by an api, so they arrive in the system's own sink.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from kaiku_dev.supervisor import ProcessSpec, Supervisor
from kaiku_dev.testing import database_dump, eventually, every_stream_message, free_port

pytestmark = pytest.mark.e2e


@dataclass
class Mail:
    """The sink's mailbox and the omakaiku api process that sends to it; and the
    mailbox of the system's worker, which sends the sign-in codes."""

    directory: Path
    url: str
    supervisor: Supervisor
    log_dir: Path
    codes_directory: Path

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=15)

    def messages(self, to: str) -> list[email.message.EmailMessage]:
        return mailbox(self.directory, to)

    def codes(self, to: str) -> list[email.message.EmailMessage]:
        """The sign-in code e-mails (the worker also sends notifications)."""
        from omakaiku.adapters.mail import TEXTS

        subjects = {subject for subject, _ in TEXTS["signin_code"].values()}
        return [m for m in mailbox(self.codes_directory, to) if m["Subject"] in subjects]

    async def wait_for(self, to: str, count: int = 1) -> list[email.message.EmailMessage]:
        async def arrived():
            found = self.messages(to)
            return found if len(found) >= count else None

        return await eventually(arrived, message=f"{count} e-mail(s) in the SMTP sink")

    async def wait_for_code(self, to: str, count: int = 1) -> str:
        """The newest of ``count`` sign-in codes sent to ``to``."""
        async def arrived():
            found = self.codes(to)
            return found if len(found) >= count else None

        found = await eventually(arrived, message=f"{count} sign-in code(s) from the worker")
        return code_in(found[-1])

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.iterdir()))


def omakaiku_keys(system):
    """omakaiku's settings with this run's keys, for reading its data from here."""
    from omakaiku.config import OmaKaikuSettings

    keys = system.ns.keys.values
    return OmaKaikuSettings(master_key=keys["KAIKU_OMAKAIKU_MASTER_KEY"],
                            lookup_key=keys["KAIKU_OMAKAIKU_LOOKUP_KEY"],
                            card_signing_key=keys["KAIKU_OMAKAIKU_CARD_SIGNING_KEY"])


def mailbox(directory: Path, to: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            found.append(message)
    return found


async def queue_drained(system) -> None:
    """The worker has taken every queued code request: no code can come any more
    for an address that had no account when its request was taken."""
    async def empty() -> bool:
        conn = await system.database("omakaiku")
        try:
            return await conn.fetchval("SELECT count(*) FROM signin_requests") == 0
        finally:
            await conn.close()

    await eventually(empty, message="the worker to take every queued code request")


@pytest.fixture(scope="module")
def mail(system, tmp_path_factory):
    from omakaiku.smtp_sink import start

    work = tmp_path_factory.mktemp("omakaiku-mail")
    sink = start(work / "mailbox")
    port = free_port()
    supervisor = Supervisor(system.supervisor.base_env, work / "logs")
    supervisor.add(ProcessSpec("omakaiku-api-smtp", [sys.executable, "-m", "omakaiku", "api"], {
        **system.ns.keys.env_for("omakaiku"),
        "KAIKU_HTTP_PORT": str(port),
        "KAIKU_OMAKAIKU_SMTP_HOST": "127.0.0.1",
        "KAIKU_OMAKAIKU_SMTP_PORT": str(sink.port),
        "KAIKU_OMAKAIKU_PUBLIC_URL": "https://oma.kaikukortti.test",
    }, port))
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=90)
        yield Mail(work / "mailbox", f"http://127.0.0.1:{port}", supervisor, work / "logs",
                   system.mail_dir)
    finally:
        supervisor.stop_all()
        sink.stop()


def unique_email(tag: str = "") -> str:
    return f"holder.{tag or uuid.uuid4().hex[:10]}@example.org"


async def activate(world, mail: Mail, card_number: str, **overrides) -> str:
    body = {"card_number": card_number, "first_name": "Aino", "last_name": "Virtanen",
            "email": unique_email(), "municipality": "Imatra", "language": "fi", **overrides}
    async with mail.client(world.distributor_token) as client:
        response = await client.post("/accounts", json=body)
    assert response.status_code == 201, response.text
    return response.json()["account_id"]


def code_in(message) -> str:
    return re.search(r"\b(\d{6})\b", message.get_content()).group(1)


# --- activation and sign-in ---------------------------------------------------------


async def test_welcome_email_with_a_one_time_sign_in_link(world, mail):
    card = await world.issue_card()
    address = unique_email()
    account_id = await activate(world, mail, card["card_number"], email=address,
                                first_name="Ville", language="sv")
    (welcome,) = await mail.wait_for(address)
    assert welcome["Subject"] == "Välkommen till OmaKaiku"
    body = welcome.get_content()
    assert "Hej Ville" in body
    link = re.search(r"https://oma\.kaikukortti\.test/signin#link_token=(\S+)", body)
    assert link, body
    async with mail.client() as client:
        signed_in = await client.post("/auth/token", json={"link_token": link.group(1)})
        reused = await client.post("/auth/token", json={"link_token": link.group(1)})
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["account_id"] == account_id
    assert reused.status_code == 401 and "signin-refused" in reused.json()["type"]
    async with world.system.client("omakaiku", signed_in.json()["access_token"]) as client:
        me = await client.get("/me")
    assert me.status_code == 200 and me.json()["email"] == address
    # The outcome is recorded for the account, without the address. (Bulletins
    # other tests published are current, so they reach the new account too.)
    conn = await world.system.database("omakaiku")
    try:
        rows = await conn.fetch("SELECT kind, outcome FROM mail_deliveries "
                                "WHERE account_id = $1 AND kind <> 'bulletin'",
                                UUID(account_id))
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("welcome", "sent")]


async def test_sign_in_with_an_emailed_code(world, mail):
    card = await world.issue_card()
    address = unique_email()
    account_id = await activate(world, mail, card["card_number"], email=address, language="en")
    await mail.wait_for(address)  # the welcome
    async with mail.client() as client:
        asked = await client.post("/auth/code", json={"email": address.upper()})
    assert asked.status_code == 202, asked.text
    await mail.wait_for_code(address)
    message = mail.codes(address)[-1]
    assert message["Subject"] == "Your OmaKaiku sign-in code"
    code = code_in(message)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    async with mail.client() as client:
        refused = await client.post("/auth/token", json={"email": address, "code": wrong})
        token = await client.post("/auth/token", json={"email": address, "code": code})
        again = await client.post("/auth/token", json={"email": address, "code": code})
        malformed = await client.post("/auth/token", json={"email": address, "code": "12ab"})
    assert refused.status_code == 401, refused.text
    assert token.status_code == 200, token.text
    assert token.json()["account_id"] == account_id
    assert again.status_code == 401 and again.json() == refused.json()  # used: the same words
    assert malformed.status_code == 422
    async with world.system.client("omakaiku", token.json()["access_token"]) as client:
        assert (await client.get("/me")).json()["account_id"] == account_id


async def test_unknown_addresses_get_the_same_answer_and_no_mail(world, mail):
    address = unique_email()
    async with mail.client() as client:
        asked = await client.post("/auth/code", json={"email": address})
        guessed = await client.post("/auth/token", json={"email": address, "code": "123456"})
    assert asked.status_code == 202
    assert asked.json() == {"detail": "If this address belongs to an OmaKaiku account, a "
                            "sign-in code is on its way. It is valid for 10 minutes and works "
                            "once."}
    assert guessed.status_code == 401
    await queue_drained(world.system)
    assert mail.messages(address) == mailbox(mail.codes_directory, address) == []


async def test_wrong_codes_and_code_requests_are_rate_limited(world, mail):
    card = await world.issue_card()
    address = unique_email()
    await activate(world, mail, card["card_number"], email=address)
    await mail.wait_for(address)
    async with mail.client() as client:
        assert (await client.post("/auth/code", json={"email": address})).status_code == 202
        code = await mail.wait_for_code(address)
        wrong = f"{(int(code) + 7) % 1_000_000:06d}"
        answers = [(await client.post("/auth/token", json={"email": address, "code": wrong}))
                   .status_code for _ in range(6)]
        # Even the right code is refused now: guessing cannot win by persistence.
        right = await client.post("/auth/token", json={"email": address, "code": code})
        requests = [(await client.post("/auth/code", json={"email": address})).status_code
                    for _ in range(5)]
    assert answers == [401] * 5 + [429], answers
    assert right.status_code == 429 and right.headers["retry-after"] == "900"
    assert requests == [202] * 4 + [429], requests  # 5 per 15 min, the first counted above


async def test_the_code_is_bound_to_its_address(world, mail):
    first, second = await world.issue_card(), await world.issue_card()
    a, b = unique_email(), unique_email()
    await activate(world, mail, first["card_number"], email=a)
    await activate(world, mail, second["card_number"], email=b)
    async with mail.client() as client:
        await client.post("/auth/code", json={"email": a})
        code = await mail.wait_for_code(a)
        stolen = await client.post("/auth/token", json={"email": b, "code": code})
    assert stolen.status_code == 401


# --- notification e-mails --------------------------------------------------------


async def test_notifications_are_emailed_in_the_holders_language(world, mail):
    """Delivery end to end through the omakaiku worker of `system` (which has no
    SMTP: it records the outcome), and through a Deliverer with the real SMTP
    client to the sink for the message itself."""
    from kaiku_shared.db import create_pool
    from omakaiku.adapters.delivery import Deliverer, notification_text
    from omakaiku.adapters.mail import Mailer
    from omakaiku.bootstrap import build_application
    from omakaiku.config import OmaKaikuSettings

    system = world.system
    card = await world.issue_card()
    address = unique_email()
    account_id = await activate(world, mail, card["card_number"], email=address, language="sv")
    token = world.holder_token(account_id)
    async with system.client("omakaiku", token) as client:
        # A genre no other test's exact-count check uses (theirs: dance, sports, cinema,
        # literature, museums), so this subscriber never spoils their counts.
        response = await client.put("/me/subscriptions", json={
            "genres": ["visual_arts"], "subgenres": ["photography"]})
    assert response.status_code == 200, response.text
    tag = uuid.uuid4().hex[:6]

    async def subscribed() -> bool:  # notifications must know before the offering comes
        conn = await system.database("notifications")
        try:
            return bool(await conn.fetchval(
                "SELECT 1 FROM subscription_view WHERE account_id = $1", UUID(account_id)))
        finally:
            await conn.close()

    await eventually(subscribed, message="notifications to learn the subscription")
    offering_id = await world.publish_offering(title=f"Valokuvanäyttely {tag}",
                                               genres=["visual_arts"], subgenres=["photography"])

    async def outcome():
        conn = await system.database("omakaiku")
        try:
            return await conn.fetchval(
                "SELECT outcome FROM mail_deliveries WHERE account_id = $1 AND kind = "
                "'new_offering' AND reference = $2", UUID(account_id), offering_id)
        finally:
            await conn.close()

    # The system's worker mails through the system's own SMTP sink.
    assert await eventually(outcome, timeout=30,
                            message="the worker to handle the notification") == "sent"

    settings = system.ns.settings
    smtp = OmaKaikuSettings(smtp_host="127.0.0.1", smtp_port=_sink_port(mail))
    application = await asyncio.to_thread(build_application, settings, omakaiku_keys(system))
    pool = await create_pool(settings, "omakaiku", size=2)
    try:
        deliverer = Deliverer(pool, Mailer(smtp), "https://oma.kaikukortti.test",
                              application.get_profile)
        params = {"title": f"Valokuvanäyttely {tag}", "venue_name": "Imatran Teatteri",
                  "starts_at": "2026-12-24T17:00:00+00:00"}
        result = await deliverer.deliver(UUID(account_id), "new_offering", f"test-{tag}",
                                         lambda lang: notification_text("new_offering",
                                                                        params, lang))
        again = await deliverer.deliver(UUID(account_id), "new_offering", f"test-{tag}",
                                        lambda lang: ("x", "y"))
    finally:
        await pool.close()
        application.vault.store.close()
    assert result == again == "sent"
    async with system.client("omakaiku", token) as client:  # leave no subscriber behind
        assert (await client.put("/me/subscriptions", json={"genres": []})).status_code == 200
    messages = await mail.wait_for(address, 2)
    assert len(mail.messages(address)) == 2  # the welcome + one notification, not two
    assert messages[-1]["Subject"] == f"Kaikukortet: Nytt utbud: Valokuvanäyttely {tag}"
    assert "24.12.2026" in messages[-1].get_content()


def _sink_port(mail: Mail) -> int:
    spec = mail.supervisor.specs["omakaiku-api-smtp"]
    return int(spec.env["KAIKU_OMAKAIKU_SMTP_PORT"])


# --- privacy ----------------------------------------------------------------------


def canaries_for(tag: str) -> dict[str, str]:
    return {
        "first_name": f"Kanarialintu{tag}",
        "last_name": f"Sukunimikanaria{tag}",
        "email": f"canary.{tag}@example.org",
        "phone": f"+358 40 {int(tag[:7], 16) % 10_000_000:07d}",
        "municipality": f"Kanariakylä{tag}",
    }


def needles(canaries: dict[str, str]) -> dict[str, str]:
    found = {}
    for field, value in canaries.items():
        found[field] = value
        found[f"{field} (hex)"] = value.encode().hex()
        found[f"{field} (lower)"] = value.lower()
    return found


async def test_canaries_never_leave_omakaiku_and_erasure_makes_them_unrecoverable(
        world, mail):
    from omakaiku.bootstrap import build_application

    system = world.system
    tag = uuid.uuid4().hex[:12]
    canaries = canaries_for(tag)
    card = await world.issue_card(children=1)
    account_id = await activate(world, mail, card["card_number"], **canaries)
    (welcome,) = await mail.wait_for(canaries["email"])
    async with mail.client() as client:
        await client.post("/auth/code", json={"email": canaries["email"]})
        code = await mail.wait_for_code(canaries["email"])
        signed_in = await client.post("/auth/token",
                                      json={"email": canaries["email"], "code": code})
    token = signed_in.json()["access_token"]
    offering_id = await world.publish_offering(title=f"Kanariakonsertti {tag}")
    await world.wait_for_card_in_venues(card["card_number"])
    ticket = await world.register_ticket(card["card_number"], offering_id, children=1)
    assert ticket.status_code == 201, ticket.text
    ticket_id = ticket.json()["ticket_id"]
    async with system.client("omakaiku", token) as client:
        me = (await client.get("/me")).json()
        await client.put("/me/subscriptions", json={"genres": ["music"],
                                                    "only_my_region": True})
        assert (await client.get("/me/card")).status_code == 200

        async def in_history():
            rows = (await client.get("/me/history")).json()
            return any(r["ticket_id"] == ticket_id for r in rows)

        await eventually(in_history, message="the ticket in the holder's history")
        assert (await client.post(f"/me/tickets/{ticket_id}/cancellation")).status_code == 202

        async def cancelled():
            rows = (await client.get("/me/history")).json()
            return any(r["ticket_id"] == ticket_id and r["status"] == "cancelled" for r in rows)

        await eventually(cancelled, message="venues to confirm the cancellation")
    # Positive controls: the data is where it belongs, and the search can find it.
    assert {k: me[k] for k in canaries} == canaries
    assert canaries["first_name"] in welcome.get_content()

    # 1. Nowhere else: other databases, every stream message, every log line.
    haystacks = {f"{s} database": await database_dump(system, s)
                 for s in ("cards", "venues", "notifications")}
    haystacks["NATS messages, headers and subjects"] = await every_stream_message(system)
    haystacks["process logs"] = system.log_text() + mail.log_text()
    # 2. Not in clear even in omakaiku's own database (event store included).
    omakaiku = await database_dump(system, "omakaiku")
    haystacks["omakaiku database (clear text)"] = omakaiku
    assert card["card_number"] in omakaiku, "positive control for the omakaiku dump"
    for where, text in haystacks.items():
        assert text, f"{where}: nothing to search — the check would prove nothing"
        for field, needle in needles(canaries).items():
            assert needle not in text, f"{field} canary found in {where}"

    # The sealed copy in the event store opens with the holder's key — before erasure.
    application = await asyncio.to_thread(build_application, system.ns.settings,
                                          omakaiku_keys(system))
    try:
        conn = await system.database("omakaiku")
        try:
            states = [bytes(r["state"]) for r in await conn.fetch(
                "SELECT state FROM omakaiku_events WHERE originator_id = $1",
                UUID(account_id))]
        finally:
            await conn.close()
        sealed = [re.search(rb'"(v1:[A-Za-z0-9+/=]+)"', s) for s in states]
        sealed = [m.group(1).decode() for m in sealed if m]
        assert len(sealed) == 1
        opened = await asyncio.to_thread(application.vault.open, UUID(account_id), sealed[0])
        assert opened["email"] == canaries["email"]

        # 3. Erasure by the holder.
        async with system.client("omakaiku", token) as client:
            erased = await client.delete("/me")
            after = await client.get("/me")
            repeated = await client.delete("/me")
        assert erased.status_code == 202, erased.text
        assert after.status_code == 404
        # Erasing again is harmless: 202 while the token still passes, 401 once
        # the erasure's revocation has reached the api (within about 2 s).
        assert repeated.status_code in (202, 401), repeated.text

        from omakaiku.adapters.vault import KeyErased

        with pytest.raises(KeyErased):
            await asyncio.to_thread(application.vault.open, UUID(account_id), sealed[0])
    finally:
        application.vault.store.close()
    conn = await system.database("omakaiku")
    try:
        assert await conn.fetchval("SELECT count(*) FROM holder_keys WHERE account_id = $1",
                                   UUID(account_id)) == 0
        assert await conn.fetchval("SELECT count(*) FROM mail_deliveries WHERE account_id = $1",
                                   UUID(account_id)) == 0
        assert await conn.fetchval("SELECT count(*) FROM history_view WHERE card_number = $1",
                                   card["card_number"]) == 0
    finally:
        await conn.close()
    omakaiku = await database_dump(system, "omakaiku")
    for field, needle in needles(canaries).items():
        assert needle not in omakaiku, f"{field} canary recoverable from omakaiku after erasure"
    async with mail.client() as client:
        assert (await client.post("/auth/code", json={"email": canaries["email"]})
                ).status_code == 202
    await queue_drained(system)
    assert len(mail.codes(canaries["email"])) == 1, "no code for an erased account"

    # 4. Every service drops what it derived: notifications forgets the account.
    async def notifications_forgot() -> bool:
        dump = await database_dump(system, "notifications")
        return account_id not in dump.replace("-", "") and account_id not in dump

    await eventually(notifications_forgot, timeout=30,
                     message="notifications to drop the erased account's data")

    # 5. The system keeps working: the same card gets a new account and is used.
    new_account = await world.activate_account(card["card_number"],
                                               email=unique_email())
    assert new_account != account_id
    offering_id = await world.publish_offering(title=f"Elämä jatkuu {tag}")
    response = await world.register_ticket(card["card_number"], offering_id)
    assert response.status_code == 201, response.text

    async def new_history():
        rows = await world.history(new_account)
        return [r for r in rows if r["ticket_id"] == response.json()["ticket_id"]]

    await eventually(new_history, message="the new account's history")


async def test_a_distributor_erases_on_the_holders_request(world, mail):
    system = world.system
    card = await world.issue_card()
    account_id = await world.activate_account(card["card_number"], email=unique_email())
    other_distributor = system.token("distributor", organisation_id=str(uuid.uuid4()))
    async with system.client("omakaiku", other_distributor) as client:
        foreign = await client.post("/accounts/erasure", json={"card_number": card["card_number"]})
    async with system.client("omakaiku", world.holder_token(account_id)) as client:
        holder = await client.post("/accounts/erasure", json={"card_number": card["card_number"]})
    assert foreign.status_code == 403 and holder.status_code == 403
    async with system.client("omakaiku", world.distributor_token) as client:
        erased = await client.post("/accounts/erasure", json={"card_number": card["card_number"]})
        none_left = await client.post("/accounts/erasure",
                                      json={"card_number": card["card_number"]})
    assert erased.status_code == 202, erased.text
    assert erased.json()["account_id"] == account_id
    assert none_left.status_code == 404
    async with system.client("omakaiku", world.holder_token(account_id)) as client:
        assert (await client.get("/me")).status_code == 404

    async def published() -> bool:
        return f'"account_id":"{account_id}"' in (await every_stream_message(system)).replace(
            " ", "") and "account_erased" in await every_stream_message(system)

    await eventually(published, message="AccountErased on the omakaiku stream")


async def test_the_smtp_sink_command_stores_messages_as_eml_files(tmp_path):
    """`python -m omakaiku smtp-sink` (what `kaiku run` starts): a real SMTP
    server that writes each message to a file and serves nothing else."""
    import smtplib
    from email.message import EmailMessage

    port = free_port()
    supervisor = Supervisor({}, tmp_path / "logs", restart_crashed=False)
    supervisor.add(ProcessSpec("smtp-sink", [sys.executable, "-m", "omakaiku", "smtp-sink",
                                             "--dir", str(tmp_path / "mailbox"),
                                             "--port", str(port)], {}))
    supervisor.start_all()
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            "omakaiku@kaikukortti.invalid", "someone@example.org", "Hei")
        message.set_content("Testi")

        async def delivered() -> bool:
            try:
                await asyncio.to_thread(_send, smtplib, port, message)
            except OSError:
                return False  # still starting
            return True

        await eventually(delivered, message="the sink to accept a message")
        (stored,) = (tmp_path / "mailbox").glob("*.eml")
        parsed = email.message_from_bytes(stored.read_bytes(), policy=email.policy.default)
        assert (parsed["To"], parsed["Subject"], parsed.get_content().strip()) == (
            "someone@example.org", "Hei", "Testi")
    finally:
        supervisor.stop_all()
    assert "someone@example.org" not in (tmp_path / "logs" / "smtp-sink.out").read_text()


def _send(smtplib, port: int, message) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(message)
