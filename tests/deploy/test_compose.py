"""docker-compose.yml, the Dockerfile and the collector config hang together.

No container engine is needed: ``docker-compose config -q`` (Debian's compose
1.29) and ``docker compose config -q`` (the Compose Spec plugin) validate the
file offline when installed, and the rest reads the YAML itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
NATS_CONF = REPO / "deploy" / "nats" / "nats.conf"
COLLECTOR = REPO / "deploy" / "otel" / "collector.yaml"

SERVICES = ("cards", "venues", "omakaiku", "notifications")
ROLES = ("api", "worker", "relay")
PORTS = {"cards": 8101, "venues": 8102, "omakaiku": 8103, "notifications": 8104}
PROCESSES = [f"{service}-{role}" for service in SERVICES for role in ROLES]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _clean_env() -> dict[str, str]:
    """No stray KAIKU_/NATS_/POSTGRES_ variables: validate the file's defaults."""
    prefixes = ("KAIKU_", "NATS_", "POSTGRES_", "COMPOSE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def test_docker_compose_v1_validates() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed")
    result = subprocess.run([tool, "-f", str(COMPOSE), "config", "-q"], cwd=REPO,
                            env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout


def test_docker_compose_plugin_validates() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                           timeout=30)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "-q"], cwd=REPO,
                            env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_service_runs_api_worker_and_relay_from_one_image(services: dict) -> None:
    images = set()
    for service in SERVICES:
        for role in ROLES:
            spec = services[f"{service}-{role}"]
            assert spec["command"] == ["python", "-m", service, role]
            assert spec["build"]["context"] == "."
            assert spec["build"]["dockerfile"] == "deploy/docker/Dockerfile"
            images.add(spec["image"])
    assert len(images) == 1


def _published(port_spec: str | dict) -> str | None:
    if isinstance(port_spec, dict):
        published = port_spec.get("published")
        return None if published is None else str(published)
    parts = str(port_spec).split(":")
    return parts[-2] if len(parts) >= 2 else None


def test_scalable_services_can_be_scaled(services: dict) -> None:
    ranges: dict[str, range] = {}
    for name in PROCESSES:
        spec = services[name]
        assert "container_name" not in spec, name
        for port_spec in spec.get("ports", []):
            published = _published(port_spec)
            if published is None:
                continue  # an ephemeral host port scales fine
            match = re.fullmatch(r"(\d+)-(\d+)", published)
            assert match, f"{name} publishes the fixed host port {published}; use a range"
            low, high = int(match[1]), int(match[2])
            assert high > low
            ranges[name] = range(low, high + 1)
    names = list(ranges)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            overlap = set(ranges[first]) & set(ranges[second])
            assert not overlap, f"{first} and {second} share host ports {sorted(overlap)[:3]}"


def test_api_containers_check_readiness_with_python(services: dict) -> None:
    for service in SERVICES:
        spec = services[f"{service}-api"]
        test = spec["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "python", test
        script = " ".join(test)
        assert f"127.0.0.1:{PORTS[service]}/readyz" in script
        assert "curl" not in script and "wget" not in script  # not in the image
        assert spec["environment"]["KAIKU_HTTP_PORT"] == str(PORTS[service])
        targets = [str(p).split(":")[-1] for p in spec["ports"]]
        assert targets == [str(PORTS[service])]


def test_processes_wait_for_their_infrastructure(services: dict) -> None:
    for name in PROCESSES:
        depends = services[name]["depends_on"]
        assert depends["nats"]["condition"] == "service_healthy"
        assert depends["postgres-init"]["condition"] == "service_completed_successfully"
        assert "otel-collector" in depends
    assert services["postgres-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["nats"]
    assert "healthcheck" in services["postgres"]


def test_infrastructure_is_there(services: dict) -> None:
    nats = services["nats"]
    assert nats["image"].split(":")[0] == "nats"
    assert "-js" in nats["command"]
    assert any(v.startswith("./deploy/nats/nats.conf:") for v in nats["volumes"])

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"

    collector = services["otel-collector"]
    assert collector["image"].startswith("otel/opentelemetry-collector-contrib")
    assert any(v.startswith("./deploy/otel/collector.yaml:") for v in collector["volumes"])

    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one")
    assert any(str(p).endswith("16686:16686") for p in jaeger["ports"])

    for path in (NATS_CONF, COLLECTOR, DOCKERFILE, REPO / ".dockerignore"):
        assert path.is_file(), path


def test_each_service_has_its_own_credentials(services: dict) -> None:
    nats_env = services["nats"]["environment"]
    init_env = services["postgres-init"]["environment"]
    init_script = services["postgres-init"]["command"][0]
    conf = NATS_CONF.read_text()
    for service in SERVICES:
        envs = [services[f"{service}-{role}"]["environment"] for role in ROLES]
        assert envs[0] == envs[1] == envs[2]
        env = envs[0]
        assert env["KAIKU_NAMESPACE"] == "kaiku"  # what nats.conf's subjects assume
        assert env["KAIKU_OTEL_EXPORTER"] == "otlp"
        assert env["KAIKU_OTEL_ENDPOINT"] == "http://otel-collector:4318"
        assert env["KAIKU_JWT_SECRET"]

        nats_url = urlsplit(env["KAIKU_NATS_URL"])
        assert (nats_url.scheme, nats_url.username) == ("nats", service)
        assert nats_url.netloc.endswith("@nats:4222")
        # The password the service sends is the one the server is given.
        password_var = f"NATS_{service.upper()}_PASSWORD"
        assert nats_env[password_var] == nats_url.netloc.split(":", 1)[1].rsplit("@", 1)[0]
        assert f"${{{password_var}:-" in nats_env[password_var]
        assert re.search(rf"user:\s*{service},\s*password:\s*\${password_var},", conf)

        db_url = urlsplit(env["KAIKU_DATABASE_URL"])
        assert (db_url.scheme, db_url.username, db_url.path) == ("postgresql", service, "/postgres")
        assert db_url.netloc.endswith("@postgres:5432")
        db_password = db_url.netloc.split(":", 1)[1].rsplit("@", 1)[0]
        assert init_env[f"{service.upper()}_PASSWORD"] == db_password
        assert f'role {service} "$${service.upper()}_PASSWORD"' in init_script


def test_collector_sends_traces_to_jaeger(services: dict) -> None:
    config = yaml.safe_load(COLLECTOR.read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert set(traces["exporters"]) == {"otlp/jaeger", "debug"}
    jaeger_host = config["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0]
    assert jaeger_host in services
    for pipeline in config["service"]["pipelines"].values():
        for component in pipeline.get("processors", []):
            assert component in config["processors"]
        for component in pipeline["exporters"]:
            assert component in config["exporters"]


def test_dockerfile_installs_every_package_with_the_pins() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11", text, re.M)
    assert "-c constraints.txt" in text
    assert "-r constraints.txt" not in text  # it pins dev tools too
    for package in ("./shared", *(f"./services/{s}" for s in SERVICES)):
        assert package in text
    assert re.search(r"^USER (?!root)", text, re.M)
