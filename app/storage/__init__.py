"""Where mirrored result files go: a local directory or an S3-compatible bucket.

A write streams an iterator of byte chunks under a key, hashing on the way, and becomes
visible whole or not at all; reads give back a range of bytes a chunk at a time. Nothing here
knows about jobs, the database or HTTP: keys come from `file_key`, callers record what
`write` returns.
"""

from app.storage.factory import open_store
from app.storage.keys import check_key, file_key
from app.storage.store import (
    FileStore,
    MissingFile,
    StorageError,
    StorageFull,
    StoredFile,
    UnsafeKey,
)
from app.storage.streams import Chunks

__all__ = [
    "Chunks",
    "FileStore",
    "MissingFile",
    "StorageError",
    "StorageFull",
    "StoredFile",
    "UnsafeKey",
    "check_key",
    "file_key",
    "open_store",
]
