"""The supported Pythons are stated once, in pyproject.toml's requires-python, and what else names
them follows it: CI runs the suite on each, lint checks against the oldest, the image runs the
newest (tests/deploy/test_dockerfile.py). Every dependency is bounded above, so that nothing the
suite never ran against gets installed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
UPPER_BOUNDS = {"<", "<=", "==", "~=", "==="}


def supported_pythons() -> list[str]:
    """The 3.x minor versions requires-python admits, oldest first."""
    admitted = SpecifierSet(PYPROJECT["project"]["requires-python"])
    return [f"3.{minor}" for minor in range(100) if f"3.{minor}" in admitted]


def test_python_3_11_to_3_13_are_supported() -> None:
    assert supported_pythons() == ["3.11", "3.12", "3.13"]


def test_ci_runs_the_suite_on_every_supported_python() -> None:
    [listed] = re.findall(r"^PYTHONS=\((.*)\)$", (ROOT / ".ci" / "run").read_text(), re.M)

    assert listed.split() == supported_pythons()


def test_lint_checks_against_the_oldest_supported_python() -> None:
    oldest = supported_pythons()[0]

    assert PYPROJECT["tool"]["mypy"]["python_version"] == oldest
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + oldest.replace(".", "")


def test_python_and_every_dependency_are_bounded_above() -> None:
    project = PYPROJECT["project"]
    declared = [
        *project["dependencies"],
        *(line for extra in project["optional-dependencies"].values() for line in extra),
        *PYPROJECT["build-system"]["requires"],
    ]
    unbounded = [
        line
        for line in declared
        if not {spec.operator for spec in Requirement(line).specifier} & UPPER_BOUNDS
    ]

    assert unbounded == []
    assert {spec.operator for spec in SpecifierSet(project["requires-python"])} & UPPER_BOUNDS
