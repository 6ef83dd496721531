"""From callback bytes to normalized jobs: decode, pick the family, parse.

The only entry point the rest of the service uses; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from app.providers import media_lab, suno, tencent_ci
from app.providers.decode import Document, decode
from app.providers.model import Job, ParseError, Provider

# Detection order matters only for odd payloads: the CI envelope and Suno's code/data pair are
# distinctive, while a bare Media Lab job is recognized by its id/state/timing shape.
_FAMILIES: dict[Provider, ModuleType] = {
    Provider.TENCENT_CI: tencent_ci,
    Provider.SUNO: suno,
    Provider.MEDIA_LAB: media_lab,
}


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


# STAND-IN (branch poller): the branch pollparse defines poll_endpoint (and polled_provider, and
# parse_poll_answer) here with this signature; the lead drops this copy when merging both.
def poll_endpoint(provider: Provider) -> str:
    """The endpoint a delivery holding `provider`'s poll answer is stored under."""
    return f"poll/{provider.value}"
