"""Running the current parsers over a stored delivery again, through the live write path.

A replay is a new delivery carrying the same body and headers, pointing at the one it replays;
the original keeps its record (what happened then stays true). Its jobs merge exactly as a live
delivery's would, so replaying twice, or replaying what was accepted, only adds duplicates.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app import models
from app.errors import Conflict, Gone
from app.ingest.admission import BadSignature, admit
from app.ingest.intake import Arrival, Receipt
from app.ingest.writer import Writer
from app.providers.model import Provider

AUTO_ENDPOINT = "auto"


async def replay_delivery(
    delivery: models.Delivery, *, writer: Writer, suno_key: str | None
) -> Receipt:
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
    try:
        intake = admit(
            arrival,
            expected=expected,
            suno_key=suno_key,
            replay_of=delivery.id,
            arrived_at=delivery.received_at,
        )
    except BadSignature as exc:
        raise Conflict(f"delivery {delivery.id} was not replayed: {exc}") from None
    return await writer.write(intake)
