"""The composition root decides: bootstrap builds the processes, the CLI gets the
application builder from ``cards/__main__.py``; neither imports the other."""

from __future__ import annotations

import subprocess
import sys


def loaded_after_importing(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('cards')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    return set(done.stdout.split())


def test_the_cli_does_not_import_the_bootstrap() -> None:
    assert "cards.bootstrap" not in loaded_after_importing("cards.entrypoints.cli")


def test_the_bootstrap_does_not_import_the_cli() -> None:
    assert "cards.entrypoints.cli" not in loaded_after_importing("cards.bootstrap")
