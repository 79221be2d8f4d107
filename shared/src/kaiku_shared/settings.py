"""Settings every process reads from the environment (prefix ``KAIKU_``).

One namespace setting keeps test runs apart on shared servers: it prefixes the
databases (``<ns>_cards``), the JetStream streams (``<NS>_CARDS``) and the
subjects (``<ns>.cards.card_issued.v1``).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("cards", "venues", "omakaiku", "notifications")
DEFAULT_PORTS = {"cards": 8101, "venues": 8102, "omakaiku": 8103, "notifications": 8104}


class KaikuSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAIKU_", extra="ignore")

    # One URL, or several separated by commas (the servers of a NATS cluster).
    nats_url: str = "nats://127.0.0.1:4222"
    # TLS to NATS (file paths). With a CA the client verifies the server's
    # certificate and starts TLS before any protocol byte (handshake first, so a
    # password never travels in clear); cert/key add a client certificate.
    nats_tls_ca: str | None = None
    nats_tls_cert: str | None = None
    nats_tls_key: str | None = None
    nats_tls_handshake_first: bool = True
    # Server-level URL; each service uses its own database on this server.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    namespace: str = "kaiku"
    # production refuses development keys, unset secrets and a missing SMTP
    # relay at start-up (production.py), and the web marks every cookie Secure
    # and sends HSTS; `kaiku run` is development.
    env: Literal["development", "production"] = "development"

    # Tokens (auth.py, keys.py). A key set is a JWK set as JSON text or a file
    # path. Only cards holds the staff signing keys and only omakaiku the holder
    # ones; every process verifies with the public keys, configured here or
    # fetched from the issuer's /.well-known/jwks.json.
    staff_signing_keys: str | None = None
    holder_signing_keys: str | None = None
    staff_jwks: str | None = None
    holder_jwks: str | None = None
    staff_jwks_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['cards']}/.well-known/jwks.json"
    holder_jwks_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['omakaiku']}/.well-known/jwks.json"
    jwt_audience: str = "kaikukortti"
    # Networks whose X-Forwarded-For is believed (the web, a reverse proxy):
    # "10.0.0.0/8, 192.0.2.7". Empty: the connection's peer is the client.
    trusted_proxies: str = ""
    # How often an api reloads the revocations its worker projected (seconds).
    revocation_refresh_seconds: float = Field(default=0.25, gt=0, le=1.0)

    http_host: str = "127.0.0.1"
    http_port: int | None = None
    # A request whose first attempt has not finished after this long is taken
    # as abandoned (its process died); a retry then runs the use case again,
    # which finds what the first attempt committed (ids derive from the key).
    idempotency_stale_seconds: float = Field(default=30.0, gt=0)
    # How long a stored answer to an Idempotency-Key is kept: long enough for any
    # client's retries, short enough that hashes of request bodies (which may be
    # personal data) do not pile up. Erasure removes a holder's at once.
    idempotency_retention_seconds: float = Field(default=24 * 3600.0, ge=60)
    # Test-only failpoints, e.g. "crash-after-commit"; never set in production.
    failpoints: str = ""
    # Threads for use cases in an api process (eventsourcing is synchronous).
    api_threads: int = Field(default=24, ge=1, le=256)

    # none | console | file | otlp
    otel_exporter: str = "none"
    otel_file: str | None = None
    otel_endpoint: str = "http://127.0.0.1:4318"
    log_level: str = "INFO"
    log_file: str | None = None

    # Consumers: retries with backoff, then the dead-letter subject.
    consumer_max_deliver: int = Field(default=6, ge=1)
    consumer_backoff_seconds: tuple[float, ...] = (0.2, 1.0, 3.0, 10.0, 30.0)
    consumer_batch_size: int = Field(default=64, ge=1)
    relay_batch_size: int = Field(default=500, ge=1)
    # JetStream replicas of the streams this system creates (3 on a cluster).
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # Worker and relay processes serve /metrics, /healthz, /readyz here if set.
    metrics_port: int | None = None
    relay_poll_seconds: float = 0.02

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_token(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", value):
            raise ValueError("namespace must be lower-case letters, digits or _")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        from .client_address import parse_networks

        parse_networks(value)
        return value

    @property
    def trusted_proxy_networks(self):
        from .client_address import parse_networks

        return parse_networks(self.trusted_proxies)

    @property
    def nats_servers(self) -> list[str]:
        """The NATS server URLs, for nats.connect(servers=...) and NatsBroker."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def database_name(self, service: str) -> str:
        return f"{self.namespace}_{service}"

    def service_database_url(self, service: str) -> str:
        """The URL of ``service``'s own database on the configured server."""
        parts = urlsplit(self.database_url)
        return urlunsplit(parts._replace(path="/" + self.database_name(service)))

    def maintenance_database_url(self) -> str:
        parts = urlsplit(self.database_url)
        return urlunsplit(parts._replace(path="/postgres"))

    def stream_name(self, service: str) -> str:
        return f"{self.namespace}_{service}".upper()

    def subject_root(self, service: str) -> str:
        return f"{self.namespace}.{service}"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.namespace}_dlq".upper()

    def dead_letter_subject(self, service: str, consumer: str) -> str:
        return f"{self.namespace}.dlq.{service}.{consumer}"

    @staticmethod
    def inbox_prefix(service: str) -> str:
        """Each service's own reply inbox: the NATS permissions let a service read
        only ``_INBOX.<service>.>``, so nobody else sees the messages it pulls."""
        return f"_INBOX.{service}"

    def port_for(self, service: str) -> int:
        return self.http_port or DEFAULT_PORTS[service]

    @cached_property
    def postgres_params(self) -> dict[str, str]:
        """Connection parameters for eventsourcing/psycopg (unix sockets included)."""
        return postgres_params(self.database_url)


# libpq's TLS parameters, carried from KAIKU_DATABASE_URL's query to psycopg
# (asyncpg reads them from the URL itself).
LIBPQ_TLS_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


def postgres_params(url: str) -> dict[str, str]:
    """Split a libpq URL into host/port/user/password/dbname, plus the TLS
    parameters (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``) it names.

    A unix-socket server (pgserver) is written ``postgresql://user@/db?host=/dir``.
    """
    from urllib.parse import parse_qs, unquote

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    params = {
        "host": unquote(host),
        "port": str(parts.port or query.get("port", ["5432"])[0]),
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "dbname": parts.path.lstrip("/") or "postgres",
    }
    params.update({name: query[name][0] for name in LIBPQ_TLS_PARAMS if name in query})
    return params


def load_settings() -> KaikuSettings:
    return KaikuSettings()
