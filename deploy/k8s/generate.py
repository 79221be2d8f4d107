"""Writes the plain Kubernetes manifests in this directory.

    python deploy/k8s/generate.py            # rewrite the *.yaml files
    python deploy/k8s/generate.py --check    # exit 1 if a file is out of date

The manifests are committed and applied as they are (``kubectl apply -k
deploy/k8s``); this script only keeps the twelve near-identical Deployments and
the copies of deploy/nats/nats.conf and deploy/otel/collector.yaml from
drifting. 01-secrets.yaml holds placeholders only; fill_secrets.py fills them
for ``kubectl apply``. Things that are copied rather than restated:

* the postgres-init script and every process's command, from docker-compose.yml;
* the NATS permissions and accounts, from deploy/nats/nats.conf (everything
  after its ``# ---- permissions`` line), below a cluster header;
* the OTel collector configuration, from deploy/otel/collector.yaml;
* Postgres's client authentication, from deploy/postgres/pg_hba.conf.

tests/deploy/test_k8s_manifests.py runs ``--check`` and validates the result
against the Kubernetes OpenAPI schema.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from fill_secrets import TLS_FILES  # this directory: run as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NS = "kaikukortti"
IMAGE = "kaikukortti:dev"  # kustomization.yaml's `images:` sets the real tag
SERVICES = ("cards", "venues", "omakaiku", "notifications")
PORTS = {"cards": 8101, "venues": 8102, "omakaiku": 8103, "notifications": 8104}
WEB_PORT = 8100
METRICS_PORT = 9464  # worker and relay: kaiku_shared.metrics_server
NATS_IMAGE = "nats:2.11-alpine"
NATS_REPLICAS = 3
POSTGRES_IMAGE = "postgres:16"
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.111.0"
JAEGER_IMAGE = "jaegertracing/all-in-one:1.62.0"
# Where the processes find the CA that signed NATS's and Postgres's certificates.
CA_DIR = "/etc/kaiku/tls"
CA_FILE = f"{CA_DIR}/ca.crt"
DB_TLS = f"?sslmode=verify-full&sslrootcert={CA_FILE}"
CA_VOLUME = {"name": "kaiku-ca", "secret": {"secretName": "kaiku-ca"}}
CA_MOUNT = {"name": "kaiku-ca", "mountPath": CA_DIR, "readOnly": True}

# Requests are what the scheduler reserves; the memory limit stops a leak from
# taking the node. No CPU limits: throttling a Python process only adds latency.
RESOURCES = {
    "api": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "worker": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "relay": {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "384Mi"}},
}
AUTOSCALE = {"api": (2, 10), "worker": (2, 8)}


def labels(component: str, **extra: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": "kaikukortti",
            **extra}


def meta(name: str, component: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NS, "labels": labels(component or name), **extra}


def selector(component: str) -> dict[str, Any]:
    return {"matchLabels": {"app.kubernetes.io/name": component}}


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}}


# ------------------------------------------------------------------ common


def common() -> list[dict[str, Any]]:
    config = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("kaiku-config"),
        "data": {
            # deploy/nats/nats.conf's subject permissions are written for it.
            "KAIKU_NAMESPACE": "kaiku",
            "KAIKU_ENV": "production",
            # The token issuers' public keys: cards signs staff tokens, omakaiku holders'.
            "KAIKU_STAFF_JWKS_URL": f"http://cards-api:{PORTS['cards']}/.well-known/jwks.json",
            "KAIKU_HOLDER_JWKS_URL":
                f"http://omakaiku-api:{PORTS['omakaiku']}/.well-known/jwks.json",
            "KAIKU_NATS_TLS_CA": CA_FILE,
            # X-Forwarded-For is believed from pods only (the ingress, the web):
            # every Service is ClusterIP. Set your cluster's pod network.
            "KAIKU_TRUSTED_PROXIES": "10.244.0.0/16",
            "KAIKU_OTEL_EXPORTER": "otlp",
            "KAIKU_OTEL_ENDPOINT": "http://otel-collector:4318",
            "KAIKU_LOG_LEVEL": "INFO",
            "KAIKU_HTTP_HOST": "0.0.0.0",
            # Streams at replication 3 (docs/scaling.md: needs the shared
            # KAIKU_STREAM_REPLICAS setting; until then the nats-streams Job sets it).
            "KAIKU_STREAM_REPLICAS": str(NATS_REPLICAS),
            "KAIKU_METRICS_PORT": str(METRICS_PORT),
        },
    }
    # omakaiku's mail relay: replace these in an overlay (deploy/README.md#smtp).
    # Its user name and password are in the Secret kaiku-omakaiku.
    mail = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("kaiku-omakaiku-config"),
        "data": {
            "KAIKU_OMAKAIKU_SMTP_HOST": "smtp.example.invalid",
            "KAIKU_OMAKAIKU_SMTP_PORT": "587",
            "KAIKU_OMAKAIKU_SMTP_STARTTLS": "true",
            "KAIKU_OMAKAIKU_SMTP_FROM": "OmaKaiku <omakaiku@example.invalid>",
            "KAIKU_OMAKAIKU_PUBLIC_URL": "https://kaikukortti.example.invalid/oma",
        },
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": NS, "labels": labels(NS)}}
    return [namespace, config, mail]


# Secrets: every value is a ${NAME} placeholder, never a usable one. fill_secrets.py
# replaces them from `kaiku keys generate`'s kaiku.env, the operator's passwords
# and the TLS files (deploy/README.md#kubernetes-secrets).
SERVICE_KEYS = {
    "cards": ("KAIKU_STAFF_SIGNING_KEYS",),
    "omakaiku": ("KAIKU_HOLDER_SIGNING_KEYS", "KAIKU_OMAKAIKU_MASTER_KEY",
                 "KAIKU_OMAKAIKU_LOOKUP_KEY", "KAIKU_OMAKAIKU_CARD_SIGNING_KEY",
                 "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY",
                 "KAIKU_OMAKAIKU_SMTP_USERNAME", "KAIKU_OMAKAIKU_SMTP_PASSWORD"),
    "notifications": ("KAIKU_NOTIFICATIONS_MASTER_KEY",),
}


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(name), "type": "Opaque",
            "stringData": data}


def secrets() -> list[dict[str, Any]]:
    """Placeholders only; each process's Secret holds its own credentials only."""
    tls = {file: f"${{{name}}}" for file, name in TLS_FILES.items()}
    docs = [
        _secret("postgres", {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}", **{
            f"{s.upper()}_PASSWORD": f"${{KAIKU_PG_{s.upper()}_PASSWORD}}" for s in SERVICES}}),
        _secret("nats", {f"NATS_{u.upper()}_PASSWORD": f"${{NATS_{u.upper()}_PASSWORD}}"
                         for u in (*SERVICES, "admin", "sys")}),
        # The CA every client trusts; each server's own certificate and key.
        _secret("kaiku-ca", {"ca.crt": tls["ca.crt"]}),
        _secret("nats-tls", {"ca.crt": tls["ca.crt"], "tls.crt": tls["nats.crt"],
                             "tls.key": tls["nats.key"]}),
        _secret("postgres-tls", {"tls.crt": tls["postgres.crt"], "tls.key": tls["postgres.key"]}),
        _secret("kaiku-web", {"KAIKU_WEB_SESSION_SECRET": "${KAIKU_WEB_SESSION_SECRET}"}),
    ]
    for service in SERVICES:
        up = service.upper()
        docs.append(_secret(f"kaiku-{service}", {
            "KAIKU_DATABASE_URL": f"postgresql://{service}:${{KAIKU_PG_{up}_PASSWORD}}"
                                  f"@postgres:5432/postgres{DB_TLS}",
            "KAIKU_NATS_URL": f"nats://{service}:${{NATS_{up}_PASSWORD}}@nats:4222",
            **{key: f"${{{key}}}" for key in SERVICE_KEYS.get(service, ())},
        }))
    return docs


# -------------------------------------------------------------------- NATS


def _nats_tls(indent: str) -> str:
    return (f"{indent}cert_file: /etc/nats/tls/tls.crt\n"
            f"{indent}key_file: /etc/nats/tls/tls.key\n")


def nats_config() -> str:
    base = (REPO / "deploy" / "nats" / "nats.conf").read_text()
    marker = "# ---------------------------------------------------------------- permissions"
    permissions = base[base.index(marker):]
    routes = ",\n".join(
        f"    nats-route://nats-{i}.nats-headless.{NS}.svc.cluster.local:6222"
        for i in range(NATS_REPLICAS))
    return (
        "# Kaikukortti NATS cluster (deploy/k8s/10-nats.yaml). Generated by\n"
        "# deploy/k8s/generate.py: the permissions and accounts below are\n"
        "# deploy/nats/nats.conf's, unchanged; only this header differs.\n"
        "port: 4222\n"
        "http_port: 8222\n"
        "server_name: $POD_NAME\n"
        "pid_file: /var/run/nats/nats.pid\n"
        "max_payload: 1MB\n"
        "lame_duck_duration: 30s\n"
        "lame_duck_grace_period: 10s\n"
        "\n"
        "jetstream {\n"
        "  store_dir: $NATS_STORE_DIR\n"
        "  max_memory_store: 256MB\n"
        "  max_file_store: 40GB\n"
        "}\n"
        "\n"
        "# TLS required for clients, as deploy/nats/tls.conf (the Secret nats-tls).\n"
        "tls {\n"
        + _nats_tls("  ") +
        "  handshake_first: 300ms\n"
        "  timeout: 2\n"
        "}\n"
        "\n"
        "# Three servers; streams are stored at replication 3, so losing any one\n"
        "# server (or its node) loses no acknowledged message and keeps a quorum.\n"
        "# Routes are TLS too, and each server must show a certificate of our CA.\n"
        "cluster {\n"
        "  name: kaiku\n"
        "  listen: 0.0.0.0:6222\n"
        "  tls {\n"
        + _nats_tls("    ") +
        "    ca_file: /etc/nats/tls/ca.crt\n"
        "    verify: true\n"
        "    timeout: 3\n"
        "  }\n"
        "  routes: [\n"
        f"{routes}\n"
        "  ]\n"
        "}\n"
        "\n"
        + permissions
    )


def nats() -> list[dict[str, Any]]:
    component = "nats"
    ports = [{"name": "client", "containerPort": 4222}, {"name": "cluster", "containerPort": 6222},
             {"name": "monitor", "containerPort": 8222}]
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NATS_STORE_DIR", "value": "/data/jetstream"},
    ]
    secret_keys = [f"NATS_{s.upper()}_PASSWORD" for s in (*SERVICES, "admin", "sys")]
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": "nats", "key": key}}}
            for key in secret_keys]
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("nats"),
        "spec": {
            "serviceName": "nats-headless",
            "replicas": NATS_REPLICAS,
            "podManagementPolicy": "Parallel",  # a cluster forms only when all can start
            "selector": selector(component),
            "template": {
                "metadata": {"labels": labels(component),
                             "annotations": {"prometheus.io/scrape": "false"}},
                "spec": {
                    "terminationGracePeriodSeconds": 60,
                    "affinity": _spread(component, required=True),
                    "topologySpreadConstraints": [_zone_spread(component)],
                    "containers": [{
                        "name": "nats",
                        "image": NATS_IMAGE,
                        "args": ["--config", "/etc/nats/kaiku.conf"],
                        "env": env,
                        "ports": ports,
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"memory": "2Gi"}},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/nats"},
                                         {"name": "tls", "mountPath": "/etc/nats/tls",
                                          "readOnly": True},
                                         {"name": "pid", "mountPath": "/var/run/nats"},
                                         {"name": "data", "mountPath": "/data"}],
                        "startupProbe": {
                            "httpGet": {"path": "/healthz?js-enabled-only=true",
                                        "port": "monitor"},
                            "periodSeconds": 5, "failureThreshold": 60},
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz?js-enabled-only=true",
                                        "port": "monitor"},
                            "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz", "port": "monitor"},
                            "periodSeconds": 10, "timeoutSeconds": 5},
                        # Lame duck: clients move to the other servers before it stops.
                        "lifecycle": {"preStop": {"exec": {"command": [
                            "nats-server", "-sl=ldm=/var/run/nats/nats.pid"]}}},
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "nats-config"}},
                                {"name": "tls", "secret": {"secretName": "nats-tls",
                                                           "defaultMode": 0o400}},
                                {"name": "pid", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "50Gi"}}},
            }],
        },
    }
    headless = {
        "apiVersion": "v1", "kind": "Service", "metadata": meta("nats-headless", component),
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": {"app.kubernetes.io/name": component},
                 "ports": [{"name": p["name"], "port": p["containerPort"]} for p in ports]},
    }
    client = {
        "apiVersion": "v1", "kind": "Service", "metadata": meta("nats", component),
        # Inside the cluster only: clients and the monitor are never exposed.
        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": component},
                 "ports": [{"name": "client", "port": 4222, "targetPort": "client"},
                           {"name": "monitor", "port": 8222, "targetPort": "monitor"}]},
    }
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("nats-config", component),
              "data": {"kaiku.conf": nats_config()}}
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
              "metadata": meta("nats", component),
              "spec": {"maxUnavailable": 1, "selector": selector(component)}}
    # Only NATS servers may open the route port; clients only the client port.
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta("nats", component),
        "spec": {
            "podSelector": selector(component),
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": selector(component)}],
                 "ports": [{"port": 6222}]},
                {"from": [{"podSelector": {"matchLabels": {
                    "app.kubernetes.io/part-of": "kaikukortti"}}}],
                 "ports": [{"port": 4222}, {"port": 8222}]},
            ],
        },
    }
    return [config, headless, client, statefulset, budget, policy, nats_streams_job()]


def nats_streams_job() -> dict[str, Any]:
    """Creates (or raises to 3 replicas) every stream; safe to run again."""
    script = "\n".join([
        "set -eu",
        'server="nats://admin:${NATS_ADMIN_PASSWORD}@nats:4222"',
        f'tls="--tlsca {CA_FILE}"',
        "stream() {",
        '  if nats -s "$server" $tls stream info "$1" >/dev/null 2>&1; then',
        '    nats -s "$server" $tls stream edit "$1" --replicas 3 --force',
        "  else",
        '    nats -s "$server" $tls stream add "$1" --subjects "$2" --storage file \\',
        "      --retention limits --discard old --dupe-window 10m --replicas 3 --defaults",
        "  fi",
        "}",
        *[f'stream KAIKU_{s.upper()} "kaiku.{s}.>"' for s in SERVICES],
        'stream KAIKU_DLQ "kaiku.dlq.>"',
        'echo "streams at replication 3"',
    ])
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta("nats-streams"),
        "spec": {
            "backoffLimit": 20,
            "template": {
                "metadata": {"labels": labels("nats-streams")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "nats-streams", "image": "natsio/nats-box:0.14.5",
                        "command": ["/bin/sh", "-ec", script],
                        "env": [{"name": "NATS_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {
                            "name": "nats", "key": "NATS_ADMIN_PASSWORD"}}}],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                        "volumeMounts": [CA_MOUNT],
                    }],
                    "volumes": [CA_VOLUME],
                },
            },
        },
    }


# ---------------------------------------------------------------- Postgres


PG_TLS_DIR = "/etc/postgres/tls"
# TLS on, plain TCP refused (deploy/postgres/pg_hba.conf, the ConfigMap below).
PG_TLS_ARGS = ["-c", "ssl=on", "-c", "ssl_min_protocol_version=TLSv1.2",
               "-c", f"ssl_cert_file={PG_TLS_DIR}/tls.crt",
               "-c", f"ssl_key_file={PG_TLS_DIR}/tls.key",
               "-c", "hba_file=/etc/postgres/config/pg_hba.conf"]


def postgres() -> list[dict[str, Any]]:
    component = "postgres"
    superuser = {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "postgres", "key": "POSTGRES_PASSWORD"}}}
    container = {
        "name": "postgres", "image": POSTGRES_IMAGE,
        "env": [{"name": "POSTGRES_USER", "value": "postgres"}, superuser,
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
        # wal_level=replica: pg_basebackup and streaming replicas work
        # (docs/scaling.md, backup and restore).
        "args": ["-c", "max_connections=400", "-c", "wal_level=replica", *PG_TLS_ARGS],
        "ports": [{"name": "postgres", "containerPort": 5432}],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                         {"name": "tls", "mountPath": PG_TLS_DIR, "readOnly": True},
                         {"name": "config", "mountPath": "/etc/postgres/config",
                          "readOnly": True}],
        "livenessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]},
                          "periodSeconds": 10, "failureThreshold": 6},
        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]},
                           "periodSeconds": 5},
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("postgres"),
        "spec": {
            "serviceName": "postgres", "replicas": 1, "selector": selector(component),
            "template": {
                "metadata": {"labels": labels(component)},
                "spec": {
                    "terminationGracePeriodSeconds": 60,
                    # The key file is root:postgres(999), mode 0640: what Postgres accepts.
                    "securityContext": {"fsGroup": 999},
                    "containers": [container],
                    "volumes": [
                        {"name": "tls", "secret": {"secretName": "postgres-tls",
                                                   "defaultMode": 0o640}},
                        {"name": "config", "configMap": {"name": "postgres-config"}}],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "100Gi"}}},
            }],
        },
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta("postgres", component),
               "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": component},
                        "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres"}]}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("postgres-config",
                                                                        component),
              "data": {"pg_hba.conf": (REPO / "deploy" / "postgres" / "pg_hba.conf").read_text()}}
    return [config, service, statefulset, postgres_init_job()]


def postgres_init_job() -> dict[str, Any]:
    """compose's postgres-init: a role and a database per service, over TLS."""
    script = compose()["services"]["postgres-init"]["command"][0].replace("$$", "$")
    env = [{"name": "PGHOST", "value": "postgres"}, {"name": "PGUSER", "value": "postgres"},
           {"name": "PGDATABASE", "value": "postgres"},
           {"name": "PGSSLMODE", "value": "verify-full"},
           {"name": "PGSSLROOTCERT", "value": CA_FILE},
           {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
               "name": "postgres", "key": "POSTGRES_PASSWORD"}}}]
    env += [{"name": f"{s.upper()}_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "postgres", "key": f"{s.upper()}_PASSWORD"}}} for s in SERVICES]
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta("postgres-init"),
        "spec": {
            "backoffLimit": 20,
            "template": {
                "metadata": {"labels": labels("postgres-init")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "postgres-init", "image": POSTGRES_IMAGE,
                        "command": ["/bin/sh", "-ec", script], "env": env,
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                        "volumeMounts": [CA_MOUNT],
                    }],
                    "volumes": [CA_VOLUME],
                },
            },
        },
    }


# ---------------------------------------------------------- observability


def observability() -> list[dict[str, Any]]:
    collector_config = (REPO / "deploy" / "otel" / "collector.yaml").read_text()
    collector = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("otel-collector"),
        "spec": {
            "replicas": 2, "selector": selector("otel-collector"),
            "template": {
                "metadata": {"labels": labels("otel-collector")},
                "spec": {"containers": [{
                    "name": "otel-collector", "image": COLLECTOR_IMAGE,
                    "args": ["--config=/etc/otelcol/collector.yaml"],
                    "ports": [{"name": "otlp-grpc", "containerPort": 4317},
                              {"name": "otlp-http", "containerPort": 4318},
                              {"name": "health", "containerPort": 13133}],
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                  "limits": {"memory": "512Mi"}},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/otelcol"}],
                    "livenessProbe": {"httpGet": {"path": "/", "port": "health"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "health"}},
                }],
                    "volumes": [{"name": "config",
                                 "configMap": {"name": "otel-collector-config"}}]},
            },
        },
    }
    jaeger = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("jaeger"),
        "spec": {
            "replicas": 1, "selector": selector("jaeger"),
            "template": {
                "metadata": {"labels": labels("jaeger")},
                "spec": {"containers": [{
                    "name": "jaeger", "image": JAEGER_IMAGE,
                    "env": [{"name": "COLLECTOR_OTLP_ENABLED", "value": "true"}],
                    "ports": [{"name": "ui", "containerPort": 16686},
                              {"name": "otlp-grpc", "containerPort": 4317}],
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                  "limits": {"memory": "1Gi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "ui"}},
                }]},
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("otel-collector-config",
                                                                   "otel-collector"),
         "data": {"collector.yaml": collector_config}},
        collector,
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("otel-collector"),
         "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "otel-collector"},
                  "ports": [{"name": "otlp-grpc", "port": 4317, "targetPort": "otlp-grpc"},
                            {"name": "otlp-http", "port": 4318, "targetPort": "otlp-http"}]}},
        jaeger,
        # The trace UI stays inside: kubectl port-forward svc/jaeger 16686.
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("jaeger"),
         "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "jaeger"},
                  "ports": [{"name": "ui", "port": 16686, "targetPort": "ui"},
                            {"name": "otlp-grpc", "port": 4317, "targetPort": "otlp-grpc"}]}},
    ]


# ---------------------------------------------------------------- services


def _spread(component: str, *, required: bool = False) -> dict[str, Any]:
    term = {"labelSelector": selector(component), "topologyKey": "kubernetes.io/hostname"}
    if required:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term}]}}


def _zone_spread(component: str) -> dict[str, Any]:
    return {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector(component)}


def process(service: str, role: str) -> list[dict[str, Any]]:
    name = f"{service}-{role}"
    command = compose()["services"][name]["command"]
    port_name = "http" if role == "api" else "metrics"
    port = PORTS[service] if role == "api" else METRICS_PORT
    container: dict[str, Any] = {
        "name": role,
        "image": IMAGE,
        "command": command,
        # Its own Secret only: its Postgres role, NATS user and keys (secrets()).
        "envFrom": [{"configMapRef": {"name": "kaiku-config"}},
                    *([{"configMapRef": {"name": "kaiku-omakaiku-config"}}]
                      if service == "omakaiku" else []),
                    {"secretRef": {"name": f"kaiku-{service}"}}],
        "env": [{"name": "KAIKU_HTTP_PORT", "value": str(PORTS[service])}],
        "ports": [{"name": port_name, "containerPort": port}],
        "resources": RESOURCES[role],
        "securityContext": CONTAINER_SECURITY,
        # Python writes nothing but logs (stdout); /tmp for libraries that want it.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, CA_MOUNT],
        "startupProbe": {"httpGet": {"path": "/healthz", "port": port_name},
                         "periodSeconds": 2, "failureThreshold": 60},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port_name},
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port_name},
                           "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 2},
    }
    pod_labels = labels(name, **{"app.kubernetes.io/component": role,
                                 "kaikukortti/service": service})
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {**meta(name), "labels": pod_labels},
        "spec": {
            # The relay: two replicas, ONE active (Postgres advisory lock), the other
            # a hot standby that takes over when the active one's connection drops.
            "replicas": 2,
            "selector": selector(name),
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                    "prometheus.io/path": "/metrics"}},
                "spec": {
                    # SIGTERM: the api drains, the worker finishes in-flight messages,
                    # the relay stops after its current batch (service.py).
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": SECURITY,
                    "automountServiceAccountToken": False,
                    "affinity": _spread(name),
                    "topologySpreadConstraints": [_zone_spread(name)],
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}, CA_VOLUME],
                },
            },
        },
    }
    docs = [deployment]
    docs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": {**meta(name), "labels": pod_labels},
                 "spec": {"minAvailable": 1, "selector": selector(name)}})
    if role == "api":
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {**meta(name), "labels": pod_labels},
                     # ClusterIP: an Ingress (the operator's) publishes the APIs.
                     "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": name},
                              "ports": [{"name": "http", "port": PORTS[service],
                                         "targetPort": "http"}]}})
    if role in AUTOSCALE:
        low, high = AUTOSCALE[role]
        docs.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {**meta(name), "labels": pod_labels},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": low, "maxReplicas": high,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
        })
    return docs


def web() -> list[dict[str, Any]]:
    """The web interfaces: an api-like Deployment that calls the four APIs."""
    docs = process("cards", "api")  # same shape; adapted below
    deployment, budget, service, autoscaler = docs
    name, port = "web", WEB_PORT
    pod_labels = labels(name, **{"app.kubernetes.io/component": "web"})
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container.update({
        "name": "web",
        "command": compose()["services"]["web"]["command"],
        "envFrom": [{"configMapRef": {"name": "kaiku-config"}},
                    {"secretRef": {"name": "kaiku-web"}}],
        "env": [{"name": "KAIKU_HTTP_PORT", "value": str(port)},
                {"name": "KAIKU_WEB_SECURE_COOKIES", "value": "true"},
                *[{"name": f"KAIKU_WEB_{s.upper()}_URL",
                   "value": f"http://{s}-api:{PORTS[s]}"} for s in SERVICES]],
        "ports": [{"name": "http", "containerPort": port}],
    })
    for doc in docs:
        doc["metadata"] = {**meta(name), "labels": pod_labels}
    deployment["spec"]["selector"] = selector(name)
    template = deployment["spec"]["template"]
    template["metadata"] = {"labels": pod_labels, "annotations": {
        "prometheus.io/scrape": "false"}}
    template["spec"]["affinity"] = _spread(name)
    template["spec"]["topologySpreadConstraints"] = [_zone_spread(name)]
    budget["spec"]["selector"] = selector(name)
    service["spec"] = {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": name},
                       "ports": [{"name": "http", "port": port, "targetPort": "http"}]}
    autoscaler["spec"]["scaleTargetRef"]["name"] = name
    return docs


# ------------------------------------------------------------------ output


def files() -> dict[str, list[dict[str, Any]]]:
    out = {
        "00-namespace.yaml": common(),
        SECRETS: secrets(),
        "10-nats.yaml": nats(),
        "11-postgres.yaml": postgres(),
        "12-observability.yaml": observability(),
    }
    for service in SERVICES:
        out[f"20-{service}.yaml"] = [doc for role in ("api", "worker", "relay")
                                     for doc in process(service, role)]
    out["30-web.yaml"] = web()
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # plain YAML: no &anchors / *aliases
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


SECRETS = "01-secrets.yaml"  # placeholders, filled by fill_secrets.py; not in kustomization
NOTES = {SECRETS: (
    "# Placeholders only: nothing here is a usable key or password. Apply the filled\n"
    "# copy, never this file: python deploy/k8s/fill_secrets.py --env-file keys/kaiku.env\n"
    "#   --env-file secrets.env --tls-dir tls | kubectl apply -f -   (deploy/README.md)\n")}


def render(docs: list[dict[str, Any]], note: str = "") -> str:
    header = "# Generated by deploy/k8s/generate.py from docker-compose.yml and deploy/: edit there.\n"
    return header + note + "---\n".join(
        yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100) for doc in docs)


def kustomization(names: list[str]) -> str:
    return (
        "# kubectl apply -k deploy/k8s\n"
        "# 01-secrets.yaml is not listed: it holds placeholders, and applying it would\n"
        "# overwrite the real Secrets (deploy/k8s/fill_secrets.py makes those).\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"namespace: {NS}\n"
        "resources:\n" + "".join(f"  - {n}\n" for n in names) +
        "images:\n"
        "  - name: kaikukortti\n"
        "    newName: kaikukortti   # your registry, e.g. registry.example.fi/kaikukortti\n"
        "    newTag: dev\n"
    )


def main(argv: list[str]) -> int:
    check = "--check" in argv
    wanted = {name: render(docs, NOTES.get(name, "")) for name, docs in files().items()}
    wanted["kustomization.yaml"] = kustomization(sorted(n for n in wanted if n != SECRETS))
    stale = []
    for name, text in wanted.items():
        path = HERE / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text)
    if check and stale:
        print(f"out of date (run python deploy/k8s/generate.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
