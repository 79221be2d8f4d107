"""Assertions the tests share: a refusal is a problem+json naming its rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from kaiku_shared.kernel.errors import RuleViolation


def refused(response: httpx.Response, status: int, rule: str) -> dict[str, Any]:
    """The answer is a problem+json with this status naming this rule (its type
    ends in ``/<rule>``) and saying why; the problem is returned for more checks."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), \
        response.headers["content-type"]
    problem = response.json()
    assert problem["type"].endswith(f"/{rule}"), problem
    assert problem["detail"], problem
    return problem


@contextmanager
def breaks_rule(rule: str) -> Iterator[pytest.ExceptionInfo[Exception]]:
    """The block raises a RuleViolation of this rule (the domain's refusal): the
    kernel's, or a service's own of that name while it still has one."""
    with pytest.raises(Exception) as caught:
        yield caught
    error = caught.value
    assert isinstance(error, RuleViolation) or any(
        cls.__name__ == "RuleViolation" for cls in type(error).__mro__), repr(error)
    assert getattr(error, "rule", None) == rule, (getattr(error, "rule", None), str(error))
