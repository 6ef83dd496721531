"""Running the current parsers over a stored delivery again, through the live write path.

A replay is a new delivery carrying the same body and headers, pointing at the one it replays;
the original keeps its record (what happened then stays true). Its jobs merge exactly as a live
delivery's would, so replaying twice, or replaying what was accepted, only adds duplicates.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from app import models
from app.config import Settings
from app.errors import Conflict, Gone
from app.ingest.admission import BadSignature
from app.ingest.intake import Arrival, Outcome, Receipt, Submission
from app.ingest.writer import Writer
from app.providers.model import Provider
from app.queries.deliveries import replay_candidates
from app.runtime import running

AUTO_ENDPOINT = "auto"


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
        headers=delivery.headers,
        body=delivery.body,
    )
    expected = None if delivery.endpoint == AUTO_ENDPOINT else Provider(delivery.endpoint)
    submission = Submission(
        arrival=arrival,
        expected=expected,
        replay_of=delivery.id,
        signed_at=first_arrival,
    )
    try:
        return await writer.write(submission)
    except BadSignature as exc:
        raise Conflict(f"delivery {delivery.id} was not replayed: {exc}") from None


async def replay_stored(
    settings: Settings, *, outcomes: tuple[Outcome, ...], since: datetime | None, again: bool
) -> Counter[str]:
    """Replay every matching stored delivery, one by one; counts what became of them."""
    results: Counter[str] = Counter()
    async with running(settings) as runtime:
        async with runtime.read_db.sessions() as session:
            candidates = await replay_candidates(
                session, outcomes=outcomes, since=since, again=again
            )
        for delivery_id in candidates:
            async with runtime.read_db.sessions() as session:
                delivery = await session.get(models.Delivery, delivery_id)
            if delivery is None:
                continue
            try:
                # Candidates are originals, never replays: each first arrived itself.
                receipt = await replay_delivery(
                    delivery, first_arrival=delivery.received_at, writer=runtime.writer
                )
            except (Conflict, Gone):
                results["not replayed"] += 1
            else:
                results[receipt.outcome] += 1
    return results
