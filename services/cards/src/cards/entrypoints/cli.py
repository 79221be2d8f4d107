"""Operator commands: ``python -m cards <command>``.

- ``seed-history``: write a synthetic national history at the seed's scale through
  the real write path (batched), with a progress bar.
- ``rebuild-stats``: rebuild every statistics read model from scratch into a
  separate schema, compare it with the live one (``--replace`` swaps it in; stop
  the cards worker first).
- ``create-user``: a staff user (e.g. the first Kaikukeskus user); the password
  comes from ``--password-env`` or a prompt, never from the command line.

The composition root (``cards/__main__.py``) dispatches here and gives the
commands its application builder: this module does not know how one is built.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import time
from datetime import date
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..adapters import rebuild as rebuilding
from ..adapters import public_stats, queries
from ..application.app import KAIKUKESKUS_ID, CardsApplication, NotFound, RuleViolation
from ..application.seed_history import Plan, seed_history
from ..config import KaikuSettings, load_cards_settings, load_settings

# Builds the cards application for the settings (the composition root's).
ApplicationBuilder = Callable[[KaikuSettings], CardsApplication]

console = Console(stderr=True)


def cmd_seed_history(args: argparse.Namespace, build_application: ApplicationBuilder) -> int:
    settings = load_settings()
    plan = Plan(cards=args.cards, uses=args.uses, uses_with_children=args.uses_with_children,
                since=args.since, distributors=args.distributors, seed=args.seed,
                batch=args.batch)
    app = build_application(settings)
    started = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=args.quiet) as bar:
        task = bar.add_task("planning", total=None)

        def progress(stage: str, n: int) -> None:
            if stage == "planned":
                bar.update(task, description="cards", total=n, completed=0)
            elif stage == "cards":
                bar.advance(task, n)

        totals = seed_history(app, plan, progress)
    elapsed = time.perf_counter() - started
    summary = {
        "distributors": totals.distributors, "cards": totals.cards,
        "renewals": totals.renewals, "uses": totals.uses,
        "uses_with_children": totals.uses_with_children,
        "child_tickets": totals.child_tickets, "skipped_existing": totals.skipped_existing,
        "seconds": round(elapsed, 2),
        "cards_per_second": round(totals.cards / elapsed, 1) if elapsed else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        table = Table(title="seed-history written")
        for key in ("field", "value"):
            table.add_column(key)
        for key, value in summary.items():
            table.add_row(key, str(value))
        console.print(table)
        console.print("The statistics follow as the relay and the cards worker catch up.")
    return 0


def cmd_rebuild_stats(args: argparse.Namespace, build_application: ApplicationBuilder) -> int:
    settings = load_settings()
    app = build_application(settings)
    threshold = load_cards_settings().suppress_below

    async def go() -> int:
        started = time.perf_counter()
        with Progress(TextColumn("[bold]{task.description}"), TextColumn("{task.completed}"),
                      TimeElapsedColumn(), console=console, disable=args.quiet) as bar:
            tasks: dict[str, Any] = {}

            def progress(consumer: str, n: int) -> None:
                if consumer not in tasks:
                    tasks[consumer] = bar.add_task(f"{consumer} events", total=None)
                bar.advance(tasks[consumer], n)

            counts = await rebuilding.rebuild(settings, app.mapper, app.name,
                                              progress=progress,
                                              include_venues=not args.cards_only)
        elapsed = time.perf_counter() - started
        period = queries.Period(None, None, date.today())
        live, rebuilt = await rebuilding.compare(settings, period, threshold)
        same = live == rebuilt
        result = {"cards_events": counts.cards_events, "venues_events": counts.venues_events,
                  "stored_events_read": counts.stored_events, "rows": counts.rows,
                  "seconds": round(elapsed, 2), "identical_to_live": same,
                  "national": rebuilt["national"]}
        if args.replace:
            # The public statistics document is refreshed from the swapped-in tables.
            names = public_stats.region_names(await asyncio.to_thread(lambda: app.network))
            await rebuilding.replace_live(settings, region_names=names, threshold=threshold)
            result["replaced"] = True
        print(json.dumps(result, default=str))
        if not same and not args.replace:
            console.print("[yellow]The rebuilt figures differ from the live ones (the live "
                          "worker may still be catching up); --replace swaps them in.[/yellow]")
        return 0 if same or args.replace else 1

    return asyncio.run(go())


def cmd_create_user(args: argparse.Namespace, build_application: ApplicationBuilder) -> int:
    settings = load_settings()
    app = build_application(settings)
    password = os.environ.get(args.password_env) if args.password_env else None
    if password is None:
        password = getpass.getpass("Password: ")
    try:
        if args.organisation in (None, "kaikukeskus"):
            organisation_id = app.ensure_kaikukeskus().id
        else:
            from uuid import UUID

            organisation_id = UUID(args.organisation)
        user = app.create_user(username=args.username, password=password,
                               organisation_id=organisation_id, admin=args.admin)
    except (RuleViolation, NotFound, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        return 2
    print(json.dumps({"user_id": str(user.id), "username": user.username,
                      "organisation_id": str(user.organisation_id), "role": user.role,
                      "admin": user.admin, "kaikukeskus": user.organisation_id == KAIKUKESKUS_ID}))
    return 0


def main(argv: list[str], build_application: ApplicationBuilder) -> int:
    parser = argparse.ArgumentParser(prog="python -m cards")
    commands = parser.add_subparsers(dest="command", required=True)

    seed = commands.add_parser("seed-history", help="write a synthetic national history")
    seed.add_argument("--cards", type=int, default=Plan.cards)
    seed.add_argument("--uses", type=int, default=Plan.uses)
    seed.add_argument("--uses-with-children", type=int, default=Plan.uses_with_children)
    seed.add_argument("--since", type=int, default=Plan.since)
    seed.add_argument("--distributors", type=int, default=Plan.distributors)
    seed.add_argument("--seed", default=Plan.seed, help="the same seed writes the same history")
    seed.add_argument("--batch", type=int, default=Plan.batch, help="cards per transaction")
    seed.add_argument("--json", action="store_true", help="print the totals as JSON")
    seed.add_argument("--quiet", action="store_true", help="no progress bar")
    seed.set_defaults(func=cmd_seed_history)

    rebuild = commands.add_parser("rebuild-stats",
                                  help="rebuild the statistics read models from scratch")
    rebuild.add_argument("--replace", action="store_true",
                         help="swap the rebuilt tables in (stop the cards worker first)")
    rebuild.add_argument("--cards-only", action="store_true",
                         help="skip the venues stream (its uses)")
    rebuild.add_argument("--quiet", action="store_true")
    rebuild.set_defaults(func=cmd_rebuild_stats)

    user = commands.add_parser("create-user", help="create a staff user")
    user.add_argument("--username", required=True)
    user.add_argument("--organisation", help="organisation id, or 'kaikukeskus' (default)")
    user.add_argument("--admin", action="store_true", help="may manage the organisation's users")
    user.add_argument("--password-env", help="read the password from this environment variable")
    user.set_defaults(func=cmd_create_user)

    args = parser.parse_args(argv)
    return args.func(args, build_application)
