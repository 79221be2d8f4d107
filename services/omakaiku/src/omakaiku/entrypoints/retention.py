"""The worker's retention job: accounts whose card ended long ago are announced
to their holder by e-mail and, after the notice period, erased through the same
``Eraser`` as ``DELETE /me``. The rule is ``domain.retention``.

One round at a time per database (an advisory lock), so several workers never
warn a holder twice; a notice is recorded once sent, and a failed e-mail is
tried again in the next round, the erasure waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from uuid import UUID

import asyncpg

from kaiku_shared.db import OutageWatch

from ..adapters import retention as tables
from ..adapters.mail import Mailer, record_mail, render
from ..application.app import NotFound, OmaKaikuApplication
from ..domain.model import Account
from ..domain.retention import FINLAND, RetentionPolicy, Step, card_ended_at
from .erasure import Eraser, by_retention

log = logging.getLogger("omakaiku.retention")

MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")
# Mail that counts as telling the holder: sent, or no mail system at all (a
# development run; production refuses to start without one).
TOLD = ("sent", "not_configured")


def local_date(day: date, language: str) -> str:
    if language == "en":
        return f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"
    return f"{day.day}.{day.month}.{day.year}"


@dataclass
class RoundReport:
    notified: list[UUID] = field(default_factory=list)
    erased: list[UUID] = field(default_factory=list)
    settled: int = 0


class RetentionJob:
    def __init__(self, pool: asyncpg.Pool, application: OmaKaikuApplication, eraser: Eraser,
                 mailer: Mailer, policy: RetentionPolicy, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.pool = pool
        self.application = application
        self.eraser = eraser
        self.mailer = mailer
        self.policy = policy
        self.now = now

    async def run(self, every_seconds: float, stop: asyncio.Event) -> None:
        """Rounds until ``stop``; a database outage waits and tries again."""
        watch = OutageWatch("retention")
        while not stop.is_set():
            wait = every_seconds
            try:
                report = await self.round()
                watch.succeeded()
                if report.notified or report.erased:
                    log.info("retention round", extra={"notified": len(report.notified),
                                                       "erased": len(report.erased)})
            except Exception as error:  # noqa: BLE001 - OutageWatch logs it; tried again
                wait = watch.failed(error)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    async def round(self) -> RoundReport:
        report = RoundReport()
        async with tables.exclusive_round(self.pool) as mine:
            if not mine:
                return report  # another worker is at it
            now = self.now()
            async for card in tables.ended_cards(self.pool, self.policy.ended_before(now)):
                try:
                    await self._card(card, now, report)
                except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                    raise  # an outage: the round stops and waits
                except Exception:  # noqa: BLE001 - one card's failure must not stop the rest
                    log.exception("retention failed for one card; the others go on")
        return report

    async def _card(self, card: asyncpg.Record, now: datetime, report: RoundReport) -> None:
        ended_at = card_ended_at(status=card["status"], closed_at=card["closed_at"],
                                 valid_until=card["valid_until"])
        assert ended_at is not None  # the query chose ended cards only
        account = await self._live_account_on(card["card_number"])
        if account is None:
            await tables.settle(self.pool, card["card_number"], ended_at)
            report.settled += 1
            return
        notice = await tables.notice(self.pool, account.id)
        notified_at = (notice["notified_at"] if notice is not None
                       and notice["card_ended_at"] == ended_at else None)
        step = self.policy.step(ended_at=ended_at, now=now, notified_at=notified_at)
        if step is Step.NOTIFY and await self._notify(account, ended_at, now):
            report.notified.append(account.id)
        elif step is Step.ERASE:
            closed = card["status"] == "closed" and card["closed_at"] == ended_at
            await self.eraser.erase(account.id,
                                    by_retention("card-closed" if closed else "card-expired"))
            await tables.settle(self.pool, card["card_number"], ended_at)
            report.erased.append(account.id)

    async def _live_account_on(self, card_number: str) -> Account | None:
        """The live account whose current card this is (a replaced card's account
        has moved on to the new one)."""
        app = self.application
        account_id = await asyncio.to_thread(app.account_for_card, card_number)
        if account_id is None:
            return None
        try:
            account = await asyncio.to_thread(app.get_account, account_id)
        except NotFound:
            return None
        return account if account.card_number == card_number else None

    async def _notify(self, account: Account, ended_at: datetime, now: datetime) -> bool:
        """E-mail the holder in their language; True once told."""
        try:
            profile = await asyncio.to_thread(self.application.get_profile, account.id)
        except NotFound:
            return False  # erased meanwhile
        erase_on = self.policy.erase_on(ended_at, now)
        language = account.language
        subject, text = render(
            "retention_notice", language, first_name=profile.personal.first_name,
            ended_on=local_date(ended_at.astimezone(FINLAND).date(), language),
            erase_on=local_date(erase_on.astimezone(FINLAND).date(), language))
        outcome = await self.mailer.send(profile.personal.email, subject, text,
                                         language=language)
        await record_mail(self.pool, account.id, "retention_notice", outcome)
        if outcome[0] not in TOLD:
            return False  # tried again next round; the erasure waits for it
        await tables.record_notice(self.pool, account.id, card_ended_at=ended_at,
                                   erase_after=erase_on, notified_at=now, outcome=outcome[0])
        return True
