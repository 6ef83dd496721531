"""Poll answers: what each provider's job query API answers gives the job its callback gives.

The fixtures' own expectations are in test_fixtures.py; here, the same task told both ways, the
states and errors no fixture shows, and the endpoint names a poll answer is stored under.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.providers.model import Job, ParseError, Provider, Role, State
from app.providers.registry import (
    AUTO_ENDPOINT,
    endpoint_family,
    parse_callback,
    parse_jobs_page,
    parse_poll_answer,
    poll_endpoint,
    polled_provider,
)
from app.providers.tencent_ci import JobsPage

FIXTURES = Path(__file__).parents[1] / "fixtures"
# A record-info answer has its own word for the state and the task's times; the callback has none.
_ANSWER_ONLY = {Provider.SUNO: ("provider_state", "created_at", "finished_at")}


@pytest.mark.parametrize(
    ("answer", "callback"),
    [
        ("suno/poll/record_info_separate_vocal.json", "suno/seed_separate_vocal.json"),
        ("suno/poll/record_info_split_stem.json", "suno/split_stem_all_stems.json"),
        ("suno/poll/record_info_generate_audio_failed.json", "suno/failed_500.json"),
        (
            "tencent-ci/poll/describe_media_job_voice_separate.xml",
            "tencent-ci/seed000_case1_voice_separate.xml",
        ),
        ("tencent-ci/poll/describe_media_job_failed.xml", "tencent-ci/voice_separate_failed.xml"),
    ],
)
def test_the_answer_and_the_callback_of_one_task_give_one_job(answer: str, callback: str) -> None:
    provider = Provider(answer.split("/", 1)[0])
    polled = parse_poll_answer((FIXTURES / answer).read_bytes(), provider=provider).jobs
    called = parse_callback((FIXTURES / callback).read_bytes(), provider=provider).jobs

    only = _ANSWER_ONLY.get(provider, ())
    assert [_without(job, only) for job in polled] == [_without(job, only) for job in called]


@pytest.mark.parametrize("name", ["get_job_completed.json", "get_job_running.json"])
def test_a_media_lab_answer_gives_the_job_its_callback_posts(name: str) -> None:
    answer = (FIXTURES / "tencent-media-lab" / "poll" / name).read_bytes()
    # The document: the callback posts the whole Job struct, as getJobResponse holds it.
    callback = orjson.dumps(orjson.loads(answer)["getJobResponse"]["job"])

    polled = parse_poll_answer(answer, provider=Provider.MEDIA_LAB).jobs
    assert polled == parse_callback(callback, provider=Provider.MEDIA_LAB).jobs


def _without(job: Job, fields: tuple[str, ...]) -> Job:
    return dataclasses.replace(job, **dict.fromkeys(fields))


# Suno-style record-info


def _record(flag: str = "SUCCESS", **data: Any) -> bytes:
    fields: dict[str, Any] = {
        "taskId": "t-1",
        "successFlag": flag,
        "response": {"instrumentalUrl": None, "vocalUrl": None},
        "errorCode": None,
        "errorMessage": None,
    }
    return orjson.dumps({"code": 200, "msg": "success", "data": fields | data})


def _suno(body: bytes) -> Job:
    (job,) = parse_poll_answer(body, provider=Provider.SUNO).jobs
    return job


def test_a_callback_exception_with_result_files_is_a_success() -> None:
    urls = {"instrumentalUrl": "https://f.example/i.mp3", "vocalUrl": "https://f.example/v.mp3"}

    job = _suno(_record("CALLBACK_EXCEPTION", response=urls, errorMessage="callback failed"))

    assert (job.state, job.provider_state, job.error) == (
        State.SUCCEEDED,
        "CALLBACK_EXCEPTION",
        None,
    )
    assert [output.role for output in job.outputs] == [Role.ACCOMPANIMENT, Role.VOCALS]


def test_a_callback_exception_without_result_files_is_a_failure() -> None:
    job = _suno(_record("CALLBACK_EXCEPTION", errorMessage="callback failed"))

    assert job.state is State.FAILED
    assert job.error is not None
    assert (job.error.code, job.error.message) == ("CALLBACK_EXCEPTION", "callback failed")


def test_a_task_that_could_not_be_created_failed_with_its_error() -> None:
    job = _suno(_record("CREATE_TASK_FAILED", errorCode=451, errorMessage="download failed"))

    assert job.state is State.FAILED
    assert job.error is not None
    assert (job.error.code, job.error.message) == ("451", "download failed")


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ParseError, match="'QUEUED' is not a record-info status"):
        _suno(_record("QUEUED"))
    with pytest.raises(ParseError, match="data.successFlag is missing"):
        _suno(_record(""))


@pytest.mark.parametrize(
    ("code", "msg"), [(404, "Not Found - task does not exist"), ("455", "maintenance")]
)
def test_a_query_that_did_not_work_names_its_code_and_message(code: Any, msg: str) -> None:
    body = orjson.dumps({"code": code, "msg": msg, "data": None})

    with pytest.raises(ParseError, match=f"^record-info answered code {code}: '{msg}'$"):
        _suno(body)


@pytest.mark.parametrize("body", [b"<Response/>", orjson.dumps({"code": 200, "data": {}})])
def test_an_answer_without_a_task_is_refused(body: bytes) -> None:
    with pytest.raises(ParseError):
        _suno(body)


# Every URL key the documents name: the callback's (seed 004) and record-info's own pianoUrl.
_URL_KEYS = [
    "origin_url",
    "instrumental_url",
    "vocal_url",
    "backing_vocals_url",
    "drums_url",
    "bass_url",
    "guitar_url",
    "keyboard_url",
    "percussion_url",
    "strings_url",
    "synth_url",
    "fx_url",
    "brass_url",
    "woodwinds_url",
    "piano_url",
]


@pytest.mark.parametrize("url_key", _URL_KEYS)
def test_each_stem_has_the_role_and_kind_the_callback_gives_it(url_key: str) -> None:
    head, *rest = url_key.split("_")
    camel = head + "".join(word.title() for word in rest)
    url = "https://f.example/s.mp3"
    info = {"task_id": "t-1", "vocal_removal_info": {url_key: url}}
    (called,) = parse_callback(orjson.dumps({"code": 200, "msg": "ok", "data": info})).jobs

    job = _suno(_record(response={camel: url}))

    assert (job.kind, job.outputs) == (called.kind, called.outputs)
    assert job.outputs[0].role is not Role.OTHER or url_key == "piano_url"


def test_a_url_that_is_not_text_is_named_as_the_answer_spells_it() -> None:
    with pytest.raises(ParseError, match=r"data\.response\.vocalUrl must be a URL string"):
        _suno(_record(response={"vocalUrl": 42}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1753782937000, "2025-07-29T09:55:37"), ("1753782937000", "2025-07-29T09:55:37")],
)
def test_times_are_epoch_milliseconds(value: Any, expected: str) -> None:
    job = _suno(_record(completeTime=value))

    assert job.finished_at is not None
    assert job.finished_at.isoformat() == f"{expected}+00:00"


def test_a_time_without_a_zone_is_unknown() -> None:
    job = _suno(_record(createTime="2025-01-01 00:00:00", completeTime="2025-01-01 00:10:00"))

    assert (job.state, job.created_at, job.finished_at) == (State.SUCCEEDED, None, None)


# Tencent CI


def _ci(body: str) -> tuple[Job, ...]:
    return parse_poll_answer(body.encode(), provider=Provider.TENCENT_CI).jobs


_NEXT_TOKEN = "31c3a8a0f2e64e9b8bd5b4e2a1e6f1d3"


def _ci_answer(name: str) -> str:
    return (FIXTURES / "tencent-ci" / "poll" / name).read_text()


_DETAIL = "<JobsDetail><JobId>j1</JobId><State>Running</State><Tag>VoiceSeparate</Tag></JobsDetail>"


@pytest.mark.parametrize(
    "unknown",
    [
        "<NonExistJobIds>j2,j3</NonExistJobIds>",
        "<NonExistJobIds>j2</NonExistJobIds><NonExistJobIds>j3</NonExistJobIds>",
    ],
)
def test_every_id_ci_does_not_know_is_named(unknown: str) -> None:
    with pytest.raises(ParseError, match=r"^CI does not know job j2, j3 \(NonExistJobIds\)$"):
        _ci(f"<Response>{_DETAIL}{unknown}</Response>")


def test_an_answer_with_no_job_is_refused() -> None:
    with pytest.raises(ParseError, match="the answer has no JobsDetail"):
        _ci("<Response><NextToken/></Response>")


def test_a_job_listed_twice_is_refused_as_in_a_callback() -> None:
    with pytest.raises(ParseError, match="'j1' appears more than once"):
        _ci(f"<Response>{_DETAIL}{_DETAIL}</Response>")


@pytest.mark.parametrize(
    ("body", "page"),
    [
        (
            (FIXTURES / "tencent-ci" / "poll" / "describe_media_jobs_next_page.xml").read_text(),
            JobsPage(1, "31c3a8a0f2e64e9b8bd5b4e2a1e6f1d3"),
        ),
        (
            (
                FIXTURES / "tencent-ci" / "poll" / "describe_media_jobs_voice_separate.xml"
            ).read_text(),
            JobsPage(2, None),
        ),
        (f"<Response>{_DETAIL}<NextToken> </NextToken></Response>", JobsPage(1, None)),
        ("<Response><NextToken></NextToken></Response>", JobsPage(0, None)),
        ("<Response/>", JobsPage(0, None)),
        ('{"Response": {"JobsDetail": [{}, {}, {}], "NextToken": "n2"}}', JobsPage(3, "n2")),
    ],
)
def test_a_page_of_a_queue_says_how_many_jobs_it_lists_and_where_the_next_one_is(
    body: str, page: JobsPage
) -> None:
    assert parse_jobs_page(body.encode()) == page


def test_a_page_that_is_an_error_says_what_ci_answered() -> None:
    with pytest.raises(ParseError, match="^CI answered error "):
        parse_jobs_page(_ci_answer("answer_error.xml").encode())


# Tencent Media Lab


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"requestId": "r1", "getJobResponse": {}}, "getJobResponse.job is missing"),
        ({"requestId": "r1", "listJobsResponse": {"jobs": []}}, "listJobsResponse.jobs is empty"),
        # A bare Job struct is what a callback posts, not what the query API answers.
        ({"id": "j1", "state": 3, "timing": {}}, 'answered without a job: {"id":"j1"'),
    ],
)
def test_a_media_lab_answer_without_its_job_is_refused(answer: Any, error: str) -> None:
    with pytest.raises(ParseError, match=error):
        parse_poll_answer(orjson.dumps(answer), provider=Provider.MEDIA_LAB)


def test_a_long_media_lab_error_is_quoted_in_part() -> None:
    answer = orjson.dumps({"error": {"message": "x" * 10_000}})

    with pytest.raises(ParseError) as raised:
        parse_poll_answer(answer, provider=Provider.MEDIA_LAB)

    assert len(str(raised.value)) < 400


# Endpoints


@pytest.mark.parametrize("provider", list(Provider))
def test_a_poll_endpoint_names_its_provider(provider: Provider) -> None:
    endpoint = poll_endpoint(provider)

    assert (polled_provider(endpoint), endpoint_family(endpoint)) == (provider, provider)
    assert (polled_provider(provider.value), endpoint_family(provider.value)) == (None, provider)


def test_a_callback_endpoint_is_not_a_poll_endpoint() -> None:
    assert polled_provider(AUTO_ENDPOINT) is None
    assert endpoint_family(AUTO_ENDPOINT) is None
    assert polled_provider("poll/elsewhere") is None
