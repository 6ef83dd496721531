"""Running the current parsers over a stored delivery again, through the live write path.

A replay is a new delivery carrying the same body and headers, pointing at the one it replays;
the original keeps its record (what happened then stays true). Its jobs merge exactly as a live
delivery's would, so replaying twice, or replaying what was accepted, only adds duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app import models
from app.config import Settings
from app.errors import Conflict, Gone, NotFound, StorageUnavailable
from app.headers import kept
from app.ingest.admission import BadSignature
from app.ingest.intake import Arrival, Outcome, Receipt, Submission
from app.ingest.writer import Writer
from app.metrics import Metrics
from app.providers.registry import endpoint_family
from app.queries.deliveries import first_arrival, replay_candidates
from app.runtime import Runtime, running
from app.watch import JobWatch

log = logging.getLogger(__name__)
# A bulk replay's waits before trying a delivery the database refused with 503 again: about half
# a minute in all, then it is counted unavailable (replay again later) and the next one is tried.
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)
NOT_REPLAYED = "not replayed"
UNAVAILABLE = "unavailable"
Pause = Callable[[float], Awaitable[None]]


async def replay_by_id(
    session: AsyncSession,
    delivery_id: int,
    *,
    writer: Writer,
    watch: JobWatch,
    metrics: Metrics,
) -> Receipt:
    """One stored delivery replayed on request (POST /v1/deliveries/{id}/replay, the console's
    Replay button): its jobs' long polls woken and the outcome counted, as a live delivery's."""
    delivery = await session.get(models.Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id}")
    arrived = await first_arrival(session, delivery)
    receipt = await replay_delivery(delivery, first_arrival=arrived, writer=writer)
    watch.notify(receipt.jobs)
    metrics.stored(receipt)
    return receipt


async def replay_delivery(
    delivery: models.Delivery, *, first_arrival: datetime, writer: Writer
) -> Receipt:
    """`first_arrival` is when the callback first came (queries.deliveries.first_arrival): a
    signature is judged by it, whichever replay of it is replayed."""
    if delivery.body is None:
        raise Gone(f"the body of delivery {delivery.id} is no longer kept")
    arrival = Arrival(
        received_at=datetime.now(UTC),
        endpoint=delivery.endpoint,
        content_type=delivery.content_type,
        client_addr=delivery.client_addr,
        # What an older delivery kept beyond today's allowlist is not copied forward.
        headers={name: value for name, value in delivery.headers.items() if kept(name)},
        body=delivery.body,
    )
    submission = Submission(
        arrival=arrival,
        # The stored endpoint says how to parse it again: detected, as a family's callback, or
        # as a family's poll answer.
        expected=endpoint_family(delivery.endpoint),
        replay_of=delivery.id,
        signed_at=first_arrival,
    )
    try:
        return await writer.write(submission)
    except BadSignature as exc:
        raise Conflict(f"delivery {delivery.id} was not replayed: {exc}") from None


async def replay_stored(
    settings: Settings,
    *,
    outcomes: tuple[Outcome, ...],
    since: datetime | None,
    again: bool,
) -> Counter[str]:
    """Replay every matching stored delivery, one by one; counts what became of them."""
    async with running(settings) as runtime:
        return await replay_matching(runtime, outcomes=outcomes, since=since, again=again)


async def replay_matching(
    runtime: Runtime,
    *,
    outcomes: tuple[Outcome, ...],
    since: datetime | None,
    again: bool,
    pause: Pause = asyncio.sleep,
) -> Counter[str]:
    results: Counter[str] = Counter()
    async with runtime.read_db.sessions() as session:
        candidates = await replay_candidates(session, outcomes=outcomes, since=since, again=again)
    for delivery_id in candidates:
        async with runtime.read_db.sessions() as session:
            delivery = await session.get(models.Delivery, delivery_id)
        if delivery is not None:
            results[await _replay_patiently(delivery, runtime.writer, pause)] += 1
    return results


async def _replay_patiently(delivery: models.Delivery, writer: Writer, pause: Pause) -> str:
    """What became of one delivery, waiting out a database that cannot take the write for a
    while (BACKOFF_S); still refused after that, it counts as unavailable and the rest go on."""
    waits = iter(BACKOFF_S)
    while True:
        try:
            # Candidates are originals, never replays: each first arrived itself.
            receipt = await replay_delivery(
                delivery, first_arrival=delivery.received_at, writer=writer
            )
        except (Conflict, Gone):
            return NOT_REPLAYED
        except StorageUnavailable:
            wait_s = next(waits, None)
            if wait_s is None:
                return UNAVAILABLE
            log.warning(
                "database unavailable; replaying delivery %d again in %g s", delivery.id, wait_s
            )
            await pause(wait_s)
        else:
            return receipt.outcome
