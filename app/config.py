"""Settings, read once at start-up from STEMHOOK_* variables and `.env`, and validated there."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.fetching.addresses import admissible
from app.fetching.deadline import DEFAULT_FETCH_TIMEOUT_S
from app.mirror.cos import check_bucket, check_ci_id, check_region
from app.mirror.sources import CosBucket, MirrorPolicy, may_read
from app.polling.queues import DEFAULT_TAG, LONGEST_NAME, CiQueue
from app.polling.watches import DEFAULT_WATCH, WatchPolicy
from app.providers.model import Provider

MIN_TOKEN_LENGTH = 16
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DEFAULT_DATABASE_URL = "sqlite:///./stemhook.db"
# A PostgreSQL write transaction holds one advisory lock per job it writes, in the server's
# shared lock table (max_locks_per_transaction x max_connections entries, 6,400 by default):
# bounded so that a dozen writers at their largest still fit (docs/decisions/0012).
POSTGRESQL_MAX_JOBS_PER_TRANSACTION = 256
# s3://bucket[/prefix]: a bucket name as S3 allows it, and a prefix of plain path segments.
# An identifier and its secret: one without the other is a mistake.
_CREDENTIAL_PAIRS = (
    ("cos_secret_id", "cos_secret_key"),
    ("media_lab_secret_id", "media_lab_secret_key"),
    ("s3_access_key_id", "s3_secret_access_key"),
)
# What polling each provider needs (app/polling/requests.py).
_POLL_CREDENTIALS = {
    Provider.SUNO: "STEMHOOK_SUNO_API_KEY",
    Provider.MEDIA_LAB: "STEMHOOK_MEDIA_LAB_SECRET_ID and STEMHOOK_MEDIA_LAB_SECRET_KEY",
    Provider.TENCENT_CI: "the COS keys (STEMHOOK_COS_SECRET_ID and STEMHOOK_COS_SECRET_KEY)",
}
_ONE_TOKEN = re.compile(r"[\x21-\x7e]+")
# CI's job tags: VoiceSeparate, Tts, Transcode, SDRtoHDR, ...
_CI_TAG = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_FILES_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9][A-Za-z0-9._-]*)*/?")


class Settings(BaseSettings):
    # Errors name the setting, never its value: a refused token or key must not reach the log.
    model_config = SettingsConfigDict(
        env_prefix="STEMHOOK_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    database_url: str = DEFAULT_DATABASE_URL
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    callback_token: SecretStr | None = None
    # Without a callback token, `stemhook serve` on a non-loopback address refuses to start
    # unless this says unauthenticated callbacks are wanted (app/cli.py).
    allow_unauthenticated_callbacks: bool = False
    suno_hmac_key: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # A body trickling in slower than this is cut off: it would hold a worker indefinitely.
    body_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Providers give up after 15 s; past this a write is answered 503 so that they retry. At 4 s
    # the answer leaves well inside the 5 s promised for an unavailable database.
    write_timeout_s: float = Field(default=4.0, gt=0, le=10)
    # FULL fsyncs every commit: an acknowledged callback survives a power cut, not only a crash.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    write_batch_max: int = Field(default=256, ge=1, le=10_000)
    # A delivery listing more jobs is kept as rejected (400): one unauthenticated Media Lab list
    # of 30,000 jobs took a 1.4 s transaction that every other delivery waited behind.
    max_jobs_per_delivery: int = Field(default=100, ge=1, le=10_000)
    # Submissions handed to the writer and not yet answered by it, and their bodies' bytes: past
    # either, a callback is answered 503 at once, so a stalled database cannot fill the memory
    # (a pending body is held up to twice: by its request, and in transit or in the writer).
    max_pending_writes: int = Field(default=2048, ge=1, le=100_000)
    max_pending_write_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=1024**3)
    # Long polls (?wait=) notice deliveries other processes commit within this interval.
    wait_poll_s: float = Field(default=0.25, gt=0, le=5)
    # Longest ?wait= honoured; longer requests are cut to it.
    max_wait_s: float = Field(default=60, ge=0, le=300)
    # Long polls a process holds at once; more are answered 429. Each holds a connection: half of
    # the 1024 descriptors a process commonly may open, so waiters cannot starve the callbacks.
    max_waiters: int = Field(default=500, ge=1, le=100_000)
    # X-Forwarded-For/-Proto are believed only from these addresses (comma-separated, or "*"):
    # anyone else could claim any client address.
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # When set, GET /metrics needs "Authorization: Bearer <it>" (Prometheus: bearer_token).
    metrics_token: SecretStr | None = None
    # Retention: when set ("30d"), each process drops older delivery bodies every purge_every.
    purge_deliveries_older_than: timedelta | None = None
    # When set ("90d"), stored copies of output files stored longer ago are removed too; unset,
    # retention never touches a stored file.
    purge_files_older_than: timedelta | None = None
    purge_every: timedelta = timedelta(hours=1)
    # A /v1/jobs cursor whose listing began longer ago is refused: its snapshot's catch-up read
    # grows with every delivery since, and a forged old cursor must not buy a full scan.
    cursor_max_age: timedelta = Field(
        default=timedelta(hours=1), gt=timedelta(0), le=timedelta(days=30)
    )
    # The path prefix a reverse proxy serves stemhook under ("/stemhook"), for links and /docs.
    root_path: str = Field(default="", pattern=r"^(/[^/\s]+)*$")
    # Keep a copy of every output file of a succeeded job (provider links expire): off, outputs
    # are recorded as skipped and nothing is fetched.
    mirror: bool = True
    # Tencent CI and Media Lab outputs live in the user's COS bucket: fetched with requests
    # signed by these, skipped without them.
    cos_secret_id: SecretStr | None = None
    cos_secret_key: SecretStr | None = None
    # The buckets those keys may read ("bucket-1250000000" or "bucket-1250000000@ap-guangzhou",
    # comma-separated), required with them: a callback names the bucket, and the keys would
    # otherwise sign reads of any bucket a stranger names (their owner's others included).
    cos_buckets: Annotated[tuple[CosBucket, ...], NoDecode] = ()
    # Files each process fetches at once; a file whose worker stops renewing its lease (every
    # third of it, so at least ten of the worker's one-second polls) is fetched again by another
    # after it; a failure that may pass is retried
    # after an exponential backoff from retry_base to retry_cap, fetch_max_attempts times.
    fetch_concurrency: int = Field(default=4, ge=1, le=64)
    fetch_lease_s: float = Field(default=60, ge=10, le=3600)
    fetch_max_attempts: int = Field(default=8, ge=1, le=100)
    fetch_retry_base_s: float = Field(default=10, gt=0, le=3600)
    fetch_retry_cap_s: float = Field(default=3600, gt=0, le=86400)
    # Networks a result file may be fetched from though not globally routable (comma-separated
    # CIDRs), for tests and private deployments: anything else a callback names must be global.
    # One that would switch the guard off (/0, around a cloud metadata address) fails start-up.
    fetch_allow_networks: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # Result files are mirrored here when no bucket is named: provider links expire.
    files_dir: Path = Path("./stemhook-files")
    # A write to files_dir stops, its partial file removed, and is retried later rather than take
    # that file system's free space below this: a full disk fails the database's writes too when
    # it shares it. 0: no floor.
    files_min_free_bytes: int = Field(default=1024**3, ge=0, le=1024**5)
    # "s3://bucket/prefix": mirrored files go to this bucket instead, so that every replica
    # behind a load balancer serves the same files.
    files_url: str | None = None
    # An S3-compatible service's address (MinIO, R2, ...); AWS's own when unset.
    s3_endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+/?$")
    # The bucket's region, signed into every request; boto3's own configuration when unset.
    s3_region: str | None = None
    # Both or neither: without them boto3 looks for credentials itself (environment, profile,
    # instance role).
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    # "path" for services that cannot take the bucket in the host name.
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # The bucket is reached through this proxy only: HTTPS_PROXY in the environment is ignored,
    # so that a proxy meant for other programs never sees (or breaks) the uploads.
    s3_proxy_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+/?$")
    # A result file larger than this is refused (announced) or cut off (streaming), so that one
    # callback cannot fill the disk; 2 GiB holds hours of lossless multitrack audio.
    fetch_max_bytes: int = Field(default=2 * 1024**3, ge=1024, le=1024**4)
    # Waiting for a connection past this means the host is down or filtered: retry later.
    fetch_connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Between two reads of a body, not for the whole body: a slow but moving download goes on.
    fetch_read_timeout_s: float = Field(default=60.0, gt=0, le=600)
    # A whole fetch (connecting, redirects, body) past this is cut off and retried later, however
    # steadily its bytes arrive: a source sending a byte per read timeout would otherwise hold a
    # worker for years. An hour lets the 2 GiB cap arrive at ~600 KB/s; the mirror's own waits
    # for a moment without callbacks (app/ingest/in_flight.py) are not counted.
    fetch_timeout_s: float = Field(default=DEFAULT_FETCH_TIMEOUT_S, ge=1, le=86400)

    # A job heard of unfinished (or registered by PUT .../expect) whose final state has not come
    # this long after it was last heard of is polled at its provider, then with a backoff from
    # 30 s to 30 min, until it is final or poll_give_up_after has passed since it was first heard
    # of (app/polling/).
    poll_after: timedelta = Field(
        default=DEFAULT_WATCH.poll_after, ge=timedelta(seconds=1), le=timedelta(days=30)
    )
    poll_give_up_after: timedelta = Field(
        default=DEFAULT_WATCH.give_up_after, ge=timedelta(seconds=1), le=timedelta(days=365)
    )
    # Each provider is polled with its own credentials; without them its jobs are
    # not_configured (watched, never polled). Tencent CI is polled with the COS keys, in the
    # buckets STEMHOOK_COS_BUCKETS names. kie.ai's API differs from sunoapi.org's in its base.
    suno_api_base: str = Field(default="https://api.sunoapi.org", pattern=r"^https?://[^\s?#]+$")
    suno_api_key: SecretStr | None = None
    media_lab_api_base: str = Field(
        default="https://service-mqk0mc83-1257411467.bj.apigw.tencentcs.com/release/job",
        pattern=r"^https?://[^\s?#]+$",
    )
    media_lab_secret_id: SecretStr | None = None
    media_lab_secret_key: SecretStr | None = None
    # Polls each process has in flight at once per provider: a provider that is slow or never
    # answers holds up only its own.
    poll_concurrency: int = Field(default=4, ge=1, le=64)
    # Tencent CI queues whose recent jobs are listed every poll_after (queueId@bucket@region, or
    # queueId@bucket@region/Tag for jobs of another Tag than VoiceSeparate; comma-separated), so
    # that a job nobody registered and whose callback never came is found too; with the COS keys,
    # in buckets STEMHOOK_COS_BUCKETS names.
    ci_queues: Annotated[tuple[CiQueue, ...], NoDecode] = ()
    # A poll whose process stopped renewing its hold (at each of its worker's one-second rounds)
    # is made by another process once this has passed.
    poll_lease_s: float = Field(default=60, ge=10, le=3600)
    # Providers whose unsigned callbacks are not believed when they say a job is final (suno,
    # tencent-ci, tencent-media-lab; comma-separated): such a job is polled at once, and what
    # its provider answers is merged; the callback stays unconfirmed until then, and is rejected
    # if the provider contradicts it (docs/decisions/0019). Each needs its poll credentials.
    confirm_by_poll: Annotated[tuple[Provider, ...], NoDecode] = ()

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_are_long(cls, tokens: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(token.get_secret_value()) < MIN_TOKEN_LENGTH for token in tokens):
            raise ValueError(f"every API token needs at least {MIN_TOKEN_LENGTH} characters")
        return tokens

    @field_validator("fetch_allow_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        # Networks given in code are checked as the environment's are (str() of each).
        return _comma_separated(value, lambda item: parse_network(str(item)))

    @field_validator("cos_buckets", mode="before")
    @classmethod
    def _parse_cos_buckets(cls, value: object) -> object:
        return _comma_separated(
            value, lambda item: parse_cos_bucket(item) if isinstance(item, str) else item
        )

    @field_validator("ci_queues", mode="before")
    @classmethod
    def _parse_ci_queues(cls, value: object) -> object:
        return _comma_separated(
            value, lambda item: parse_ci_queue(item) if isinstance(item, str) else item
        )

    @field_validator("confirm_by_poll", mode="before")
    @classmethod
    def _parse_providers(cls, value: object) -> object:
        return _comma_separated(
            value, lambda item: parse_provider(item) if isinstance(item, str) else item
        )

    @field_validator(
        "purge_deliveries_older_than",
        "purge_files_older_than",
        "purge_every",
        "cursor_max_age",
        "poll_after",
        "poll_give_up_after",
        mode="before",
    )
    @classmethod
    def _durations(cls, value: object) -> object:
        if isinstance(value, str) and value and value[-1] in "smhd":
            return parse_duration(value)
        return None if value == "" else value

    @field_validator(
        "callback_token",
        "suno_hmac_key",
        "metrics_token",
        "cos_secret_id",
        "cos_secret_key",
        "suno_api_key",
        "media_lab_secret_id",
        "media_lab_secret_key",
        "files_url",
        "s3_endpoint_url",
        "s3_region",
        "s3_access_key_id",
        "s3_secret_access_key",
        "s3_proxy_url",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "suno_api_key",
        "media_lab_secret_id",
        "media_lab_secret_key",
        "cos_secret_id",
        "cos_secret_key",
    )
    @classmethod
    def _credentials_are_one_token(cls, value: SecretStr | None) -> SecretStr | None:
        # A key read with its file's newline cannot go into a header, and the error that says so
        # quotes it: refused here, without quoting it.
        if value is not None and _ONE_TOKEN.fullmatch(value.get_secret_value()) is None:
            raise ValueError(
                "has whitespace or control characters (a newline at its end?): give the key alone"
            )
        return value

    @model_validator(mode="after")
    def _jobs_fit_the_lock_budget(self) -> Settings:
        if (
            self.database_url.startswith("postgresql")
            and self.max_jobs_per_delivery > POSTGRESQL_MAX_JOBS_PER_TRANSACTION
        ):
            raise ValueError(
                "STEMHOOK_MAX_JOBS_PER_DELIVERY may be at most"
                f" {POSTGRESQL_MAX_JOBS_PER_TRANSACTION} on PostgreSQL: a transaction locks each"
                " of its jobs in the server's shared lock table"
            )
        return self

    @model_validator(mode="after")
    def _credentials_come_in_pairs(self) -> Settings:
        for key_id, secret in _CREDENTIAL_PAIRS:
            if (getattr(self, key_id) is None) != (getattr(self, secret) is None):
                raise ValueError(
                    f"STEMHOOK_{key_id.upper()} and STEMHOOK_{secret.upper()} are set together"
                    " or not at all"
                )
        return self

    @model_validator(mode="after")
    def _cos_keys_name_their_buckets(self) -> Settings:
        if self.cos_secret_id is not None and not self.cos_buckets:
            raise ValueError(
                "STEMHOOK_COS_BUCKETS must name the buckets the COS keys may read (bucket or"
                " bucket@region, comma-separated): a callback names the bucket, and without it"
                " the keys would read any bucket a stranger names"
            )
        return self

    @model_validator(mode="after")
    def _ci_queues_are_listed_with_the_cos_keys(self) -> Settings:
        if self.ci_queues and self.cos_secret_id is None:
            raise ValueError(
                "STEMHOOK_CI_QUEUES needs the COS keys (STEMHOOK_COS_SECRET_ID and"
                " STEMHOOK_COS_SECRET_KEY): CI's job lists are signed with them"
            )
        buckets = frozenset(self.cos_buckets)
        for queue in self.ci_queues:
            if not may_read(buckets, queue.bucket, queue.region):
                raise ValueError(
                    f"the CI queue {queue.name} is in a bucket STEMHOOK_COS_BUCKETS does not"
                    f" name ({queue.bucket}@{queue.region}): the COS keys sign requests to those"
                    " buckets only"
                )
        return self

    @model_validator(mode="after")
    def _confirmed_by_a_poll_that_can_be_made(self) -> Settings:
        for provider in self.confirm_by_poll:
            if provider not in self.polled_providers:
                raise ValueError(
                    f"STEMHOOK_CONFIRM_BY_POLL names {provider}, whose jobs cannot be polled"
                    f" without {_POLL_CREDENTIALS[provider]}: its callbacks' claims would wait"
                    " for an answer that never comes"
                )
        if Provider.SUNO in self.confirm_by_poll and self.suno_hmac_key is not None:
            raise ValueError(
                "STEMHOOK_CONFIRM_BY_POLL names suno while STEMHOOK_SUNO_HMAC_KEY is set: every"
                " Suno callback must then be signed (an unsigned one is refused), so there is no"
                " unsigned one to confirm"
            )
        return self

    @property
    def confirmed_providers(self) -> frozenset[Provider]:
        """The providers whose unsigned callbacks' final states wait for a poll's answer."""
        return frozenset(self.confirm_by_poll)

    @property
    def polled_providers(self) -> frozenset[Provider]:
        """The providers whose credentials are configured: their unfinished jobs are polled."""
        configured = {
            Provider.SUNO: self.suno_api_key is not None,
            Provider.MEDIA_LAB: self.media_lab_secret_id is not None,
            Provider.TENCENT_CI: self.cos_secret_id is not None,
        }
        return frozenset(provider for provider, present in configured.items() if present)

    @property
    def watch_policy(self) -> WatchPolicy:
        return WatchPolicy(poll_after=self.poll_after, give_up_after=self.poll_give_up_after)

    @property
    def mirror_policy(self) -> MirrorPolicy:
        return MirrorPolicy(
            enabled=self.mirror,
            cos=self.cos_secret_id is not None,
            cos_buckets=frozenset(self.cos_buckets),
        )

    @field_validator("files_url")
    @classmethod
    def _files_url_names_a_bucket(cls, url: str | None) -> str | None:
        if url is not None and _FILES_URL.fullmatch(url) is None:
            raise ValueError(f"{url!r} is not s3://bucket or s3://bucket/prefix")
        return url

    @field_validator("callback_token")
    @classmethod
    def _callback_token_is_long(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the callback token needs at least {MIN_TOKEN_LENGTH} characters")
        return token


def parse_files_url(url: str) -> tuple[str, str]:
    """ "s3://bucket/some/prefix" -> ("bucket", "some/prefix"); validated by the setting."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _comma_separated(value: object, parse: Callable[[object], object]) -> object:
    """The items of a comma-separated setting, each parsed, blank ones left out. Items given in
    code take the environment's path, item by item, so that a refused one fails with the same
    message either way."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        return items
    return tuple(parse(item) for item in items if not isinstance(item, str) or item.strip())


def parse_duration(text: str) -> timedelta:
    """ "30d", "12h", "90m", "3600s"."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m or 3600s")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def format_duration(duration: timedelta) -> str:
    """parse_duration's inverse: timedelta(days=90) -> "90d", in the largest whole unit."""
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_network(text: str) -> IPv4Network | IPv6Network:
    """ "10.0.0.0/8", "fd12:3456:789a::/48", "127.0.0.2" (a single address), as the guard of
    app/fetching/addresses.py admits it ("::ffff:10.0.0.0/104" is 10.0.0.0/8) or refuses it."""
    try:
        network = ip_network(text.strip())
    except ValueError as error:
        raise ValueError(
            f"not a network such as 10.0.0.0/8 or fd12:3456:789a::/48: {error}"
        ) from None
    try:
        return admissible(network)
    except ValueError as error:
        raise ValueError(f"{text.strip()!r} may not be admitted: {error}") from None


def parse_cos_bucket(text: str) -> CosBucket:
    """ "media-1250000000" (any region) or "media-1250000000@ap-guangzhou", held to COS's names."""
    bucket, at, region = text.strip().partition("@")
    try:
        return CosBucket(check_bucket(bucket), check_region(region) if at else None)
    except ValueError as error:
        raise ValueError(f"{text.strip()!r} is not bucket or bucket@region: {error}") from None


def parse_provider(text: str) -> Provider:
    """ "tencent-ci" -> Provider.TENCENT_CI."""
    try:
        return Provider(text.strip())
    except ValueError:
        names = ", ".join(provider.value for provider in Provider)
        raise ValueError(f"{text.strip()[:80]!r} is not a provider ({names})") from None


def parse_ci_queue(text: str) -> CiQueue:
    """ "p893bc...@media-1250000000@ap-guangzhou" (VoiceSeparate jobs), or ".../Tts"."""
    entry, slash, tag = text.strip().partition("/")
    parts = entry.split("@")
    try:
        if len(parts) != 3:
            raise ValueError("three parts joined by '@' are needed")
        queue_id, bucket, region = parts
        if slash and not _CI_TAG.fullmatch(tag):
            raise ValueError(f"not a CI job tag (like VoiceSeparate or Tts): {tag[:80]!r}")
        queue = CiQueue(
            check_ci_id(queue_id, "queue id"),
            check_bucket(bucket),
            check_region(region),
            tag if slash else DEFAULT_TAG,
        )
    except ValueError as error:
        raise ValueError(
            f"{text.strip()!r} is not queueId@bucket@region or queueId@bucket@region/Tag: {error}"
        ) from None
    if len(queue.name) > LONGEST_NAME:
        raise ValueError(
            f"the CI queue {queue.name[:80]}... is {len(queue.name)} characters long (its Tag"
            f" included), more than the {LONGEST_NAME} its listing's name may hold"
        )
    return queue


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
