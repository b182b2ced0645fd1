"""compose.yaml and the load balancer's configuration agree with the image, the settings and docs/deploy.md.

Docker is not run here: the files are read as Compose and HAProxy would read them.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from service.config import PROJECT_ROOT
from tests.deploy.dockerfile import image_env

COMPOSE: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
GUIDE = (PROJECT_ROOT / "docs" / "deploy.md").read_text()
ROLES = {
    "init": ["proms", "init"],
    "web1": ["proms", "serve"],
    "web2": ["proms", "serve"],
    "worker1": ["proms", "worker"],
    "worker2": ["proms", "worker"],
}
WEB = [name for name, command in ROLES.items() if command == ["proms", "serve"]]
WORKERS = [name for name, command in ROLES.items() if command == ["proms", "worker"]]


def _default(value: str) -> str:
    """A Compose value with its ${NAME:-default} interpolations replaced by their defaults."""
    return re.sub(r"\$\{\w+:?[-?]([^}]*)\}", lambda match: match.group(1), value)


def _mounts(service: str) -> dict[str, str]:
    """A service's volume mounts, target -> source."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def test_every_node_runs_the_one_image_with_one_set_of_settings() -> None:
    assert set(SERVICES) == {*ROLES, "db", "lb"}
    assert len({SERVICES[name]["image"] for name in ROLES}) == 1
    assert {SERVICES[name]["build"] for name in ROLES} == {"."}  # the Dockerfile of this repository
    environments = [SERVICES[name]["environment"] for name in ROLES]
    assert all(environment == environments[0] for environment in environments)
    for name, command in ROLES.items():
        assert SERVICES[name]["command"] == command, name


def test_the_settings_are_ones_the_service_reads_and_the_guide_describes() -> None:
    read = set(re.findall(r'"(PROMS_[A-Z_]+)"', (PROJECT_ROOT / "service" / "config.py").read_text()))
    given = set(SERVICES["init"]["environment"])
    assert given <= read, given - read
    undocumented = [name for name in given if f"`{name}`" not in GUIDE]
    assert not undocumented, f"docs/deploy.md does not describe {undocumented}"
    for required in ("PROMS_DATABASE_URL", "PROMS_BASE_URL", "PROMS_AUTH_ISSUER", "PROMS_AUTH_JWKS_URL"):
        assert required in given


def test_the_guide_names_every_image() -> None:
    proms_image = _default(SERVICES["init"]["image"])
    for image in (proms_image, SERVICES["db"]["image"], SERVICES["lb"]["image"]):
        assert f"`{image}`" in GUIDE, f"docs/deploy.md does not name the image {image}"
    assert SERVICES["db"]["image"].startswith("postgres:")  # official images
    assert SERVICES["lb"]["image"].startswith("haproxy:")


def test_the_database_url_names_the_database_service() -> None:
    url = SERVICES["init"]["environment"]["PROMS_DATABASE_URL"]
    match = re.fullmatch(r"postgresql\+psycopg://(\w+):\$\{POSTGRES_PASSWORD[^}]*\}@(\w+):5432/(\w+)", url)
    assert match, url
    user, host, database = match.groups()
    db = SERVICES["db"]["environment"]
    assert (user, host, database) == (db["POSTGRES_USER"], "db", db["POSTGRES_DB"])


def test_nodes_start_after_the_init_job_which_starts_after_the_database() -> None:
    assert SERVICES["db"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert SERVICES["init"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert SERVICES["init"]["restart"] == "no"  # a one-off job: it exits when done
    for name in [*WEB, *WORKERS]:
        assert SERVICES[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "init": {"condition": "service_completed_successfully"},
        }, name


def test_only_web_nodes_run_the_image_health_check() -> None:
    # The image's HEALTHCHECK asks /readyz over HTTP: a worker or the init job serves none.
    for name in ("init", *WORKERS):
        assert SERVICES[name]["healthcheck"] == {"disable": True}, name
    for name in WEB:
        assert "healthcheck" not in SERVICES[name], name


def test_web_nodes_and_workers_share_nothing_but_the_database() -> None:
    # Export files and clinician-app sessions are in PostgreSQL: no volume, no directory setting on any node.
    for name in ROLES:
        assert "volumes" not in SERVICES[name], f"{name} mounts a volume"
    assert set(COMPOSE["volumes"]) == {"pgdata"}
    assert _mounts("db") == {"/var/lib/postgresql/data": "pgdata"}
    settings = SERVICES["init"]["environment"]
    assert not [name for name in settings if name.endswith("_DIR")], "a node is given a directory of its own"


def test_workers_serve_their_metrics_on_a_port_the_guide_names() -> None:
    port = SERVICES["init"]["environment"]["PROMS_WORKER_METRICS_PORT"]
    assert port.isdigit() and "`PROMS_WORKER_METRICS_PORT`" in GUIDE
    assert f":{port}/metrics" in GUIDE


def _haproxy_sections(text: str) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(words), [])
        else:
            current.append(words)
    return sections


def test_the_load_balancer_sends_requests_to_both_web_nodes_when_they_are_ready() -> None:
    lb = SERVICES["lb"]
    source = next(source for target, source in _mounts("lb").items() if target.endswith("/haproxy.cfg"))
    assert _mounts("lb") == {"/usr/local/etc/haproxy/haproxy.cfg": source}  # where the official image reads it
    config = _haproxy_sections((PROJECT_ROOT / source).read_text())
    frontends = [name for name in config if name.startswith("frontend ")]
    assert len(frontends) == 1
    frontend = config[frontends[0]]
    backend = config[f"backend {next(words[1] for words in frontend if words[0] == 'default_backend')}"]

    servers = {words[1]: words[2] for words in backend if words[0] == "server"}
    port = image_env()["PROMS_PORT"]
    assert "PROMS_PORT" not in SERVICES["init"]["environment"]  # the image's port is the one the balancer knows
    assert servers == {name: f"{name}:{port}" for name in WEB}
    checked = any(words[:1] == ["default-server"] and "check" in words for words in backend)
    assert checked or all("check" in words for words in backend if words[0] == "server")
    assert ["http-check", "send", "meth", "GET", "uri", "/readyz"] in backend
    assert ["http-check", "expect", "status", "200"] in backend

    bind = next(words[1] for words in frontend if words[0] == "bind")
    published = {mapping.split(":")[-1] for mapping in lb["ports"]}
    assert bind.rsplit(":", 1)[-1] in published
    assert set(lb["depends_on"]) == set(WEB)
