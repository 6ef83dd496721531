"""The Dockerfile, .dockerignore and deploy/requirements.lock keep what they promise.

No Docker engine runs here, so the image is not built: its instructions are read instead, its
HEALTHCHECK command is run against a real stemhook, and the lock is checked against pyproject.toml
and the installed dependencies' own metadata.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.lock import needed_by, project_requirements
from tests.servers import free_port
from tests.test_supported_pythons import supported_pythons

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "deploy" / "requirements.lock"
IMAGE_PORT = 8000


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip()))
            pending = ""
    return found


def stages() -> list[list[Instruction]]:
    split: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            split.append([])
        if split:
            split[-1].append(instruction)
    return split


def arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def exec_form(stage: list[Instruction], keyword: str) -> list[str]:
    [value] = arguments(stage, keyword)
    command: list[str] = json.loads(value)
    return command


def dev_tools() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = project["optional-dependencies"]["dev"]
    return {canonicalize_name(Requirement(line).name) for line in dev}


def locked() -> dict[str, str]:
    lines = [line for line in LOCK.read_text().splitlines() if not line.startswith("#")]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in pins), "canonical names only"
    return pins


def test_it_builds_in_stages_from_the_newest_supported_slim_python() -> None:
    [default_image] = [a for a in arguments(instructions(), "ARG") if a.startswith("PYTHON_IMAGE=")]
    build, *_, final = stages()

    assert default_image.startswith(f"PYTHON_IMAGE=python:{supported_pythons()[-1]}-slim-")
    assert len(stages()) >= 2
    assert all(stage[0].arguments.startswith("${PYTHON_IMAGE}") for stage in stages())
    assert build[0].arguments.endswith(" AS build")
    assert all(source.startswith("--from=build ") for source in arguments(final, "COPY"))
    assert not any("pip" in run for run in arguments(final, "RUN"))  # nothing installed there


def test_the_service_runs_unprivileged() -> None:
    final = stages()[-1]
    [user] = arguments(final, "USER")
    uid, gid = user.split(":")
    created = " ".join(arguments(final, "RUN"))

    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    assert f"--uid {uid} --gid {gid}" in created
    assert [i.keyword for i in final].index("USER") > max(
        n for n, i in enumerate(final) if i.keyword == "RUN"
    )


def test_it_serves_with_the_stemhook_command_on_all_interfaces() -> None:
    final = stages()[-1]
    command = exec_form(final, "ENTRYPOINT") + exec_form(final, "CMD")

    assert command[:2] == ["stemhook", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == str(IMAGE_PORT)
    assert arguments(final, "EXPOSE") == [str(IMAGE_PORT)]


def test_dependencies_come_from_the_lock_without_dev_tools() -> None:
    build = stages()[0]
    installs = [run for run in arguments(build, "RUN") if " install " in run]
    text = DOCKERFILE.read_text()

    assert any("--requirement /tmp/requirements.lock" in run for run in installs)
    assert "deploy/requirements.lock /tmp/requirements.lock" in arguments(build, "COPY")
    assert all("--no-deps" in run for run in installs)  # nothing that the lock does not pin
    assert any(" check" in run for run in arguments(build, "RUN"))
    assert "[dev]" not in text
    assert not {word.lower() for word in re.findall(r"[\w-]+", text)} & dev_tools()


def test_the_healthcheck_command_works_without_curl(stemhook: str) -> None:
    """The image's own HEALTHCHECK, run against a live stemhook (served under a prefix: the
    check bypasses the proxy) and against a closed port."""
    [healthcheck] = arguments(stages()[-1], "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[0] == "python" and f"127.0.0.1:{IMAGE_PORT}/healthz" in command[-1]

    def run_against(netloc: str) -> int:
        check = [
            sys.executable,
            *command[1:-1],
            command[-1].replace(f"127.0.0.1:{IMAGE_PORT}", netloc),
        ]
        return subprocess.run(check, capture_output=True, timeout=60).returncode

    assert run_against(urlsplit(stemhook).netloc) == 0
    assert run_against(f"127.0.0.1:{free_port()}") != 0


def test_the_lock_pins_the_runtime_dependencies_only() -> None:
    pins = locked()

    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), requirement
    assert not set(pins) & dev_tools()


def test_the_lock_is_complete_as_far_as_this_environment_tells() -> None:
    """What each locked dependency needs is locked too; told by the dependency's metadata when
    the version installed here is the locked one (the image's `pip check` tells the rest)."""
    pins, missing = locked(), []
    pending = project_requirements()
    expanded: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if name not in pins:
            missing.append(str(requirement))
            continue
        if (name, extras) in expanded or _installed(name) != pins[name]:
            continue
        expanded.add((name, extras))
        pending.extend(needed_by(requires(name) or [], set(extras)))

    assert missing == []
    assert expanded  # this environment could tell something


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def test_the_build_context_holds_the_sources_and_no_secrets() -> None:
    copied = ["app/main.py", "migrations/env.py", "pyproject.toml", "README.md"]
    kept_out = [".env", ".venv/bin/python", "tests/conftest.py", "stemhook.db"]

    assert all(_in_context(path) for path in [*copied, "deploy/requirements.lock"])
    assert not any(_in_context(path) for path in [*kept_out, "app/__pycache__/main.pyc"])


def _in_context(path: str) -> bool:
    """.dockerignore's rule: the last pattern matching the path or a parent of it decides."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob(pattern.removeprefix("!").rstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = negated
    return included


def _glob(pattern: str) -> re.Pattern[str]:
    translated = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
        for part in re.split(r"(\*\*|\*)", pattern)
    )
    return re.compile(translated.replace(".*/", "(?:.*/)?"))
