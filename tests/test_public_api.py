"""app/ uses other packages through their public names only, but in the adapters listed here.

A private name (`_x`) may move or change meaning in any minor release, silently. Where a measured
need keeps one, it lives in one adapter module, its package is pinned to the minor version the
adapter was written against (pyproject.toml), and a test of its own fails when it moves.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parent.parent
APP = ROOT / "app"
# Adapter module -> the distribution whose internals it uses. Its own tests fail when they move
# (app/prometheus_batch.py: tests/test_metrics.py).
ADAPTERS = {"prometheus_batch.py": "prometheus-client"}
# Adapters that use no private name but lean on a class's undocumented behaviour (a subclassed
# implementation class): pinned like the others, still scanned for private names.
PINNED = {**ADAPTERS, "held_writes.py": "uvicorn"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_in(node: ast.AST) -> set[str]:
    """The names a module or class body defines, and the attributes its methods set on self."""
    names: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(child.name)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.add(child.id)
        elif isinstance(child, ast.Attribute) and isinstance(child.ctx, ast.Store):
            names.add(child.attr)
        elif (
            isinstance(child, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in child.targets)
            and isinstance(child.value, ast.Tuple)
        ):
            names.update(e.value for e in child.value.elts if isinstance(e, ast.Constant))
    return names


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(APP.rglob("*.py"))}


def _foreign_private_uses(tree: ast.Module, own: set[str]) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("app"):
                for alias in node.names:
                    if _private(alias.name) or any(map(_private, node.module.split("."))):
                        yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(map(_private, alias.name.split("."))):
                    yield node.lineno, f"import {alias.name}"
        elif (name := _reached(node)) is not None and _private(name) and name not in own:
            yield node.lineno, ast.unparse(node)


def _reached(node: ast.AST) -> str | None:
    """The attribute name `x.name` or `getattr(x, "name")` reaches."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        return node.args[1].value
    return None


def test_app_uses_no_private_name_of_another_package_outside_its_adapters() -> None:
    trees = _trees()
    # A private name app/ defines itself is its own to use (its modules' helpers, its classes'
    # attributes); any other is another package's.
    own = set().union(*map(_defined_in, trees.values()))
    uses = [
        f"app/{path.relative_to(APP)}:{line}: {use}"
        for path, tree in trees.items()
        if str(path.relative_to(APP)) not in ADAPTERS
        for line, use in _foreign_private_uses(tree, own)
    ]
    assert uses == []


def test_a_class_uses_only_its_own_private_attributes_outside_the_adapters() -> None:
    """self._x inherited from a base class of another package is that package's private."""
    trees = _trees()
    classes = {
        node.name: node
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    uses = []
    for path, tree in trees.items():
        if str(path.relative_to(APP)) in ADAPTERS:
            continue
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
            own = _defined_in(cls).union(
                *(
                    _defined_in(classes[base.id])
                    for base in cls.bases
                    if isinstance(base, ast.Name) and base.id in classes
                )
            )
            uses += [
                f"app/{path.relative_to(APP)}:{node.lineno}: {cls.name}: {ast.unparse(node)}"
                for node in ast.walk(cls)
                if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and _private(node.attr)
                and node.attr not in own
            ]
    assert uses == []


@pytest.mark.parametrize("module", sorted(PINNED))
def test_an_adapters_package_is_pinned_to_the_minor_version_it_was_written_against(
    module: str,
) -> None:
    assert (APP / module).is_file()
    distribution = PINNED[module]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = (
        requirement.specifier
        for requirement in map(Requirement, project["dependencies"])
        if requirement.name == distribution
    )
    installed = Version(version(distribution))
    next_minor = Version(f"{installed.major}.{installed.minor + 1}")
    assert installed in pin
    assert next_minor not in pin, (
        f"{distribution} {pin}: pin it to {installed.base_version}'s minor"
    )
