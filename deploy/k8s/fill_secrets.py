"""Print deploy/k8s/01-secrets.yaml with every placeholder filled in, for kubectl.

    python deploy/k8s/fill_secrets.py --env-file keys/kaiku.env --env-file secrets.env \
        --tls-dir tls | kubectl apply -f -

01-secrets.yaml holds only ``${NAME}`` placeholders. The values come from
``--env-file`` files (``NAME=value`` lines as docker compose reads them: the
``kaiku.env`` that ``kaiku keys generate`` writes, and the operator's passwords
and SMTP login) and, for the TLS Secrets, from ``--tls-dir`` (``ca.crt``,
``nats.crt``/``.key``, ``postgres.crt``/``.key``; deploy/tls/make-staging-certs.sh
or your CA). Nothing is written to disk. It refuses, naming them, when any
placeholder has no value or a password is not URL-safe (passwords go into
``KAIKU_NATS_URL`` and ``KAIKU_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "01-secrets.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# What each --tls-dir file becomes (generate.py's TLS_FILES).
TLS_FILES = {"ca.crt": "KAIKU_TLS_CA_CRT", "nats.crt": "KAIKU_TLS_NATS_CRT",
             "nats.key": "KAIKU_TLS_NATS_KEY", "postgres.crt": "KAIKU_TLS_POSTGRES_CRT",
             "postgres.key": "KAIKU_TLS_POSTGRES_KEY"}
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


class Unfilled(Exception):
    """Placeholders without a usable value."""


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines; ``#`` comments, ``export`` and quotes as in .env files."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        values[name.strip()] = value
    return values


def tls_values(directory: Path) -> dict[str, str]:
    return {name: (directory / file).read_text() for file, name in TLS_FILES.items()
            if (directory / file).is_file()}


def fill(docs: list[dict[str, Any]], values: dict[str, str]) -> list[dict[str, Any]]:
    """The Secrets with every placeholder replaced; Unfilled lists what is missing."""
    wanted = {name for doc in docs for value in doc["stringData"].values()
              for name in PLACEHOLDER.findall(value)}
    missing = sorted(name for name in wanted if not values.get(name))
    unsafe = sorted(name for name in wanted if "PASSWORD" in name and "SMTP" not in name
                    and values.get(name) and not URL_SAFE.fullmatch(values[name]))
    if missing or unsafe:
        raise Unfilled("; ".join(
            part for part in (f"no value for {', '.join(missing)}" if missing else "",
                              f"not URL-safe ([A-Za-z0-9._~-] only): {', '.join(unsafe)}"
                              if unsafe else "") if part))
    return [{**doc, "stringData": {key: PLACEHOLDER.sub(lambda m: values[m[1]], value)
                                   for key, value in doc["stringData"].items()}}
            for doc in docs]


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", action="append", type=Path, default=[],
                        help="NAME=value file (repeatable; later files win)")
    parser.add_argument("--tls-dir", type=Path, help="ca.crt, nats.crt/.key, postgres.crt/.key")
    args = parser.parse_args(argv)
    values: dict[str, str] = {}
    for path in args.env_file:
        values.update(read_env_file(path))
    if args.tls_dir:
        values.update(tls_values(args.tls_dir))
    docs = [doc for doc in yaml.safe_load_all(TEMPLATE.read_text()) if doc]
    try:
        filled = fill(docs, values)
    except Unfilled as refused:
        print(f"fill_secrets: {refused} (see deploy/README.md)", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.dump_all(filled, Dumper=_Dumper, sort_keys=False, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
