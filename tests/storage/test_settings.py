"""The storage settings: a directory by default, a bucket when STEMHOOK_FILES_URL names one,
refused at start-up when malformed, and the S3 keys given together or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, parse_files_url
from app.storage import open_store
from app.storage.local import LocalStore
from app.storage.s3 import S3Store
from tests.storage.conftest import s3_settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_by_default_files_go_to_a_directory_beside_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = open_store(settings())

    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "stemhook-files"
    # Made by the first write, not by a process that only serves files.
    assert not store.root.exists()
    store.write("suno/t/0-vocals.mp3", [b"v"])
    assert store.root.is_dir()


def test_every_setting_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "FILES_DIR": "/srv/stemhook/files",
        "FILES_URL": "s3://stems/mirrored/",
        "S3_ENDPOINT_URL": "https://minio.internal:9000",
        "S3_REGION": "eu-west-3",
        "S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "S3_SECRET_ACCESS_KEY": "a-secret-of-forty-characters-or-so",
        "S3_ADDRESSING_STYLE": "path",
        "S3_PROXY_URL": "http://proxy.internal:3128",
    }.items():
        monkeypatch.setenv(f"STEMHOOK_{name}", value)

    read = Settings(_env_file=None)  # type: ignore[call-arg]

    assert (read.files_dir, read.files_url) == (Path("/srv/stemhook/files"), "s3://stems/mirrored/")
    assert (read.s3_endpoint_url, read.s3_region) == ("https://minio.internal:9000", "eu-west-3")
    assert read.s3_access_key_id == "AKIAEXAMPLE"
    assert read.s3_secret_access_key is not None
    assert read.s3_secret_access_key.get_secret_value() == "a-secret-of-forty-characters-or-so"
    assert "a-secret-of-forty" not in repr(read)
    assert (read.s3_addressing_style, read.s3_proxy_url) == ("path", "http://proxy.internal:3128")


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FILES_URL", "S3_ENDPOINT_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(f"STEMHOOK_{name}", "")

    read = Settings(_env_file=None)  # type: ignore[call-arg]

    assert (read.files_url, read.s3_endpoint_url, read.s3_access_key_id) == (None, None, None)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://stems", "stems", ""),
        ("s3://stems/", "stems", ""),
        ("s3://my.stems-2/mirrored", "my.stems-2", "mirrored"),
        ("s3://stems/a/b_c/d-e/", "stems", "a/b_c/d-e"),
    ],
)
def test_a_bucket_url_names_a_bucket_and_a_prefix(url: str, bucket: str, prefix: str) -> None:
    assert settings(files_url=url).files_url == url
    assert parse_files_url(url) == (bucket, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "stems/mirrored",
        "s3://",
        "s3:///prefix",
        "http://stems/mirrored",
        "s3://Stems",
        "s3://ab",
        "s3://stems/../other",
        "s3://stems//x",
        "s3://stems/a b",
        "s3://stems?x=1",
    ],
)
def test_anything_else_fails_start_up(url: str) -> None:
    with pytest.raises(ValidationError, match="is not s3://bucket or s3://bucket/prefix"):
        settings(files_url=url)


@pytest.mark.parametrize(
    "keys",
    [{"s3_access_key_id": "AKIAEXAMPLE"}, {"s3_secret_access_key": "a-secret"}],
)
def test_s3_keys_come_together(keys: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="are set together or not at all"):
        settings(**keys)


@pytest.mark.parametrize("field", ["s3_endpoint_url", "s3_proxy_url"])
@pytest.mark.parametrize("url", ["minio:9000", "ftp://minio", "http://minio/path?x"])
def test_service_addresses_are_http_urls(field: str, url: str) -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        settings(**{field: url})


def test_a_bucket_url_opens_the_bucket_store(s3_endpoint: str) -> None:
    store = open_store(s3_settings(s3_endpoint, "s3://stems/mirrored/deeper/"))

    assert isinstance(store, S3Store)
    assert (store.bucket, store.object_key("suno/j/0-v.mp3")) == (
        "stems",
        "mirrored/deeper/suno/j/0-v.mp3",
    )
    assert store.client.meta.endpoint_url == s3_endpoint
