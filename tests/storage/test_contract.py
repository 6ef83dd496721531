"""What every file store promises (app/storage/store.py), tried on the directory and on the
bucket alike: bytes back as written, hashes as hashlib's, whole-or-nothing writes, ranges."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

import pytest

from app.storage import FileStore, MissingFile, StoredFile, UnsafeKey

KEY = "suno/job-1/0-vocals.mp3"


class FetchFailed(Exception):
    """Stands for what the fetcher raises midway: its size cap, a dropped connection."""


def pieces(
    content: bytes, sizes: tuple[int, ...] = (1, 7, 4096, 65536, 100_003)
) -> Iterator[bytes]:
    """The content in chunks of uneven sizes, as a network read gives them."""
    position, turn = 0, 0
    while position < len(content):
        size = sizes[turn % len(sizes)]
        yield content[position : position + size]
        position, turn = position + size, turn + 1


def failing_after(content: bytes, count: int) -> Iterator[bytes]:
    for number, chunk in enumerate(pieces(content)):
        if number == count:
            raise FetchFailed("the connection dropped")
        yield chunk


def read(store: FileStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    with store.open(key, start, end) as chunks:
        return b"".join(chunks)


@pytest.fixture
def content() -> bytes:
    return random.Random(25).randbytes(700_001)


def test_a_file_comes_back_byte_for_byte_with_hashlibs_hashes(
    store: FileStore, content: bytes
) -> None:
    stored = store.write(KEY, pieces(content))

    assert stored == StoredFile(
        key=KEY,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        md5=hashlib.md5(content).hexdigest(),
    )
    assert read(store, KEY) == content
    assert store.size(KEY) == len(content)


def test_an_empty_file_is_a_file(store: FileStore) -> None:
    stored = store.write(KEY, iter([]))

    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert store.size(KEY) == 0
    assert read(store, KEY) == b""


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 10),  # the first bytes
        (300_000, 300_500),  # the middle
        (700_000, 700_001),  # the last byte
        (123_457, None),  # to the end
        (699_990, 800_000),  # past the end: cut short
        (500, 500),  # no bytes
        (700_001, None),  # starting at the end
        (900_000, None),  # starting past it
    ],
)
def test_a_range_is_the_slice_of_the_content(
    store: FileStore, content: bytes, start: int, end: int | None
) -> None:
    store.write(KEY, pieces(content))

    assert read(store, KEY, start, end) == content[start:end]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (10, 9)])
def test_a_range_that_is_no_range_is_refused(store: FileStore, start: int, end: int | None) -> None:
    store.write(KEY, [b"content"])

    with pytest.raises(ValueError, match="not a range of bytes"):
        store.open(KEY, start, end)


def test_a_failing_source_leaves_nothing_under_the_key(store: FileStore, content: bytes) -> None:
    with pytest.raises(FetchFailed):
        store.write(KEY, failing_after(content, 5))

    with pytest.raises(MissingFile):
        store.size(KEY)
    with pytest.raises(MissingFile):
        store.open(KEY)


def test_writing_again_replaces_the_file_whole(store: FileStore, content: bytes) -> None:
    store.write(KEY, pieces(b"the first attempt, longer than the second" * 1000))

    store.write(KEY, pieces(content))

    assert read(store, KEY) == content


def test_a_failed_rewrite_keeps_the_earlier_file(store: FileStore, content: bytes) -> None:
    store.write(KEY, [b"the earlier file"])

    with pytest.raises(FetchFailed):
        store.write(KEY, failing_after(content, 5))

    assert read(store, KEY) == b"the earlier file"


def test_a_missing_file_is_told_apart(store: FileStore) -> None:
    store.write("suno/job-1/0-other.mp3", [b"another file"])

    for look in (store.size, store.open):
        with pytest.raises(MissingFile) as raised:
            look(KEY)
        assert raised.value.key == KEY


def test_the_path_above_a_file_is_no_file(store: FileStore) -> None:
    store.write(KEY, [b"content"])

    for look in (store.size, store.open):
        with pytest.raises(MissingFile):
            look("suno/job-1")


def test_a_deleted_file_is_missing_and_deleting_again_is_harmless(store: FileStore) -> None:
    store.write(KEY, [b"content"])

    store.delete(KEY)
    store.delete(KEY)

    with pytest.raises(MissingFile):
        store.size(KEY)


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "a/./b",
        "a//b",
        "a/b/",
        "",
        ".",
        "..",
        ".hidden",
        "a\x00b",
        "a\\..\\b",
        "C:/x",
        "a/" + "b" * 129,
        "/".join(["abcdefgh"] * 60),
    ],
)
def test_a_key_that_is_not_plain_is_refused_everywhere(store: FileStore, key: str) -> None:
    with pytest.raises(UnsafeKey):
        store.write(key, [b"content"])
    for action in (store.size, store.open, store.delete):
        with pytest.raises(UnsafeKey):
            action(key)


def test_reading_part_way_then_closing_lets_the_file_go(store: FileStore, content: bytes) -> None:
    store.write(KEY, pieces(content))

    with store.open(KEY) as chunks:
        first = next(chunks)
    remaining = list(chunks)

    assert content.startswith(first)
    assert remaining == []
