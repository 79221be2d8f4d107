"""The layers hold: `lint-imports` checks the contracts in pyproject.toml
([tool.importlinter]): each service's composition root → entrypoints → adapters →
application → domain, no service importing another, a domain free of adapters and
frameworks, and a runtime that never imports the developer tools (kaiku_dev)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_the_import_contracts_are_kept() -> None:
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout, result.stdout[-3000:]
