"""Writes kaikukortti.json, the Grafana dashboard: python deploy/grafana/generate.py

Panels over the metric names in shared/src/kaiku_shared/metrics.py;
tests/deploy/test_k8s_manifests.py checks the dashboard uses exactly those.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "kaikukortti.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []
y = 0
def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "id": len(panels) + 1, "panels": []})
    y += 1
def ts(title, targets, unit="short", x=0, w=12, h=8, desc="", kind="timeseries", stack=False):
    p = {"type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x, "y": y}, "id": len(panels) + 1,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                     "tooltip": {"mode": "multi"}} if kind == "timeseries" else {"reduceOptions": {"calcs": ["lastNotNull"]}},
         "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)} for i, (e, l) in enumerate(targets)]}
    if kind == "timeseries" and stack:
        p["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal"}}
    panels.append(p)
def nl():
    global y
    y += 8
S = 'service=~"$service"'
row("HTTP (api processes)")
ts("Requests per second by service", [(f'sum by (service) (rate(kaiku_http_request_seconds_count{{{S}}}[$__rate_interval]))', "{{service}}")], "reqps", 0, desc="Every api replica's requests, summed per service.")
ts("Errors (5xx) per second by service", [(f'sum by (service) (rate(kaiku_http_request_seconds_count{{{S},status=~"5.."}}[$__rate_interval]))', "{{service}} 5xx"), (f'sum by (service) (rate(kaiku_http_request_seconds_count{{{S},status=~"4.."}}[$__rate_interval]))', "{{service}} 4xx")], "reqps", 12, desc="4xx are refusals by rule (expected); 5xx are faults.")
nl()
ts("Latency p50 / p95 / p99 by service", [(f'histogram_quantile({q}, sum by (service, le) (rate(kaiku_http_request_seconds_bucket{{{S}}}[$__rate_interval])))', f"{{{{service}}}} p{int(q*100)}") for q in (0.5, 0.95, 0.99)], "s", 0)
ts("Latency p95 by route", [(f'histogram_quantile(0.95, sum by (service, method, route, le) (rate(kaiku_http_request_seconds_bucket{{{S}}}[$__rate_interval])))', "{{service}} {{method}} {{route}}")], "s", 12, desc="Routes are templates (/tickets/{ticket_id}), never concrete ids.")
nl()
row("Relay (outbox → JetStream)")
ts("Relay lag: stored events not yet published", [(f'max by (service) (kaiku_relay_lag_events{{{S}}})', "{{service}}")], "short", 0, desc="Only the active relay reports a lag; a standby reports none. A lag that grows means the relay is stuck or NATS is refusing publishes.")
ts("Events published per second", [(f'sum by (service, event_type) (rate(kaiku_relay_published_total{{{S}}}[$__rate_interval]))', "{{service}} {{event_type}}")], "ops", 12, stack=True)
nl()
row("Consumers (workers)")
ts("Events handled per second by consumer", [('sum by (consumer) (rate(kaiku_consumer_events_total{consumer=~"$consumer",outcome="applied"}[$__rate_interval]))', "{{consumer}}")], "ops", 0, desc="applied = the handler ran and its read model changed in the same transaction as processed_events.")
ts("Redeliveries and duplicates", [('sum by (consumer) (rate(kaiku_consumer_events_total{consumer=~"$consumer",outcome="retry"}[$__rate_interval]))', "{{consumer}} retry (handler failed, nak with backoff)"), ('sum by (consumer) (rate(kaiku_consumer_events_total{consumer=~"$consumer",outcome="duplicate"}[$__rate_interval]))', "{{consumer}} duplicate (already processed, acked)")], "ops", 12, desc="Duplicates are normal after a worker or NATS fail-over (ack_wait redelivery); retries mean a handler is failing.")
nl()
ts("Consumer lag: messages not yet acknowledged", [('max by (consumer) (kaiku_consumer_lag_messages{consumer=~"$consumer"})', "{{consumer}}"), ('max by (consumer) (kaiku_consumer_paused{consumer=~"$consumer"})', "{{consumer}} paused by an outage (1)")], "short", 0, desc="Reported by each worker every few seconds from JetStream's consumer info. A lag that keeps growing means the workers cannot keep up: add worker replicas. 'paused' is 1 while a consumer holds a message through a database outage; it resumes by itself.")
ts("Fan-out progress: notifications waiting for e-mail hand-over", [('max(kaiku_fanout_pending_notifications)', "pending")], "short", 12, desc="Rises when a popular offering reaches many subscribers, falls as batches of 1,000 are handed to OmaKaiku. Flat and above zero means the hand-over is stuck.")
nl()
ts("Dead letters in the last hour", [('sum by (consumer) (increase(kaiku_dead_letters_total{consumer=~"$consumer"}[1h]))', "{{consumer}}")], "short", 0, desc="Should be 0. Inspect with `kaiku dlq list`, fix, then `kaiku dlq replay`.", kind="stat")
ts("Dead letters per second", [('sum by (consumer) (rate(kaiku_dead_letters_total{consumer=~"$consumer"}[$__rate_interval]))', "{{consumer}}")], "ops", 12)
nl()
dash = {

  "title": "Kaikukortti", "uid": "kaikukortti", "description": "Requests, latency, relay lag, consumer throughput, redeliveries and dead letters of every Kaikukortti process (metric names: shared/src/kaiku_shared/metrics.py).",
  "tags": ["kaikukortti"], "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True,
  "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
  "templating": {"list": [
    {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
    {"name": "service", "label": "Service", "type": "query", "datasource": DS, "query": {"query": "label_values(kaiku_http_request_seconds_count, service)", "refId": "service"}, "definition": "label_values(kaiku_http_request_seconds_count, service)", "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "refresh": 2},
    {"name": "consumer", "label": "Consumer", "type": "query", "datasource": DS, "query": {"query": "label_values(kaiku_consumer_events_total, consumer)", "refId": "consumer"}, "definition": "label_values(kaiku_consumer_events_total, consumer)", "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "refresh": 2},
  ]},
  "annotations": {"list": []},
  "panels": panels,
}
open(OUT, "w").write(json.dumps(dash, indent=2) + "\n")

