"""Deliveries stored as the writer stores them, their output files queued."""

from __future__ import annotations

from sqlalchemy import Engine

from app.ingest.admission import admit
from app.mirror.sources import MirrorPolicy
from tests.ingest.batches import MIRROR_ON, stored
from tests.ingest.submissions import detected


def store(engine: Engine, *bodies: bytes, mirror: MirrorPolicy = MIRROR_ON) -> None:
    """The bodies stored in one transaction, their output files queued as `mirror` says."""
    intakes = [admit(detected(body), suno_key=None, max_jobs=10) for body in bodies]
    with engine.begin() as connection:
        stored(connection, intakes, mirror=mirror)
