"""What a poller sends to ask a provider about one job: pure builders, no I/O, the clock an
argument (for CI's signature).

- Suno-style: `GET {base}/api/v1/vocal-removal/record-info?taskId=<id>`, `Authorization: Bearer`;
- Media Lab: `POST {base}`, `{"action": "GetJob", "secretId", "secretKey", "getJobRequest":
  {"id"}}` (its credentials travel in the body);
- Tencent CI: DescribeMediaJob, `GET https://<bucket>.ci.<region>.myqcloud.com/jobs/<JobId>`,
  signed with the COS keys (app/mirror/cos.py), in the job's input bucket, and only in a bucket
  STEMHOOK_COS_BUCKETS names: the bucket comes from a callback, and the keys must not be used
  on whichever one a stranger chose.

Credentials never leave these values except in the request itself: their reprs hide them, and
what is stored of a poll is the provider's answer, never the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import urlencode

import orjson

from app.mirror.cos import CosKeys, signed_job_query
from app.mirror.sources import CosBucket, may_read
from app.providers.model import Provider

SUNO_RECORD_INFO = "/api/v1/vocal-removal/record-info"
NO_CREDENTIALS = "no credentials are configured to poll {provider}"
NO_INPUT_BUCKET = "the job names no input bucket and region, where CI would be asked about it"
BUCKET_NOT_ALLOWED = (
    "the job's input bucket (or region) is not one STEMHOOK_COS_BUCKETS names: the COS keys sign"
    " requests to those buckets only"
)


class NotPollable(Exception):
    """The job cannot be asked about: str() says why (no request was sent)."""


@dataclass(frozen=True, slots=True)
class WatchedJob:
    """What a poll needs of a watched job."""

    provider: Provider
    job_id: str
    input_bucket: str | None = None
    input_region: str | None = None


@dataclass(frozen=True, slots=True)
class PollRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes | None = field(default=None, repr=False)


class PollRequests(Protocol):
    def request(self, job: WatchedJob, *, now: datetime) -> PollRequest:
        """The request that asks `job`'s provider about it at `now`; NotPollable, saying why,
        when there is none to send."""


@dataclass(frozen=True, slots=True)
class MediaLabKeys:
    secret_id: str = field(repr=False)
    secret_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PollApis:
    """The providers' query APIs and the credentials to ask them with (None: not configured)."""

    suno_base: str
    suno_key: str | None = field(default=None, repr=False)
    media_lab_base: str = ""
    media_lab: MediaLabKeys | None = None
    cos: CosKeys | None = None
    cos_buckets: frozenset[CosBucket] = frozenset()

    def request(self, job: WatchedJob, *, now: datetime) -> PollRequest:
        """See `PollRequests.request`."""
        if job.provider is Provider.SUNO:
            return self._suno(job)
        if job.provider is Provider.MEDIA_LAB:
            return self._media_lab(job)
        return self._tencent_ci(job, now)

    def _suno(self, job: WatchedJob) -> PollRequest:
        if self.suno_key is None:
            raise NotPollable(NO_CREDENTIALS.format(provider=job.provider))
        query = urlencode({"taskId": job.job_id})
        return PollRequest(
            "GET",
            f"{self.suno_base.rstrip('/')}{SUNO_RECORD_INFO}?{query}",
            {"Authorization": f"Bearer {self.suno_key}", "Accept": "application/json"},
        )

    def _media_lab(self, job: WatchedJob) -> PollRequest:
        if self.media_lab is None:
            raise NotPollable(NO_CREDENTIALS.format(provider=job.provider))
        body = {
            "action": "GetJob",
            "secretId": self.media_lab.secret_id,
            "secretKey": self.media_lab.secret_key,
            "getJobRequest": {"id": job.job_id},
        }
        return PollRequest(
            "POST",
            self.media_lab_base,
            {"Content-Type": "application/json", "Accept": "application/json"},
            orjson.dumps(body),
        )

    def _tencent_ci(self, job: WatchedJob, now: datetime) -> PollRequest:
        if self.cos is None:
            raise NotPollable(NO_CREDENTIALS.format(provider=job.provider))
        bucket, region = job.input_bucket, job.input_region
        if bucket is None or region is None:
            raise NotPollable(NO_INPUT_BUCKET)
        if not may_read(self.cos_buckets, bucket, region):
            raise NotPollable(BUCKET_NOT_ALLOWED)
        try:
            url, headers = signed_job_query(
                bucket,
                region,
                job.job_id,
                secret_id=self.cos.secret_id,
                secret_key=self.cos.secret_key,
                now=int(now.timestamp()),
            )
        except ValueError as error:
            raise NotPollable(f"refused: {error}") from None
        return PollRequest("GET", url, headers)
