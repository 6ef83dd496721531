"""The three payload families the load posts: one real fixture each, its job id made unique.

Every request carries a job id nobody sent before (a per-run random prefix, the wrk thread and a
counter), so each one is a new job and a real insert, never a cheap duplicate. The new id has
the fixture id's shape and length: the body keeps its exact size. The hosts of the URLs in it are
names of the same length under .invalid, which the fetcher refuses without a lookup (RFC 6761):
with mirroring on (its default), a benchmark asks nothing of any host, a DNS server included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
_URL_HOST = re.compile(rb"(?<=://)[A-Za-z0-9.-]+")
_INVALID = b".invalid"


@dataclass(frozen=True)
class Family:
    provider: str  # stemhook's provider slug, also its endpoint /callbacks/<provider>
    label: str
    fixture: Path
    content_type: str
    fixture_id: str  # the job id in the fixture, replaced in every request
    # printf pattern of a fresh id from (run prefix: 8 hex, wrk thread: 1.., request counter);
    # the same pattern drives Lua's string.format and Python's %.
    id_format: str

    @property
    def path(self) -> str:
        return f"/callbacks/{self.provider}"

    def body(self) -> bytes:
        return _URL_HOST.sub(_never_resolves, self.fixture.read_bytes())

    def parts(self) -> list[bytes]:
        """The body split at the fixture's job id: joined with a fresh id, a new callback."""
        parts = self.body().split(self.fixture_id.encode())
        if len(parts) < 2:
            raise ValueError(f"{self.fixture} does not contain its job id {self.fixture_id}")
        sample = self.id_format % ("0" * 8, 1, 1)
        if len(sample) != len(self.fixture_id):
            raise ValueError(f"{self.provider}: ids {sample!r} and {self.fixture_id!r} differ")
        return parts


def _never_resolves(host: re.Match[bytes]) -> bytes:
    """The host as a name of the same length under .invalid (RFC 6761: never resolves)."""
    name = host.group()
    if len(name) <= len(_INVALID):
        raise ValueError(f"the host {name!r} is too short to rename under .invalid")
    return name[: len(name) - len(_INVALID)] + _INVALID


FAMILIES = (
    Family(
        provider="tencent-ci",
        label="Tencent CI XML, VoiceSeparate TaskFinish",
        fixture=FIXTURES / "tencent-ci" / "seed000_case1_voice_separate.xml",
        content_type="application/xml",
        fixture_id="j40644e92f8e311ecb90d0b03267ce0e5",
        id_format="j%s%02d%022d",
    ),
    Family(
        provider="tencent-media-lab",
        label="Tencent Media Lab JSON, five-stem callback job",
        fixture=FIXTURES / "tencent-media-lab" / "callback_five_stems.json",
        content_type="application/json",
        fixture_id="5b0f3c8e-2f5d-4a51-9a0e-6c1d2b7e9f10",
        id_format="%s-%04d-4000-8000-%012d",
    ),
    Family(
        provider="suno",
        label="Suno JSON, separate_vocal",
        fixture=FIXTURES / "suno" / "seed_separate_vocal.json",
        content_type="application/json",
        fixture_id="3e63b4cc88d52611159371f6af5571e7",
        id_format="%s%02d%022d",
    ),
)


def family(provider: str) -> Family:
    for candidate in FAMILIES:
        if candidate.provider == provider:
            return candidate
    raise KeyError(provider)
