"""What stemhook keeps of each output of a succeeded job: fetched from its URL, fetched from the
user's COS bucket, or skipped with the reason why.

Pure: the write path calls it for each output a succeeding delivery brings, and the row it
answers is written in the same transaction as the job (app/ingest/store.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from app.providers.model import OutputFile


class FileStatus(StrEnum):
    PENDING = "pending"
    STORED = "stored"
    FAILED = "failed"
    SKIPPED = "skipped"


# Files kept of one job: a stem separation makes a handful, and one callback a stranger posts
# must not queue thousands of fetches of up to STEMHOOK_FETCH_MAX_BYTES each. Outputs past it
# have no file (null in the API).
MAX_FILES_PER_JOB = 64
MIRROR_OFF = "mirroring is off (STEMHOOK_MIRROR=false)"
NO_COS_CREDENTIALS = (
    "the file is in a COS bucket and no COS credentials are configured"
    " (STEMHOOK_COS_SECRET_ID, STEMHOOK_COS_SECRET_KEY)"
)
NO_BUCKET = "the callback names no URL and no COS bucket and region for the file"
BUCKET_NOT_ALLOWED = (
    "the file is in a COS bucket (or region) that STEMHOOK_COS_BUCKETS does not name: the COS"
    " keys sign requests to those buckets only"
)


class CosBucket(NamedTuple):
    """An entry of STEMHOOK_COS_BUCKETS: `bucket` in any region, or in `region` only."""

    bucket: str
    region: str | None = None


@dataclass(frozen=True, slots=True)
class MirrorPolicy:
    """`enabled`: STEMHOOK_MIRROR; `cos`: whether COS credentials are configured;
    `cos_buckets`: the buckets they may read (STEMHOOK_COS_BUCKETS), none by default."""

    enabled: bool
    cos: bool
    cos_buckets: frozenset[CosBucket] = frozenset()

    def file_row(
        self, output: OutputFile, *, job_pk: int, position: int, now: datetime
    ) -> dict[str, Any] | None:
        """The job_file row for an output, or None for one that names nothing to fetch."""
        if output.url is None and output.object is None:
            return None
        in_cos = output.url is None
        reason = self._why_skipped(output, in_cos=in_cos)
        return {
            "job_pk": job_pk,
            "position": position,
            "url": output.url,
            "bucket": output.bucket,
            "region": output.region,
            "object": output.object,
            "expected_md5": output.md5,
            "status": (FileStatus.PENDING if reason is None else FileStatus.SKIPPED).value,
            "error": reason,
            "run_after": now if reason is None else None,
        }

    def _why_skipped(self, output: OutputFile, *, in_cos: bool) -> str | None:
        if not self.enabled:
            return MIRROR_OFF
        if not in_cos:
            return None
        if output.bucket is None or output.region is None:
            return NO_BUCKET
        if not self.cos:
            return NO_COS_CREDENTIALS
        return (
            None if may_read(self.cos_buckets, output.bucket, output.region) else BUCKET_NOT_ALLOWED
        )


def may_read(buckets: frozenset[CosBucket], bucket: str, region: str) -> bool:
    """Whether the COS keys may read `bucket` in `region`: a callback names the bucket, and the
    keys must not read whichever a stranger chooses."""
    return bool({CosBucket(bucket), CosBucket(bucket, region)} & buckets)
