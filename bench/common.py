"""Benchmark plumbing: medians with min–max, same-run baselines, results files.

Every benchmark measures its raw baseline on the same servers in the same run
and reports the ratio; results go to bench/results.json (merged per benchmark)
and bench/results.md. No benchmark asserts a time: it reports.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"
console = Console(width=160)


@dataclass
class Figure:
    name: str
    unit: str
    runs: list[float]
    baseline: str | None = None  # name of the figure this one is compared with
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict:
        return {**asdict(self), "median": self.median, "min": min(self.runs),
                "max": max(self.runs)}


@dataclass
class Benchmark:
    name: str
    description: str
    figures: list[Figure] = field(default_factory=list)

    def add(self, name: str, unit: str, runs: list[float], *, baseline: str | None = None,
            note: str = "") -> Figure:
        figure = Figure(name, unit, runs, baseline, note)
        self.figures.append(figure)
        return figure

    def figure(self, name: str) -> Figure:
        return next(f for f in self.figures if f.name == name)

    def ratio(self, figure: Figure) -> float | None:
        if not figure.baseline:
            return None
        base = self.figure(figure.baseline).median
        return figure.median / base if base else None

    def report(self) -> None:
        table = Table(title=f"{self.name}: {self.description}")
        for column in ("figure", "median", "min–max", "unit", "× baseline", "note"):
            table.add_column(column)
        for f in self.figures:
            ratio = self.ratio(f)
            table.add_row(f.name, f"{f.median:,.1f}", f"{min(f.runs):,.1f}–{max(f.runs):,.1f}",
                          f.unit, f"{ratio:.2f}× {f.baseline}" if ratio is not None else "",
                          f.note)
        console.print(table)
        self.save()

    def save(self) -> None:
        results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        results[self.name] = {
            "description": self.description,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "figures": [{**f.as_dict(), "ratio": self.ratio(f)} for f in self.figures],
        }
        RESULTS_JSON.write_text(json.dumps(results, indent=2))
        write_markdown(results)


def write_markdown(results: dict) -> None:
    """results.md: every benchmark in ``results``; a section of results.md that
    results.json lacks (it is not committed: a fresh checkout has none) is kept
    as it was, in its place, so that running one benchmark keeps the others'."""
    sections = _sections(RESULTS_MD.read_text()) if RESULTS_MD.exists() else {}
    for name, bench in results.items():
        lines = [f"## {name}", "", bench["description"], "",
                 "| figure | median | min–max | unit | vs baseline | note |",
                 "|---|---:|---|---|---|---|"]
        for f in bench["figures"]:
            ratio = f"{f['ratio']:.2f}× {f['baseline']}" if f.get("ratio") is not None else ""
            lines.append(f"| {f['name']} | {f['median']:,.1f} | {f['min']:,.1f}–{f['max']:,.1f} "
                         f"| {f['unit']} | {ratio} | {f['note']} |")
        sections[name] = lines + [""]
    lines = ["# Benchmark results", "",
             "Written by `make bench`; medians of several runs with min–max, each next to "
             "a baseline measured on the same servers in the same run.", ""]
    for section in sections.values():
        lines += section
    RESULTS_MD.write_text("\n".join(lines))


def _sections(text: str) -> dict[str, list[str]]:
    """results.md's ``## name`` sections, in order, each with its lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        if current is not None:
            current.append(line)
    for lines in sections.values():  # each ends in one blank line, as written
        while lines and not lines[-1].strip():
            lines.pop()
        lines.append("")
    return sections


def repeat(times: int, measure: Callable[[], float]) -> list[float]:
    return [measure() for _ in range(times)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


class bench_servers:  # noqa: N801 - used as a context manager
    """Real NATS and Postgres: from KAIKU_NATS_URL / KAIKU_DATABASE_URL, else embedded."""

    def __enter__(self):
        import os
        import tempfile

        from kaiku_dev.embedded import EmbeddedServers

        self.embedded = None
        nats_url = os.environ.get("KAIKU_NATS_URL")
        database_url = os.environ.get("KAIKU_DATABASE_URL")
        if not (nats_url and database_url):
            self.embedded = EmbeddedServers(Path(tempfile.mkdtemp(prefix="kaiku-bench-")),
                                            nats_url=nats_url, database_url=database_url)
            nats_url, database_url = self.embedded.start()
        return nats_url, database_url

    def __exit__(self, *exc):
        if self.embedded:
            self.embedded.stop()


def describe(doc: str | None) -> None:
    """``--help`` prints what the benchmark measures instead of running it."""
    import argparse

    argparse.ArgumentParser(description=doc,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
