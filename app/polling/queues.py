"""The Tencent CI queues stemhook lists (STEMHOOK_CI_QUEUES), found in the settings; what a
listing does is app/polling/listing.py's."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TAG = "VoiceSeparate"


@dataclass(frozen=True, slots=True)
class CiQueue:
    """An entry of STEMHOOK_CI_QUEUES: a CI queue, the bucket (and its region) whose CI host
    lists its jobs, and the Tag of the jobs listed."""

    queue_id: str
    bucket: str
    region: str
    tag: str = DEFAULT_TAG

    @property
    def name(self) -> str:
        """The entry as the setting spells it, and its listing row's name."""
        return f"{self.queue_id}@{self.bucket}@{self.region}/{self.tag}"
