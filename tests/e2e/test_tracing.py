"""One OpenTelemetry trace from a venue's POST /tickets to omakaiku's history row.

The spans are exported by each process to a JSON-lines file; the trace must hold
the HTTP span (venues api), the publish span (venues relay) and the history
write (omakaiku worker) — three processes, one trace id, parent links intact.
"""

from __future__ import annotations

import pytest

from kaiku_dev.testing import eventually

pytestmark = pytest.mark.e2e


async def test_one_trace_spans_post_tickets_to_the_history_row(world):
    system = world.system
    card = await world.issue_card(children=0)
    offering_id = await world.publish_offering()
    await world.wait_for_card_in_venues(card["card_number"])
    response = await world.register_ticket(card["card_number"], offering_id)
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]

    def post_span():
        return next((s for s in system.spans() if s["name"] == "POST /tickets"
                     and s["service"] == "venues-api"
                     and s["attributes"].get("http.response.status_code") == 201
                     and s["trace_id"] in _trace_ids_with_history(system)), None)

    async def complete_trace():
        span = post_span()
        return span and [s for s in system.spans() if s["trace_id"] == span["trace_id"]]

    trace = await eventually(complete_trace, timeout=20,
                             message=f"a complete trace for ticket {ticket_id}")
    by_id = {s["span_id"]: s for s in trace}
    services = {s["service"] for s in trace}
    assert {"venues-api", "venues-relay", "omakaiku-worker"} <= services, services

    history_write = next(s for s in trace if s["name"] == "omakaiku-history apply "
                                                         "ticket_registered")
    # Walk up from the history write: it must reach the HTTP span across processes.
    chain, span = [], history_write
    while span is not None:
        chain.append(span["service"])
        span = by_id.get(span["parent_span_id"])
    assert chain[0] == "omakaiku-worker" and chain[-1] == "venues-api", chain
    assert "venues-relay" in chain, chain
    print(f"verified: one trace through {' <- '.join(chain)}")


def _trace_ids_with_history(system) -> set[str]:
    return {s["trace_id"] for s in system.spans()
            if s["name"] == "omakaiku-history apply ticket_registered"}
