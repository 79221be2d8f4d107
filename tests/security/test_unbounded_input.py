"""Out-of-bounds input on every route: huge integers and very long strings.

schemathesis generates within each schema's bounds (its negative mode steps just
past a declared minimum or maximum, and has no option to send 2**63 where none is
declared), so this test walks each service's /openapi.json itself. For every
operation and every field — path, query and JSON body, nested ones too — it sends
integers past int4 and int8 to numbers, 100,000 characters to strings (60,000 in
a URL: httpx sends no longer URL) and the first and last day Python knows to
dates, one field at a time with the rest of the request kept valid, as each role
(the holder a real one, so holder routes reach their queries). No answer may be
a 5xx, every 4xx must be problem+json, and a huge number is never accepted.

A second test reads the schemas only: every numeric parameter and body field
declares both bounds, and every free-text string (query, path or body) a maximum
length.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

pytestmark = pytest.mark.e2e

SERVICES = ("cards", "venues", "omakaiku", "notifications")
HUGE_NUMBERS = (2**31, 2**63, -(2**63) - 1, 10**30)
LONG_STRING = "a" * 100_000
# httpx refuses URLs over 65,536 characters: path and query strings stay under it.
LONG_URL_STRING = "a" * 60_000
# The ends of Python's dates, which any date arithmetic steps past.
EXTREME_DATES = ("0001-01-01", "9999-12-31")
EXTREME_DATETIMES = ("0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00")
# Strings that are not free text: their format or choices bound them already.
BOUNDED_FORMATS = {"uuid", "date", "date-time", "email", "binary"}
CONCURRENCY = 8


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def members(spec: dict, schema: dict) -> list[dict]:
    """The schema itself, or each member of its anyOf/oneOf (Optional fields)."""
    schema = resolve(spec, schema)
    union = schema.get("anyOf") or schema.get("oneOf")
    if not union:
        return [schema]
    return [m for sub in union for m in members(spec, sub)]


def kinds(spec: dict, schema: dict) -> set[str]:
    """Which hostile values fit the schema: "number", "string", "date", "date-time"."""
    found = set()
    for member in members(spec, schema):
        if member.get("type") in ("integer", "number"):
            found.add("number")
        elif member.get("type") == "string":
            found.add("string")
            if member.get("format") in ("date", "date-time"):
                found.add(member["format"])
    return found


def hostile(kind: str, in_url: bool = False) -> tuple[Any, ...]:
    if kind == "number":
        return HUGE_NUMBERS
    if kind in ("date", "date-time"):
        return EXTREME_DATES if kind == "date" else EXTREME_DATETIMES
    return (LONG_URL_STRING,) if in_url else (LONG_STRING,)


def sample(spec: dict, schema: dict, name: str, known: dict[str, Any]) -> Any:
    """A value the schema accepts, the world's own where the name is known."""
    if name in known:
        return known[name]
    options = [m for m in members(spec, schema) if m.get("type") != "null"]
    schema = options[0] if options else {}
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "enum" in schema or "const" in schema:
        return schema.get("enum", [schema.get("const")])[0]
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return required_body(spec, schema, known)
    return {"uuid": "00000000-0000-4000-8000-0000000000aa", "date": date.today().isoformat(),
            "date-time": datetime.now(UTC).isoformat(), "email": "fuzz@example.org",
            }.get(schema.get("format", ""), "123456")


def required_body(spec: dict, schema: dict, known: dict[str, Any]) -> dict[str, Any]:
    schema = resolve(spec, schema)
    return {name: sample(spec, sub, name, known)
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", ())}


def leaves(spec: dict, schema: dict, path: tuple = (), depth: int = 0):
    """(path, kind) for every number or string in a body, nested ones too."""
    if depth > 5:
        return
    for member in members(spec, schema):
        for name, sub in member.get("properties", {}).items():
            for kind in kinds(spec, sub):
                yield (*path, name), kind
            yield from leaves(spec, sub, (*path, name), depth + 1)
        if member.get("type") == "array":
            items = member.get("items", {})
            for kind in kinds(spec, items):
                yield (*path, 0), kind
            yield from leaves(spec, items, (*path, 0), depth + 1)
        extra = member.get("additionalProperties")
        if isinstance(extra, dict):
            for kind in kinds(spec, extra):
                yield (*path, "fi"), kind


def with_value(body: Any, path: tuple, value: Any) -> Any:
    """A copy of ``body`` with ``value`` at ``path``, making containers on the way."""
    body = copy.deepcopy(body)
    holder = body
    for step, following in zip(path, path[1:], strict=False):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(step, int):
            if not holder:
                holder.append(empty)
            holder = holder[0]
        else:
            if not isinstance(holder.get(step), (dict, list)):
                holder[step] = empty
            holder = holder[step]
    if isinstance(path[-1], int):
        holder[:] = [value]
    else:
        holder[path[-1]] = value
    return body


def cases(spec: dict, known: dict[str, Any]):
    """(method, path, query, body, what, kind) with one field hostile, the rest valid."""
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", ())
                      if p["in"] in ("path", "query")]
            base_path = {p["name"]: sample(spec, p["schema"], p["name"], known)
                         for p in params if p["in"] == "path"}
            base_query = {p["name"]: sample(spec, p["schema"], p["name"], known)
                          for p in params if p["in"] == "query" and p.get("required")}
            body_schema = (operation.get("requestBody", {}).get("content", {})
                           .get("application/json", {}).get("schema"))
            base_body = required_body(spec, body_schema, known) if body_schema else None

            def url(path_values: dict[str, Any], template: str = template) -> str:
                return template.format(**{k: quote(str(v), safe="")
                                          for k, v in path_values.items()})

            for param in params:
                for kind in kinds(spec, param["schema"]):
                    for value in hostile(kind, in_url=True):
                        what = f"{param['in']} {param['name']}={str(value)[:24]}"
                        if param["in"] == "path":
                            yield (method, url({**base_path, param["name"]: value}),
                                   base_query, base_body, what, kind)
                        else:
                            yield (method, url(base_path),
                                   {**base_query, param["name"]: value}, base_body, what,
                                   kind)
            if body_schema is None:
                continue
            for path, kind in leaves(spec, body_schema):
                for value in hostile(kind):
                    what = f"body {'.'.join(map(str, path))}={str(value)[:24]}"
                    yield (method, url(base_path), base_query,
                           with_value(base_body, path, value), what, kind)


def refused_well(response: httpx.Response, kind: str) -> str | None:
    """Why this answer is wrong, or None when it is a proper answer."""
    status = response.status_code
    if status >= 500:
        return f"{status} {response.text[:300]}"
    if status >= 400 and not response.headers.get("content-type", "").startswith(
            "application/problem+json"):
        return f"{status} without problem+json: {response.text[:200]}"
    if status < 400 and kind == "number":
        return f"{status}: a huge number was accepted"
    return None


async def holder_world(world) -> tuple[dict[str, str], dict[str, Any]]:
    """Tokens for every role, and real ids for the path and body values that name them."""
    card = await world.issue_card()
    account_id = await world.activate_account(card["card_number"])
    offering_id = await world.publish_offering()
    tokens = {"kaikukeskus": world.centre_token, "distributor": world.distributor_token,
              "venue": world.venue_token, "holder": world.holder_token(account_id)}
    known = {"card_number": card["card_number"], "venue_id": world.venue_id,
             "offering_id": offering_id, "organisation_id": world.venue_org_id,
             "year": date.today().year, "region": card["region"]}
    return tokens, known


@pytest.mark.parametrize("service", SERVICES)
async def test_huge_numbers_and_long_strings_are_refused_cleanly(world, service):
    tokens, known = await holder_world(world)
    async with httpx.AsyncClient(base_url=world.system.url(service), timeout=30) as client:
        spec = (await client.get("/openapi.json")).json()
        requests = [(role, *case) for case in cases(spec, known) for role in tokens]
        limit = asyncio.Semaphore(CONCURRENCY)
        statuses: Counter[int] = Counter()

        async def send(role, method, path, query, body, what, kind) -> str | None:
            async with limit:
                response = await client.request(
                    method.upper(), path, params=query, json=body,
                    headers={"Authorization": f"Bearer {tokens[role]}"})
            statuses[response.status_code] += 1
            wrong = refused_well(response, kind)
            return wrong and f"{method.upper()} {path[:80]} as {role}, {what}: {wrong}"

        failures = [f for f in await asyncio.gather(*(send(*r) for r in requests)) if f]
    print(f"{service}: {len(requests)} hostile requests, answers {dict(statuses)}, "
          f"{len(failures)} wrong")
    assert requests, "no operation had a parameter to try"
    assert not failures, "\n".join(sorted(set(failures))[:60])


def unbounded(spec: dict, schema: dict, where: str):
    """Descriptions of the numbers without both bounds and the free text without
    a maximum length in ``schema``."""
    outer = resolve(spec, schema)  # bounds beside an anyOf apply to its members
    for member in members(spec, schema):
        member = {**outer, **member}
        kind = member.get("type")
        if kind in ("integer", "number") and not (
                "maximum" in member and "minimum" in member):
            yield f"{where}: {kind} without minimum and maximum"
        if kind == "string" and "maxLength" not in member \
                and "enum" not in member and "const" not in member \
                and member.get("format") not in BOUNDED_FORMATS:
            yield f"{where}: string without maxLength"


def body_fields(spec: dict, schema: dict, prefix: str, depth: int = 0):
    if depth > 5:
        return
    for member in members(spec, schema):
        for name, sub in member.get("properties", {}).items():
            yield f"{prefix}.{name}", sub
            yield from body_fields(spec, sub, f"{prefix}.{name}", depth + 1)
        if member.get("type") == "array":
            yield f"{prefix}[]", member.get("items", {})
            yield from body_fields(spec, member.get("items", {}), f"{prefix}[]", depth + 1)
        if isinstance(member.get("additionalProperties"), dict):
            yield f"{prefix}.*", member["additionalProperties"]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_number_and_free_text_parameter_declares_its_bounds(world, service):
    async with httpx.AsyncClient(base_url=world.system.url(service), timeout=30) as client:
        spec = (await client.get("/openapi.json")).json()
    problems = []
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            route = f"{method.upper()} {template}"
            for param in operation.get("parameters", ()):
                if param["in"] in ("path", "query"):
                    problems += unbounded(spec, param["schema"], f"{route} {param['name']}")
            body = (operation.get("requestBody", {}).get("content", {})
                    .get("application/json", {}).get("schema"))
            for where, schema in body_fields(spec, body or {}, f"{route} body"):
                problems += unbounded(spec, schema, where)
    assert not problems, "\n".join(problems)
