"""deploy/k8s: valid Kubernetes objects, the same components as docker-compose.yml.

* every document validates against the Kubernetes OpenAPI schema (strict: an
  unknown or misspelt field fails) with the ``kubernetes-validate`` package;
* the committed files are what deploy/k8s/generate.py writes (no hand drift);
* each compose service has a k8s workload of the same name and vice versa;
* api, worker and relay: probes, resources, autoscaling, a relay standby;
* NATS: three servers, the permissions of deploy/nats/nats.conf, and a config
  the real nats-server accepts; Postgres: the compose init script;
* the probe endpoint the worker and relay manifests point at answers
  (kaiku_shared.metrics_server);
* the deployable profile: 01-secrets.yaml holds placeholders only, which
  fill_secrets.py fills (or refuses); each workload reads only the Secrets it
  needs; ClusterIP only; TLS to NATS (clients and routes) and Postgres.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "docker-compose.yml"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still supported where this runs
SERVICES = ("cards", "venues", "omakaiku", "notifications")
ROLES = ("api", "worker", "relay")
PLACEHOLDER = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}")
# Keys and logins besides a service's own URLs, by the Secret that holds them.
KEYS = {
    "kaiku-cards": {"KAIKU_STAFF_SIGNING_KEYS"},
    "kaiku-omakaiku": {"KAIKU_HOLDER_SIGNING_KEYS", "KAIKU_OMAKAIKU_MASTER_KEY",
                       "KAIKU_OMAKAIKU_LOOKUP_KEY", "KAIKU_OMAKAIKU_CARD_SIGNING_KEY",
                       "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY",
                       "KAIKU_OMAKAIKU_SMTP_USERNAME", "KAIKU_OMAKAIKU_SMTP_PASSWORD"},
    "kaiku-notifications": {"KAIKU_NOTIFICATIONS_MASTER_KEY"},
    "kaiku-web": {"KAIKU_WEB_SESSION_SECRET"},
}
ALL_KEYS = set().union(*KEYS.values())
WORKLOADS = ("Deployment", "StatefulSet", "Job")
# In k8s only: a Job that raises every stream to 3 replicas (compose runs one NATS).
K8S_ONLY = {"nats-streams"}
# In compose only: the staging profile's mail catcher (k8s sends through a relay).
COMPOSE_ONLY = {"mailpit"}


def load_manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return load_manifests()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def test_manifests_are_what_the_generator_writes() -> None:
    result = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_document_validates_against_the_kubernetes_schema(manifests: list[dict]) -> None:
    assert len(manifests) > 40
    errors = []
    for doc in manifests:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: "
                          f"{'.'.join(map(str, error.path))}: {error.message}")
    assert not errors, "\n".join(errors)


def test_the_validator_rejects_a_broken_manifest(manifests: list[dict]) -> None:
    """The check above can fail: a misspelt field is refused."""
    import copy

    doc = copy.deepcopy(find(manifests, "Deployment", "venues-api"))
    doc["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secrets_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    # kubectl apply -k must never overwrite the real Secrets with placeholders.
    assert sorted(kustomization["resources"]) == [f for f in files if f != "01-secrets.yaml"]
    assert kustomization["namespace"] == "kaikukortti"


def test_compose_and_k8s_describe_the_same_components(manifests: list[dict],
                                                      compose: dict) -> None:
    in_compose = set(compose["services"])
    in_k8s = {d["metadata"]["name"] for d in manifests if d["kind"] in WORKLOADS}
    assert in_compose - in_k8s == COMPOSE_ONLY, "compose services without a k8s counterpart"
    assert in_k8s - in_compose == K8S_ONLY, "k8s workloads compose does not have"
    for service in SERVICES:
        for role in ROLES:
            name = f"{service}-{role}"
            container = find(manifests, "Deployment", name)["spec"]["template"]["spec"][
                "containers"][0]
            assert container["command"] == compose["services"][name]["command"]
            assert container["image"].split(":")[0] == "kaikukortti"
    # The same images for the infrastructure.
    assert find(manifests, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0][
        "image"] == compose["services"]["nats"]["image"]
    assert find(manifests, "StatefulSet", "postgres")["spec"]["template"]["spec"][
        "containers"][0]["image"] == compose["services"]["postgres"]["image"]


def test_each_process_has_probes_resources_and_its_own_secret(manifests: list[dict]) -> None:
    for service in SERVICES:
        for role in ROLES:
            name = f"{service}-{role}"
            deployment = find(manifests, "Deployment", name)
            pod = deployment["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            port = container["ports"][0]["name"]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            secrets = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
            assert secrets == [f"kaiku-{service}"], name
            assert pod["securityContext"]["runAsNonRoot"] is True
            # Connection settings never in plain env or a ConfigMap.
            plain = {e["name"] for e in container.get("env", [])}
            assert not plain & {"KAIKU_DATABASE_URL", "KAIKU_NATS_URL", *ALL_KEYS}
    config = find(manifests, "ConfigMap", "kaiku-config")["data"]
    assert not {"KAIKU_DATABASE_URL", "KAIKU_NATS_URL", *ALL_KEYS} & set(config)
    assert config["KAIKU_NAMESPACE"] == "kaiku"  # nats.conf's permissions assume it
    assert config["KAIKU_ENV"] == "production"
    for service in SERVICES:
        data = find(manifests, "Secret", f"kaiku-{service}")["stringData"]
        assert data["KAIKU_NATS_URL"].startswith(f"nats://{service}:")
        assert data["KAIKU_DATABASE_URL"].startswith(f"postgresql://{service}:")


def test_api_and_worker_autoscale_and_the_relay_has_one_standby(manifests: list[dict]) -> None:
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in manifests
            if d["kind"] == "HorizontalPodAutoscaler"}
    for service in SERVICES:
        for role in ("api", "worker"):
            hpa = hpas[f"{service}-{role}"]
            assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        relay = find(manifests, "Deployment", f"{service}-relay")
        assert relay["spec"]["replicas"] == 2  # one active by advisory lock, one standby
        assert f"{service}-relay" not in hpas  # more relays would only wait on the lock
        api_service = find(manifests, "Service", f"{service}-api")
        assert api_service["spec"]["selector"] == {"app.kubernetes.io/name": f"{service}-api"}


def test_nats_is_a_three_server_jetstream_cluster(manifests: list[dict]) -> None:
    statefulset = find(manifests, "StatefulSet", "nats")
    assert statefulset["spec"]["replicas"] == 3
    headless = find(manifests, "Service", "nats-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == "nats-headless"
    conf = find(manifests, "ConfigMap", "nats-config")["data"]["kaiku.conf"]
    for i in range(3):
        assert f"nats-{i}.nats-headless.kaikukortti.svc.cluster.local:6222" in conf
    base = (REPO / "deploy" / "nats" / "nats.conf").read_text()
    permissions = base[base.index("# ------------------------------------------------"
                                  "---------------- permissions"):]
    assert conf.endswith(permissions), "the cluster must use nats.conf's permissions"
    assert "server_name: $POD_NAME" in conf
    streams = find(manifests, "Job", "nats-streams")["spec"]["template"]["spec"][
        "containers"][0]["command"][-1]
    for name in (*[f"KAIKU_{s.upper()}" for s in SERVICES], "KAIKU_DLQ"):
        assert f"stream {name} " in streams
    assert streams.count("--replicas 3") == 2  # on add and on edit


def test_real_nats_server_accepts_the_cluster_config(manifests: list[dict],
                                                     tmp_path: Path) -> None:
    from kaiku_dev.embedded import find_nats_server

    from kaiku_dev.testcerts import make_ca, make_leaf

    # The Secret nats-tls's files, made here: a CA and a certificate for the routes.
    ca = make_ca(tmp_path)
    make_leaf(ca, tmp_path, "tls", ("*.nats-headless.kaikukortti.svc.cluster.local",))
    conf = find(manifests, "ConfigMap", "nats-config")["data"]["kaiku.conf"]
    assert conf.count("/etc/nats/tls/tls.crt") == 2  # clients and routes
    path = tmp_path / "kaiku.conf"
    path.write_text(conf.replace("/etc/nats/tls/", f"{tmp_path}/"))
    env = {**os.environ, "POD_NAME": "nats-0", "NATS_STORE_DIR": str(tmp_path / "js"),
           **{f"NATS_{who}_PASSWORD": "pw" for who in
              ("CARDS", "VENUES", "OMAKAIKU", "NOTIFICATIONS", "ADMIN", "SYS")}}
    result = subprocess.run([str(find_nats_server()), "-t", "-c", str(path)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    # ...and refuses it without the passwords (nothing starts with a built-in one).
    del env["NATS_ADMIN_PASSWORD"]
    result = subprocess.run([str(find_nats_server()), "-t", "-c", str(path)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0


def test_postgres_is_one_server_with_a_database_per_service(manifests: list[dict],
                                                            compose: dict) -> None:
    statefulset = find(manifests, "StatefulSet", "postgres")
    assert statefulset["spec"]["replicas"] == 1
    job = find(manifests, "Job", "postgres-init")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert script == compose["services"]["postgres-init"]["command"][0].replace("$$", "$")
    for service in SERVICES:
        assert f'role {service} "${service.upper()}_PASSWORD"' in script
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "postgres"


def test_collector_uses_the_compose_config(manifests: list[dict]) -> None:
    data = find(manifests, "ConfigMap", "otel-collector-config")["data"]["collector.yaml"]
    assert data == (REPO / "deploy" / "otel" / "collector.yaml").read_text()
    find(manifests, "Service", "otel-collector")
    find(manifests, "Service", "jaeger")


def test_worker_and_relay_probe_endpoint_answers() -> None:
    """What the worker/relay manifests probe and scrape (port 9464 once wired in)."""
    from kaiku_shared.metrics import RELAY_LAG
    from kaiku_shared.metrics_server import start_metrics_server

    ready = {"value": False}
    server = start_metrics_server(0, "127.0.0.1", ready=lambda: ready["value"])
    base = f"http://127.0.0.1:{server.port}"
    try:
        RELAY_LAG.labels("k8s-test").set(7)
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert refused.value.code == 503
        ready["value"] = True
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'kaiku_relay_lag_events{service="k8s-test"} 7.0' in text
    finally:
        server.stop()


def test_dashboard_charts_the_metrics_the_processes_export() -> None:
    """deploy/grafana/kaikukortti.json: every query names a metric that
    kaiku_shared.metrics defines, and every defined metric is charted."""
    import json
    import re

    from prometheus_client import REGISTRY

    import kaiku_shared.metrics  # noqa: F401 - registers the metrics

    dashboard = json.loads((REPO / "deploy" / "grafana" / "kaikukortti.json").read_text())
    exported = {}
    for metric in REGISTRY.collect():
        if metric.name.startswith("kaiku_"):
            for sample_suffix in ("", "_total", "_bucket", "_count", "_sum"):
                exported[metric.name + sample_suffix] = metric.name
    queried = set()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\bkaiku_[a-z_]+", target["expr"]):
                assert name in exported, f"{panel['title']}: unknown metric {name}"
                queried.add(exported[name])
    defined = {m.name for m in REGISTRY.collect() if m.name.startswith("kaiku_")}
    assert defined <= queried, f"metrics not on the dashboard: {defined - queried}"
    assert {"service", "consumer"} <= {v["name"] for v in dashboard["templating"]["list"]}


# ------------------------------------------------------------ the deployable profile


def _secrets(manifests: list[dict]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["stringData"] for d in manifests if d["kind"] == "Secret"}


def test_secrets_hold_no_usable_value(manifests: list[dict]) -> None:
    """Every value is, or holds in its secret part, a ${NAME} placeholder."""
    secrets = _secrets(manifests)
    assert {"kaiku-jwt"} & set(secrets) == set()
    for name, data in secrets.items():
        assert data, name
        for key, value in data.items():
            assert PLACEHOLDER.search(value), (name, key)
            if "://" in value:  # a URL: its password is the placeholder
                password = value.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
                assert PLACEHOLDER.fullmatch(password), (name, key)
            else:
                assert PLACEHOLDER.fullmatch(value), (name, key)


def _secret_refs(pod: dict) -> set[str]:
    """Secret (or Secret/key) names a pod can read: envFrom, env, volumes."""
    refs = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    for container in pod["containers"]:
        refs |= {e["secretRef"]["name"] for e in container.get("envFrom", [])
                 if "secretRef" in e}
        refs |= {f"{e['valueFrom']['secretKeyRef']['name']}/{e['valueFrom']['secretKeyRef']['key']}"
                 for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    return refs


def test_each_workload_gets_only_the_secrets_it_needs(manifests: list[dict]) -> None:
    expected = {
        "web": {"kaiku-web", "kaiku-ca"},
        "nats": {"nats-tls", *(f"nats/NATS_{u}_PASSWORD" for u in (
            "CARDS", "VENUES", "OMAKAIKU", "NOTIFICATIONS", "ADMIN", "SYS"))},
        "nats-streams": {"nats/NATS_ADMIN_PASSWORD", "kaiku-ca"},
        "postgres": {"postgres/POSTGRES_PASSWORD", "postgres-tls"},
        "postgres-init": {"kaiku-ca", "postgres/POSTGRES_PASSWORD",
                          *(f"postgres/{s.upper()}_PASSWORD" for s in SERVICES)},
        "otel-collector": set(), "jaeger": set(),
        **{f"{s}-{r}": {f"kaiku-{s}", "kaiku-ca"} for s in SERVICES for r in ROLES},
    }
    workloads = {d["metadata"]["name"]: d["spec"]["template"]["spec"]
                 for d in manifests if d["kind"] in WORKLOADS}
    assert set(workloads) == set(expected)
    for name, pod in workloads.items():
        assert _secret_refs(pod) == expected[name], name
    # What those Secrets hold: a service's own URLs, and only its own keys.
    secrets = _secrets(manifests)
    for service in SERVICES:
        assert set(secrets[f"kaiku-{service}"]) == {
            "KAIKU_DATABASE_URL", "KAIKU_NATS_URL", *KEYS.get(f"kaiku-{service}", set())}
    assert set(secrets["kaiku-web"]) == KEYS["kaiku-web"]
    assert set(secrets["kaiku-ca"]) == {"ca.crt"}  # no key where clients look


def test_nothing_is_exposed_outside_the_cluster(manifests: list[dict]) -> None:
    """ClusterIP Services only (an Ingress of the operator's publishes the web and
    the APIs); no host ports or host network: Jaeger, NATS's monitor and the
    metrics stay inside."""
    for doc in manifests:
        if doc["kind"] == "Service":
            spec = doc["spec"]
            assert spec.get("type", "ClusterIP") == "ClusterIP", doc["metadata"]["name"]
        if doc["kind"] in WORKLOADS:
            pod = doc["spec"]["template"]["spec"]
            assert not pod.get("hostNetwork"), doc["metadata"]["name"]
            for container in pod["containers"]:
                assert not any("hostPort" in p for p in container.get("ports", []))
    assert not [d for d in manifests if d["kind"] in ("Ingress", "Route")]


def test_tls_to_nats_and_postgres_in_the_cluster(manifests: list[dict]) -> None:
    config = find(manifests, "ConfigMap", "kaiku-config")["data"]
    ca = config["KAIKU_NATS_TLS_CA"]
    for service in SERVICES:
        url = find(manifests, "Secret", f"kaiku-{service}")["stringData"]["KAIKU_DATABASE_URL"]
        assert url.endswith(f"?sslmode=verify-full&sslrootcert={ca}")
        pod = find(manifests, "Deployment", f"{service}-api")["spec"]["template"]["spec"]
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "kaiku-ca", "mountPath": ca.rsplit("/", 1)[0], "readOnly": True} in mounts
    postgres = find(manifests, "StatefulSet", "postgres")["spec"]["template"]["spec"]
    args = " ".join(postgres["containers"][0]["args"])
    assert "ssl=on" in args and "hba_file=/etc/postgres/config/pg_hba.conf" in args
    hba = find(manifests, "ConfigMap", "postgres-config")["data"]["pg_hba.conf"]
    assert hba == (REPO / "deploy" / "postgres" / "pg_hba.conf").read_text()
    init = find(manifests, "Job", "postgres-init")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "PGSSLMODE", "value": "verify-full"} in init["env"]
    streams = find(manifests, "Job", "nats-streams")["spec"]["template"]["spec"][
        "containers"][0]["command"][-1]
    assert f'tls="--tlsca {ca}"' in streams and streams.count("$tls") == 3


# Filled from --tls-dir, not from an env file.
TLS_NAMES = ("KAIKU_TLS_CA_CRT", "KAIKU_TLS_NATS_CRT", "KAIKU_TLS_NATS_KEY",
             "KAIKU_TLS_POSTGRES_CRT", "KAIKU_TLS_POSTGRES_KEY")


def _fill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(K8S / "fill_secrets.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_fill_secrets_replaces_every_placeholder_or_refuses(tmp_path: Path) -> None:
    from kaiku_dev.testcerts import make_ca, make_leaf

    tls = tmp_path / "tls"
    tls.mkdir()
    ca = make_ca(tls)
    make_leaf(ca, tls, "nats")
    make_leaf(ca, tls, "postgres", ("postgres",))
    template = (K8S / "01-secrets.yaml").read_text()
    names = {m[2:-1] for m in PLACEHOLDER.findall(template)} - set(TLS_NAMES)
    values = {name: f"v-{name.lower().replace('_', '-')}" for name in names}
    values["KAIKU_STAFF_SIGNING_KEYS"] = '{"keys": [{"kty": "OKP"}]}'
    keys_env = tmp_path / "kaiku.env"  # as `kaiku keys generate` might write it
    keys_env.write_text("# keys\nKAIKU_STAFF_SIGNING_KEYS='" + values.pop(
        "KAIKU_STAFF_SIGNING_KEYS") + "'\n")
    other = tmp_path / "secrets.env"
    other.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    result = _fill("--env-file", str(keys_env), "--env-file", str(other), "--tls-dir", str(tls))
    assert result.returncode == 0, result.stderr
    filled = {d["metadata"]["name"]: d["stringData"]
              for d in yaml.safe_load_all(result.stdout) if d}
    assert "${" not in result.stdout
    assert filled["kaiku-cards"]["KAIKU_STAFF_SIGNING_KEYS"] == '{"keys": [{"kty": "OKP"}]}'
    assert filled["kaiku-cards"]["KAIKU_NATS_URL"] == \
        "nats://cards:v-nats-cards-password@nats:4222"
    assert filled["nats"]["NATS_CARDS_PASSWORD"] == "v-nats-cards-password"
    assert filled["nats-tls"]["tls.key"] == (tls / "nats.key").read_text()
    assert filled["kaiku-ca"]["ca.crt"] == ca.cert_file.read_text()

    # A missing value (here: the TLS files) is refused, by name, with no output.
    refused = _fill("--env-file", str(keys_env), "--env-file", str(other))
    assert refused.returncode == 2 and refused.stdout == ""
    assert "KAIKU_TLS_NATS_KEY" in refused.stderr
    other.write_text(other.read_text() + "NATS_ADMIN_PASSWORD=has@and:in-it\n")
    unsafe = _fill("--env-file", str(keys_env), "--env-file", str(other), "--tls-dir", str(tls))
    assert unsafe.returncode == 2 and "NATS_ADMIN_PASSWORD" in unsafe.stderr
