"""A durable work queue in the database, for the background work a committed change causes.

A task is a row, written in the same transaction as the change that causes it (a job that
succeeded gets one row per output file to fetch): acknowledged means its work exists, and a
killed process loses none of it. The queue is any table with the columns of `QueueTable`: a
task is due while `run_after` is set and past, and nobody holds its lease.

- **Claim.** A worker takes due tasks with a lease (`leased_by`, `leased_until`) and counts the
  attempt, in one statement: on PostgreSQL `FOR UPDATE SKIP LOCKED`, so that workers of every
  process and replica claim different rows without waiting on each other; on SQLite, whose
  writers take turns, the same statement under the write lock. A task whose worker died is due
  again once its lease runs out, and a worker holding a long task renews its lease.
- **End.** A worker ends a task only while it holds the lease (`settle` answers False when it
  lost it): stored, failed or skipped, `run_after` null; or due again later (`retry_at`), after
  an exponential backoff with jitter (`backoff`).

No broker and no library: both queue libraries that fit (procrastinate, pgqueuer) need
PostgreSQL, and SQLite is the embedded default
(docs/decisions/0015-a-work-queue-of-our-own.md).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    and_,
    case,
    literal,
    or_,
    select,
    update,
)

from app.db import Base


@dataclass(frozen=True, slots=True)
class QueueTable:
    """A table that is a queue: its `id`, `attempts`, `run_after`, `leased_by`, `leased_until`."""

    table: Table

    @classmethod
    def of(cls, model: type[Base]) -> QueueTable:
        table = model.__table__
        if not isinstance(table, Table):
            raise TypeError(f"not a table: {model!r}")
        return cls(table)

    def due(self, now: datetime) -> Any:
        c = self.table.c
        return and_(
            c.run_after.is_not(None),
            c.run_after <= now,
            or_(c.leased_until.is_(None), c.leased_until <= now),
        )


def claim(
    connection: Connection,
    queue: QueueTable,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    where: ColumnElement[bool] | None = None,
) -> Sequence[Row[Any]]:
    """Up to `limit` due tasks (those `where` also selects, when given), oldest due first, leased
    to `worker` until now + lease, each attempt counted; the whole rows."""
    c = queue.table.c
    due = select(c.id).where(queue.due(now)).order_by(c.run_after).limit(limit)
    if where is not None:
        due = due.where(where)
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        due = due.with_for_update(skip_locked=True)
    chosen = due.cte("due")
    if postgresql:
        # Chosen once: as a subquery the planner may rescan (a nested loop's inner side), each
        # scan skipping the rows the last one locked, and more than `limit` rows are claimed.
        chosen = chosen.prefix_with("MATERIALIZED")
    claimed = (
        update(queue.table)
        .where(c.id.in_(select(chosen.c.id)))
        .values(leased_by=worker, leased_until=now + lease, attempts=c.attempts + 1)
        .returning(*c)
    )
    return connection.execute(claimed).all()


def renew(
    connection: Connection,
    queue: QueueTable,
    task_ids: Sequence[int],
    *,
    worker: str,
    until: datetime,
) -> int:
    """Extend to `until` the leases `worker` still holds of `task_ids`; how many. One whose lease
    ran out and that another worker claimed is that worker's now, and stays so."""
    c = queue.table.c
    renewed = (
        update(queue.table)
        .where(c.id.in_(task_ids), c.leased_by == worker)
        .values(leased_until=until)
    )
    return connection.execute(renewed).rowcount


def settle(
    connection: Connection,
    queue: QueueTable,
    task_id: int,
    *,
    worker: str,
    values: Mapping[str, Any],
    retry_at: datetime | None = None,
    claimed_due: datetime | None = None,
) -> bool:
    """End `worker`'s hold on a task: with `values` written, due again at `retry_at`, or, without
    one, done for good. False (nothing written) when the worker no longer holds the lease: it ran
    out and another worker may have the task now. `claimed_due`: the task's `run_after` when it
    was claimed (a claim leaves it as it is); where something else has moved it since, the sooner
    of the two times stays."""
    c = queue.table.c
    run_after: Any = retry_at
    if retry_at is not None and claimed_due is not None:
        moved_sooner = and_(c.run_after != claimed_due, c.run_after < retry_at)
        run_after = case((moved_sooner, c.run_after), else_=literal(retry_at, c.run_after.type))
    settled = (
        update(queue.table)
        .where(c.id == task_id, c.leased_by == worker)
        .values(**values, run_after=run_after, leased_by=None, leased_until=None)
    )
    return connection.execute(settled).rowcount == 1


def release(
    connection: Connection, queue: QueueTable, task_ids: Sequence[int], *, worker: str
) -> None:
    """Give tasks back untouched (a stopping worker): due again at once, the attempt uncounted."""
    c = queue.table.c
    released = (
        update(queue.table)
        .where(c.id.in_(task_ids), c.leased_by == worker)
        .values(leased_by=None, leased_until=None, attempts=c.attempts - 1)
    )
    connection.execute(released)


def backoff(
    attempts: int, *, base: timedelta, cap: timedelta, rng: random.Random | None = None
) -> timedelta:
    """How long to wait after the `attempts`-th failed try: the exponential step
    min(cap, base * 2^(attempts-1)), half of it fixed and half drawn at random ("equal jitter":
    the retries of many tasks that failed together spread out, and none comes back at once)."""
    step = min(cap.total_seconds(), base.total_seconds() * 2 ** max(0, attempts - 1))
    return timedelta(seconds=step / 2 + (rng or random).uniform(0, step / 2))
