"""What a poller sends each provider: the documented requests, CI's signed as the official SDK
signs it, credentials nowhere but in the request, and no CI request to a bucket the keys may not
read."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from qcloud_cos import CosConfig, CosS3Auth

from app.mirror.cos import CosKeys
from app.mirror.sources import CosBucket
from app.polling.listing import Window
from app.polling.queues import CiQueue
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
QUEUE = CiQueue("p893bcda225bf4945a378da6662e81a89", BUCKET, REGION)
APIS = PollApis(
    suno_base="https://api.sunoapi.org/",
    suno_key=SUNO_KEY,
    media_lab_base="https://media-lab.example/release/job",
    media_lab=MEDIA_LAB,
    cos=COS,
    cos_buckets=frozenset({CosBucket(BUCKET)}),
    ci_queues=(QUEUE,),
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


def test_a_ci_job_that_names_no_input_bucket_is_described_in_its_queues() -> None:
    listed = WatchedJob(Provider.TENCENT_CI, CI_JOB, queue_id=QUEUE.queue_id)

    request = APIS.request(listed, now=NOW)

    assert request.url == f"https://{BUCKET}.ci.{REGION}.myqcloud.com/jobs/{CI_JOB}"
    with pytest.raises(NotPollable, match=NO_INPUT_BUCKET):
        APIS.request(WatchedJob(Provider.TENCENT_CI, CI_JOB, queue_id="p-other"), now=NOW)


def sdk_list_authorization(url: str, params: dict[str, str]) -> str:
    """The Authorization the SDK's ci_list_media_jobs gives the same request (CosS3Auth over
    path /jobs and every parameter, for ten minutes), its clock stopped at NOW."""
    config = CosConfig(Region=REGION, SecretId=COS.secret_id, SecretKey=COS.secret_key)
    auth = CosS3Auth(config, "/jobs", params=params, expire=600)
    sent = requests.Request("GET", url.split("?")[0], params=params).prepare()
    with mock.patch("time.time", return_value=NOW.timestamp()):
        return str(auth(sent).headers["Authorization"])


WINDOW = Window(
    datetime(2026, 12, 12, 10, 0, tzinfo=UTC), datetime(2026, 12, 12, 10, 10, tzinfo=UTC)
)


@pytest.mark.parametrize("next_token", [None, "31c3a8a0+f2e6/4e9b=="])
def test_a_page_of_a_queue_is_asked_for_by_its_window_signed_as_the_sdk_signs_it(
    next_token: str | None,
) -> None:
    window = dataclasses.replace(WINDOW, next_token=next_token)

    request = APIS.list_request(QUEUE, window, size=50, now=NOW)

    url = urlsplit(request.url)
    params = dict(parse_qsl(url.query, keep_blank_values=True, strict_parsing=True))
    assert (request.method, url.netloc, url.path) == (
        "GET",
        f"{BUCKET}.ci.{REGION}.myqcloud.com",
        "/jobs",
    )
    assert params == {
        "queueId": QUEUE.queue_id,
        "tag": "VoiceSeparate",
        "orderByTime": "Asc",
        "size": "50",
        "startCreationTime": "2026-12-12T09:59:59+0000",
        "endCreationTime": "2026-12-12T10:10:00+0000",
    } | ({} if next_token is None else {"nextToken": next_token})
    assert request.headers == {
        "Host": url.netloc,
        "Authorization": sdk_list_authorization(request.url, params),
    }


def test_a_queue_is_listed_only_with_the_cos_keys_in_a_bucket_they_may_read() -> None:
    elsewhere = CiQueue(QUEUE.queue_id, "other-1234567890", REGION)

    with pytest.raises(NotPollable, match=re.escape(BUCKET_NOT_ALLOWED)):
        APIS.list_request(elsewhere, WINDOW, size=10, now=NOW)
    with pytest.raises(NotPollable, match="no credentials are configured to poll tencent-ci"):
        NONE.list_request(QUEUE, WINDOW, size=10, now=NOW)


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
