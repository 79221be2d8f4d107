"""``python -m cards <command>``: the composition root's dispatch.

``api``, ``worker``, ``relay``, ``audit`` and ``check`` start one of the
service's processes (bootstrap.py); any other command is an operator command
(entrypoints/cli.py: seed-history, rebuild-stats, create-user), given the
application builder from bootstrap.
"""

from __future__ import annotations

import sys

from cards.bootstrap import PROCESSES, build_application
from cards.bootstrap import main as process_main


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in PROCESSES:
        # Imported only here: the processes' start does not load the CLI's libraries.
        from cards.entrypoints.cli import main as operator_main

        raise SystemExit(operator_main(args, build_application))
    process_main(args)


if __name__ == "__main__":
    main()
