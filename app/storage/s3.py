"""An S3-compatible bucket (STEMHOOK_FILES_URL=s3://bucket/prefix).

A file is sent in parts of `part_size` bytes, one at a time (a multipart upload; one PUT when
it fits in a part), so memory holds one part whatever the size. S3 shows an object only once
its upload completes, replacing any earlier one whole; an upload that fails is aborted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.config import Settings
from app.storage.keys import check_key
from app.storage.store import MissingFile, StoredFile
from app.storage.streams import Chunks, Digests, check_range, empty

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's least part, but for the last one
PART_SIZE = 8 * 1024 * 1024  # 10,000 parts (S3's most) carry files up to 80 GB
_MISSING = {"NoSuchKey", "404", "NotFound"}
log = logging.getLogger(__name__)


class S3Store:
    def __init__(
        self, client: S3Client, bucket: str, prefix: str = "", part_size: int = PART_SIZE
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes")
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.part_size = part_size

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def write(self, key: str, chunks: Iterable[bytes]) -> StoredFile:
        name = self.object_key(key)
        digests = Digests()
        part = bytearray()
        upload: _Upload | None = None
        try:
            for chunk in chunks:
                digests.update(chunk)
                part += chunk
                while len(part) >= self.part_size:
                    upload = upload or _Upload(self.client, self.bucket, name)
                    upload.send(bytes(part[: self.part_size]))
                    del part[: self.part_size]
            if upload is None:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(part))
            else:
                if part:
                    upload.send(bytes(part))
                upload.complete()
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return StoredFile(key=key, size=digests.size, sha256=digests.sha256, md5=digests.md5)

    def open(self, key: str, start: int = 0, end: int | None = None) -> Chunks:
        check_range(start, end)
        name = self.object_key(key)
        if end == start:  # S3 cannot be asked for no bytes: only whether there are any
            self.size(key)
            return empty()
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=name, Range=_range(start, end))
        except ClientError as error:
            if _code(error) in _MISSING:
                raise MissingFile(key) from None
            if _code(error) == "InvalidRange":  # the range starts at or past the end
                return empty()
            raise
        return Chunks(answer["Body"], None)

    def size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))[
                "ContentLength"
            ]
        except ClientError as error:
            if _code(error) in _MISSING:
                raise MissingFile(key) from None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def sweep_temporaries(self, older_than: timedelta) -> int:
        """Aborts this store's multipart uploads begun before `older_than` ago: a process
        killed mid-upload leaves its parts stored (and billed) until they are."""
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted


class _Upload:
    """One multipart upload, aborted if anything goes wrong before it completes."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        self._parts: list[CompletedPartTypeDef] = []

    def send(self, part: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._id, PartNumber=number, Body=part
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def complete(self) -> None:
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._id
            )
        except Exception:
            # The error that stopped the upload is the one to raise; sweep_temporaries aborts
            # this one later.
            log.warning("could not abort the multipart upload of %s", self._key, exc_info=True)


def _range(start: int, end: int | None) -> str:
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def s3_client(settings: Settings) -> S3Client:
    """A client that goes where the settings say and nowhere else: their endpoint (AWS's when
    unset), their proxy or none (botocore would otherwise take HTTPS_PROXY from the
    environment), their keys (boto3's own search when unset)."""
    proxy = settings.s3_proxy_url
    config = Config(
        proxies={"http": proxy, "https": proxy} if proxy else {},
        s3={"addressing_style": settings.s3_addressing_style},
        retries={"mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # Checksums only where S3 requires them: many S3-compatible services refuse the CRC
        # headers botocore sends by default since 1.36; the store hashes every byte itself.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    secret = settings.s3_secret_access_key
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=None if secret is None else secret.get_secret_value(),
        config=config,
    )
