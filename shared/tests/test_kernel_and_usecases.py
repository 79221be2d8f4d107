"""The shared kernel's errors become the same problem answer in every service."""

from __future__ import annotations

import asyncio

import pytest

from kaiku_shared.http import Problem, problem_for
from kaiku_shared.kernel.errors import Forbidden, NotFound, RuleViolation
from kaiku_shared.kernel.text import fold
from kaiku_shared.usecases import run_use_case, wait_for


@pytest.mark.parametrize(("error", "status", "kind"), [
    (RuleViolation("card-closed", "Card KXA-12345 is closed."), 409, "card-closed"),
    (RuleViolation("postal-code", "Five digits.", status=422, field="postal_code"), 422,
     "postal-code"),
    (NotFound("card", "No card KXA-12345."), 404, "card-not-found"),
    (Forbidden("That venue is another organisation's."), 403, "not-yours"),
])
def test_each_refusal_has_one_answer(error: RuleViolation, status: int, kind: str) -> None:
    problem = problem_for(error)
    assert (problem.status, problem.kind) == (status, kind)
    assert str(error) in problem.detail


def test_an_input_refusal_names_its_field() -> None:
    problem = problem_for(RuleViolation("postal-code", "Five digits.", status=422,
                                        field="postal_code"))
    assert problem.errors == [{"field": "postal_code", "message": "Five digits."}]


async def test_a_use_case_runs_in_a_thread_and_its_refusal_becomes_a_problem() -> None:
    def refuse() -> None:
        raise RuleViolation("round-closed", "The round is closed.")

    with pytest.raises(Problem) as caught:
        await run_use_case(refuse)
    assert caught.value.status == 409
    assert await run_use_case(lambda a, b: a + b, 2, b=3) == 5


async def test_wait_for_returns_what_arrives_and_none_when_nothing_does() -> None:
    calls = 0

    async def arrives_third_time() -> str | None:
        nonlocal calls
        calls += 1
        return "card" if calls >= 3 else None

    assert await wait_for(arrives_third_time, within=2, every=0.01) == "card"

    async def never() -> None:
        await asyncio.sleep(0)

    started = asyncio.get_running_loop().time()
    assert await wait_for(never, within=0.1, every=0.02) is None
    assert asyncio.get_running_loop().time() - started < 1


def test_names_fold_alike() -> None:
    assert fold(" Mänttä-Vilppula ") == fold("mantta-vilppula") == "mantta-vilppula"
    assert fold("Etelä Karjala") == "etela-karjala"
