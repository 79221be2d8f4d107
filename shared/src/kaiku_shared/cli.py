"""The `kaiku` command: `kaiku run` (the whole system locally) and `kaiku token`."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .auth import STAFF_ROLES, SigningKeyMissing, issue_token
from .settings import DEFAULT_PORTS, SERVICES, KaikuSettings

console = Console(stderr=True, soft_wrap=True)
DATA_DIR = Path(os.environ.get("KAIKU_DATA_DIR", ".kaiku"))
SECRET_FILE = "jwt-secret"


def dev_secret(data_dir: Path, *, create: bool) -> str | None:
    """The dev signing key: KAIKU_JWT_SECRET, else the one `kaiku run` keeps on disk."""
    if os.environ.get("KAIKU_JWT_SECRET"):
        return os.environ["KAIKU_JWT_SECRET"]
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(48))
    path.chmod(0o600)
    return path.read_text().strip()


def cmd_token(args: argparse.Namespace) -> int:
    secret = dev_secret(DATA_DIR, create=False)
    if not secret:
        console.print("[red]No dev signing key: set KAIKU_JWT_SECRET or start `make run` "
                      "first (it keeps one in .kaiku/).[/red]")
        return 2
    settings = KaikuSettings(jwt_secret=secret)
    try:
        print(issue_token(settings, role=args.role, organisation_id=args.org,
                          account_id=args.account, ttl_seconds=args.ttl))
    except (ValueError, SigningKeyMissing) as error:
        console.print(f"[red]{error}[/red]")
        return 2
    return 0


def operator_settings() -> KaikuSettings:
    """Settings for operator commands: the environment, else the running `kaiku run`."""
    import json

    overrides: dict[str, str] = {}
    state = DATA_DIR / "servers.json"
    if state.exists() and not os.environ.get("KAIKU_NATS_URL"):
        data = json.loads(state.read_text())
        overrides = {k: data[k] for k in ("nats_url", "database_url") if data.get(k)}
    return KaikuSettings(**overrides)


def cmd_dlq(args: argparse.Namespace) -> int:
    import asyncio

    from .deadletters import list_dead_letters, replay_dead_letters

    settings = operator_settings()
    if args.action == "list":
        letters = asyncio.run(list_dead_letters(settings, args.consumer))
        table = Table(title=f"Dead letters in {settings.dead_letter_stream}: {len(letters)}")
        for column in ("seq", "consumer", "event", "original", "deliveries", "reason"):
            table.add_column(column, overflow="fold")
        for d in letters:
            table.add_row(str(d.sequence), d.consumer, f"{d.event_type or '?'} {d.event_id or ''}",
                          f"{d.original_stream}#{d.original_sequence}", d.deliveries, d.reason)
        # Wide when piped, so ids stay whole for grep and scripts.
        Console(width=None if sys.stdout.isatty() else 220).print(table)
        return 0
    if not args.all and not args.seq:
        console.print("[red]Name the dead letters to replay with --seq N (repeatable) or "
                      "--all.[/red]")
        return 2
    replayed = asyncio.run(replay_dead_letters(settings, None if args.all else args.seq,
                                               args.consumer))
    console.print(f"Replayed {len(replayed)} dead letter(s): {replayed}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Run each service's reconciliation and print one table; 1 if anything differs."""
    import json
    import subprocess

    settings = operator_settings()
    env = {**os.environ, "KAIKU_NATS_URL": settings.nats_url,
           "KAIKU_DATABASE_URL": settings.database_url, "KAIKU_NAMESPACE": settings.namespace}
    table = Table(title=f"kaiku audit ({settings.namespace})")
    for column in ("check", "expected", "actual", "pending", "differences"):
        table.add_column(column, overflow="fold")
    differences = 0
    for service in args.services or SERVICES:
        result = subprocess.run([sys.executable, "-m", service, "audit"], env=env,
                                capture_output=True, text=True, timeout=600)
        try:
            report = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            console.print(f"[red]{service}: audit failed[/red]\n{result.stderr[-2000:]}")
            differences += 1
            continue
        differences += report["differences"]
        for check in report["checks"]:
            table.add_row(check["name"], str(check["expected"]), str(check["actual"]),
                          str(check["pending"]),
                          "\n".join(check["differences"][:10]) or "none")
    Console(width=None if sys.stdout.isatty() else 220).print(table)
    print(f"{differences} difference(s)")
    return 1 if differences else 0


def cmd_run(args: argparse.Namespace) -> int:
    from .demo import load_demo_data
    from .embedded import EmbeddedServers
    from .supervisor import Supervisor, mail_sink, service_specs, web_spec

    started = time.monotonic()
    data_dir = DATA_DIR.resolve()
    secret = dev_secret(data_dir, create=True)
    servers = EmbeddedServers(data_dir, nats_url=os.environ.get("KAIKU_NATS_URL"),
                              database_url=os.environ.get("KAIKU_DATABASE_URL"))
    with console.status("Starting NATS and PostgreSQL…"):
        nats_url, database_url = servers.start()
    env = {"KAIKU_NATS_URL": nats_url, "KAIKU_DATABASE_URL": database_url,
           "KAIKU_JWT_SECRET": secret or ""}
    ports = {s: args.port_base + i for i, s in enumerate(SERVICES)}
    # Holders' e-mail (sign-in codes, welcome links) goes to a local sink.
    sink, mail_env = mail_sink(data_dir / "mail", args.smtp_port, ports["omakaiku"])
    # Sign-in links in holders' e-mail open the web interface.
    mail_env["KAIKU_OMAKAIKU_PUBLIC_URL"] = f"http://127.0.0.1:{args.web_port}/oma"
    supervisor = Supervisor({**env, **mail_env}, data_dir / "logs")
    supervisor.add(sink)
    for spec in service_specs(ports):
        supervisor.add(spec)
    supervisor.add(web_spec(args.web_port, ports, dev_token_signin=True))

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with console.status("Starting the service processes and the web interface…"):
            supervisor.start_all()
            supervisor.wait_ready(timeout=90)
        ready_after = time.monotonic() - started
        settings = KaikuSettings(nats_url=nats_url, database_url=database_url,
                                 jwt_secret=secret)
        urls = {s: f"http://127.0.0.1:{ports[s]}" for s in SERVICES}
        demo = None
        if not args.no_demo:
            with console.status("Loading demo data…"):
                demo = load_demo_data(settings, urls)
        console.print(f"\n[bold]Web: http://127.0.0.1:{args.web_port}/[/bold]  (staff: "
                      f"/staff, holders: /oma)")
        print_welcome(urls, nats_url, database_url, ready_after, demo, data_dir)
        console.print(f"E-mail to holders (sign-in codes): {data_dir / 'mail'}/*.eml "
                      f"(SMTP sink on 127.0.0.1:{args.smtp_port})")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("\nStopping…")
    finally:
        supervisor.stop_all()
        servers.stop()
        console.print("Stopped every process.")
    return 0


def print_welcome(urls, nats_url, database_url, ready_after, demo, data_dir) -> None:
    table = Table(title=f"Kaikukortti is running (ready in {ready_after:.1f} s)")
    table.add_column("service")
    table.add_column("URL")
    table.add_column("API docs")
    for service, url in urls.items():
        table.add_row(service, url, f"{url}/docs")
    console.print(table)
    console.print(f"NATS: {nats_url}\nPostgreSQL: {database_url}\nLogs: {data_dir}/logs/")
    if demo:
        console.print(
            "\nDemo data:\n"
            f"  distributor organisation  {demo.distributor_id}\n"
            f"  venue organisation        {demo.venue_organisation_id}  (venue {demo.venue_id})\n"
            f"  ticket agent              {demo.ticket_agent_id}\n"
            f"  demo card                 {demo.card_number}  (OmaKaiku account "
            f"{demo.account_id})\n"
            f"\nStaff sign-in (POST /auth/login on cards): {', '.join(demo.usernames)} — "
            f"password {demo.password}\n"
            "\nTokens:\n"
            "  .venv/bin/kaiku token --role kaikukeskus\n"
            f"  .venv/bin/kaiku token --role distributor --org {demo.distributor_id}\n"
            f"  .venv/bin/kaiku token --role venue --org {demo.venue_organisation_id}\n"
            f"  .venv/bin/kaiku token --role holder --account {demo.account_id}\n"
            "\nCtrl-C stops everything; data stays in .kaiku/ for the next run."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kaiku", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="print a dev bearer token")
    token.add_argument("--role", required=True, choices=[*STAFF_ROLES, "holder"])
    token.add_argument("--org", help="organisation id (staff roles)")
    token.add_argument("--account", help="account id (holder)")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds (default 12 h)")
    token.set_defaults(func=cmd_token)
    run = sub.add_parser("run", help="start NATS, Postgres, every service and demo data")
    run.add_argument("--no-demo", action="store_true", help="skip the demo data")
    run.add_argument("--web-port", type=int, default=8100,
                     help="port of the web interfaces (default 8100)")
    run.add_argument("--smtp-port", type=int, default=8025,
                     help="port of the local SMTP sink for holders' e-mail (default 8025)")
    run.add_argument("--port-base", type=int, default=DEFAULT_PORTS["cards"],
                     help="first api port; the services take four in a row (default 8101)")
    run.set_defaults(func=cmd_run)
    audit = sub.add_parser("audit", help="reconcile event stores, streams and read models")
    audit.add_argument("services", nargs="*", metavar="SERVICE",
                       help="only these services (default: all)")
    audit.set_defaults(func=cmd_audit)
    dlq = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("--consumer", help="only this durable consumer, e.g. omakaiku-history")
    dlq.add_argument("--seq", type=int, action="append", help="dead-letter sequence to replay")
    dlq.add_argument("--all", action="store_true", help="replay every (chosen) dead letter")
    dlq.set_defaults(func=cmd_dlq)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
