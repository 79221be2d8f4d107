"""National scale, proven small: ``python -m cards seed-history`` writes a synthetic
history through the real write path; the statistics then report exactly its
totals, and rebuilding every statistics read model from scratch gives identical
figures (the benchmark in bench/ runs the seed's full scale)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from uuid import NAMESPACE_URL, uuid5

import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e

SEED = "e2e-small"
CARDS, USES, WITH_CHILDREN, DISTRIBUTORS = 400, 1200, 200, 6


def cards_command(system, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **system.ns.env()}
    return subprocess.run([sys.executable, "-m", "cards", *args], env=env,
                          capture_output=True, text=True, timeout=300)


async def test_seed_history_totals_and_rebuild_from_scratch(system):
    done = await asyncio.to_thread(
        cards_command, system, "seed-history", "--cards", str(CARDS), "--uses", str(USES),
        "--uses-with-children", str(WITH_CHILDREN), "--distributors", str(DISTRIBUTORS),
        "--seed", SEED, "--batch", "100", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout.strip().splitlines()[-1])
    assert (written["cards"], written["uses"], written["uses_with_children"]) == (
        CARDS, USES, WITH_CHILDREN)

    seeded = {str(uuid5(NAMESPACE_URL, f"/seed-history/{SEED}/distributor/{i}"))
              for i in range(DISTRIBUTORS)}
    centre = system.token("kaikukeskus")

    async def totals():
        async with system.client("cards", centre) as client:
            rows = (await client.get("/stats/by/distributor")).json()
        mine = [r for r in rows if r["distributor"] in seeded]
        if len(mine) < DISTRIBUTORS or any(r["suppressed"] for r in mine):
            return None
        summed = tuple(sum(r[k] for r in mine) for k in (
            "cards_issued", "uses", "uses_with_children", "child_tickets"))
        return summed if summed[:3] == (CARDS, USES, WITH_CHILDREN) else None

    summed = await eventually(totals, timeout=120, interval=0.5,
                              message="the seeded history in the statistics")
    assert summed[3] == written["child_tickets"]

    # the history spans the years since 2015
    async with system.client("cards", centre) as client:
        months = (await client.get("/stats/by/month")).json()
    # (a month with a few cards is hidden, None, but not 0)
    years = {row["month"][:4] for row in months if row["cards_issued"] != 0}
    assert {"2017", "2020", "2024"} <= years and min(years) >= "2015"

    # rebuild every statistics read model from the event store and the venues
    # stream: identical to what the live consumers built
    async def identical():
        result = await asyncio.to_thread(cards_command, system, "rebuild-stats", "--quiet")
        if result.returncode not in (0, 1):
            raise AssertionError(result.stderr)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        return report if report["identical_to_live"] else None

    report = await eventually(identical, timeout=120, interval=1,
                              message="the rebuilt statistics to equal the live ones")
    assert report["cards_events"] >= 2 * CARDS
    assert report["national"]["uses"] >= USES
