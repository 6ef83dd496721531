"""GET {href}: the stored bytes, whole or by range, with the headers an audio player needs and
none that would let a stranger's file act as a page of stemhook's origin."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from app.api.ranges import byte_range
from app.errors import RangeNotSatisfiable
from app.storage.local import LocalStore
from tests.api.payloads import suno_json
from tests.api.test_job_files import AUTH, set_files
from tests.conftest import Backend, open_client
from tests.ingest.file_rows import store

pytestmark = pytest.mark.anyio
CONTENT = bytes(range(256)) * 400
HREF = "/v1/jobs/suno/t-1/files/1"
ETAG = f'"{hashlib.sha256(CONTENT).hexdigest()}"'


@pytest.fixture
async def client(
    backend: Backend, engine: Engine, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A service whose Suno job t-1 has its second output stored (an MP3)."""
    files = LocalStore(tmp_path / "files")
    stored = files.write("suno/t-1/1-vocals.mp3", [CONTENT])
    store(engine, suno_json("t-1"))
    set_files(
        engine,
        "t-1",
        "stored",
        position=1,
        bytes=stored.size,
        sha256=stored.sha256,
        md5=stored.md5,
        content_type="audio/mpeg",
        storage_key=stored.key,
    )
    async for opened in open_client(backend.settings(files_dir=files.root)):
        yield opened


async def test_the_whole_file_is_served_as_data_with_its_etag(client: httpx.AsyncClient) -> None:
    answer = await client.get(HREF, headers=AUTH)

    assert answer.status_code == 200
    assert answer.content == CONTENT
    assert {name: answer.headers[name] for name in EXPECTED_HEADERS} == EXPECTED_HEADERS
    assert answer.headers["content-length"] == str(len(CONTENT))


EXPECTED_HEADERS = {
    "content-type": "audio/mpeg",
    "content-disposition": "inline",
    "etag": ETAG,
    "accept-ranges": "bytes",
    "x-content-type-options": "nosniff",
    "content-security-policy": "sandbox; default-src 'none'",
}


@pytest.mark.parametrize(
    ("asked", "start", "end"),
    [("bytes=0-99", 0, 100), ("bytes=100000-", 100000, len(CONTENT)), ("bytes=-10", None, None)],
)
async def test_a_range_is_answered_206_with_its_bytes(
    client: httpx.AsyncClient, asked: str, start: int | None, end: int | None
) -> None:
    answer = await client.get(HREF, headers=AUTH | {"Range": asked})

    first, last = (start, end) if start is not None else (len(CONTENT) - 10, len(CONTENT))
    assert answer.status_code == 206
    assert answer.content == CONTENT[first:last]
    assert answer.headers["content-range"] == f"bytes {first}-{last - 1}/{len(CONTENT)}"


async def test_a_range_past_the_end_is_answered_416_with_the_size(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(HREF, headers=AUTH | {"Range": f"bytes={len(CONTENT)}-"})

    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{len(CONTENT)}"
    assert answer.json()["error"]["code"] == "range_not_satisfiable"


async def test_conditional_requests_use_the_etag(client: httpx.AsyncClient) -> None:
    unchanged = await client.get(HREF, headers=AUTH | {"If-None-Match": ETAG})
    other_version = await client.get(
        HREF, headers=AUTH | {"Range": "bytes=0-9", "If-Range": '"another"'}
    )

    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert (other_version.status_code, other_version.content) == (200, CONTENT)


@pytest.mark.parametrize(
    ("sent", "served", "disposition"),
    [
        ("text/html; charset=utf-8", "application/octet-stream", "attachment"),
        ("Video/MP4; codecs=avc1", "video/mp4", "inline"),
        ("image/png", "image/png", "attachment"),
        ("text/plain; charset=latin1", "text/plain", "attachment"),
    ],
)
async def test_a_file_is_served_as_its_listed_type_and_downloaded_unless_played(
    client: httpx.AsyncClient, engine: Engine, sent: str, served: str, disposition: str
) -> None:
    set_files(engine, "t-1", "stored", position=1, content_type=sent)

    answer = await client.get(HREF, headers=AUTH)

    assert answer.headers["content-type"] == served
    assert answer.headers["content-disposition"] == disposition


@pytest.mark.parametrize(
    ("href", "headers", "status"),
    [
        ("/v1/jobs/suno/t-1/files/0", AUTH, 404),  # pending: nothing stored yet
        ("/v1/jobs/suno/nobody/files/1", AUTH, 404),
        (HREF, {}, 401),
    ],
)
async def test_only_a_stored_file_is_served_and_only_with_a_token(
    client: httpx.AsyncClient, href: str, headers: dict[str, str], status: int
) -> None:
    assert (await client.get(href, headers=headers)).status_code == status


async def test_a_stored_file_gone_from_the_store_is_not_found(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "files" / "suno/t-1/1-vocals.mp3").unlink()

    answer = await client.get(HREF, headers=AUTH)

    assert answer.status_code == 404
    assert "missing from the store" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 1)),
        ("bytes=5-", (5, 100)),
        ("bytes=90-200", (90, 100)),
        ("bytes=-200", (0, 100)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=9-3", None),
    ],
)
def test_byte_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=500-600"])
def test_unsatisfiable_byte_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 100)
