"""Stores for the storage tests: a directory under tmp_path, and a bucket of moto's S3 served on
127.0.0.1. Every S3 request is checked to go to that server: a test that would reach anything
else (AWS itself, the instance metadata address, a proxy) fails instead."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from moto.server import ThreadedMotoServer

from app.config import Settings
from app.storage import FileStore, open_store
from app.storage.local import LocalStore
from app.storage.s3 import S3Store

# boto3 also reads these: a developer's AWS set-up must not steer the tests anywhere.
_AWS_ENVIRONMENT = {
    "AWS_CONFIG_FILE": "/nonexistent/stemhook-tests/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/stemhook-tests/credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as environment:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            environment.delenv(name)
        for name, value in _AWS_ENVIRONMENT.items():
            environment.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def s3_settings(endpoint: str, files_url: str, **more: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        files_url=files_url,
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id="stemhook-test",
        s3_secret_access_key="stemhook-test-secret",
        s3_addressing_style="path",
        **more,
    )


def loopback_only(endpoint: str, store: S3Store) -> None:
    """Refuses to send any request of the store's client anywhere but the test server."""
    expected = urlsplit(endpoint).netloc

    def check(request: Any, **kwargs: Any) -> None:
        where = urlsplit(request.url).netloc
        if where != expected:
            raise AssertionError(f"an S3 request went to {where}, not the test server")

    store.client.meta.events.register("before-send", check)


@pytest.fixture
def s3_store(s3_endpoint: str) -> S3Store:
    bucket = f"stemhook-{uuid.uuid4().hex[:12]}"
    store = open_store(s3_settings(s3_endpoint, f"s3://{bucket}/mirrored"))
    assert isinstance(store, S3Store)
    loopback_only(s3_endpoint, store)
    store.client.create_bucket(Bucket=bucket)
    return store


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    store = open_store(Settings(_env_file=None, files_dir=tmp_path / "files"))  # type: ignore[call-arg]
    assert isinstance(store, LocalStore)
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> FileStore:
    """Each behaviour every store promises, tried on both."""
    chosen: FileStore = request.getfixturevalue(f"{request.param}_store")
    return chosen
