"""Hostile input: schemathesis against every service's OpenAPI, bounded.

Each service's schema is fuzzed (examples, coverage, fuzzing and stateful
phases, a bounded number of cases per operation, fixed seed) with the tokens of
the roles that use it. Checks: no 5xx, every status code and content type
documented, every response body valid against its schema, response headers as
documented. Left out on purpose: `positive_data_acceptance` (business rules
rightly refuse schema-valid data, e.g. a municipality outside the network) and
`negative_data_rejection` (pydantic's lax mode accepts "1" for 1 by design).
schemathesis stays within each schema's bounds; test_unbounded_input.py sends
huge integers, very long strings and extreme dates to every field of every route.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance",
])
MAX_EXAMPLES = int(os.environ.get("KAIKU_FUZZ_EXAMPLES", "12"))


def roles_for(service: str, world) -> list[tuple[str, str]]:
    system = world.system
    staff = [("kaikukeskus", system.token("kaikukeskus")),
             ("distributor", world.distributor_token), ("venue", world.venue_token)]
    return staff if service in ("cards", "venues") else staff[:2] + [
        ("holder", system.token("holder", account_id="00000000-0000-4000-8000-000000000001"))]


@pytest.mark.parametrize("service", ["cards", "venues", "omakaiku", "notifications"])
def test_no_server_error_and_every_answer_matches_the_schema(world, service, tmp_path):
    system = world.system
    schemathesis = Path(sys.executable).parent / "schemathesis"
    failures = []
    for role, token in roles_for(service, world):
        result = subprocess.run(
            [str(schemathesis), "--no-color", "run", system.url(service, "/openapi.json"),
             "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "20261127",
             "--header", f"Authorization: Bearer {token}",
             "--report-dir", str(tmp_path / role)],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
        summary = result.stdout[result.stdout.find("Failures:"):] if "Failures:" in \
            result.stdout else result.stdout[-600:]
        print(f"{service} as {role}: exit {result.returncode}\n{summary[:800]}")
        if result.returncode != 0:
            failures.append(f"--- {service} as {role} ---\n{result.stdout[-6000:]}")
    assert not failures, "\n".join(failures)
