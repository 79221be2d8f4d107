"""GET /public/stats on the cards api against a static file served by the same
server stack, in the same run.

    .venv/bin/python bench/public_stats.py                  # 0.1× the national history
    .venv/bin/python bench/public_stats.py --scale 1 --runs 5
    .venv/bin/python bench/public_stats.py --scale 0.01 --runs 1 --no-save   # a quick look

Starts the whole system (12 processes) in a fresh namespace on real NATS and
PostgreSQL, writes a national history through ``python -m cards seed-history``
(``--scale`` of the seed's 88,188 cards and 251,566 uses; the cards worker folds
it into the statistics the document is built from) and waits until the
document shows it. Then, with the document's bytes:

- **baseline**: ``static_baseline.py``, its own process on a free port: the same
  bytes as a file through Starlette's ``StaticFiles``, run by the cards api's own
  ``serve_api`` (one uvicorn process, uvloop, httptools: the cards api's settings);
  beside it the same bytes from memory by a plain route (the stack's floor);
- **max load**: ``http_load.py`` (a process of its own: its CPU apart from the
  servers') with 32 kept-alive clients for ``--duration`` seconds after a
  warm-up → requests/s, p50/p99, the server's CPU per request, the generator's
  own CPU (its ceiling shows there);
- **half load**: each target paced at half its own measured maximum → p50/p99;
- the same for conditional requests (``If-None-Match`` → 304), the api's and
  the static file's;
- meanwhile a trickle of ticket registrations (``--trickle``/s through the venues
  api) moves the figures, so the document is rebuilt while it is served.

Targets: ≥ 0.5× the static file's requests/s, p99 ≤ 20 ms at half load. Runs
alternate the targets so that a machine that slows down slows every one of them.
The machine has two cores for the servers, the twelve processes and the
generator: the figures say how busy it was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import registration  # noqa: E402
from common import Benchmark, console  # noqa: E402

from cards.application.seed_history import (  # noqa: E402
    SEED_CARDS,
    SEED_USES,
    SEED_USES_WITH_CHILDREN,
)
from kaiku_dev.supervisor import Supervisor  # noqa: E402
from kaiku_dev.testing import Namespace, free_port  # noqa: E402
from kaiku_shared.service import run_loop  # noqa: E402

HERE = Path(__file__).parent
PATH = "/public/stats"
CLIENTS = 32
TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0
TRICKLE_CARDS = 80
TRICKLE_OFFERINGS = 10


@dataclass(frozen=True)
class Target:
    label: str
    port: int
    path: str
    pid: int
    conditional: bool = False


# --- the data: a national history, folded into the statistics ---------------------------

def seed_history(ns: Namespace, scale: float) -> dict:
    """``python -m cards seed-history`` at ``scale`` of the seed, through the write
    path: the relay and the cards worker then fold it into the statistics."""
    command = [sys.executable, "-m", "cards", "seed-history", "--quiet", "--json",
               "--cards", str(round(SEED_CARDS * scale)),
               "--uses", str(round(SEED_USES * scale)),
               "--uses-with-children", str(round(SEED_USES_WITH_CHILDREN * scale))]
    done = subprocess.run(command, env={**os.environ, **ns.env()}, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"seed-history failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def wait_for_document(url: str, cards: int, uses: int, timeout: float) -> bytes:
    """The document once it shows at least ``cards`` cards and ``uses`` uses (the
    cards worker has caught up with the history): its bytes."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            response = await client.get(f"{url}{PATH}")
            if response.status_code == 404:
                raise SystemExit(f"cards answers 404 to GET {PATH}: this build has no "
                                 "public statistics document")
            response.raise_for_status()
            document = response.json()
            if document["cards_issued"] >= cards and document["uses"] >= uses:
                return response.content
            if time.monotonic() > deadline:
                console.print(f"[yellow]after {timeout:.0f} s the document shows "
                              f"{document['cards_issued']:,} cards and {document['uses']:,} "
                              f"uses, not yet {cards:,} and {uses:,}: measuring it as it "
                              "is[/yellow]")
                return response.content
            await asyncio.sleep(1.0)


# --- the baseline server and the load generator, each a process of its own --------------

@contextlib.contextmanager
def static_baseline(body: bytes) -> Iterator[tuple[int, int, str]]:
    """``static_baseline.py`` serving ``body`` as a file: (port, pid, file's URL path)."""
    with tempfile.TemporaryDirectory(prefix="kaiku-static-") as directory:
        path = Path(directory) / "public-stats.json"
        path.write_bytes(body)
        port = free_port()
        process = subprocess.Popen([sys.executable, str(HERE / "static_baseline.py"),
                                    str(path), str(port)], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/memory").status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the static baseline server did not start")
                time.sleep(0.2)
            yield port, process.pid, f"/static/{path.name}"
        finally:
            process.terminate()
            process.wait(timeout=10)


async def generate(target: Target, args: argparse.Namespace, rate: float | None) -> dict:
    spec = {"port": target.port, "path": target.path, "clients": args.clients,
            "warmup": args.warmup, "duration": args.duration, "rate": rate,
            "conditional": target.conditional, "server_pid": target.pid}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "http_load.py"), json.dumps(spec),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"the load generator failed on {target.label}:\n{err.decode()}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    statuses = ", ".join(f"{n:,}×{s}" for s, n in sorted(result["statuses"].items()))
    console.print(
        f"{target.label:48} {'max' if rate is None else f'{rate:,.0f}/s':>8}: "
        f"{result['rate']:8,.0f} req/s  p50 {result['p50_ms']:6.1f}  p99 "
        f"{result['p99_ms']:6.1f} ms  server {result['server_cpu']:4.0%} "
        f"({result['server_us_per_request']:,.0f} µs/req)  generator "
        f"{result['generator_cpu']:4.0%}  machine {result['machine_busy']:4.0%}  "
        f"[{statuses}; {result['distinct_etags']} ETag(s)"
        + (f"; {result['failures']} failed: {result['first_failure']}" if result["failures"]
           else "") + "]")
    return result


# --- a trickle of registrations while the document is served ---------------------------

async def prepare_trickle(ns: Namespace, urls: dict[str, str]) -> tuple[str, list]:
    """A venue's token and (card, offering) pairs, each registrable once."""
    token, cards, offerings = await registration.setup(ns, urls, TRICKLE_CARDS,
                                                       TRICKLE_OFFERINGS)
    await registration.wait_for_cards(ns, len(cards))
    pairs = [(card, offering) for card in cards for offering in offerings]
    random.shuffle(pairs)
    return token, pairs


@contextlib.asynccontextmanager
async def trickle(url: str, token: str, pairs: list, rate: float) -> AsyncIterator[list]:
    """Tickets registered at ``rate``/s through the venues api (``url``) while the
    block runs; yields the list of the registered tickets' ids."""
    registered: list[str] = []

    async def register() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            for card, offering in pairs:
                started = time.perf_counter()
                ticket = await registration.post(client, f"{url}/tickets", token, {
                    "card_number": card, "offering_id": offering, "children": 0})
                registered.append(ticket["ticket_id"])
                await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))

    task = asyncio.create_task(register()) if rate > 0 and pairs else None
    try:
        yield registered
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- the run ---------------------------------------------------------------------------

async def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, dict]:
    """Every target at max load, then at half its own max; ``--runs`` times each,
    the targets alternating. {label: {"max": [results], "half": [results]}}."""
    results: dict[str, dict] = {t.label: {"max": [], "half": []} for t in targets}
    for _ in range(args.runs):
        for target in targets:
            results[target.label]["max"].append(await generate(target, args, None))
    for _ in range(args.runs):
        for target in targets:
            half = statistics.median(r["rate"] for r in results[target.label]["max"]) / 2
            results[target.label]["half"].append(await generate(target, args, half))
    return results


async def run(ns: Namespace, supervisor: Supervisor, urls: dict[str, str],
              args: argparse.Namespace) -> Benchmark:
    token, pairs = await prepare_trickle(ns, urls)
    started = time.perf_counter()
    seeded = seed_history(ns, args.scale)
    console.print(f"seed-history at {args.scale:g}×: {seeded['cards']:,} cards, "
                  f"{seeded['uses']:,} uses written in {time.perf_counter() - started:.0f} s")
    body = await wait_for_document(urls["cards"], seeded["cards"] + TRICKLE_CARDS,
                                   seeded["uses"], timeout=600)
    console.print(f"the document shows them {time.perf_counter() - started:.0f} s after the "
                  f"seeding began: {len(body):,} bytes; load average {load_average()}")
    cards = Target(f"GET {PATH}", int(urls["cards"].rsplit(":", 1)[1]), PATH,
                   supervisor.processes["cards-api"].pid)
    with static_baseline(body) as (port, pid, file_path):
        static = Target("static file (StaticFiles)", port, file_path, pid)
        targets = [static, cards,
                   Target(f"{static.label}, If-None-Match → 304", port, file_path, pid, True),
                   Target(f"{cards.label}, If-None-Match → 304", cards.port, PATH, cards.pid,
                          True),
                   Target("the same bytes from memory (plain route)", port, "/memory", pid)]
        async with trickle(urls["venues"], token, pairs, args.trickle) as registered:
            measuring = time.perf_counter()
            results = await measure(targets, args)
            seconds = time.perf_counter() - measuring
    return report(args, targets, results, len(body), len(registered) / seconds)


def report(args: argparse.Namespace, targets: list[Target], results: dict[str, dict],
           size: int, trickled: float) -> Benchmark:
    static, cards, static_304, cards_304 = (t.label for t in targets[:4])
    bench = Benchmark("public_stats", (
        f"GET {PATH} (cards api) against the same {size:,} bytes as a static file on the "
        f"same server stack; {args.clients} kept-alive clients, {args.duration:g} s a run "
        f"after {args.warmup:g} s of warm-up, {args.runs} runs; history at {args.scale:g}×; "
        f"{trickled:.1f} registrations/s meanwhile"))
    baselines = {cards: static, cards_304: static_304, targets[4].label: static}
    for target in targets:
        label, runs = target.label, results[target.label]
        notes = {cards: f"target ≥ {TARGET_RATIO}× the static file",
                 cards_304: "conditional: If-None-Match with the current ETag"}
        bench.add(f"{label}: requests/s at {args.clients} clients", "req/s",
                  [r["rate"] for r in runs["max"]],
                  baseline=(f"{baselines[label]}: requests/s at {args.clients} clients"
                            if label in baselines else None), note=notes.get(label, ""))
        bench.add(f"{label}: p99 at max load", "ms", [r["p99_ms"] for r in runs["max"]])
        bench.add(f"{label}: p50 at half load", "ms", [r["p50_ms"] for r in runs["half"]],
                  note=f"paced at {statistics.median(r['target_rate'] for r in runs['half']):,.0f}"
                       " req/s")
        bench.add(f"{label}: p99 at half load", "ms", [r["p99_ms"] for r in runs["half"]],
                  note=f"target ≤ {TARGET_P99_MS:g} ms" if label in (cards, cards_304) else "")
        bench.add(f"{label}: server CPU per request", "µs",
                  [r["server_us_per_request"] for r in runs["max"]], note="at max load")
        # What a core of its own would serve: the comparison that a machine
        # shared with other work (the server given less than a core) bends least.
        bench.add(f"{label}: requests per server CPU-second", "req/s",
                  [1e6 / r["server_us_per_request"] for r in runs["max"]],
                  baseline=(f"{baselines[label]}: requests per server CPU-second"
                            if label in baselines else None), note="at max load")
        bench.add(f"{label}: load generator's CPU", "% of a core",
                  [r["generator_cpu"] * 100 for r in runs["max"]], note="at max load")
    bench.add(f"{cards}: document versions seen in a run", "ETags",
              [r["distinct_etags"] for r in results[cards]["max"]],
              note="rebuilt while served (the trickle)")
    bench.add("whole machine busy during the max-load runs", "%",
              [r["machine_busy"] * 100 for t in targets for r in results[t.label]["max"]],
              note="both cores: the system, the generator and whatever else runs")
    return bench


def verdict(bench: Benchmark, clients: int) -> None:
    """The targets, met or not, in words (the table has the figures)."""
    cards, static = f"GET {PATH}", "static file (StaticFiles)"
    ratio = bench.ratio(bench.figure(f"{cards}: requests/s at {clients} clients"))
    p99 = bench.figure(f"{cards}: p99 at half load").median
    p99_304 = bench.figure(f"{cards}, If-None-Match → 304: p99 at half load").median
    rate = bench.figure(f"{cards}: requests/s at {clients} clients").median
    per_cpu = bench.ratio(bench.figure(f"{cards}: requests per server CPU-second"))
    base = bench.figure(f"{static}: requests/s at {clients} clients").median
    for met, text in (
            (ratio is not None and ratio >= TARGET_RATIO,
             f"{rate:,.0f} req/s against the static file's {base:,.0f}: {ratio:.2f}× "
             f"(target ≥ {TARGET_RATIO}×)"),
            (per_cpu is not None and per_cpu >= TARGET_RATIO,
             f"per CPU-second of the server: {per_cpu:.2f}× the static file's"),
            (p99 <= TARGET_P99_MS, f"p99 at half load {p99:.1f} ms (target ≤ {TARGET_P99_MS:g})"),
            (p99_304 <= TARGET_P99_MS, f"304s: p99 at half load {p99_304:.1f} ms")):
        console.print(("[green]met[/green]: " if met else "[red]missed[/red]: ") + text)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1,
                        help="the history, as a multiple of the seed's (default 0.1)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds counted a run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before counting")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--trickle", type=float, default=2.0,
                        help="ticket registrations a second meanwhile (0: none)")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                        help="merge the figures into bench/results.json and .md")
    args = parser.parse_args()
    with registration.running_system("pubstats") as (ns, supervisor, urls):
        bench = run_loop(run(ns, supervisor, urls, args))
    if not args.save:
        bench.save = lambda: None  # type: ignore[method-assign]
    bench.report()
    verdict(bench, args.clients)


if __name__ == "__main__":
    main()
