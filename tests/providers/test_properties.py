"""Whatever arrives, `parse_callback` and `parse_poll_answer` answer with jobs or a ParseError,
never anything else.

Three sources of input: arbitrary bytes, arbitrary JSON trees, and the real fixtures of every
family with random damage done to them (the inputs most likely to get deep into a parser).
When parsing succeeds, the jobs must also keep the invariants the rest of the service relies on.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.providers.model import Job, ParseError, Provider, State
from app.providers.registry import ParsedCallback, parse_callback, parse_poll_answer
from tests.providers.test_fixtures import PAYLOADS, POLL_ANSWERS

ENDPOINTS: list[Provider | None] = [None, *Provider]
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TreePath = tuple[str | int, ...]


def _load(path: Path) -> Any:
    if path.suffix == ".xml":
        return xmltodict.parse(path.read_bytes())
    return orjson.loads(path.read_bytes())


def _keys(tree: Any) -> Iterator[str]:
    for key, value in _children(tree):
        if isinstance(key, str):
            yield key
        yield from _keys(value)


def _children(node: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(node, dict):
        yield from node.items()
    elif isinstance(node, list):
        yield from enumerate(node)


# Every family's fixtures, including those added after this file was written.
TREES = {path: _load(path) for path in PAYLOADS + POLL_ANSWERS}
# Keys the parsers look for, so that generated trees reach past the first lookup.
KNOWN_KEYS = sorted({key for tree in TREES.values() for key in _keys(tree)})

# --- invariants --------------------------------------------------------------------------


def _datetimes(value: Any) -> Iterator[datetime]:
    if isinstance(value, datetime):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _datetimes(getattr(value, item.name))
    elif isinstance(value, tuple):
        for item in value:
            yield from _datetimes(item)


def _check_job(job: Job) -> None:
    assert job.job_id.strip(), job
    assert (job.error is not None) == (job.state is State.FAILED), job
    for moment in _datetimes(job):
        assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0), job


# Detection, every family's endpoint, and every family's poll answer.
PARSERS: list[tuple[Callable[[bytes], ParsedCallback], Provider | None]] = [
    *((partial(parse_callback, provider=provider), provider) for provider in ENDPOINTS),
    *((partial(parse_poll_answer, provider=provider), provider) for provider in Provider),
]


def _parse_everywhere(body: bytes) -> None:
    for parse, provider in PARSERS:
        try:
            parsed = parse(body)
        except ParseError:
            continue
        assert isinstance(parsed, ParsedCallback)
        assert provider is None or parsed.provider is provider
        for job in parsed.jobs:
            _check_job(job)


# --- strategies --------------------------------------------------------------------------

# orjson refuses lone surrogates and integers beyond 64 bits; neither is a valid JSON document.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
keys = st.sampled_from(KNOWN_KEYS) | texts
# Keys xmltodict can write as element names, so XML fixtures are not mostly skipped.
xml_keys = st.sampled_from(KNOWN_KEYS) | st.from_regex(
    r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True
)
number_like = (
    st.sampled_from(
        ["0", "-1", "1.5", "1e309", "-1e309", "NaN", "inf", "1_000", " 7 ", "0x1f", "٣", "99" * 20]
    )
    | st.integers().map(str)
    | st.floats().map(str)
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | number_like
)


def json_values(key_strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(key_strategy, children, max_size=4)
        ),
        max_leaves=20,
    )


# --- mutations ---------------------------------------------------------------------------


def _paths(tree: Any, prefix: TreePath = ()) -> Iterator[TreePath]:
    """Every node below the root, as the keys and indexes that lead to it."""
    for key, value in _children(tree):
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _mutate(data: st.DataObject, tree: Any, values: st.SearchStrategy[Any]) -> None:
    paths = list(_paths(tree))
    if not paths:
        return
    *parent_path, key = data.draw(st.sampled_from(paths), label="path")
    parent = tree
    for step in parent_path:
        parent = parent[step]
    value = parent[key]
    operation = data.draw(
        st.sampled_from(["delete", "replace", "wrap", "unwrap", "number-like"]), label="operation"
    )
    if operation == "delete":
        del parent[key]
    elif operation == "replace":
        parent[key] = data.draw(values, label="value")
    elif operation == "wrap":
        parent[key] = [value]
    elif operation == "unwrap" and isinstance(value, list):
        parent[key] = value[0] if value else None
    elif operation == "number-like" and isinstance(value, str):
        parent[key] = data.draw(number_like, label="number-like")


def _encode(path: Path, tree: Any) -> bytes | None:
    if path.suffix == ".json":
        return orjson.dumps(tree)
    try:
        return xmltodict.unparse(tree).encode()  # type: ignore[no-any-return]
    except ValueError:  # several roots or an unwritable element name
        return None


# --- properties --------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=512))
def test_arbitrary_bytes(body: bytes) -> None:
    _parse_everywhere(body)


@SETTINGS
@given(json_values(keys))
def test_arbitrary_json_trees(tree: Any) -> None:
    _parse_everywhere(orjson.dumps(tree))


@SETTINGS
@given(st.data())
def test_mutated_fixtures(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(TREES)), label="fixture")
    tree = copy.deepcopy(TREES[path])
    values = json_values(keys if path.suffix == ".json" else xml_keys)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="mutations")):
        _mutate(data, tree, values)
    body = _encode(path, tree)
    if body is not None:
        _parse_everywhere(body)
