"""One process at a time runs each retention task, across replicas: a lease in the task's
purge_state row, renewed by every batch and given back at the end of the run. The others skip
their turn. Callers give the transaction, so that each takes the write lock its own way."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Row, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from app import models

# A process that died holding it blocks its task this long at most.
LEASE = timedelta(minutes=5)
_INSERT: dict[str, Callable[[type[models.PurgeState]], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def take(connection: Connection, task: str) -> str | None:
    """The lease on `task` for LEASE: who holds it now (pass it on), or None when another
    process does."""
    me = secrets.token_hex(8)
    now = datetime.now(UTC)
    state = models.PurgeState
    held = {"leased_by": me, "leased_until": now + LEASE}
    statement = (
        _INSERT[connection.dialect.name](state)
        .values(name=task, **held)
        .on_conflict_do_update(
            index_elements=[state.name],
            set_=held,
            where=or_(state.leased_until.is_(None), state.leased_until < now),
        )
        .returning(state.name)
    )
    return me if connection.execute(statement).first() is not None else None


def renew(connection: Connection, task: str, me: str) -> Row[datetime | None, int | None] | None:
    """Extends the lease if it is still ours, and answers where the task's last batch stopped
    (its purged_to, purged_id); None once it is no longer ours."""
    state = models.PurgeState
    return connection.execute(
        update(state)
        .where(state.name == task, state.leased_by == me)
        .values(leased_until=datetime.now(UTC) + LEASE)
        .returning(state.purged_to, state.purged_id)
    ).one_or_none()


def release(connection: Connection, task: str, me: str) -> None:
    state = models.PurgeState
    connection.execute(
        update(state)
        .where(state.name == task, state.leased_by == me)
        .values(leased_by=None, leased_until=None)
    )
