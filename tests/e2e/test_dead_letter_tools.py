"""`kaiku dlq list` and `kaiku dlq replay`: an operator inspects a dead letter,
fixes the cause, and replays it; it is applied once and leaves the dead-letter stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest

from kaiku_shared.contracts import TicketRegisteredV1
from kaiku_shared.deadletters import list_dead_letters
from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e


def kaiku(system, *args: str) -> str:
    env = {**os.environ, **system.ns.env()}
    result = subprocess.run([sys.executable, "-m", "kaiku_dev.cli", *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


async def test_dead_letter_is_listed_and_replayed_once_fixed(world):
    system = world.system
    settings = system.ns.settings
    ticket_id = str(uuid.uuid4())
    body = {
        "event_id": str(uuid.uuid4()), "event_type": "ticket_registered", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "producer": "venues",
        "aggregate_id": ticket_id, "aggregate_version": 1, "ticket_id": ticket_id,
        "offering_id": str(uuid.uuid4()), "offering_title": "Korjattava",
        "venue_id": str(uuid.uuid4()), "venue_name": "Testitalo", "municipality": "imatra",
        "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "card_number": "KXA-12345", "children": 0, "channel": "box_office",
        "registered_by": str(uuid.uuid4()),
    }
    broken = {**body, "children": -3}  # fails the contract: dead-lettered
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().publish(TicketRegisteredV1.subject(settings.namespace),
                                     json.dumps(broken).encode())
    finally:
        await nc.close()

    async def listed():
        letters = await list_dead_letters(settings, "omakaiku-history")
        return [d for d in letters if d.event_id == body["event_id"]]

    [letter] = await eventually(listed, message="the broken event in the dead-letter stream")
    assert "children" in letter.reason
    assert body["event_id"] in kaiku(system, "dlq", "list", "--consumer", "omakaiku-history")

    # The "fix": the stored body is corrected (as a producer fix would), then replayed.
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await js.delete_msg(settings.dead_letter_stream, letter.sequence)
        await js.publish(f"{settings.namespace}.dlq.omakaiku.omakaiku-history",
                         json.dumps(body).encode(),
                         headers={"Kaiku-Dead-Letter-Reason": letter.reason,
                                  "Kaiku-Original-Subject": letter.original_subject})
    finally:
        await nc.close()
    [fixed] = await listed()
    output = kaiku(system, "dlq", "replay", "--seq", str(fixed.sequence))
    assert f"[{fixed.sequence}]" in output

    async def in_history():
        conn = await system.database("omakaiku")
        try:
            return await conn.fetchval("SELECT count(*) FROM history_view WHERE ticket_id = $1",
                                       uuid.UUID(ticket_id))
        finally:
            await conn.close()

    assert await eventually(in_history, message="the replayed event applied") == 1
    assert not await listed()
