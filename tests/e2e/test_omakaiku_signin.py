"""OmaKaiku sign-in reveals nobody: asking for a code answers the same, in the same
time, with or without an account; the code comes by e-mail from the worker's
queue; limits per address, per client and overall answer 429 alike for every
address; a code dies after its wrong tries and when it expires, and every
refusal reads the same.

Two more omakaiku api processes run on the `system` namespace with their own
limits (one raised for the timing run, one lowered for the limit tests). Both
trust one proxy hop, so each request can come from its own client address
(X-Forwarded-For). Codes are sent by the system's omakaiku worker into the
system's SMTP sink (`system.mail_dir`), whichever api queued them.
"""

from __future__ import annotations

import email
import email.policy
import random
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from kaiku_dev.supervisor import ProcessSpec, Supervisor
from kaiku_dev.testing import eventually, free_port

pytestmark = pytest.mark.e2e

PER_CLIENT = 3
GLOBAL = 40
TIMING_ROUNDS = 150
WARM_UP_ROUNDS = 20

TIMING_LIMITS = {  # out of the way: the timing run measures the work, not a 429
    "KAIKU_OMAKAIKU_SIGNIN_MAX_REQUESTS": "100000",
    "KAIKU_OMAKAIKU_SIGNIN_MAX_REQUESTS_PER_CLIENT": "100000",
    "KAIKU_OMAKAIKU_SIGNIN_MAX_REQUESTS_GLOBAL": "1000000",
    "KAIKU_OMAKAIKU_SIGNIN_GLOBAL_WINDOW_SECONDS": "7200",
}
LOW_LIMITS = {
    "KAIKU_OMAKAIKU_SIGNIN_MAX_REQUESTS_PER_CLIENT": str(PER_CLIENT),
    "KAIKU_OMAKAIKU_SIGNIN_MAX_REQUESTS_GLOBAL": str(GLOBAL),
    # Its own global counter: a window length no other process uses.
    "KAIKU_OMAKAIKU_SIGNIN_GLOBAL_WINDOW_SECONDS": "3600",
    # Per-address wrong codes out of the way, so a code's own tries show.
    "KAIKU_OMAKAIKU_SIGNIN_MAX_ATTEMPTS": "50",
}


@dataclass
class Apis:
    timing: str
    limits: str


@pytest.fixture(scope="module")
def apis(system, tmp_path_factory):
    work = tmp_path_factory.mktemp("omakaiku-signin")
    supervisor = Supervisor(system.supervisor.base_env, work / "logs")
    ports = {"timing": free_port(), "limits": free_port()}
    for name, limits in (("timing", TIMING_LIMITS), ("limits", LOW_LIMITS)):
        supervisor.add(ProcessSpec(f"omakaiku-api-{name}", [
            sys.executable, "-m", "omakaiku", "api"], {
            **system.ns.keys.env_for("omakaiku"),
            "KAIKU_HTTP_PORT": str(ports[name]),
            "KAIKU_TRUSTED_PROXIES": "127.0.0.1", **limits}, ports[name]))
    supervisor.start_all()
    try:
        supervisor.wait_ready(timeout=90)
        yield Apis(*(f"http://127.0.0.1:{ports[name]}" for name in ("timing", "limits")))
    finally:
        supervisor.stop_all()


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:12]}@example.org"


def fake_clients():
    """Client addresses never used before, as a trusted proxy reports them, each in
    a /64 of its own (an IPv6 host counts by its /64). (Not from `random`:
    pytest-randomly gives every test the same seed.)"""
    while True:
        yield f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"


async def holder_with_account(world, tag: str) -> tuple[str, str]:
    """A new card with an OmaKaiku account: (e-mail address, account id)."""
    card = await world.issue_card()

    async def known_to_omakaiku() -> bool:
        conn = await world.system.database("omakaiku")
        try:
            return bool(await conn.fetchval("SELECT 1 FROM card_view WHERE card_number = $1",
                                            card["card_number"]))
        finally:
            await conn.close()

    # A freshly started system may take longer than activation's own 3 s grace.
    await eventually(known_to_omakaiku, timeout=30, message="omakaiku to learn of the card")
    address = unique_email(tag)
    return address, await world.activate_account(card["card_number"], email=address)


def mail_to(system, to: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(Path(system.mail_dir).glob("*.eml"), key=lambda p: p.stat().st_mtime):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            found.append(message)
    return found


def code_mail_to(system, to: str) -> list[email.message.EmailMessage]:
    """The sign-in code e-mails to ``to``, oldest first (a holder also gets other
    mail: the welcome, and notifications such as a current bulletin)."""
    from omakaiku.adapters.mail import TEXTS

    subjects = {subject for subject, _ in TEXTS["signin_code"].values()}
    return [m for m in mail_to(system, to) if m["Subject"] in subjects]


async def codes_to(system, to: str, count: int, timeout: float = 15) -> list[str]:
    """The codes of the first ``count`` sign-in code e-mails to ``to``, oldest first."""

    async def arrived():
        found = code_mail_to(system, to)
        return found if len(found) >= count else None

    found = await eventually(arrived, timeout=timeout,
                             message=f"{count} sign-in code(s) in the SMTP sink")
    return [re.search(r"\b(\d{6})\b", m.get_content()).group(1) for m in found]


async def queue_drained(system, timeout: float = 15) -> None:
    """Every queued request has been taken: no more code can come for an address
    that had no account when its request was taken."""
    async def empty() -> bool:
        conn = await system.database("omakaiku")
        try:
            return await conn.fetchval("SELECT count(*) FROM signin_requests") == 0
        finally:
            await conn.close()

    await eventually(empty, timeout=timeout, message="the worker to take every request")


async def ask(client: httpx.AsyncClient, address: str, from_client: str,
              **extra) -> httpx.Response:
    return await client.post("/auth/code", json={"email": address, **extra},
                             headers={"X-Forwarded-For": from_client})


# --- the code by e-mail -------------------------------------------------------------


async def test_a_code_comes_by_mail_for_an_account_and_nothing_for_an_unknown_address(world):
    system = world.system
    known, account_id = await holder_with_account(world, "known")  # a Finnish account
    unknown = unique_email("unknown")
    async with system.client("omakaiku") as client:
        asked_at = time.monotonic()
        for_known = await client.post("/auth/code", json={"email": known, "language": "sv"})
        for_unknown = await client.post("/auth/code", json={"email": unknown, "language": "sv"})
        (code,) = await codes_to(system, known, 1)
        delay = time.monotonic() - asked_at
        signed_in = await client.post("/auth/token", json={"email": known, "code": code})
    print(f"\nthe code arrived {delay * 1000:.0f} ms after it was asked for")
    assert for_known.status_code == for_unknown.status_code == 202
    assert for_known.content == for_unknown.content
    assert for_known.headers["content-type"] == for_unknown.headers["content-type"]
    # The holder's chosen language, not the account's.
    assert code_mail_to(system, known)[-1]["Subject"] == "Inloggningskod till OmaKaiku"
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["account_id"] == account_id
    await queue_drained(system)
    assert mail_to(system, unknown) == []


async def test_asking_takes_the_same_time_with_or_without_an_account(world, apis):
    system = world.system
    known, _ = await holder_with_account(world, "timed")
    unknown = unique_email("nobody")
    clients = fake_clients()
    took: dict[str, list[float]] = {known: [], unknown: []}
    bodies = set()
    async with httpx.AsyncClient(base_url=apis.timing, timeout=15) as client:
        for n in range(WARM_UP_ROUNDS + TIMING_ROUNDS):
            pair = [known, unknown]
            random.shuffle(pair)  # neither always goes first
            for address in pair:
                started = time.perf_counter()
                answer = await ask(client, address, next(clients))
                elapsed = time.perf_counter() - started
                bodies.add((answer.status_code, answer.content))
                if n >= WARM_UP_ROUNDS:
                    took[address].append(elapsed)
    with_account = statistics.median(took[known]) * 1000
    without = statistics.median(took[unknown]) * 1000
    print(f"\nPOST /auth/code medians over {TIMING_ROUNDS} each: with an account "
          f"{with_account:.2f} ms, without {without:.2f} ms "
          f"(difference {abs(with_account - without):.2f} ms)")
    assert len(bodies) == 1 and next(iter(bodies))[0] == 202, bodies
    assert abs(with_account - without) <= 3.0
    # Every request for the known address was sent exactly once; none for the other.
    rounds = WARM_UP_ROUNDS + TIMING_ROUNDS
    await codes_to(system, known, rounds, timeout=120)
    await queue_drained(system, timeout=120)
    assert len(code_mail_to(system, known)) == rounds
    assert mail_to(system, unknown) == []


# --- limits -------------------------------------------------------------------------


async def test_the_per_address_limit_answers_alike_with_or_without_an_account(world, apis):
    known, _ = await holder_with_account(world, "limited")
    unknown = unique_email("limitless")
    clients = fake_clients()
    answers: dict[str, list[httpx.Response]] = {known: [], unknown: []}
    async with httpx.AsyncClient(base_url=apis.limits, timeout=15) as client:
        for _ in range(6):
            for address in (known, unknown):
                answers[address].append(await ask(client, address, next(clients)))
    statuses = {a: [r.status_code for r in rs] for a, rs in answers.items()}
    assert statuses[known] == statuses[unknown] == [202] * 5 + [429], statuses
    refused = answers[known][-1], answers[unknown][-1]
    assert refused[0].json() == refused[1].json()
    assert "rate-limited" in refused[0].json()["type"]
    waits = [int(r.headers["retry-after"]) for r in refused]
    assert all(1 <= wait <= 900 for wait in waits) and abs(waits[0] - waits[1]) <= 1
    await codes_to(world.system, known, 5)


async def test_the_per_client_limit_counts_the_address_the_trusted_proxy_saw(apis):
    clients = fake_clients()
    one, other = next(clients), next(clients)
    async with httpx.AsyncClient(base_url=apis.limits, timeout=15) as client:
        answers = [await ask(client, unique_email("c"), one) for _ in range(PER_CLIENT + 1)]
        # What the client itself puts in front of the proxy's entry is not believed.
        spoofed = await client.post("/auth/code", json={"email": unique_email("c")},
                                    headers={"X-Forwarded-For": f"{other}, {one}"})
        elsewhere = await ask(client, unique_email("c"), other)
    assert [a.status_code for a in answers] == [202] * PER_CLIENT + [429]
    assert "your network" in answers[-1].json()["detail"]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 900
    assert spoofed.status_code == 429
    assert elsewhere.status_code == 202


# --- codes --------------------------------------------------------------------------


async def test_a_code_dies_after_five_wrong_tries_and_on_expiry_and_refusals_read_alike(
        world, apis):
    system = world.system
    known, account_id = await holder_with_account(world, "tries")
    refusals = []
    # Codes are asked through the system's api, signed in with through the api
    # whose per-address limit of wrong codes is out of the way.
    async with httpx.AsyncClient(base_url=apis.limits, timeout=15) as client, \
            system.client("omakaiku") as asking:
        async def token(address: str, code: str) -> httpx.Response:
            return await client.post("/auth/token", json={"email": address, "code": code})

        async def ask_code() -> int:
            return (await asking.post("/auth/code", json={"email": known})).status_code

        # Before any code: no account, and an account without a code.
        refusals.append(await token(unique_email("nobody"), "123456"))
        refusals.append(await token(known, "123456"))
        assert await ask_code() == 202
        (first,) = await codes_to(system, known, 1)
        wrong = f"{(int(first) + 1) % 1_000_000:06d}"
        refusals += [await token(known, wrong) for _ in range(5)]
        refusals.append(await token(known, first))  # right, but voided by the wrong tries

        assert await ask_code() == 202
        second = (await codes_to(system, known, 2))[-1]
        signed_in = await token(known, second)
        refusals.append(await token(known, second))  # used

        assert await ask_code() == 202
        third = (await codes_to(system, known, 3))[-1]
        await _expire_codes(system, account_id)  # as if its ten minutes had passed
        refusals.append(await token(known, third))
    assert signed_in.status_code == 200, signed_in.text
    assert [r.status_code for r in refusals] == [401] * len(refusals)
    assert all(r.json() == refusals[0].json() for r in refusals), [r.json() for r in refusals]
    assert "signin-refused" in refusals[0].json()["type"]


async def _expire_codes(system, account_id: str) -> None:
    conn = await system.database("omakaiku")
    try:
        aged = await conn.execute(
            "UPDATE signin_codes SET expires_at = now() - interval '1 second' "
            "WHERE account_id = $1 AND kind = 'code' AND used_at IS NULL", UUID(account_id))
    finally:
        await conn.close()
    assert aged == "UPDATE 1", aged


# Last: it uses up the limits api's allowance for the hour.
async def test_the_global_limit_stops_every_client_and_address(apis):
    clients = fake_clients()
    async with httpx.AsyncClient(base_url=apis.limits, timeout=15) as client:
        answers = []
        # Earlier tests may have used part of this hour's allowance; a new hour
        # may start meanwhile: either way a 429 comes within two allowances.
        while len(answers) <= 2 * GLOBAL and (not answers or answers[-1].status_code == 202):
            answers.append(await ask(client, unique_email("g"), next(clients)))
    last = answers[-1]
    assert last.status_code == 429, [a.status_code for a in answers]
    assert {a.status_code for a in answers[:-1]} <= {202}
    assert "busy" in last.json()["detail"]
    assert 1 <= int(last.headers["retry-after"]) <= 3600
