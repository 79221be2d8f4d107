"""Prometheus metrics shared by every process (labels never carry personal data)."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Histogram(
    "kaiku_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RELAY_PUBLISHED = Counter(
    "kaiku_relay_published_total", "Integration events published", ["service", "event_type"]
)
RELAY_LAG = Gauge(
    "kaiku_relay_lag_events", "Stored events not yet published", ["service"]
)
CONSUMED = Counter(
    "kaiku_consumer_events_total", "Events handled", ["consumer", "event_type", "outcome"]
)
DEAD_LETTERS = Counter(
    "kaiku_dead_letters_total", "Messages sent to the dead-letter subject", ["consumer"]
)
CONSUMER_PAUSED = Gauge(
    "kaiku_consumer_paused",
    "1 while a durable consumer holds a message through an infrastructure outage",
    ["consumer"],
)
CONSUMER_LAG = Gauge(
    "kaiku_consumer_lag_messages",
    "Messages a durable consumer has not yet acknowledged (pending + in flight)",
    ["consumer"],
)
FANOUT_PENDING = Gauge(
    "kaiku_fanout_pending_notifications",
    "In-app notifications not yet handed over for e-mail (fan-out progress)",
    ["service"],
)
PUSHES = Counter(
    "kaiku_push_total",
    "Web Push attempts by outcome: sent, retry, gone (device deleted), failed, dropped",
    ["outcome"],
)
