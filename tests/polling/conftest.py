"""What the pollers' tests share: fake provider APIs on loopback answering as the providers'
documents show (the answers are the fixtures of tests/fixtures/<provider>/poll/, each made about
the test's own job), jobs registered as `PUT .../expect` registers them, a clock the test moves,
and a poller asking 127.0.0.1 only."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from ipaddress import ip_network
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from sqlalchemy import Engine, insert, select

from app import models
from app.fetching.fetcher import Fetcher
from app.ingest.committer import Committer
from app.mirror.cos import CosKeys, authorization
from app.mirror.sources import CosBucket, MirrorPolicy
from app.polling.expect import NO_PROVIDER_STATE, UNKNOWN_KIND
from app.polling.lister import ListOptions, QueueLister
from app.polling.listing import Window
from app.polling.queues import CiQueue
from app.polling.requests import MediaLabKeys, PollApis, PollRequest, WatchedJob
from app.polling.watches import DEFAULT_WATCH, WatchPolicy
from app.polling.worker import Poller, PollOptions
from app.providers.model import Provider
from tests.conftest import FIXTURES
from tests.fetching.servers import FileServer, Handler, Route
from tests.mirror.conftest import Clock

SUNO_KEY = "suno-api-key-0123456789"
MEDIA_LAB_KEYS = MediaLabKeys("AKIDmedialab0123", "media-lab-secret-0123")
COS = CosKeys("AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q", "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz")
BUCKET, REGION = "test-123456789", "ap-chongqing"
QUEUE = CiQueue("p893bcda225bf4945a378da6662e81a89", BUCKET, REGION)
RECORD_INFO = "/api/v1/vocal-removal/record-info"
MEDIA_LAB_PATH = "/release/job"
OPTIONS = PollOptions(
    concurrency=2,
    lease=timedelta(minutes=1),
    poll_after=timedelta(minutes=10),
    write_timeout_s=10,
    poll_s=0.05,
)
POLLED_ALL = frozenset(Provider)
LIST_OPTIONS = ListOptions(
    every=timedelta(minutes=10),
    lookback=timedelta(minutes=10),
    page_size=2,
    lease=timedelta(minutes=2),
    write_timeout_s=10,
    poll_s=0.05,
)


def answer_of(provider: Provider, fixture: str, job_id: str) -> bytes:
    """The fixture of `provider`'s poll answers, about `job_id`."""
    text = (FIXTURES / provider.value / "poll" / fixture).read_text()
    if provider is Provider.TENCENT_CI:
        return re.sub(r"<JobId>[^<]*</JobId>", f"<JobId>{job_id}</JobId>", text).encode()
    document = orjson.loads(text)
    if provider is Provider.SUNO:
        if document["data"] is not None:  # an error has no task
            document["data"]["taskId"] = job_id
    else:
        document["getJobResponse"]["job"]["id"] = job_id
    return orjson.dumps(document)


def replying(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Callable[[Handler], None]:
    kind = "application/xml" if body.startswith(b"<") else "application/json"
    return lambda handler: handler.answer(status, body, {"Content-Type": kind} | (headers or {}))


class Script:
    """A fake API's answers about each job, in order (the last one again and again), and the
    jobs it was asked about; a request without the right credentials is answered 401."""

    def __init__(self, provider: Provider, replies: dict[str, list[Route]], clock: Clock) -> None:
        self.provider = provider
        self.replies = replies
        self.clock = clock
        self.asked: list[str] = []

    def __call__(self, handler: Handler) -> None:
        job_id, authentic = _asked(self.provider, handler, self.clock())
        self.asked.append(job_id)
        if not authentic:
            handler.answer(401, b'{"code": 401, "msg": "Unauthorized"}')
            return
        replies = self.replies[job_id]
        (replies.pop(0) if len(replies) > 1 else replies[0])(handler)


def _asked(provider: Provider, handler: Handler, now: datetime) -> tuple[str, bool]:
    """The job asked about, and whether the request carried the right credentials."""
    if provider is Provider.SUNO:
        given = handler.headers.get("Authorization", "")
        return handler.query("taskId"), hmac.compare_digest(given, f"Bearer {SUNO_KEY}")
    if provider is Provider.MEDIA_LAB:
        request = orjson.loads(handler.body)
        keys = (request.get("secretId"), request.get("secretKey"))
        return request["getJobRequest"]["id"], request.get("action") == "GetJob" and keys == (
            MEDIA_LAB_KEYS.secret_id,
            MEDIA_LAB_KEYS.secret_key,
        )
    path = urlsplit(handler.path).path
    return path.removeprefix("/jobs/"), _signed_by_cos_keys(handler, path, now)


def _signed_by_cos_keys(
    handler: Handler, path: str, now: datetime, params: dict[str, str] | None = None
) -> bool:
    """CI's check: the Authorization is the COS keys' signature of this GET (and its query
    parameters), its Host the bucket's CI host, and `now` inside its window."""
    fields = dict(
        part.split("=", 1) for part in handler.headers.get("Authorization", "").split("&")
    )
    start, end = (int(value) for value in fields.get("q-sign-time", "0;0").split(";"))
    host = handler.headers.get("Host", "")
    expected = authorization(
        secret_id=COS.secret_id,
        secret_key=COS.secret_key,
        method="GET",
        path=path,
        headers={"host": host},
        params=params or {},
        now=start,
        expires_s=end - start,
    )
    return (
        host == f"{BUCKET}.ci.{REGION}.myqcloud.com"
        and start <= now.timestamp() <= end
        and hmac.compare_digest(handler.headers.get("Authorization", ""), expected)
    )


class FakeQueue:
    """CI's DescribeMediaJobs over one queue's jobs, as its documents describe it: the jobs of the
    queue and Tag created strictly after startCreationTime and strictly before endCreationTime,
    oldest first, `size` a page, NextToken naming the next page (empty on the last); a request
    not signed by the COS keys over every parameter is answered 403. `answers`, when given, are
    answered first, one a request."""

    def __init__(self, queue: CiQueue, clock: Clock) -> None:
        self.queue = queue
        self.clock = clock
        self.jobs: list[tuple[datetime, str]] = []
        self.asked: list[dict[str, str]] = []
        self.answers: list[Route] = []
        self.ignore_size = False

    def add(self, job_id: str, created_at: datetime, *, final: bool = False) -> None:
        """A job of the queue created at `created_at`: VoiceSeparate, submitted (naming no input
        bucket, as the DescribeMediaJobs example) or succeeded (the seed's job)."""
        source = "describe_media_job_voice_separate.xml" if final else _LISTED
        found = re.search(r"<JobsDetail>.*?</JobsDetail>", _ci_fixture(source), re.DOTALL)
        assert found is not None
        detail = found.group(0)
        created = created_at.astimezone(_BEIJING).strftime("%Y-%m-%dT%H:%M:%S%z")
        for element, value in (
            ("JobId", job_id),
            ("CreationTime", created),
            ("QueueId", self.queue.queue_id),
        ):
            detail = re.sub(
                rf"<{element}>[^<]*</{element}>", f"<{element}>{value}</{element}>", detail
            )
        self.jobs.append((created_at, detail))

    def __call__(self, handler: Handler) -> None:
        params = dict(parse_qsl(urlsplit(handler.path).query, keep_blank_values=True))
        self.asked.append(params)
        if not _signed_by_cos_keys(handler, "/jobs", self.clock(), params):
            handler.answer(403, _ci_fixture("answer_error.xml").encode())
            return
        (self.answers.pop(0) if self.answers else self.answer_page)(handler)

    def answer_page(self, handler: Handler) -> None:
        """The page the request asks for."""
        params = dict(parse_qsl(urlsplit(handler.path).query, keep_blank_values=True))
        if (params["queueId"], params["tag"]) != (self.queue.queue_id, self.queue.tag):
            handler.answer(200, b"<Response><NextToken></NextToken></Response>")
            return
        start, end = (_ci_time(params[name]) for name in ("startCreationTime", "endCreationTime"))
        listed = sorted(job for job in self.jobs if start < job[0] < end)
        offset = int(params.get("nextToken") or 0)
        size = len(listed) if self.ignore_size else int(params["size"])
        page = listed[offset : offset + size]
        token = str(offset + size) if offset + size < len(listed) else ""
        body = "".join(detail for _, detail in page) + f"<NextToken>{token}</NextToken>"
        replying(f"<Response>{body}</Response>".encode())(handler)


_LISTED = "describe_media_jobs_voice_separate.xml"
_BEIJING = timezone(timedelta(hours=8))


def _ci_fixture(name: str) -> str:
    return (FIXTURES / Provider.TENCENT_CI.value / "poll" / name).read_text()


def _ci_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True, slots=True)
class ToServer:
    """The requests of `apis`, sent to the fake server instead: CI's host is a name only the
    real service has, so its request goes to loopback with the Host it was signed for."""

    apis: PollApis
    origin: str

    def request(self, job: WatchedJob, *, now: datetime) -> PollRequest:
        return self._here(self.apis.request(job, now=now))

    def list_request(
        self, queue: CiQueue, window: Window, *, size: int, now: datetime
    ) -> PollRequest:
        return self._here(self.apis.list_request(queue, window, size=size, now=now))

    def _here(self, request: PollRequest) -> PollRequest:
        url = urlsplit(request.url)
        return replace(
            request, url=f"{self.origin}{url.path}{'?' + url.query if url.query else ''}"
        )


class FakeProviders:
    """One loopback server playing every provider's API, its time the test's `clock`."""

    def __init__(self, clock: Clock, **scripts: dict[str, list[Route]]) -> None:
        self.suno = Script(Provider.SUNO, scripts.get("suno", {}), clock)
        self.media_lab = Script(Provider.MEDIA_LAB, scripts.get("media_lab", {}), clock)
        self.ci = Script(Provider.TENCENT_CI, scripts.get("ci", {}), clock)
        self.queue = FakeQueue(QUEUE, clock)
        routes: dict[str, Route] = {
            RECORD_INFO: self.suno,
            MEDIA_LAB_PATH: self.media_lab,
            "/jobs": self.queue,
        }
        routes |= {f"/jobs/{job_id}": self.ci for job_id in self.ci.replies}
        self.server = FileServer("127.0.0.1", routes, None)
        self.origin = f"http://127.0.0.1:{self.server.port}"

    def apis(self, *, suno_key: str = SUNO_KEY, cos: CosKeys = COS) -> PollApis:
        return PollApis(
            suno_base=self.origin,
            suno_key=suno_key,
            media_lab_base=f"{self.origin}{MEDIA_LAB_PATH}",
            media_lab=MEDIA_LAB_KEYS,
            cos=cos,
            cos_buckets=frozenset({CosBucket(BUCKET)}),
            ci_queues=(QUEUE,),
        )

    def stop(self) -> None:
        self.server.stop()


def expect(
    engine: Engine,
    provider: Provider,
    job_id: str,
    *,
    at: datetime,
    bucket: str | None = None,
    region: str | None = None,
    policy: WatchPolicy = DEFAULT_WATCH,
) -> int:
    """A job registered unfinished at `at` and its watch, as `PUT .../expect` writes them
    (app/polling/expect.py: a job without a delivery), in a transaction of the test's own; its
    primary key."""
    with engine.begin() as connection:
        job_pk: int = connection.execute(
            insert(models.Job)
            .values(
                provider=provider.value,
                job_id=job_id,
                kind=UNKNOWN_KIND,
                state="submitted",
                provider_state=NO_PROVIDER_STATE,
                deliveries=0,
                first_received_at=at,
                last_received_at=at,
                input_bucket=bucket,
                input_region=region,
            )
            .returning(models.Job.id)
        ).scalar_one()
        connection.execute(
            insert(models.JobWatch).values(
                policy.watch_row(job_pk=job_pk, provider=provider, heard_at=at)
            )
        )
    return job_pk


def watch_of(engine: Engine, job_id: str) -> dict[str, Any]:
    watch, job = models.JobWatch, models.Job
    with engine.connect() as connection:
        row = connection.execute(
            select(
                job.state,
                watch.status,
                watch.polls,
                watch.last_polled_at,
                watch.last_error,
                watch.run_after,
                watch.leased_by,
                watch.leased_until,
                watch.attempts,
            )
            .join(job, job.id == watch.job_pk)
            .where(job.job_id == job_id)
        ).one()
    return dict(row._mapping)


def loopback_fetcher(*, read_timeout_s: float = 30) -> Fetcher:
    return Fetcher(
        admitted=[ip_network("127.0.0.1/32")],
        max_bytes=1024 * 1024,
        connect_timeout_s=10,
        read_timeout_s=read_timeout_s,
        total_timeout_s=120,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[Callable[..., FakeProviders]]:
    started: list[FakeProviders] = []

    def start(**scripts: dict[str, list[Route]]) -> FakeProviders:
        started.append(FakeProviders(clock, **scripts))
        return started[-1]

    yield start
    for providers in started:
        providers.stop()


def committer_on(engine: Engine, *, confirm: frozenset[Provider] = frozenset()) -> Committer:
    """A committer as the writer process's and the poller's: mirroring on, no Suno key, the
    final states of unsigned callbacks of `confirm`'s providers held for a poll."""
    return Committer(
        engine,
        suno_key=None,
        timeout_s=10,
        max_jobs=100,
        mirror=MirrorPolicy(enabled=True, cos=False),
        watch=DEFAULT_WATCH,
        confirm=confirm,
    )


@pytest.fixture
def committer(engine: Engine) -> Iterator[Committer]:
    made = committer_on(engine)
    yield made
    made.close()


@pytest.fixture
def fetchers() -> Iterator[list[Fetcher]]:
    """The fetchers a test's workers ask with, closed after it."""
    made: list[Fetcher] = []
    yield made
    for fetcher in made:
        fetcher.close()


@pytest.fixture
def poller_for(
    engine: Engine, committer: Committer, clock: Clock, fetchers: list[Fetcher]
) -> Callable[..., Poller]:
    """A poller asking `providers` (each with its own credentials) on `fake`'s server."""

    def make(
        fake: FakeProviders,
        *,
        providers: frozenset[Provider] = POLLED_ALL,
        apis: PollApis | None = None,
        fetcher: Fetcher | None = None,
        worker: str = "p1",
        storing: Committer | None = None,
    ) -> Poller:
        """`storing`: the committer of the answers, when not the test's own."""
        fetchers.append(fetcher or loopback_fetcher())
        return Poller(
            engine,
            committer=storing or committer,
            fetcher=fetchers[-1],
            apis=ToServer(apis or fake.apis(), fake.origin),
            providers=providers,
            options=OPTIONS,
            worker=worker,
            clock=clock,
        )

    return make


@pytest.fixture
def lister_for(
    engine: Engine, committer: Committer, clock: Clock, fetchers: list[Fetcher]
) -> Callable[..., QueueLister]:
    """A lister of QUEUE asking `fake`'s server, storing through `storing`."""

    def make(
        fake: FakeProviders,
        *,
        apis: PollApis | None = None,
        worker: str = "l1",
        storing: Committer = committer,
    ) -> QueueLister:
        fetchers.append(loopback_fetcher())
        return QueueLister(
            engine,
            committer=storing,
            fetcher=fetchers[-1],
            apis=ToServer(apis or fake.apis(), fake.origin),
            queues=(QUEUE,),
            options=LIST_OPTIONS,
            worker=worker,
            clock=clock,
        )

    return make


@pytest.fixture
def confirming(engine: Engine) -> Iterator[Committer]:
    """The writer's committer (and the poller's) with STEMHOOK_CONFIRM_BY_POLL=tencent-ci."""
    made = committer_on(engine, confirm=frozenset({Provider.TENCENT_CI}))
    yield made
    made.close()
