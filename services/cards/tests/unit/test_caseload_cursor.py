"""The caseload's cursor (GET /cards): opaque, bound to its query and caller, and
anything else is a 422 a person can act on."""

from __future__ import annotations

import base64
import json
from datetime import date
from uuid import uuid4

import pytest

from cards.entrypoints.api import caseload_after, caseload_cursor, caseload_query
from kaiku_shared.auth import Principal
from kaiku_shared.http import Problem


def principal(organisation_id=None) -> Principal:
    return Principal(role="distributor", organisation_id=organisation_id or uuid4(),
                     subject="user")


def test_a_cursor_continues_after_its_last_card_for_the_same_query() -> None:
    me = principal()
    query = caseload_query(me, "active", date(2027, 1, 1))
    cursor = caseload_cursor(query, "KXA-12345")
    assert "KXA" not in cursor  # opaque
    assert caseload_after(cursor, query) == "KXA-12345"
    assert caseload_after(None, query) is None and caseload_after("", query) is None


@pytest.mark.parametrize("other", [
    ("expired", date(2027, 1, 1)), ("active", None), ("active", date(2027, 1, 2)),
])
def test_a_cursor_of_other_filters_is_refused(other) -> None:
    me = principal()
    cursor = caseload_cursor(caseload_query(me, "active", date(2027, 1, 1)), "KXA-12345")
    with pytest.raises(Problem) as refused:
        caseload_after(cursor, caseload_query(me, *other))
    assert refused.value.status == 422 and "other filters" in refused.value.detail


def test_another_callers_cursor_is_refused() -> None:
    cursor = caseload_cursor(caseload_query(principal(), None, None), "KXA-12345")
    with pytest.raises(Problem) as refused:
        caseload_after(cursor, caseload_query(principal(), None, None))
    assert refused.value.status == 422


def _encoded(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "not a cursor", "%%%", _encoded([1, 2]), _encoded({"v": "caseload.v0", "after": "A"}),
    _encoded({"v": "caseload.v1", "after": 5}), _encoded({"v": "caseload.v1",
                                                          "after": "A" * 41}),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_a_tampered_cursor_is_refused(cursor) -> None:
    with pytest.raises(Problem) as refused:
        caseload_after(cursor, caseload_query(principal(), None, None))
    assert refused.value.status == 422
    assert "start again" in refused.value.detail
