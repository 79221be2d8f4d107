"""Write docs/asyncapi/kaikukortti.json, the AsyncAPI document of every integration
event, from the contracts and from every service's durable consumers.

    .venv/bin/python tools/asyncapi.py            # regenerate after changing either
    .venv/bin/python tools/asyncapi.py --check    # exit 1 when the file is out of date

The consumers are the lists each service's worker and ``audit`` build, made here
without their collaborators (handlers are never called: only the durable names
and the contracts they take are read). A service whose bootstrap declares its
parts as a ``kaiku_shared.service_main.ServiceParts`` is read from those parts.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from pathlib import Path

from kaiku_shared.asyncapi import build_document, render
from kaiku_shared.consumer import Consumer
from kaiku_shared.service_main import ServiceParts
from kaiku_shared.settings import SERVICES, KaikuSettings

REPO = Path(__file__).resolve().parents[1]
DOCUMENT = REPO / "docs" / "asyncapi" / "kaikukortti.json"


def bootstrap_consumers(service: str) -> list[Consumer]:
    """What ``<service>.bootstrap`` declares; its adapters' lists where it has no parts."""
    bootstrap = importlib.import_module(f"{service}.bootstrap")
    # PARTS, or a factory ``<service>_parts()`` where the parts share state.
    factory = getattr(bootstrap, f"{service}_parts", None)
    candidates = [*vars(bootstrap).values(), *([factory()] if factory else [])]
    for value in candidates:
        if isinstance(value, ServiceParts) and value.service == service:
            return value.consumers(None)
    raise LookupError(f"no consumers known for {service}")


def current_document() -> str:
    consumers = {service: bootstrap_consumers(service) for service in SERVICES}
    return render(build_document(consumers, settings=KaikuSettings(namespace="kaiku")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the committed document differs from the code")
    args = parser.parse_args(argv)
    wanted = current_document()
    if args.check:
        committed = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
        if committed == wanted:
            return 0
        diff = difflib.unified_diff(committed.splitlines(), wanted.splitlines(),
                                    "committed", "generated", lineterm="", n=1)
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print(f"{DOCUMENT.relative_to(REPO)} is out of date: run "
              f"`.venv/bin/python tools/asyncapi.py` and commit it", file=sys.stderr)
        return 1
    DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
    DOCUMENT.write_text(wanted, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
