"""CPU per delivery of the writer process's steps, in process: `python -m bench.ingest.writer_cost`.

What a writer process does with each batch, timed step by step with the process's CPU clock on
a fresh SQLite file (synchronous=FULL): unframe the submissions as they come off the socket,
admit them (parse, detect, normalize), store them (app/ingest/store.py), commit. Batches of 16
distinct deliveries, as under load. No server and no load generator, so the figures hold still
where the end-to-end ones move with the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from app.config import Settings
from app.db import create_sync_engine
from app.ingest.admission import admit
from app.ingest.driver import Cursor
from app.ingest.frames import Unframer, frame
from app.ingest.intake import Arrival, Submission
from app.ingest.statements import build_statements
from app.ingest.store import begin, store_batch
from app.mirror.sources import MirrorPolicy
from app.polling.watches import DEFAULT_WATCH
from app.providers.model import Provider
from app.schema import upgrade_to_head
from bench.ingest.payloads import FAMILIES, Family

# Mirroring on, as by default; the benchmarks' URLs never resolve (names under .invalid).
MIRROR_DEFAULT = MirrorPolicy(enabled=True, cos=False)

STEPS = ("unframe", "admit", "store", "commit")
# The service's default STEMHOOK_MAX_JOBS_PER_DELIVERY.
MAX_JOBS: int = Settings.model_fields["max_jobs_per_delivery"].default


def submissions(family: Family, count: int) -> list[bytes]:
    """Framed submissions of distinct deliveries, as the web process sends them."""
    parts = family.parts()
    headers = {"host": "stemhook", "content-type": family.content_type, "user-agent": "wrk"}
    framed = []
    for number in range(count):
        body = (family.id_format % ("0badcafe", 1, number)).encode().join(parts)
        arrival = Arrival(
            received_at=datetime.now(UTC),
            endpoint=family.provider,
            content_type=family.content_type,
            client_addr="127.0.0.1",
            headers=headers,
            body=body,
        )
        submission = Submission(arrival=arrival, expected=Provider(family.provider))
        framed.append(frame((number, 0.0, submission.to_wire())))
    return framed


def measure(family: Family, *, deliveries: int, batch: int, database: Path) -> dict[str, float]:
    """CPU µs per delivery of each step."""
    settings = Settings(database_url=f"sqlite:///{database}", sqlite_synchronous="FULL")
    upgrade_to_head(settings)
    engine = create_sync_engine(settings)
    sql = build_statements(engine.dialect)
    framed = submissions(family, deliveries)
    spent = dict.fromkeys(STEPS, 0.0)
    for start in range(0, deliveries, batch):
        began = time.process_time()
        arrived = [
            Submission.from_wire(wire)
            for _, _, wire in Unframer().feed(b"".join(framed[start : start + batch]))
        ]
        unframed = time.process_time()
        intakes = [admit(submission, suno_key=None, max_jobs=MAX_JOBS) for submission in arrived]
        admitted = time.process_time()
        with engine.connect() as connection:
            with connection.begin():
                cursor = Cursor(connection)
                tx = begin(cursor, sql, timeout_ms=60_000)
                store_batch(cursor, sql, intakes, tx=tx, mirror=MIRROR_DEFAULT, watch=DEFAULT_WATCH)
                cursor.close()
                stored = time.process_time()
            committed = time.process_time()
        for step, seconds in zip(
            STEPS,
            (unframed - began, admitted - unframed, stored - admitted, committed - stored),
            strict=True,
        ):
            spent[step] += seconds
    engine.dispose()
    return {step: seconds / deliveries * 1e6 for step, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    print(f"CPU µs per delivery, batches of {args.batch}, {args.deliveries:,} deliveries each")
    for family in FAMILIES:
        with tempfile.TemporaryDirectory() as workdir:
            costs = measure(
                family, deliveries=args.deliveries, batch=args.batch, database=Path(workdir) / "db"
            )
        steps = "  ".join(f"{step} {costs[step]:4.0f}" for step in STEPS)
        print(f"{family.provider:18} {steps}  total {sum(costs.values()):4.0f}")


if __name__ == "__main__":
    main()
