"""The loops that keep the public statistics document current.

- the refresher (the cards worker, ``bootstrap.refresh_public_stats``): the
  projections NOTIFY ``STATISTICS_CHANGED`` in the transaction that applies a fact
  (delivered on commit only). The refresher LISTENs, waits a moment for more (a
  burst of facts is one recomputation), recomputes, and writes the row only when
  a figure changed (``public_stats.store``: the ETag and ``updated_at`` follow
  the figures), which NOTIFYs ``DOCUMENT_CHANGED``. It also recomputes every few
  minutes (days and months turn: ``active_cards``, ``months_through``) and once
  on start.
- the follower (the api, ``entrypoints/public.follow_document``): holds the
  stored document in memory, ready to send; reloads it on ``DOCUMENT_CHANGED``,
  and every half minute in case a notification was lost.

Both are ``follow`` with their own work, LISTENing on a connection of their own
that is opened again whenever it is lost (a Postgres restart): a lost connection
wakes the loop, which reconnects and recomputes or reloads, so nothing missed
meanwhile stays missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from kaiku_shared.db import OutageWatch

log = logging.getLogger(__name__)


class Listening:
    """A LISTEN connection on ``channel`` that sets ``wake`` on each notification
    and when the connection is lost; ``ensure`` reopens it."""

    def __init__(self, conninfo: str, channel: str, wake: asyncio.Event) -> None:
        self.conninfo, self.channel, self.wake = conninfo, channel, wake
        self.connection: asyncpg.Connection | None = None

    async def ensure(self) -> bool:
        """True when listening (a new connection: the caller re-reads, since
        notifications sent while none was open are lost)."""
        if self.connection is not None and not self.connection.is_closed():
            return True
        await self.close()
        try:
            connection = await asyncpg.connect(self.conninfo, timeout=5)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
            return False
        try:
            await connection.add_listener(self.channel, lambda *_: self.wake.set())
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
            await connection.close(timeout=1)
            return False
        connection.add_termination_listener(lambda *_: self.wake.set())
        self.connection = connection
        return True

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)


async def _wait(wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Until woken, stopped, or ``seconds`` pass."""
    waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def follow(name: str, conninfo: str, channel: str, work: Callable[[], Awaitable[None]],
                 stop: asyncio.Event, *, every: float, settle: float = 0.0) -> None:
    """Run ``work`` on start, on each notification on ``channel`` (after ``settle``
    seconds more, or as long as the last round took if longer, so a burst is one
    round), and every ``every`` seconds, until ``stop``. A database outage is waited out (``OutageWatch``), never fatal."""
    wake = asyncio.Event()
    listening = Listening(conninfo, channel, wake)
    watch = OutageWatch(name)
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            listened = await listening.ensure()
            wake.clear()
            started = loop.time()
            try:
                await work()
                watch.succeeded()
                pause = every if listened else min(every, 5.0)
            except Exception as error:  # noqa: BLE001 - OutageWatch logs it; tried again
                pause = watch.failed(error)
            took = loop.time() - started
            await _wait(wake, stop, pause)
            if wake.is_set() and settle and not stop.is_set():
                # At least as long as the last round took: under a steady stream of
                # facts the recomputation keeps at most half a core busy.
                await _wait(asyncio.Event(), stop, max(settle, took))
    finally:
        await listening.close()


__all__ = ["Listening", "follow"]
