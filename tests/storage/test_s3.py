"""The bucket store against moto's S3 on 127.0.0.1: parts sent as the chunks come, an upload
that fails aborted with nothing left behind, its prefix kept to, and no proxy but its own."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, ProxyConnectionError

from app.storage import MissingFile, open_store
from app.storage.s3 import MIN_PART_SIZE, S3Store
from tests.storage.conftest import loopback_only, s3_settings
from tests.storage.test_contract import KEY, FetchFailed

CHUNK = 256 * 1024
# A port nothing listens on: a request sent through a "proxy" there fails at once.
CLOSED_LOOPBACK = "http://127.0.0.1:9"


@pytest.fixture
def small_parts(s3_store: S3Store) -> S3Store:
    """The same bucket, in parts of S3's least size, so a few megabytes make several."""
    return S3Store(s3_store.client, s3_store.bucket, "mirrored", part_size=MIN_PART_SIZE)


class Source:
    """Chunks of `total` bytes, counting how many the store has taken so far."""

    def __init__(self, total: int, fail_at: int | None = None) -> None:
        self.content = bytes(index % 253 for index in range(total))
        self.taken = 0
        self._fail_at = fail_at

    def __iter__(self) -> Iterator[bytes]:
        while self.taken < len(self.content):
            if self._fail_at is not None and self.taken >= self._fail_at:
                raise FetchFailed("the fetcher's size cap")
            chunk = self.content[self.taken : self.taken + CHUNK]
            self.taken += len(chunk)
            yield chunk


def incomplete_uploads(store: S3Store) -> list[Any]:
    return store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def every_object(store: S3Store) -> list[str]:
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_large_file_goes_in_parts_as_its_chunks_come(small_parts: S3Store) -> None:
    source = Source(2 * MIN_PART_SIZE + 12_345)
    taken_at_each_part: list[int] = []
    small_parts.client.meta.events.register(
        "before-call.s3.UploadPart", lambda **kwargs: taken_at_each_part.append(source.taken)
    )

    stored = small_parts.write(KEY, source)

    assert len(taken_at_each_part) == 3
    # Each part leaves as soon as it is full: the store holds at most a part and a chunk.
    for number, taken in enumerate(taken_at_each_part[:2], start=1):
        assert number * MIN_PART_SIZE <= taken < number * MIN_PART_SIZE + CHUNK
    assert stored.sha256 == hashlib.sha256(source.content).hexdigest()
    assert stored.md5 == hashlib.md5(source.content).hexdigest()
    with small_parts.open(KEY, MIN_PART_SIZE - 5, MIN_PART_SIZE + 5) as chunks:
        assert b"".join(chunks) == source.content[MIN_PART_SIZE - 5 : MIN_PART_SIZE + 5]
    with small_parts.open(KEY) as chunks:
        assert b"".join(chunks) == source.content
    assert every_object(small_parts) == [f"mirrored/{KEY}"]
    assert incomplete_uploads(small_parts) == []


def test_a_source_failing_after_some_parts_leaves_no_object_and_no_upload(
    small_parts: S3Store,
) -> None:
    source = Source(3 * MIN_PART_SIZE, fail_at=MIN_PART_SIZE + CHUNK)
    sent: list[object] = []
    small_parts.client.meta.events.register(
        "before-call.s3.UploadPart", lambda **kwargs: sent.append(kwargs)
    )

    with pytest.raises(FetchFailed):
        small_parts.write(KEY, source)

    assert len(sent) == 1, "a part should have been sent before the failure"
    assert every_object(small_parts) == []
    assert incomplete_uploads(small_parts) == []
    with pytest.raises(MissingFile):
        small_parts.size(KEY)


def test_a_part_the_service_refuses_aborts_the_upload(small_parts: S3Store) -> None:
    def refuse_the_second(params: dict[str, Any], **kwargs: Any) -> None:
        if params["PartNumber"] == 2:
            raise ClientError({"Error": {"Code": "SlowDown"}}, "UploadPart")

    small_parts.client.meta.events.register(
        "before-parameter-build.s3.UploadPart", refuse_the_second
    )

    with pytest.raises(ClientError, match="SlowDown"):
        small_parts.write(KEY, Source(3 * MIN_PART_SIZE))

    assert every_object(small_parts) == []
    assert incomplete_uploads(small_parts) == []


def test_the_sweep_aborts_stale_uploads_under_its_prefix_only(small_parts: S3Store) -> None:
    client, bucket = small_parts.client, small_parts.bucket
    for key in ("mirrored/suno/killed/0-v.mp3", "mirrored/suno/busy/0-v.mp3", "elsewhere/x"):
        client.create_multipart_upload(Bucket=bucket, Key=key)

    def busy_is_young(parsed: dict[str, Any], **kwargs: Any) -> None:
        # moto dates every upload in 2010: the one a live writer owns is made a minute old.
        for upload in parsed.get("Uploads", []):
            if "/busy/" in upload["Key"]:
                upload["Initiated"] = datetime.now(UTC) - timedelta(minutes=1)

    client.meta.events.register("after-call.s3.ListMultipartUploads", busy_is_young)

    assert small_parts.sweep_temporaries(older_than=timedelta(hours=1)) == 1

    client.meta.events.unregister("after-call.s3.ListMultipartUploads", busy_is_young)
    assert sorted(upload["Key"] for upload in incomplete_uploads(small_parts)) == [
        "elsewhere/x",
        "mirrored/suno/busy/0-v.mp3",
    ]


def test_a_proxy_in_the_environment_is_not_used(
    s3_endpoint: str, s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, CLOSED_LOOPBACK)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    store = open_store(s3_settings(s3_endpoint, f"s3://{s3_store.bucket}/mirrored"))
    assert isinstance(store, S3Store)
    loopback_only(s3_endpoint, store)

    store.write(KEY, [b"straight to the bucket"])

    assert store.size(KEY) == len(b"straight to the bucket")


def test_the_configured_proxy_is_the_way_to_the_bucket(s3_endpoint: str, s3_store: S3Store) -> None:
    settings = s3_settings(
        s3_endpoint, f"s3://{s3_store.bucket}/mirrored", s3_proxy_url=CLOSED_LOOPBACK
    )
    store = open_store(settings)
    assert isinstance(store, S3Store)
    loopback_only(s3_endpoint, store)

    with pytest.raises(ProxyConnectionError):
        store.size(KEY)
