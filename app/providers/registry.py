"""From delivery bytes to normalized jobs: decode, pick the family, parse.

The only entry points the rest of the service uses: `parse_callback` for what a provider sent,
`parse_poll_answer` for what its query API answered when stemhook asked about a job whose
callback never came. Both give the jobs the same task's callback gives, so the write path merges
them alike. Which of the two a stored delivery is, and for which family, its endpoint says
(`AUTO_ENDPOINT`, a family's value, or `poll_endpoint`). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from app.providers import media_lab, suno, suno_record, tencent_ci
from app.providers.decode import Document, decode
from app.providers.model import Job, ParseError, Provider

# Detection order matters only for odd payloads: the CI envelope and Suno's code/data pair are
# distinctive, while a bare Media Lab job is recognized by its id/state/timing shape.
_FAMILIES: dict[Provider, ModuleType] = {
    Provider.TENCENT_CI: tencent_ci,
    Provider.SUNO: suno,
    Provider.MEDIA_LAB: media_lab,
}
_QUERY_ANSWERS: dict[Provider, Callable[[Document], tuple[Job, ...]]] = {
    Provider.TENCENT_CI: tencent_ci.parse_query_answer,
    Provider.SUNO: suno_record.parse_query_answer,
    Provider.MEDIA_LAB: media_lab.parse_query_answer,
}

# The endpoint of a callback posted to /callbacks, whose family is detected.
AUTO_ENDPOINT = "auto"
# No callback path ends up with this prefix (app/api/callbacks.py serves a fixed set), so an
# endpoint carrying it was set by stemhook's own poller, never by a sender.
_POLL_PREFIX = "poll/"

MAX_IDENTIFIER = 255
MAX_KIND = 64


@dataclass(frozen=True, slots=True)
class ParsedCallback:
    provider: Provider
    jobs: tuple[Job, ...]


def parse_callback(
    body: bytes, *, content_type: str | None = None, provider: Provider | None = None
) -> ParsedCallback:
    """Parse one delivery; `provider` is the family the endpoint expects, None to detect it."""
    document = decode(body, content_type)
    family = detect(document) if provider is None else provider
    module = _FAMILIES[family]
    if provider is not None and not module.recognizes(document):
        raise ParseError(f"payload is not a {family} callback")
    jobs: tuple[Job, ...] = module.parse(document)
    _check_storable(jobs)
    return ParsedCallback(family, jobs)


def parse_poll_answer(
    body: bytes, *, content_type: str | None = None, provider: Provider
) -> ParsedCallback:
    """Parse one answer of `provider`'s job query API; an answer that reports no job (a wrong
    key, an unknown job, an error) is a ParseError that says what the provider answered."""
    jobs = _QUERY_ANSWERS[provider](decode(body, content_type))
    _check_storable(jobs)
    return ParsedCallback(provider, jobs)


def parse_jobs_page(body: bytes, *, content_type: str | None = None) -> tencent_ci.JobsPage:
    """What one page of a Tencent CI queue's job list (DescribeMediaJobs) says of itself: how
    many jobs it lists and the next page's token; its jobs are `parse_poll_answer`'s."""
    return tencent_ci.parse_jobs_page(decode(body, content_type))


def poll_endpoint(provider: Provider) -> str:
    """The endpoint a delivery holding `provider`'s poll answer is stored under."""
    return f"{_POLL_PREFIX}{provider.value}"


_POLLED = {poll_endpoint(provider): provider for provider in Provider}


def polled_provider(endpoint: str) -> Provider | None:
    """The provider whose query API answered, for a poll endpoint; None for any other."""
    return _POLLED.get(endpoint)


def endpoint_family(endpoint: str) -> Provider | None:
    """The family a stored delivery's endpoint expects; None where the family is detected."""
    if endpoint == AUTO_ENDPOINT:
        return None
    return _POLLED.get(endpoint) or Provider(endpoint)


def _check_storable(jobs: tuple[Job, ...]) -> None:
    """Limits every family shares: indexed identifiers have a bounded width (longer ones are
    refused, not cut), and a delivery states each job once — two different states of one job
    in one body leave no order to merge them in."""
    seen: set[str] = set()
    for job in jobs:
        if job.job_id in seen:
            raise ParseError(f"job {job.job_id[:80]!r} appears more than once in the delivery")
        seen.add(job.job_id)
        for what, value, limit in (
            ("job id", job.job_id, MAX_IDENTIFIER),
            ("customId", job.custom_id, MAX_IDENTIFIER),
            ("kind", job.kind, MAX_KIND),
        ):
            if value is not None and len(value) > limit:
                raise ParseError(f"{what} is longer than {limit} characters")


def detect(document: Document) -> Provider:
    for family, module in _FAMILIES.items():
        if module.recognizes(document):
            return family
    raise ParseError("unrecognized payload: not a Tencent CI, Tencent Media Lab or Suno callback")
