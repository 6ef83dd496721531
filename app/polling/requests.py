"""What a poller sends to ask a provider about one job: pure builders, no I/O, the clock an
argument (for CI's signature).

- Suno-style: `GET {base}/api/v1/vocal-removal/record-info?taskId=<id>`, `Authorization: Bearer`;
- Media Lab: `POST {base}`, `{"action": "GetJob", "secretId", "secretKey", "getJobRequest":
  {"id"}}` (its credentials travel in the body);
- Tencent CI: DescribeMediaJob, `GET https://<bucket>.ci.<region>.myqcloud.com/jobs/<JobId>`,
  signed with the COS keys (app/mirror/cos.py), in the job's input bucket (or, when it names
  none, its queue's, for a queue of STEMHOOK_CI_QUEUES), and only in a bucket
  STEMHOOK_COS_BUCKETS names: the bucket comes from a callback, and the keys must not be used
  on whichever one a stranger chose. A queue's jobs: DescribeMediaJobs, `GET .../jobs?queueId=`
  with its Tag, the window's creation times, oldest first, a page at a time.

Credentials never leave these values except in the request itself: their reprs hide them, and
what is stored of a poll is the provider's answer, never the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

import orjson

from app.mirror.cos import CosKeys, signed_job_list, signed_job_query
from app.mirror.sources import CosBucket, may_read
from app.polling.listing import Window
from app.polling.queues import CiQueue
from app.providers.model import Provider

SUNO_RECORD_INFO = "/api/v1/vocal-removal/record-info"
NO_CREDENTIALS = "no credentials are configured to poll {provider}"
NO_INPUT_BUCKET = "the job names no input bucket and region, where CI would be asked about it"
BUCKET_NOT_ALLOWED = (
    "the bucket (or region) CI would be asked in is not one STEMHOOK_COS_BUCKETS names: the COS"
    " keys sign requests to those buckets only"
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
    queue_id: str | None = None


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


class ListRequests(Protocol):
    def list_request(
        self, queue: CiQueue, window: Window, *, size: int, now: datetime
    ) -> PollRequest:
        """The request for the page of `queue`'s jobs `window` names, at most `size` of them,
        at `now`; NotPollable, saying why, when there is none to send."""


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
    ci_queues: tuple[CiQueue, ...] = ()

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

    def list_request(
        self, queue: CiQueue, window: Window, *, size: int, now: datetime
    ) -> PollRequest:
        """See `ListRequests.list_request`: the oldest jobs first."""
        keys = self._cos_keys_for(queue.bucket, queue.region)
        # CI lists the jobs created strictly after the start and strictly before the end, in
        # whole seconds: from one second before the window's start, a job created at the very
        # second one window ends and the next starts is in the next one, and only there.
        params = {
            "queueId": queue.queue_id,
            "tag": queue.tag,
            "orderByTime": "Asc",
            "size": str(size),
            "startCreationTime": _ci_time(window.start - timedelta(seconds=1)),
            "endCreationTime": _ci_time(window.end),
        }
        if window.next_token is not None:
            params["nextToken"] = window.next_token
        url, headers = _signing(
            signed_job_list, queue.bucket, queue.region, params, keys=keys, now=now
        )
        return PollRequest("GET", url, headers)

    def _tencent_ci(self, job: WatchedJob, now: datetime) -> PollRequest:
        if self.cos is None:
            raise NotPollable(NO_CREDENTIALS.format(provider=job.provider))
        bucket, region = self._ci_host_of(job)
        keys = self._cos_keys_for(bucket, region)
        url, headers = _signing(signed_job_query, bucket, region, job.job_id, keys=keys, now=now)
        return PollRequest("GET", url, headers)

    def _ci_host_of(self, job: WatchedJob) -> tuple[str, str]:
        """The bucket and region whose CI host knows the job: its input's, or else its queue's
        (a job a queue's listing found may name no input bucket)."""
        if job.input_bucket is not None and job.input_region is not None:
            return job.input_bucket, job.input_region
        for queue in self.ci_queues:
            if queue.queue_id == job.queue_id:
                return queue.bucket, queue.region
        raise NotPollable(NO_INPUT_BUCKET)

    def _cos_keys_for(self, bucket: str, region: str) -> CosKeys:
        """The COS keys, when configured and allowed to sign requests to `bucket` in `region`."""
        if self.cos is None:
            raise NotPollable(NO_CREDENTIALS.format(provider=Provider.TENCENT_CI))
        if not may_read(self.cos_buckets, bucket, region):
            raise NotPollable(BUCKET_NOT_ALLOWED)
        return self.cos


def _signing(
    signer: Callable[..., tuple[str, dict[str, str]]],
    *args: object,
    keys: CosKeys,
    now: datetime,
) -> tuple[str, dict[str, str]]:
    """`signer`'s URL and headers, signed with `keys` at `now`; a bucket, region or id CI would
    not have is NotPollable."""
    try:
        return signer(
            *args, secret_id=keys.secret_id, secret_key=keys.secret_key, now=int(now.timestamp())
        )
    except ValueError as error:
        raise NotPollable(f"refused: {error}") from None


def _ci_time(at: datetime) -> str:
    """A time as DescribeMediaJobs takes it: %Y-%m-%dT%H:%M:%S%z, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S%z")
