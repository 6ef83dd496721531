"""docker-compose.yml: valid Compose, wired the way README "Deployment" says.

There is no Docker engine nor `docker compose` here. What `docker compose config` checks is done
the same way: the file is interpolated from an environment, then validated against the Compose
Specification's JSON schema, compose-spec.json beside this file, as docker compose v2.40.3
embeds it (compose-spec/compose-spec, Apache-2.0). Refresh it from a newer docker compose's
compose-go module, schema/compose-spec.json.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from app.config import Settings
from tests.deploy.nginx import NGINX_CONF, check_config, placeholders

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
SCHEMA = Path(__file__).with_name("compose-spec.json")
# What .env holds on a real deployment; a value to tell apart in the interpolated file.
ENV = {
    "POSTGRES_PASSWORD": "db-password-0123456789",
    "STEMHOOK_API_TOKENS": "api-token-0123456789",
    "STEMHOOK_CALLBACK_TOKEN": "callback-token-0123456789",
}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a dollar.
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?)([-?])([^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """What docker compose does to every string of the file before it validates it."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda found: _substitute(found, env), value)
    return value


def _substitute(found: re.Match[str], env: dict[str, str]) -> str:
    if found[0] == "$$":
        return "$"
    name, colon, kind, argument = found.groups()
    unset = name not in env or (colon == ":" and env[name] == "")
    if not unset:
        return env[name]
    if kind == "?":
        raise MissingVariable(f"{name}: {argument}")
    return argument or ""


def compose(env: dict[str, str] = ENV) -> dict[str, Any]:
    loaded: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)
    return loaded


def validate(document: dict[str, Any]) -> list[str]:
    validator = jsonschema_rs.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{error.instance_path}: {error.message}" for error in validator.iter_errors(document)]


def test_the_file_is_valid_compose() -> None:
    broken = compose()
    broken["services"]["stemhook"]["depends_on"]["db"]["condition"] = "healthy"

    assert validate(compose()) == []
    assert validate(broken) != []  # the schema does bite


def test_it_refuses_to_start_without_its_secrets() -> None:
    for name in ENV:
        with pytest.raises(MissingVariable, match=name):
            compose({other: value for other, value in ENV.items() if other != name})


def test_env_example_names_every_required_variable() -> None:
    required = set(re.findall(r"\$\{(\w+):?\?", COMPOSE_FILE.read_text()))
    listed = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))

    assert required == set(ENV)
    assert required <= listed


def test_only_the_proxy_is_reachable_from_outside() -> None:
    services = compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    internal = {name for name, network in compose()["networks"].items() if network.get("internal")}

    assert published == {"proxy"}
    assert set(services["db"]["networks"]) <= internal


def test_stemhook_waits_for_a_healthy_database_and_uses_it() -> None:
    document = compose()
    db, stemhook = document["services"]["db"], document["services"]["stemhook"]
    volume = db["volumes"][0].split(":")[0]

    assert stemhook["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in db["healthcheck"]["test"]
    assert volume in document["volumes"]  # named: the data outlives the container
    url = stemhook["environment"]["STEMHOOK_DATABASE_URL"]
    assert url == f"postgresql://stemhook:{ENV['POSTGRES_PASSWORD']}@db:5432/stemhook"
    assert stemhook["command"][:1] == ["serve"]  # which migrates first


def test_stored_result_files_live_in_a_named_volume_at_the_files_directory() -> None:
    document = compose()
    stemhook = document["services"]["stemhook"]
    [mount] = stemhook["volumes"]
    volume, target = mount.split(":")
    workdir = next(
        line.split()[1]
        for line in reversed(DOCKERFILE.read_text().splitlines())
        if line.startswith("WORKDIR ")
    )

    assert volume in document["volumes"]  # outlives the container, whose filesystem is read-only
    assert stemhook["read_only"] is True
    assert Path(target) == Path(workdir) / Settings.model_fields["files_dir"].default
    assert f"install -d -o 10001 -g 10001 -m 0700 {target}" in DOCKERFILE.read_text()


def test_forwarded_headers_are_believed_from_the_proxy_alone() -> None:
    document = compose()
    stemhook, proxy = document["services"]["stemhook"], document["services"]["proxy"]
    [(network, attached)] = proxy["networks"].items()
    ipam = document["networks"][network]["ipam"]["config"][0]
    proxy_address = ipaddress.ip_address(attached["ipv4_address"])

    assert stemhook["environment"]["STEMHOOK_FORWARDED_ALLOW_IPS"] == str(proxy_address)
    assert network in stemhook["networks"]
    assert proxy_address in ipaddress.ip_network(ipam["subnet"])
    assert proxy_address not in ipaddress.ip_network(ipam["ip_range"])  # never handed out


def test_the_proxy_fills_in_the_nginx_config_consistently() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    proxy, stemhook = compose()["services"]["proxy"], compose()["services"]["stemhook"]
    environment = proxy["environment"]
    published = proxy["ports"][0].rsplit(":", 1)[1]
    serve_port = stemhook["command"][stemhook["command"].index("--port") + 1]

    assert proxy["volumes"] == ["./deploy/nginx.conf:/etc/nginx/templates/default.conf.template:ro"]
    assert set(environment) == placeholders(NGINX_CONF.read_text())
    assert environment["NGINX_PORT"] == published
    assert environment["STEMHOOK_UPSTREAM"] == f"stemhook:{serve_port}"
    same = raw["proxy"]["environment"]["STEMHOOK_ROOT_PATH"]
    assert same == raw["stemhook"]["environment"]["STEMHOOK_ROOT_PATH"]


@pytest.mark.parametrize("root_path", ["", "/stemhook"])
def test_nginx_accepts_the_config_as_compose_fills_it_in(
    nginx: str, tmp_path: Path, root_path: str
) -> None:
    environment = compose(ENV | {"STEMHOOK_ROOT_PATH": root_path})["services"]["proxy"][
        "environment"
    ]

    checked = check_config(tmp_path, environment)

    assert checked.returncode == 0, checked.stderr
