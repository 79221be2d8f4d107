"""How an HTTP route runs a use case: the same in every service.

eventsourcing is synchronous, so a use case runs in a worker thread; the
shared kernel's errors become problem+json answers (``http.problem_for``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from fastapi import Request

from .auth import Principal
from .http import idempotency_key, problem_for
from .kernel.errors import RuleViolation

P = ParamSpec("P")
T = TypeVar("T")


async def run_use_case(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in a thread; a refused rule becomes its problem answer."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except RuleViolation as error:
        raise problem_for(error) from None


def derived_id(request: Request, principal: Principal, kind: str) -> UUID:
    """A new aggregate's id. From an Idempotency-Key it is derived, so a retried
    create finds its first result instead of making a second one."""
    key = idempotency_key(request)
    return uuid5(NAMESPACE_URL, f"/{kind}/{principal.key}/{key}") if key else uuid4()


async def wait_for(probe: Callable[[], Awaitable[T | None]], *, within: float,
                   every: float = 0.05) -> T | None:
    """``probe()`` until it gives something, for at most ``within`` seconds.

    For a read model that may not have seen an event yet which the caller knows
    was published (a card issued a moment ago elsewhere); None when it never came.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await probe()
        if found is not None or loop.time() > deadline:
            return found
        await asyncio.sleep(every)
