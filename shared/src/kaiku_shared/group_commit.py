"""Group commit: concurrent saves share one event-store transaction.

eventsourcing's Postgres recorder takes an EXCLUSIVE table lock for every
insert (so notification ids are committed in order), which caps single saves
at a few hundred a second. Here, a thread that saves while another is already
writing does not queue for the lock: it leaves its events with the writer, and
the next writer takes everything waiting in one transaction — one lock, one
commit, many use cases.

Correctness is the library's: all events go through the same ``insert_events``
with its version checks. If the combined insert fails on a version conflict,
the batch is written again one save at a time, so only the save that really
conflicted sees the error (and its ``retry_on_conflict`` reloads and decides
again); the others commit as if alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError


@dataclass
class _Pending:
    events: Sequence[Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Any] | None = None
    error: BaseException | None = None


class GroupCommitter:
    # Bounded: one huge multi-statement transaction can stall the driver's
    # pipeline; 64 saves already give most of the gain (bench/write_path.py).
    def __init__(self, put: Callable[[Sequence[Any]], list[Any]], max_batch: int = 64) -> None:
        self._put = put
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._writing = False
        self.batches = 0
        self.saves = 0

    def put(self, events: Sequence[Any]) -> list[Any]:
        """Store ``events`` atomically (alone or with others); returns recordings."""
        pending = _Pending(events)
        with self._lock:
            self._queue.append(pending)
            lead = not self._writing
            if lead:
                self._writing = True
        if lead:
            self._write_while_waiting()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _write_while_waiting(self) -> None:
        # The leader keeps writing batches until nobody waits, then steps down.
        while True:
            with self._lock:
                batch, self._queue = (self._queue[: self._max_batch],
                                      self._queue[self._max_batch:])
                if not batch:
                    self._writing = False
                    return
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.saves += len(batch)
        if len(batch) > 1:
            try:
                recordings = self._put([e for p in batch for e in p.events])
            except IntegrityError:
                pass  # someone in the batch conflicted: find out who, one by one
            except BaseException as error:  # noqa: BLE001 - every waiter must hear it
                for pending in batch:
                    pending.error = error
                    pending.done.set()
                return
            else:
                offset = 0
                for pending in batch:
                    pending.result = recordings[offset: offset + len(pending.events)]
                    offset += len(pending.events)
                    pending.done.set()
                return
        for pending in batch:
            try:
                pending.result = self._put(pending.events)
            except BaseException as error:  # noqa: BLE001
                pending.error = error
            pending.done.set()
