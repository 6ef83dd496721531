"""The store the settings name: a bucket when STEMHOOK_FILES_URL is set, else a directory."""

from __future__ import annotations

from app.config import Settings, parse_files_url
from app.storage.local import LocalStore
from app.storage.store import FileStore


def open_store(settings: Settings) -> FileStore:
    if settings.files_url is None:
        return LocalStore(settings.files_dir, min_free_bytes=settings.files_min_free_bytes)
    # Imported here: boto3 takes a noticeable part of a second to load, for buckets only.
    from app.storage.s3 import S3Store, s3_client

    bucket, prefix = parse_files_url(settings.files_url)
    return S3Store(s3_client(settings), bucket, prefix)
