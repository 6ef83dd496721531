"""Which rows are final: the transaction mark, read by listings and long polls.

Writers in several processes commit in parallel, so a row with a higher id may be committed
before one with a lower id. Each delivery and job row carries the number of the transaction that
wrote it last (`delivery.tx`, `job.last_tx`, app/ingest/statements.py), and the mark is a number
such that every row below it is committed for good (or was never written), and every row
committed from now on is at or above it:
- PostgreSQL: the transaction numbers are transaction ids, and the mark is the lowest id among
  the transactions of this database still running at the reader's snapshot, or the snapshot's
  xmax if none is. Every transaction of this database below it has ended; every one that has not
  has an id at or above it, and a later one a higher id still. Transactions of other databases
  of the cluster do not hold it back (the snapshot's own xmin would). Running transactions are
  matched to this database through pg_stat_activity, whose view a transaction caches: the mark
  is read once per transaction, and by the role that writes (or one with pg_read_all_stats). A
  transaction that ends between the snapshot and that read is committed for the next statement.
- SQLite: writers take turns, and a transaction's number is one above the highest delivery id
  when it began. The mark is one above the highest committed delivery id.
Rows written before marks existed count as final (0).

A write transaction left open in stemhook's database holds the mark back: the listings show what
was final before it, and long polls across processes wake when it ends. stemhook's own are
bounded by their statement timeout and, idle, by idle_in_transaction_session_timeout (app/db.py)
(docs/decisions/0012-parallel-writers-and-transaction-marks.md).
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import models

_POSTGRESQL_MARK = text(
    "WITH now AS (SELECT pg_current_snapshot() AS snapshot),"
    " here AS (SELECT backend_xid::text AS xid FROM pg_stat_activity"
    " WHERE datname = current_database() AND backend_xid IS NOT NULL)"
    " SELECT coalesce("
    "(SELECT min(running) FROM now, pg_snapshot_xip(now.snapshot) AS running"
    " WHERE (running::text::bigint % 4294967296)::text IN (SELECT xid FROM here)),"
    " (SELECT pg_snapshot_xmax(now.snapshot) FROM now))::text::bigint"
)
_SQLITE_MARK = select(func.coalesce(func.max(models.Delivery.id), 0) + 1)


async def current_mark(session: AsyncSession) -> int:
    """Every row whose transaction number is below this is final."""
    dialect = session.get_bind().dialect.name
    mark = await session.scalar(_POSTGRESQL_MARK if dialect == "postgresql" else _SQLITE_MARK)
    if not isinstance(mark, int):
        raise RuntimeError(f"the database gave no transaction mark: {mark!r}")
    return mark
