"""Which rows are final: the transaction mark, read by listings and long polls.

Writers in several processes commit in parallel, so a row with a higher id may be committed
before one with a lower id. Each delivery and job row carries the number of the transaction that
wrote it last (`delivery.tx`, `job.last_tx`, app/ingest/statements.py), and the mark is a number
such that every row below it is committed for good (or was never written), and every row
committed from now on is at or above it:
- PostgreSQL: the transaction numbers are transaction ids, and the mark is the xmin of the
  reader's snapshot. Every transaction below it has ended; every transaction that has not ended
  has an id at or above it, a later one a higher id still.
- SQLite: writers take turns, and a transaction's number is one above the highest delivery id
  when it began. The mark is one above the highest committed delivery id.
Rows written before marks existed count as final (0).

A transaction left open on the PostgreSQL server, by stemhook or not, holds the mark back: the
listings show what was final before it, and long polls across processes wake when it ends
(docs/decisions/0012-parallel-writers-and-transaction-marks.md).
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import models

_POSTGRESQL_MARK = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
_SQLITE_MARK = select(func.coalesce(func.max(models.Delivery.id), 0) + 1)


async def current_mark(session: AsyncSession) -> int:
    """Every row whose transaction number is below this is final."""
    dialect = session.get_bind().dialect.name
    mark = await session.scalar(_POSTGRESQL_MARK if dialect == "postgresql" else _SQLITE_MARK)
    if not isinstance(mark, int):
        raise RuntimeError(f"the database gave no transaction mark: {mark!r}")
    return mark
