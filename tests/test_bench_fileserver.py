"""bench/mirror/fileserver.py answers GET /<size>/<name> with that many of its source's bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.stand_ins import started

pytestmark = pytest.mark.servers

SOURCE = bytes(range(256)) * 3 + b"end"  # 771 bytes: a size that is no multiple of it shows


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    source = tmp_path / "source.bin"
    source.write_bytes(SOURCE)
    with started("bench.mirror.fileserver", str(source)) as server:
        yield server.origin


def test_a_file_is_the_source_repeated_to_its_size_on_one_connection(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        long, short = client.get("/2000/a.wav"), client.get("/10/b.mp3")
    assert long.content == (SOURCE * 3)[:2000]
    assert short.content == SOURCE[:10]
    assert long.headers["content-length"] == "2000"


@pytest.mark.parametrize("path", ["/", "/abc/a.wav", "/10", "/10/a/b"])
def test_any_other_path_is_not_found(base_url: str, path: str) -> None:
    assert httpx.get(base_url + path).status_code == 404
