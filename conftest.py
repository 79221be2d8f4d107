"""Test-suite wide: the fixtures (real servers, a unique namespace, the running
system) and the markers, applied by where a test lives so none is forgotten.

    make unit          -m "not (integration or e2e)"   no servers at all
    make integration   -m "not e2e"                    + real NATS and PostgreSQL
    make test          everything                      + the system's processes, faults,
                                                         a NATS cluster, a browser
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["kaiku_dev.testing"]

ROOT = Path(__file__).resolve().parent

# Path prefixes (from the repository root) and the markers of every test under them.
# e2e runs the system's processes; faults, cluster and browser are slow kinds of it.
MARKERS_BY_PATH: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tests/e2e/", ("e2e",)),
    ("tests/security/", ("e2e",)),
    ("tests/faults/", ("e2e", "faults")),
    ("tests/cluster/", ("e2e", "cluster")),
    ("tests/browser/", ("e2e", "browser")),
    # A real nats-server with the deployment's configuration.
    ("tests/deploy/test_nats_permissions.py", ("integration",)),
    ("tests/deploy/test_tls_deploy.py", ("integration",)),
)


def markers_for(relative: str, fixtures: set[str]) -> set[str]:
    markers = {marker for prefix, names in MARKERS_BY_PATH if relative.startswith(prefix)
               for marker in names}
    if "/tests/integration/" in f"/{relative}":
        markers.add("integration")
    # Wherever it lives, a test on the kaiku_dev.testing fixtures (directly or through
    # its own) is integration (`servers`, `namespace`) or e2e (`system`).
    if "system" in fixtures:
        markers.add("e2e")
    elif "servers" in fixtures and "e2e" not in markers:
        markers.add("integration")
    return markers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(ROOT).as_posix()
        present = {mark.name for mark in item.iter_markers()}
        for marker in sorted(markers_for(relative, set(getattr(item, "fixturenames", ())))
                             - present):
            item.add_marker(marker)
