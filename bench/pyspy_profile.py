"""Profiles of the targets the benchmarks show missed: where the CPU goes.

    .venv/bin/python bench/pyspy_profile.py registration   # every busy process under max load
    .venv/bin/python bench/pyspy_profile.py rebuild        # the statistics rebuild at 1×
    .venv/bin/python bench/pyspy_profile.py public-stats   # GET /public/stats and its baseline

Sampled with py-spy (from outside the process, at 100 Hz, without pausing it),
counting only samples where a Python thread holds the GIL, so the figures are
CPU spent in Python, not waiting. Each profile is summarised into
``bench/profiles/<name>.md``: per process the share of samples by layer (the
library the innermost frame belongs to), the functions with the most self
time, and the total time of this system's own functions. The raw stacks go to
``bench/profiles/raw/`` (not committed); py-spy's own flame graph can be drawn
from them.

The same processes and load as ``registration.py``, ``cards_seed_history.py`` and
``public_stats.py`` (this imports them); the numbers each profile prints are from this run only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import cards_seed_history as history  # noqa: E402
import public_stats  # noqa: E402
import registration  # noqa: E402
from common import bench_servers, console  # noqa: E402

from kaiku_shared.service import run_loop  # noqa: E402
from kaiku_dev.supervisor import Supervisor  # noqa: E402
from kaiku_dev.testing import Namespace  # noqa: E402

HERE = Path(__file__).parent
OUT = HERE / "profiles"
RAW = OUT / "raw"
RATE = 100  # samples a second

OWN = "kaiku (this system)"
# The library a frame's file belongs to, first match wins: the "layer" column.
LAYERS = (
    (OWN, ("/services/", "/shared/src/kaiku_shared/")),
    ("uvicorn / httptools", ("/uvicorn/", "/httptools/")),
    ("fastapi / starlette", ("/fastapi/", "/starlette/")),
    ("pydantic", ("/pydantic/", "/pydantic_core/")),
    ("faststream / fast_depends", ("/faststream/", "/fast_depends/")),
    ("nats-py", ("/nats/",)),
    ("asyncpg", ("/asyncpg/",)),
    ("psycopg", ("/psycopg/", "/psycopg_pool/", "/psycopg_c/")),
    ("eventsourcing", ("/eventsourcing/",)),
    ("opentelemetry", ("/opentelemetry/",)),
    ("structlog / logging", ("/structlog/", "/logging/")),
    ("jwt", ("/jwt/",)),
    ("asyncio / uvloop", ("/asyncio/", "/uvloop/")),
    ("json", ("/json/",)),
    ("threads / queue", ("threading.py", "queue.py", "/concurrent/")),
)


def layer_of(frame: str) -> str:
    for name, marks in LAYERS:
        if any(mark in frame for mark in marks):
            return name
    return "other (stdlib, C)"


def parse(path: Path) -> Counter:
    """py-spy's raw (collapsed) stacks: 'root;...;leaf count' per line."""
    stacks: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def short(frame: str) -> str:
    """'handle (/long/path/site-packages/pkg/mod.py:12)' → 'handle (pkg/mod.py:12)'."""
    name, _, where = frame.partition(" (")
    for cut in ("site-packages/", "/src/"):
        if cut in where:
            where = where.split(cut, 1)[1]
            break
    else:
        if "/lib/python3" in where:  # the standard library: from its package on
            where = where.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{name} ({where}" if where else name


def summarise(title: str, stacks: Counter, seconds: float, top: int = 15) -> str:
    total = sum(stacks.values())
    if not total:
        return f"### {title}\n\nno samples with the GIL held\n"
    by_layer: Counter = Counter()
    self_time: Counter = Counter()
    own_time: Counter = Counter()  # the services' and kaiku_shared's functions
    for stack, count in stacks.items():
        by_layer[layer_of(stack[-1])] += count
        self_time[short(stack[-1])] += count
        # Per function, whatever line of it: each counted once per stack.
        for function in {short(f).rpartition(":")[0] + ")" for f in stack
                         if layer_of(f) == OWN}:
            if not function.startswith(("main", "run_loop", "serve_api", "<module>")):
                own_time[function] += count
    busy = total / (RATE * seconds)
    lines = [f"### {title}", "",
             f"{total:,} samples with the GIL held in {seconds:.1f} s: Python was running "
             f"{busy:.0%} of the time.", "",
             "| layer (innermost frame) | share |", "|---|---:|"]
    lines += [f"| {name} | {count / total:.0%} |" for name, count in by_layer.most_common()]
    lines += ["", "| self time (function) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {count / total:.1%} |"
              for name, count in self_time.most_common(top)]
    lines += ["", "| total time of this system's own functions (and what they call) | share |",
              "|---|---:|"]
    lines += [f"| `{name}` | {count / total:.0%} |"
              for name, count in own_time.most_common(top)]
    return "\n".join(lines) + "\n"


# py-spy beside this interpreter (the venv), else on PATH.
PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def record(target: list[str], out: Path, *, env: dict | None = None) -> subprocess.Popen:
    """py-spy recording `target` (['--pid', N] or ['--', command...]) into `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [PY_SPY, "record", "--gil", "--nonblocking", "--full-filenames", "--rate", str(RATE),
         "--format", "raw", "--output", str(out), *target], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(recorder: subprocess.Popen) -> None:
    recorder.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
    try:
        recorder.wait(timeout=30)
    except subprocess.TimeoutExpired:
        recorder.kill()


def header(what: str, load: str) -> str:
    return (f"# Profile: {what}\n\nWritten by `bench/pyspy_profile.py` on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC (py-spy, {RATE} Hz, samples with the "
            f"GIL held only; load average as the profiled run began: {load}).\n\n")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# --- registration: the system under max load ------------------------------------------

BUSY = ("venues-api", "omakaiku-worker", "cards-worker", "notifications-worker",
        "venues-relay")


async def profile_registration(ns: Namespace, supervisor: Supervisor, urls: dict) -> str:
    token, cards, offerings = await registration.setup(ns, urls)
    await registration.wait_for_cards(ns, len(cards))
    used: set = set()
    # Warm up (first requests pay imports and caches), then profile one max-load run.
    await registration.load(urls["venues"], token,
                            registration.make_pairs(cards, offerings, 500, used),
                            registration.CLIENTS, None)
    recorders = {name: record(["--pid", str(supervisor.processes[name].pid)],
                              RAW / f"registration-{name}.txt") for name in BUSY}
    await asyncio.sleep(1.0)  # py-spy attaches
    load = load_average()
    started = time.perf_counter()
    elapsed, latencies, tickets, refused = await registration.load(
        urls["venues"], token,
        registration.make_pairs(cards, offerings, registration.MAX_LOAD_REQUESTS, used),
        registration.CLIENTS, None)
    await registration.propagation_lags(ns, tickets)  # until the consumers are done
    seconds = time.perf_counter() - started
    for recorder in recorders.values():
        stop(recorder)
    rate = len(tickets) / elapsed
    text = header("ticket registration at max load", load) + (
        f"{len(tickets):,} registrations ({refused} refused) by "
        f"{registration.CLIENTS} box offices at {rate:,.0f}/s, until omakaiku's history "
        f"had them all: {seconds:.1f} s profiled. Sampling slows the system a little "
        "(py-spy itself takes CPU on the same two cores).\n\n")
    for name in BUSY:
        text += summarise(name, parse(RAW / f"registration-{name}.txt"), seconds) + "\n"
    return text


def registration_main() -> str:
    with registration.running_system("prof") as (ns, supervisor, urls):
        return run_loop(profile_registration(ns, supervisor, urls))


# --- rebuild: the statistics rebuild from the cards event store -------------------------

def rebuild_main(scale: float) -> str:
    plan = history.plan_at(scale)
    with bench_servers() as (nats_url, database_url):
        settings = history.fresh_settings(nats_url, database_url, "prof")
        try:
            asyncio.run(history.prepare_database(settings))
            app = history.build_application(settings)
            asyncio.run(history.bulk_load(settings, app, plan))
            app.close()
            text = header(f"statistics rebuild at {scale:g}× ({plan.cards:,} cards, "
                          f"{plan.uses:,} uses)", load_average())
            text += ("Each measurement of `cards_seed_history.py` in its own process, "
                     "under py-spy: the raw baseline (read + `json.loads`) and the "
                     "rebuild, from the same event table. Each is sampled from its start, "
                     "so its first second or so is imports and set-up.\n\n")
            for kind, what in (("raw", "read + json.loads"), ("rebuild", "rebuild.rebuild")):
                out = RAW / f"rebuild-{kind}.txt"
                command, env = history.child(kind, settings)
                started = time.perf_counter()
                recorder = record(["--", *command], out, env=env)
                _, errors = recorder.communicate()
                if recorder.returncode:
                    raise RuntimeError(f"{kind} under py-spy failed:\n{errors.decode()}")
                seconds = time.perf_counter() - started
                text += summarise(f"{kind} ({what})", parse(out), seconds) + "\n"
            return text
        finally:
            asyncio.run(history.drop(settings))


# --- the public statistics document: the cards api and the static file at max load -----

async def profile_public_stats(ns: Namespace, supervisor: Supervisor, urls: dict,
                               scale: float) -> str:
    seeded = public_stats.seed_history(ns, scale)
    body = await public_stats.wait_for_document(urls["cards"], seeded["cards"],
                                                seeded["uses"], timeout=600)
    load = argparse.Namespace(clients=public_stats.CLIENTS, warmup=1.0,
                              duration=10.0)
    text = header(f"GET {public_stats.PATH} and the static file at max load", load_average()) + (
        f"`public_stats.py`'s targets at max load ({load.clients} kept-alive clients, "
        f"{load.duration:g} s after {load.warmup:g} s of warm-up), one after the other, "
        f"each server process sampled over its own run; the history at {scale:g}× "
        f"({seeded['cards']:,} cards, {seeded['uses']:,} uses), a {len(body):,}-byte "
        "document. Sampling slows the server a little (py-spy itself takes CPU on the "
        "same two cores).\n\n")
    cards_port, cards_pid = int(urls["cards"].rsplit(":", 1)[1]), \
        supervisor.processes["cards-api"].pid
    with public_stats.static_baseline(body) as (port, pid, file_path):
        targets = [
            public_stats.Target(f"cards api: GET {public_stats.PATH}", cards_port,
                                public_stats.PATH, cards_pid),
            public_stats.Target(f"cards api: GET {public_stats.PATH}, If-None-Match → 304",
                                cards_port, public_stats.PATH, cards_pid, True),
            public_stats.Target("static baseline: the file (StaticFiles)", port, file_path,
                                pid),
            public_stats.Target("static baseline: the same bytes from memory", port,
                                "/memory", pid)]
        for n, target in enumerate(targets):
            out = RAW / f"public-stats-{n}.txt"
            recorder = record(["--pid", str(target.pid)], out)
            await asyncio.sleep(1.0)  # py-spy attaches
            started = time.perf_counter()
            result = await public_stats.generate(target, load, None)
            seconds = time.perf_counter() - started
            stop(recorder)
            text += summarise(
                f"{target.label}: {result['rate']:,.0f} req/s, "
                f"{result['server_us_per_request']:,.0f} µs of the server's CPU a request",
                parse(out), seconds) + "\n"
    return text


def public_stats_main(scale: float) -> str:
    with registration.running_system("prof") as (ns, supervisor, urls):
        return run_loop(profile_public_stats(ns, supervisor, urls, scale))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("registration", "rebuild", "public-stats"))
    parser.add_argument("--scale", type=float, default=None,
                        help="multiple of the seed (rebuild: 1, public-stats: 0.1)")
    args = parser.parse_args()
    if not PY_SPY:
        sys.exit("py-spy is not installed: .venv/bin/pip install -r requirements-dev.txt")
    if args.what == "registration":
        text = registration_main()
    elif args.what == "rebuild":
        text = rebuild_main(args.scale or 1.0)
    else:
        text = public_stats_main(args.scale or 0.1)
    out = OUT / f"{args.what}.md"
    out.write_text(text)
    console.print(text)
    console.print(f"written to {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
