"""docker-compose.yml, the Dockerfile and the collector config hang together,
and the compose file is a deployable profile.

No container engine is needed: ``docker-compose config`` (Debian's compose
1.29) or ``docker compose config`` (the Compose Spec plugin), whichever is
installed, validates the file offline; the rest reads the YAML itself, after
filling in the ``${VAR}`` references the way compose does.

The profile: every secret is required (``${VAR:?how}``, no defaults), each
service gets only its own secrets, KAIKU_ENV=production, TLS to NATS and
Postgres, and only the web and the public APIs are published beyond loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
NATS_CONF = REPO / "deploy" / "nats" / "nats.conf"
NATS_TLS_CONF = REPO / "deploy" / "nats" / "tls.conf"
PG_HBA = REPO / "deploy" / "postgres" / "pg_hba.conf"
COLLECTOR = REPO / "deploy" / "otel" / "collector.yaml"

SERVICES = ("cards", "venues", "omakaiku", "notifications")
ROLES = ("api", "worker", "relay")
PORTS = {"cards": 8101, "venues": 8102, "omakaiku": 8103, "notifications": 8104}
PROCESSES = [f"{service}-{role}" for service in SERVICES for role in ROLES]
PUBLIC = {"web", *(f"{service}-api" for service in SERVICES)}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
# The only variables with a default: none of them signs, decrypts or logs in.
DEFAULTS_ALLOWED = {"KAIKU_LOG_LEVEL", "KAIKU_IMAGE", "KAIKU_OMAKAIKU_SMTP_PORT",
                    "KAIKU_OMAKAIKU_SMTP_STARTTLS"}
# Secrets a process may hold, by whose they are (besides its own passwords).
KEY_SECRETS = {
    "cards": {"KAIKU_STAFF_SIGNING_KEYS"},
    "omakaiku": {"KAIKU_HOLDER_SIGNING_KEYS", "KAIKU_OMAKAIKU_MASTER_KEY",
                 "KAIKU_OMAKAIKU_LOOKUP_KEY", "KAIKU_OMAKAIKU_CARD_SIGNING_KEY",
                 "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY",
                 "KAIKU_OMAKAIKU_SMTP_USERNAME", "KAIKU_OMAKAIKU_SMTP_PASSWORD"},
    "notifications": {"KAIKU_NOTIFICATIONS_MASTER_KEY"},
    "web": {"KAIKU_WEB_SESSION_SECRET"},
}
ALL_KEY_SECRETS = set().union(*KEY_SECRETS.values())


def references(text: str) -> list[re.Match[str]]:
    return list(REFERENCE.finditer(text.replace("$$", "")))


def required_variables() -> set[str]:
    return {m["name"] for m in references(COMPOSE.read_text()) if m["op"] in (":?", "?")}


def sample_env() -> dict[str, str]:
    """A value for every required variable: distinct, so a test can see whose it is."""
    env = {name: f"sample-{name.lower().replace('_', '-')}" for name in required_variables()}
    env["KAIKU_TLS_DIR"] = "./sample-tls"  # a path, or compose takes it for a named volume
    return env


def interpolate(value, env: dict[str, str]):
    """What compose does with ``${...}`` in the parsed file's strings (enough for
    this file): a missing required variable is an error, ``$$`` is a ``$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return "$".join(REFERENCE.sub(substitute, part) for part in value.split("$$"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), sample_env())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _clean_env() -> dict[str, str]:
    """No stray KAIKU_/NATS_/POSTGRES_ variables: only what a test gives."""
    prefixes = ("KAIKU_", "NATS_", "POSTGRES_", "COMPOSE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def compose_command() -> list[str]:
    """``docker-compose`` (v1) when installed, else the ``docker compose`` plugin."""
    if tool := shutil.which("docker-compose"):
        return [tool]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    pytest.skip("neither docker-compose nor the docker compose plugin is installed")


def _config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*compose_command(), "-f", str(COMPOSE), *args, "config", "-q"],
                          cwd=REPO, env={**_clean_env(), **env}, capture_output=True,
                          text=True, timeout=60)


def test_compose_validates_with_every_secret_given() -> None:
    result = _config(sample_env())
    assert result.returncode == 0, result.stderr + result.stdout
    staging = _config(sample_env(), "--profile", "staging")
    assert staging.returncode == 0, staging.stderr + staging.stdout


@pytest.mark.parametrize("missing", ["NATS_CARDS_PASSWORD", "KAIKU_STAFF_SIGNING_KEYS",
                                     "KAIKU_WEB_SESSION_SECRET", "KAIKU_TLS_DIR"])
def test_compose_stops_when_a_secret_is_missing(missing: str) -> None:
    env = sample_env()
    del env[missing]
    result = _config(env)
    assert result.returncode != 0
    # It says where to look (v1 prints the message, the plugin the name too).
    assert re.search(r"deploy/README\.md|kaiku keys generate|make-staging-certs",
                     result.stderr + result.stdout), result.stderr


def test_no_secret_has_a_default() -> None:
    found = references(COMPOSE.read_text())
    assert found
    defaults = {m["name"] for m in found if m["op"] in (":-", "-")}
    assert defaults <= DEFAULTS_ALLOWED, defaults - DEFAULTS_ALLOWED
    secretish = re.compile(r"PASSWORD|SECRET|_KEYS?$|TLS_DIR")
    for match in found:
        if secretish.search(match["name"]) or match["name"] in ALL_KEY_SECRETS:
            assert match["op"] == ":?" and match["arg"].strip(), match.group(0)
    # And no literal secret hiding in the file instead.
    assert "dev-password" not in COMPOSE.read_text()
    assert "KAIKU_JWT_SECRET" not in COMPOSE.read_text()


def _published(port_spec: str | dict) -> tuple[str | None, str | None]:
    """(host ip, host port) of a ports entry; None where compose picks."""
    if isinstance(port_spec, dict):
        published = port_spec.get("published")
        return port_spec.get("host_ip"), None if published is None else str(published)
    parts = str(port_spec).split(":")
    if len(parts) == 3:
        return parts[0], parts[1]
    return None, parts[0] if len(parts) == 2 else None


def test_only_the_web_and_the_public_apis_are_published_beyond_loopback(services: dict) -> None:
    public = set()
    for name, spec in services.items():
        for port_spec in spec.get("ports", []):
            host_ip, _ = _published(port_spec)
            if host_ip != "127.0.0.1":
                public.add(name)
    assert public == PUBLIC
    for name in ("jaeger", "nats", "mailpit"):
        assert services[name]["ports"], name
        assert all(_published(p)[0] == "127.0.0.1" for p in services[name]["ports"]), name
    for name in ("postgres", "postgres-init", "otel-collector"):
        assert "ports" not in services[name], name


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


def test_scalable_services_can_be_scaled(services: dict) -> None:
    ranges: dict[str, range] = {}
    for name in PROCESSES:
        spec = services[name]
        assert "container_name" not in spec, name
        for port_spec in spec.get("ports", []):
            _, published = _published(port_spec)
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
    assert any(v.startswith("./deploy/nats/tls.conf:") for v in nats["volumes"])

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"

    collector = services["otel-collector"]
    assert collector["image"].startswith("otel/opentelemetry-collector-contrib")
    assert any(v.startswith("./deploy/otel/collector.yaml:") for v in collector["volumes"])

    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one")
    assert any(str(p).endswith("16686:16686") for p in jaeger["ports"])

    for path in (NATS_CONF, NATS_TLS_CONF, PG_HBA, COLLECTOR, DOCKERFILE,
                 REPO / ".dockerignore"):
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

        nats_url = urlsplit(env["KAIKU_NATS_URL"])
        assert (nats_url.scheme, nats_url.username) == ("nats", service)
        assert nats_url.netloc.endswith("@nats:4222")
        # The password the service sends is the one the server is given.
        password_var = f"NATS_{service.upper()}_PASSWORD"
        assert nats_env[password_var] == nats_url.netloc.split(":", 1)[1].rsplit("@", 1)[0]
        assert nats_env[password_var] == sample_env()[password_var]
        assert re.search(rf"user:\s*{service},\s*password:\s*\${password_var},", conf)

        db_url = urlsplit(env["KAIKU_DATABASE_URL"])
        assert (db_url.scheme, db_url.username, db_url.path) == ("postgresql", service, "/postgres")
        assert db_url.netloc.endswith("@postgres:5432")
        db_password = db_url.netloc.split(":", 1)[1].rsplit("@", 1)[0]
        assert init_env[f"{service.upper()}_PASSWORD"] == db_password
        assert db_password == sample_env()[f"KAIKU_PG_{service.upper()}_PASSWORD"]
        assert f'role {service} "${service.upper()}_PASSWORD"' in init_script


def _process_env(services: dict, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in services[name]["environment"].items()}


def test_each_process_gets_only_its_own_secrets(services: dict) -> None:
    secrets = sample_env()
    passwords = {v for k, v in secrets.items() if "PASSWORD" in k and "SMTP" not in k}
    for name, spec in services.items():
        env = _process_env(services, name) if "environment" in spec else {}
        owner = "web" if name == "web" else name.split("-")[0]
        held = {key for key in ALL_KEY_SECRETS if secrets[key] in env.values()}
        if name in ("web", *PROCESSES):
            assert held == KEY_SECRETS.get(owner, set()), name
            assert env["KAIKU_ENV"] == "production", name
        else:
            assert held == set(), name
        if name in PROCESSES:
            # The passwords it holds are its own (in its two URLs), nobody else's.
            own = {secrets[f"NATS_{owner.upper()}_PASSWORD"],
                   secrets[f"KAIKU_PG_{owner.upper()}_PASSWORD"]}
            text = " ".join(env.values())
            assert {p for p in passwords if p in text} == own, name
        if name == "web":
            assert not any(p in " ".join(env.values()) for p in passwords)
    assert not any("KAIKU_JWT_SECRET" in spec.get("environment", {})
                   for spec in services.values())


def test_tls_to_nats_and_postgres(services: dict) -> None:
    for name in PROCESSES:
        env = _process_env(services, name)
        ca = env["KAIKU_NATS_TLS_CA"]
        assert any(v.endswith(f"/ca.crt:{ca}:ro") for v in services[name]["volumes"]), name
        query = parse_qs(urlsplit(env["KAIKU_DATABASE_URL"]).query)
        assert query == {"sslmode": ["verify-full"], "sslrootcert": [ca]}, name
    nats = services["nats"]
    assert nats["command"][:2] == ["--config", "/etc/nats/tls.conf"]
    assert {"NATS_TLS_CERT", "NATS_TLS_KEY"} <= set(nats["environment"])
    assert "include ./nats.conf" in NATS_TLS_CONF.read_text()
    assert "/etc/nats/nats.conf:ro" in " ".join(nats["volumes"])  # what tls.conf includes
    script = services["postgres"]["command"][0]
    for option in ("ssl=on", "ssl_cert_file=", "ssl_key_file=", "hba_file=/etc/kaiku/pg_hba.conf"):
        assert option in script
    hba = [line.split() for line in PG_HBA.read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert ["hostnossl", "all", "all", "all", "reject"] in hba
    assert not [rule for rule in hba if rule[0] == "host"]  # no plain-or-TLS rule
    init_env = services["postgres-init"]["environment"]
    assert init_env["PGSSLMODE"] == "verify-full"


def test_mail_goes_through_a_configured_relay_and_staging_catches_it(services: dict) -> None:
    env = _process_env(services, "omakaiku-worker")
    for key in ("HOST", "PORT", "FROM", "USERNAME", "PASSWORD", "STARTTLS"):
        assert env[f"KAIKU_OMAKAIKU_SMTP_{key}"], key
    assert env["KAIKU_OMAKAIKU_SMTP_STARTTLS"] == "true"  # a real relay by default
    assert env["KAIKU_OMAKAIKU_PUBLIC_URL"]
    mailpit = services["mailpit"]
    assert mailpit["profiles"] == ["staging"]
    assert mailpit["image"].startswith("axllent/mailpit:")
    assert [_published(p)[0] for p in mailpit["ports"]] == ["127.0.0.1"]


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
