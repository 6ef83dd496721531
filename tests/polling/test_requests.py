"""What a poller sends each provider: the documented requests, CI's signed as the official SDK
signs it, credentials nowhere but in the request, and no CI request to a bucket the keys may not
read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from unittest import mock

import pytest
import requests
from qcloud_cos import CosConfig, CosS3Auth

from app.mirror.cos import CosKeys
from app.mirror.sources import CosBucket
from app.polling.requests import (
    BUCKET_NOT_ALLOWED,
    NO_INPUT_BUCKET,
    MediaLabKeys,
    NotPollable,
    PollApis,
    WatchedJob,
)
from app.providers.model import Provider

NOW = datetime.fromtimestamp(1_700_000_000, UTC)
SUNO_KEY = "suno-key-0123456789"
MEDIA_LAB = MediaLabKeys("AKIDmedialab", "medialab-secret-key")
COS = CosKeys("AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q", "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz")
BUCKET, REGION = "test-1234567890", "ap-chongqing"
CI_JOB = "j8d121820f5e411ec926ef19d53ba9c6f"
APIS = PollApis(
    suno_base="https://api.sunoapi.org/",
    suno_key=SUNO_KEY,
    media_lab_base="https://media-lab.example/release/job",
    media_lab=MEDIA_LAB,
    cos=COS,
    cos_buckets=frozenset({CosBucket(BUCKET)}),
)
NONE = PollApis(suno_base="https://api.sunoapi.org", media_lab_base="https://m.example/job")


def test_a_suno_task_is_asked_for_its_record_info_with_the_bearer_key() -> None:
    request = APIS.request(WatchedJob(Provider.SUNO, "task 1/2"), now=NOW)

    assert (request.method, request.body) == ("GET", None)
    assert request.url == (
        "https://api.sunoapi.org/api/v1/vocal-removal/record-info?taskId=task+1%2F2"
    )
    assert request.headers["Authorization"] == f"Bearer {SUNO_KEY}"


def test_a_media_lab_job_is_asked_for_with_getjob_and_the_keys_in_the_body() -> None:
    request = APIS.request(WatchedJob(Provider.MEDIA_LAB, "a95e9d74"), now=NOW)

    assert (request.method, request.url) == ("POST", "https://media-lab.example/release/job")
    assert request.headers["Content-Type"] == "application/json"
    assert request.body is not None
    assert json.loads(request.body) == {
        "action": "GetJob",
        "secretId": MEDIA_LAB.secret_id,
        "secretKey": MEDIA_LAB.secret_key,
        "getJobRequest": {"id": "a95e9d74"},
    }


def test_a_ci_job_is_described_in_its_input_bucket_signed_as_the_sdk_signs_it() -> None:
    request = APIS.request(WatchedJob(Provider.TENCENT_CI, CI_JOB, BUCKET, REGION), now=NOW)

    host = f"{BUCKET}.ci.{REGION}.myqcloud.com"
    assert (request.method, request.url) == ("GET", f"https://{host}/jobs/{CI_JOB}")
    config = CosConfig(Region=REGION, SecretId=COS.secret_id, SecretKey=COS.secret_key)
    # As the SDK's ci_get_media_jobs signs its request (path /jobs/<id>), for ten minutes.
    auth = CosS3Auth(config, f"/jobs/{CI_JOB}", params={}, expire=600)
    with mock.patch("time.time", return_value=NOW.timestamp()):
        sdk = auth(requests.Request("GET", request.url).prepare()).headers["Authorization"]
    assert request.headers == {"Host": host, "Authorization": sdk}


@pytest.mark.parametrize(
    ("bucket", "region", "why"),
    [
        ("other-1234567890", REGION, BUCKET_NOT_ALLOWED),
        (None, REGION, NO_INPUT_BUCKET),
        (BUCKET, None, NO_INPUT_BUCKET),
        ("evil.example.com/x#", REGION, BUCKET_NOT_ALLOWED),
    ],
)
def test_a_ci_job_outside_the_buckets_the_keys_may_read_is_not_asked_about(
    bucket: str | None, region: str | None, why: str
) -> None:
    with pytest.raises(NotPollable) as refused:
        APIS.request(WatchedJob(Provider.TENCENT_CI, CI_JOB, bucket, region), now=NOW)

    assert str(refused.value) == why


@pytest.mark.parametrize("job_id", ["../../x", "j1/../../admin", "j1?acl", "", "j" * 200])
def test_a_ci_job_id_is_one_path_segment_or_not_asked_about(job_id: str) -> None:
    with pytest.raises(NotPollable, match="refused: not a CI job id"):
        APIS.request(WatchedJob(Provider.TENCENT_CI, job_id, BUCKET, REGION), now=NOW)


@pytest.mark.parametrize("provider", list(Provider))
def test_a_provider_without_credentials_is_not_asked(provider: Provider) -> None:
    job = WatchedJob(provider, "j1", BUCKET, REGION)

    with pytest.raises(NotPollable, match=f"no credentials are configured to poll {provider}"):
        NONE.request(job, now=NOW)


def test_no_credential_shows_in_a_repr() -> None:
    shown = repr(APIS) + "".join(
        repr(APIS.request(WatchedJob(provider, CI_JOB, BUCKET, REGION), now=NOW))
        for provider in Provider
    )

    for secret in (SUNO_KEY, MEDIA_LAB.secret_id, MEDIA_LAB.secret_key, COS.secret_key):
        assert secret not in shown
