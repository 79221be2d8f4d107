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

from kaiku_shared.auth import STAFF_ROLES, SigningKeyMissing, TokenSigner
from kaiku_shared.keys import KeyMaterial
from kaiku_shared.settings import DEFAULT_PORTS, SERVICES, KaikuSettings

console = Console(stderr=True, soft_wrap=True)
DATA_DIR = Path(os.environ.get("KAIKU_DATA_DIR", ".kaiku"))
# A random value `kaiku run` keeps per installation: the demo staff password
# derives from it. (Before 2026-12 it was the shared token secret, and the
# omakaiku keys were derived from it: see development_keys.)
SEED_FILE = "jwt-secret"
KEYS_FILE = Path("keys") / "kaiku.env"


def dev_seed(data_dir: Path) -> str:
    path = data_dir / SEED_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def development_keys(data_dir: Path) -> KeyMaterial:
    """The development key set of this installation, made on first use.

    An installation from before separate keys sealed holders' data with keys
    derived from its seed: those three are derived once more and written down,
    so its data stays readable; everything else is random and new."""
    path = data_dir / KEYS_FILE
    if path.exists():
        return KeyMaterial.read_env_file(path, complete=True)
    keys = KeyMaterial.generate(development=True)
    legacy_seed = data_dir / SEED_FILE
    if legacy_seed.exists():
        seed = legacy_seed.read_text().strip().encode()
        keys = KeyMaterial({**keys.values, **{
            f"KAIKU_OMAKAIKU_{purpose.upper().replace('-', '_')}_KEY": _legacy_key(seed, purpose)
            for purpose in ("master", "lookup", "card-signing")}})
    keys.write_env_file(path)
    return keys


def _legacy_key(seed: bytes, purpose: str) -> str:
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"kaikukortti-omakaiku-dev",
               info=f"omakaiku/{purpose}".encode()).derive(seed)
    return base64.b64encode(key).decode()


def cmd_token(args: argparse.Namespace) -> int:
    settings = KaikuSettings()
    if settings.env == "production":
        console.print("[red]kaiku token is a development tool: production tokens come from "
                      "signing in (cards /auth/login, omakaiku /auth/token).[/red]")
        return 2
    if settings.staff_signing_keys or settings.holder_signing_keys:
        env = os.environ
    elif (DATA_DIR / KEYS_FILE).exists():
        env = KeyMaterial.read_env_file(DATA_DIR / KEYS_FILE, complete=True).values
    else:
        console.print("[red]No signing keys: start `make run` first (it keeps development "
                      "keys in .kaiku/keys/), or set KAIKU_STAFF_SIGNING_KEYS / "
                      "KAIKU_HOLDER_SIGNING_KEYS.[/red]")
        return 2
    try:
        signing = KaikuSettings(staff_signing_keys=env.get("KAIKU_STAFF_SIGNING_KEYS"),
                                holder_signing_keys=env.get("KAIKU_HOLDER_SIGNING_KEYS"))
        signer = (TokenSigner.for_holders(signing) if args.role == "holder"
                  else TokenSigner.for_staff(signing))
        print(signer.issue(role=args.role, organisation_id=args.org, account_id=args.account,
                           ttl_seconds=args.ttl))
    except (ValueError, SigningKeyMissing) as error:
        console.print(f"[red]{error}[/red]")
        return 2
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """`kaiku keys generate` writes a fresh set; `kaiku keys rotate` puts a new
    signing key first in an existing set (the old ones keep verifying)."""
    path = Path(args.out) / "kaiku.env" if args.action == "generate" else Path(args.file)
    if args.action == "generate":
        if path.exists() and not args.force:
            console.print(f"[red]{path} exists; rotate it (kaiku keys rotate --file {path}) or "
                          "pass --force to replace every key (holders' data sealed with the "
                          "old master key could no longer be read).[/red]")
            return 2
        KeyMaterial.generate().write_env_file(path)
        console.print(f"Wrote a new key set to {path} (mode 600). Give each service only its "
                      "own lines: see docs/operations.md#keys.")
        return 0
    try:
        keys = KeyMaterial.read_env_file(path, complete=True)
    except (OSError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        return 2
    for purpose in args.purpose or ("staff", "holder"):
        keys = keys.rotated(purpose)
    keys.write_env_file(path)
    console.print(f"Rotated the {' and '.join(args.purpose or ('staff', 'holder'))} signing key(s) in {path}: the new "
                  "key signs, the old ones verify until you remove them (after 12 h).")
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

    from kaiku_shared.deadletters import list_dead_letters, replay_dead_letters

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
    production = KaikuSettings().env == "production"
    if production and (problem := production_preflight()):
        console.print(f"[red]{problem}[/red]")
        return 2
    # Development keys live in .kaiku/keys/; production takes its own from the
    # environment (each process checks them again as it starts).
    keys = None if production else development_keys(data_dir)
    seed = dev_seed(data_dir)
    servers = EmbeddedServers(data_dir, nats_url=os.environ.get("KAIKU_NATS_URL"),
                              database_url=os.environ.get("KAIKU_DATABASE_URL"))
    with console.status("Starting NATS and PostgreSQL…"):
        nats_url, database_url = servers.start()
    env = {"KAIKU_NATS_URL": nats_url, "KAIKU_DATABASE_URL": database_url,
           **(keys.public_env() if keys else {})}
    ports = {s: args.port_base + i for i, s in enumerate(SERVICES)}
    # Holders' e-mail (sign-in codes, welcome links) goes to a local sink.
    sink, mail_env = mail_sink(data_dir / "mail", args.smtp_port, ports["omakaiku"])
    # Sign-in links in holders' e-mail open the web interface.
    mail_env["KAIKU_OMAKAIKU_PUBLIC_URL"] = f"http://127.0.0.1:{args.web_port}/oma"
    supervisor = Supervisor({**env, **mail_env}, data_dir / "logs")
    supervisor.add(sink)
    for spec in service_specs(ports, keys=keys):
        supervisor.add(spec)
    supervisor.add(web_spec(args.web_port, ports, dev_token_signin=not production, keys=keys))

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with console.status("Starting the service processes and the web interface…"):
            supervisor.start_all()
            supervisor.wait_ready(timeout=90)
        ready_after = time.monotonic() - started
        urls = {s: f"http://127.0.0.1:{ports[s]}" for s in SERVICES}
        demo = None
        if not args.no_demo and keys is not None:
            with console.status("Loading demo data…"):
                demo = load_demo_data(keys, seed, urls)
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


def production_preflight() -> str | None:
    """Each process's own production check, run before anything starts: the
    first refusal, as the process printed it, or None."""
    import subprocess

    for module in (*SERVICES, "web"):
        result = subprocess.run([sys.executable, "-m", module, "check"], capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or [f"{module} check failed"]
            return lines[-1]
    return None


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
    keys = sub.add_parser("keys", help="make or rotate an installation's keys")
    keys.add_argument("action", choices=["generate", "rotate"])
    keys.add_argument("--out", default="kaiku-keys",
                      help="generate: the folder for kaiku.env (default ./kaiku-keys)")
    keys.add_argument("--force", action="store_true", help="generate: replace an existing set")
    keys.add_argument("--file", default="kaiku-keys/kaiku.env", help="rotate: the set to change")
    keys.add_argument("--purpose", action="append", choices=["staff", "holder"],
                      help="rotate: which signing key (repeatable; default both)")
    keys.set_defaults(func=cmd_keys)
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
