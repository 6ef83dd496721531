"""The SQL of the write path, built once per dialect.

A delivery creates its job by INSERT ... ON CONFLICT DO NOTHING; where that finds the job
exists, INSERT ... ON CONFLICT DO UPDATE merges the delivery into it. The database decides:
its unique index whether the job is new, the upsert under its row lock whether the delivery
moves the job forward or only fills gaps, and the upsert is right whether or not the row is
still there when it runs. Concurrent duplicates, in one process or many, can therefore neither
create a second job nor move one backwards; no Python read-then-write takes part.

The merge rule ("does the incoming delivery win?"):
- a later stage wins: submitted < running = paused < succeeded = failed = canceled;
- running and paused may follow each other: the newer delivery wins;
- between two different final states the provider's end time decides; without two distinct
  end times, succeeded beats failed beats canceled (a retried failure may arrive after the
  success it was superseded by);
- the same state never wins (but over a job only registered, whose state no delivery set): the
  delivery is a duplicate, and it only fills fields the job still lacks (the end time only from
  a delivery of the same state: another state's end time would decide the next comparison
  between final states);
- outputs are replaced whole, by a winning delivery that has some or by any delivery while the
  job has none; a delivery without outputs never takes them away.
RETURNING tells the caller what happened: `state_delivery_id` equal to this delivery means the
state changed (or the job was created, when `previous_state` is null).

A signed delivery claims its signature first (Suno signs `task_id.timestamp`, not the body): one
INSERT ... ON CONFLICT DO UPDATE ... WHERE the stored body digest equals the incoming one per
(provider, task id, signed timestamp), the primary key of signature_use. It returns a row where
the signature is new (inserted) or was used for this very body (a retry), and none where it was
used for another body: the delivery is refused. Two deliveries with the same key cannot both
insert, in one transaction or in several processes: the second meets the first's index entry,
waits for its transaction to end (on SQLite there is only one writer at a time anyway), and then
compares against its committed row under that row's lock, or inserts if it rolled back.

An unsigned callback's claim that a job is final is held, not merged, where
STEMHOOK_CONFIRM_BY_POLL names its provider (docs/decisions/0019): the job is created as a
registration creates it where it is new (submitted, the provider's own word still to come: the
merge rule lets any delivery replace it), its watch is inserted or made due now, and the link
keeps the state claimed. Claims are judged by the database, in the transaction of whichever
delivery makes the job final (where the setting names its provider then), or at once where it
is final already: a delivery one of whose
claimed jobs is final in another state is rejected with the reason; one none of whose claimed
jobs is still unfinished is confirmed (accepted if it merged something else, else a duplicate).
On PostgreSQL the deliveries judged are locked first, in order of id: two transactions that
finish two jobs one delivery claims then judge it one after the other, the second seeing the
first's job, so that neither leaves it unconfirmed for good.

Writers in several processes commit in parallel
(docs/decisions/0012-parallel-writers-and-transaction-marks.md):
- Each transaction first learns its number (`begin`), written into every delivery row and every
  job row it touches, by which readers tell final rows from those still being written
  (app/queries/marks.py): on PostgreSQL its transaction id, on SQLite, whose writers take turns,
  the first delivery id it will write.
- On PostgreSQL a batch then takes one advisory lock per job it touches, all in one statement,
  in ascending order of key, before it reads or locks any row: two batches that touch the same
  jobs in other orders wait for each other there instead of deadlocking on the rows. A
  signature claim waits only on a batch with the same task id, whose lock it then holds too.

On PostgreSQL each statement takes all the rows of a batch at once, as one JSON document read as
the table's row type (`INSERT ... SELECT ... FROM json_populate_recordset(...)`,
app/ingest/driver.py says how they are fed and how what they return is matched to them); on
SQLite each runs once a row. Both are built from the column tuples below, with the types of the
model's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Dialect,
    FromClause,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeEngine

from app import models
from app.db import Base
from app.ingest.driver import Compiled, JsonRows, carries_bytes, compile_for
from app.ingest.intake import Outcome
from app.polling.watches import WatchStatus
from app.providers.model import State

_STAGE = {
    State.SUBMITTED: 1,
    State.RUNNING: 2,
    State.PAUSED: 2,
    State.SUCCEEDED: 3,
    State.FAILED: 3,
    State.CANCELED: 3,
}
_FINAL_STAGE = 3
_FINAL_PRECEDENCE = {State.SUCCEEDED: 3, State.FAILED: 2, State.CANCELED: 1}

# Columns a delivery that does not win may still fill when the job lacks them.
FILLABLE = (
    "custom_id",
    "user_data",
    "created_at",
    "started_at",
    "input_bucket",
    "input_region",
    "input_object",
    "input_url",
    "media_info",
    "tts_input",
    "tts_input_type",
    "workflow_id",
    "workflow_name",
    "workflow_run_id",
    "workflow_node",
    "tasks",
    "template_id",
    "template_name",
    "queue_id",
)
# Of those, where the provider's API is asked about the job (app/polling/requests.py): the first
# value stands, whoever wins later, so that an unsigned callback cannot re-address the poll that
# would confirm or contradict it (docs/decisions/0019; a job's bucket, region and queue never
# change at the provider).
FIRST_WORD = ("input_bucket", "input_region", "queue_id")
# Columns that always follow the winning delivery, even to null (an error only while failed).
FOLLOW_WINNER = ("kind", "state", "provider_state", "error_code", "error_message")


DELIVERY_COLUMNS = (
    "received_at",
    "endpoint",
    "provider",
    "outcome",
    "error",
    "content_type",
    "client_addr",
    "headers",
    "body_size",
    "body",
    "replay_of",
    "tx",
)
SIGNATURE_COLUMNS = ("provider", "task_id", "signed_timestamp", "body_sha256")
SIGNATURE_KEY = ("provider", "task_id", "signed_timestamp")
JOB_KEY = ("provider", "job_id")
EVENT_COLUMNS = ("job_pk", "delivery_id", "from_state", "to_state", "at")
LINK_COLUMNS = ("delivery_id", "job_pk", "duplicate")
CLAIM_COLUMNS = (*LINK_COLUMNS, "claimed_state")
WATCH_COLUMNS = ("job_pk", "provider", "status", "run_after", "give_up_at")
FILE_COLUMNS = (
    "job_pk",
    "position",
    "url",
    "bucket",
    "region",
    "object",
    "expected_md5",
    "status",
    "error",
    "run_after",
)
JOB_COLUMNS = (
    "provider",
    "job_id",
    *FOLLOW_WINNER,
    *FILLABLE,
    "finished_at",
    "outputs",
    "deliveries",
    "first_received_at",
    "last_received_at",
    "last_delivery_id",
    "state_delivery_id",
    "outputs_delivery_id",
    "previous_state",
    "last_tx",
)
# A held job created where it is new: what a registration writes (app/polling/expect.py), with
# what its poll is addressed by.
PLACEHOLDER_COLUMNS = (
    "provider",
    "job_id",
    "kind",
    "state",
    "provider_state",
    "input_bucket",
    "input_region",
    "queue_id",
    "deliveries",
    "first_received_at",
    "last_received_at",
    "last_tx",
    "registered_tx",
)


@dataclass(frozen=True, slots=True)
class WriteStatements:
    begin: Compiled
    lock_jobs: Compiled | None
    claim_signature: Compiled
    insert_delivery: Compiled
    mark_duplicate: Compiled
    insert_job: Compiled
    upsert_job: Compiled
    insert_event: Compiled
    insert_link: Compiled
    insert_file: Compiled
    insert_watch: Compiled
    end_watch: Compiled
    # Only where a callback's claim is held (STEMHOOK_CONFIRM_BY_POLL): nothing else runs them.
    insert_placeholder: Compiled
    find_job: Compiled
    insert_claim: Compiled
    due_watch: Compiled
    lock_claims: Compiled | None
    resolve_claims: Compiled


def build_statements(dialect: Dialect) -> WriteStatements:
    def compiled(
        statement: ClauseElement,
        key: tuple[str, ...] = (),
        new_ids: ClauseElement | None = None,
    ) -> Compiled:
        ids = None if new_ids is None else compile_for(new_ids, dialect)
        return compile_for(statement, dialect, key=key, new_ids=ids)

    delivery, delivery_ids = _insert_delivery(dialect)
    return WriteStatements(
        begin=compile_for(_begin(dialect), dialect),
        lock_jobs=compile_for(_LOCK_JOBS, dialect) if dialect.name == "postgresql" else None,
        claim_signature=compiled(_claim_signature(dialect), key=SIGNATURE_KEY),
        insert_delivery=compiled(delivery, new_ids=delivery_ids),
        mark_duplicate=compiled(_mark_duplicate(dialect)),
        insert_job=compiled(_insert_job(dialect), key=JOB_KEY),
        upsert_job=compiled(_upsert_job(dialect), key=JOB_KEY),
        insert_event=compiled(insert_rows(dialect, models.JobEvent, EVENT_COLUMNS)),
        insert_link=compiled(insert_rows(dialect, models.DeliveryJob, LINK_COLUMNS)),
        insert_file=compiled(_insert_file(dialect)),
        insert_watch=compiled(_insert_watch(dialect)),
        end_watch=compiled(_end_watch(dialect)),
        insert_placeholder=compiled(_insert_placeholder(dialect), key=JOB_KEY),
        find_job=compiled(_find_job(dialect), key=JOB_KEY),
        insert_claim=compiled(insert_rows(dialect, models.DeliveryJob, CLAIM_COLUMNS)),
        due_watch=compiled(_due_watch(dialect)),
        lock_claims=compiled(_lock_claims(dialect)) if dialect.name == "postgresql" else None,
        resolve_claims=compiled(_resolve_claims(dialect)),
    )


def insert_rows(
    dialect: Dialect, into: type[Base] | Table, columns: tuple[str, ...]
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of rows of `columns` that can take ON CONFLICT clauses: on PostgreSQL all the
    rows of a batch at once, in their order (so ids from the column's default follow the batch:
    the events of a job are listed by id); on SQLite one row an execution."""
    if dialect.name != "postgresql":
        return sqlite.insert(into).values({column: bindparam(column) for column in columns})
    rows, values, ordinality = _incoming(dialect, _table(into), columns)
    in_order = select(*values).select_from(rows).order_by(ordinality)
    return postgresql.insert(into).from_select(columns, in_order)


def _table(into: type[Base] | Table) -> Table:
    table = into if isinstance(into, Table) else into.__table__
    if not isinstance(table, Table):
        raise TypeError(f"not a table: {into!r}")
    return table


def _begin(dialect: Dialect) -> ClauseElement:
    """The transaction's number, as its first statement (module docstring)."""
    if dialect.name == "postgresql":
        # The transaction's time is set in the same round trip: the server then cancels a
        # statement that outlives it, and the transaction ends there with its locks (the
        # committer's watchdog only cuts the connection, and the server may not notice for a
        # long while).
        return text(
            "SELECT pg_current_xact_id()::text::bigint,"
            " set_config('statement_timeout', :statement_timeout, true)"
        )
    return select(func.coalesce(func.max(models.Delivery.id), 0) + 1)


# The keys come sorted and unnest yields them in order: each lock is taken after the smaller ones.
_LOCK_JOBS = text(
    "SELECT count(pg_advisory_xact_lock(key)) FROM unnest(CAST(:keys AS bigint[])) AS key"
)


# The document's parameter, and the number json_populate_recordset gives each row (_incoming).
_GENERATED_NAMES = frozenset({"rows", "ordinality"})


def _incoming(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> tuple[FromClause, list[ColumnElement[Any]], ColumnElement[Any]]:
    """The rows of a batch, the values of `columns` in them, and their numbers from 1 in their
    order (app/ingest/driver.py): read from one JSON document (`rows`) as the table's row type,
    which types each value as its column and refuses one its column would refuse; bytes, which
    JSON cannot carry, from one array a column, with the rows' primary key alongside, joined to
    their rows by it (not by number: their order then matters nowhere)."""
    taken = _GENERATED_NAMES & set(table.c.keys())
    if taken:
        raise ValueError(
            f"{table.fullname} has columns named {sorted(taken)}, which its batches' statements"
            " give names of their own"
        )
    in_arrays = tuple(name for name in columns if carries_bytes(table.c[name].type, dialect))
    key = tuple(column.name for column in table.primary_key)
    if in_arrays and not (key and set(key) <= set(columns)):
        raise ValueError(
            f"bytes are joined to their rows of {table.fullname} by its primary key, which the"
            f" columns {columns} must include"
        )
    document = bindparam(
        "rows",
        type_=JsonRows({name: table.c[name].type for name in columns if name not in in_arrays}),
    )
    # A table's row type has the table's name, schema and quoting alike.
    row_type: ColumnElement[Any] = literal_column(
        f"CAST(NULL AS {dialect.identifier_preparer.format_table(table)})"
    )
    rows = (
        func.json_populate_recordset(row_type, document)
        .table_valued(*columns, with_ordinality="ordinality")
        .alias("incoming")
    )
    source: FromClause = rows
    read_from: dict[str, FromClause] = dict.fromkeys(columns, rows)
    if in_arrays:
        arrays = [_bound_array(name, table.c[name].type) for name in (*key, *in_arrays)]
        bytes_ = (
            func.unnest(*arrays).table_valued(*key, *in_arrays).render_derived("incoming_bytes")
        )
        source = rows.join(bytes_, and_(*(bytes_.c[name] == rows.c[name] for name in key)))
        read_from |= dict.fromkeys(in_arrays, bytes_)
    values: list[ColumnElement[Any]] = [read_from[name].c[name] for name in columns]
    return source, values, rows.c.ordinality


def _bound_array(name: str, column_type: TypeEngine[Any]) -> ColumnElement[Any]:
    """The array bound as `name`, cast to its column's type: psycopg then adapts the list
    without guessing, even where all its values are None. The array's bind processor applies
    the column type's to each value."""
    array = postgresql.ARRAY(column_type, dimensions=1)
    return cast(bindparam(name, type_=array), array)


def _insert_delivery(dialect: Dialect) -> tuple[Insert, Select[Any] | None]:
    """The insert that answers each row with its new id, and on PostgreSQL the statement that
    takes those ids first: what a multi-row INSERT returns comes in no guaranteed order
    (app/ingest/driver.py)."""
    if dialect.name != "postgresql":
        returning: Insert = insert_rows(dialect, models.Delivery, DELIVERY_COLUMNS)
        return returning.returning(models.Delivery.id), None
    numbered = insert_rows(dialect, models.Delivery, ("id", *DELIVERY_COLUMNS))
    return numbered, _new_ids(models.Delivery)


def _new_ids(model: type[Base]) -> Select[Any]:
    """`n` new values of the sequence behind the model's id, its name looked up once a
    statement (an uncorrelated scalar subquery runs once)."""
    table = _const(model.__tablename__)
    sequence = select(
        cast(func.pg_get_serial_sequence(table, _const("id")), postgresql.REGCLASS)
    ).scalar_subquery()
    ids = func.generate_series(_const(1), bindparam("n", type_=Integer))
    return select(func.nextval(sequence)).select_from(ids)


def _mark_duplicate(dialect: Dialect) -> Update:
    duplicate = update(models.Delivery).values(outcome="duplicate")
    if dialect.name != "postgresql":
        return duplicate.where(models.Delivery.id == bindparam("id"))
    _, (delivery_id,), _ = _incoming(dialect, _table(models.Delivery), ("id",))
    return duplicate.where(models.Delivery.id == delivery_id)


_JOB_KEY = tuple(models.Job.__table__.c[column] for column in JOB_KEY)
# What both job statements return after the job's key: whether the delivery changed the job's
# state (its state_delivery_id) and, if it did, from which state; whether the job took the
# delivery's outputs (its outputs_delivery_id).
_JOB_ANSWER = (
    *_JOB_KEY,
    models.Job.id,
    models.Job.state,
    models.Job.previous_state,
    models.Job.state_delivery_id,
    models.Job.outputs_delivery_id,
)


# What a held job's statements return after its key: its id and its state now.
_HELD_ANSWER = (*_JOB_KEY, models.Job.id, models.Job.state)


def _job_values(dialect: Dialect) -> postgresql.Insert | sqlite.Insert:
    return insert_rows(dialect, models.Job, JOB_COLUMNS)


def _claim_signature(dialect: Dialect) -> Insert:
    """Returns a row (its key) unless the signature was first used for another body (module
    docstring)."""
    statement = insert_rows(dialect, models.SignatureUse, SIGNATURE_COLUMNS)
    stored, new = models.SignatureUse.__table__.c, statement.excluded
    key = [stored[column] for column in SIGNATURE_KEY]
    claim: Insert = statement.on_conflict_do_update(
        index_elements=key,
        set_={"body_sha256": new.body_sha256},
        where=stored.body_sha256 == new.body_sha256,
    )
    return claim.returning(*key)


def _insert_file(dialect: Dialect) -> Insert:
    """A job's output files to keep, once: a job that succeeds again (after a later failure
    overruled it) keeps the files it has."""
    files = models.JobFile.__table__.c
    statement: Insert = insert_rows(dialect, models.JobFile, FILE_COLUMNS).on_conflict_do_nothing(
        index_elements=[files.job_pk, files.position]
    )
    return statement


def _insert_watch(dialect: Dialect) -> Insert:
    """A watch for a job created unfinished; one a registration wrote first stays."""
    watches = models.JobWatch.__table__.c
    statement: Insert = insert_rows(dialect, models.JobWatch, WATCH_COLUMNS).on_conflict_do_nothing(
        index_elements=[watches.job_pk]
    )
    return statement


def _end_watch(dialect: Dialect) -> Update:
    """The watch of a job that became final ends: no poll is due, and a poller that holds it
    loses its lease (its settle is refused, app/work/queue.py)."""
    watch = models.JobWatch
    ended = update(watch).values(
        status=_const(WatchStatus.DONE.value),
        run_after=null(),
        leased_by=null(),
        leased_until=null(),
    )
    if dialect.name != "postgresql":
        job_pk: ColumnElement[Any] = bindparam("job_pk")
    else:
        _, (job_pk,), _ = _incoming(dialect, _table(watch), ("job_pk",))
    return ended.where(watch.job_pk == job_pk, watch.status != _const(WatchStatus.DONE.value))


def _insert_placeholder(dialect: Dialect) -> Insert:
    """Creates a held job as a registration would; returns no row where it exists (find_job
    then says what it is)."""
    new_only: Insert = insert_rows(dialect, models.Job, PLACEHOLDER_COLUMNS).on_conflict_do_nothing(
        index_elements=_JOB_KEY
    )
    return new_only.returning(*_HELD_ANSWER)


def _find_job(dialect: Dialect) -> Select[Any]:
    """An existing held job's id and state. No lock: the batch holds its job's advisory lock
    (PostgreSQL) or the write lock (SQLite), and every writer of a job row takes it."""
    job = _table(models.Job)
    if dialect.name != "postgresql":
        key = and_(*(job.c[name] == bindparam(name) for name in JOB_KEY))
        return select(*_HELD_ANSWER).where(key)
    rows, values, _ = _incoming(dialect, job, JOB_KEY)
    key = and_(*(job.c[name] == value for name, value in zip(JOB_KEY, values, strict=True)))
    return select(*_HELD_ANSWER).select_from(rows.join(job, key))


def _due_watch(dialect: Dialect) -> Insert:
    """The watch of a job a held claim speaks of: inserted due now where it has none (a job the
    claim created), or an open one made due now (one given up on too: polled once more), its
    status `polling`, which the first poll's wait for a job heard of lately does not hold up
    (app/polling/schedule.py). A watch already done stays done."""
    statement = insert_rows(dialect, models.JobWatch, WATCH_COLUMNS)
    stored, new = models.JobWatch.__table__.c, statement.excluded
    due: Insert = statement.on_conflict_do_update(
        index_elements=[stored.job_pk],
        set_={"status": new.status, "run_after": new.run_after},
        where=stored.status != _const(WatchStatus.DONE.value),
    )
    return due


def _claimed_on_jobs(dialect: Dialect) -> ColumnElement[bool]:
    """Deliveries with a claim on one of the batch's jobs (`job_pk`)."""
    link = _table(models.DeliveryJob)
    if dialect.name != "postgresql":
        on_jobs: ColumnElement[bool] = link.c.job_pk == bindparam("job_pk")
        claims = select(link.c.delivery_id).where(on_jobs, link.c.claimed_state.is_not(None))
    else:
        rows, (job_pk,), _ = _incoming(dialect, link, ("job_pk",))
        claims = (
            select(link.c.delivery_id)
            .select_from(link.join(rows, link.c.job_pk == job_pk))
            .where(link.c.claimed_state.is_not(None))
        )
    return and_(
        models.Delivery.outcome == _const(Outcome.UNCONFIRMED.value),
        models.Delivery.id.in_(claims),
    )


def _lock_claims(dialect: Dialect) -> Select[Any]:
    """The unconfirmed deliveries with a claim on the batch's jobs, locked in order of id
    before they are judged (module docstring)."""
    delivery = models.Delivery
    return (
        select(delivery.id).where(_claimed_on_jobs(dialect)).order_by(delivery.id).with_for_update()
    )


def _resolve_claims(dialect: Dialect) -> Update:
    """Judges the unconfirmed deliveries with a claim on the batch's jobs against the states
    of all the jobs they claim, as they are now (module docstring); returns each delivery it
    decided, with its outcome and error."""
    delivery = models.Delivery
    claim = _table(models.DeliveryJob).alias("claim")
    claimed = _table(models.Job).alias("claimed_job")
    link = _table(models.DeliveryJob)
    its_claims = and_(
        claim.c.delivery_id == delivery.id,
        claim.c.claimed_state.is_not(None),
        claimed.c.id == claim.c.job_pk,
    )
    final = claimed.c.state.in_([_const(state.value) for state in State if state.is_final])
    contradicted = and_(its_claims, final, claim.c.claimed_state != claimed.c.state)
    contradiction = exists().where(contradicted)
    # One reason, the same whichever plan finds it, should several jobs contradict it.
    reason = (
        select(
            func.min(
                _text("the provider says ")
                + claimed.c.state
                + _text("; the callback claimed ")
                + claim.c.claimed_state
                + _text(" (job ")
                + claimed.c.job_id
                + _text(")")
            )
        )
        .where(contradicted)
        .scalar_subquery()
    )
    pending = exists().where(its_claims, not_(final))
    merged = exists().where(link.c.delivery_id == delivery.id, link.c.duplicate.is_(False))
    outcome = case(
        (contradiction, _const(Outcome.REJECTED.value)),
        (merged, _const(Outcome.ACCEPTED.value)),
        else_=_const(Outcome.DUPLICATE.value),
    )
    return (
        update(delivery)
        .where(_claimed_on_jobs(dialect), or_(contradiction, not_(pending)))
        .values(outcome=outcome, error=reason)
        .returning(delivery.id, delivery.outcome, delivery.error)
    )


def _insert_job(dialect: Dialect) -> Insert:
    """Creates the job; returns no row where it exists already (upsert_job merges those).

    Most deliveries create their job, and the upsert costs more even where it inserts, on
    PostgreSQL: the executor prepares every expression of its DO UPDATE for each execution
    (server CPU per Media Lab delivery, executed once a row: upsert ~370 µs, this insert ~100)."""
    new_only: Insert = _job_values(dialect).on_conflict_do_nothing(index_elements=_JOB_KEY)
    return new_only.returning(*_JOB_ANSWER)


def _upsert_job(dialect: Dialect) -> Insert:
    statement = _job_values(dialect)
    new = statement.excluded
    old = models.Job.__table__.c
    wins = _incoming_wins(old, new)
    set_: dict[str, Any] = {
        name: case((wins, new[name]), else_=old[name]) for name in FOLLOW_WINNER
    }
    for name in FILLABLE:
        set_[name] = (
            func.coalesce(old[name], new[name])
            if name in FIRST_WORD
            else case(
                (wins, func.coalesce(new[name], old[name])),
                else_=func.coalesce(old[name], new[name]),
            )
        )
    set_ |= {
        "finished_at": case(
            (wins, new.finished_at),
            (new.state == old.state, func.coalesce(old.finished_at, new.finished_at)),
            else_=old.finished_at,
        ),
        "previous_state": case((wins, old.state), else_=old.previous_state),
        "state_delivery_id": case((wins, new.state_delivery_id), else_=old.state_delivery_id),
        **_outputs_follow(wins, old, new),
        "deliveries": old.deliveries + _const(1),
        "last_delivery_id": new.last_delivery_id,
        # The highest of its deliveries' transactions, not the last to write: on PostgreSQL a
        # transaction that began earlier can merge after a later one committed, and the job is
        # final for a reader only once all of them are (app/queries/marks.py).
        "last_tx": case((new.last_tx > old.last_tx, new.last_tx), else_=old.last_tx),
        # Arrival order and commit order differ by the time a body takes to upload.
        "first_received_at": case(
            (new.first_received_at < old.first_received_at, new.first_received_at),
            else_=old.first_received_at,
        ),
        "last_received_at": case(
            (new.last_received_at > old.last_received_at, new.last_received_at),
            else_=old.last_received_at,
        ),
    }
    upsert: Insert = statement.on_conflict_do_update(index_elements=_JOB_KEY, set_=set_)
    return upsert.returning(*_JOB_ANSWER)


def _outputs_follow(wins: ColumnElement[bool], old: Any, new: Any) -> dict[str, Any]:
    takes = and_(new.outputs_delivery_id.is_not(None), or_(wins, old.outputs_delivery_id.is_(None)))
    return {
        name: case((takes, new[name]), else_=old[name])
        for name in ("outputs", "outputs_delivery_id")
    }


def _const(value: str | int) -> ColumnElement[Any]:
    """A constant written into the SQL text, so that the statement is prepared once with it
    instead of carrying hundreds of bound parameters into every execution."""
    return literal_column(f"'{value}'" if isinstance(value, str) else str(value))


def _text(value: str) -> ColumnElement[str]:
    """A string constant in the SQL text that joins others with ||."""
    return literal_column(f"'{value}'", String())


def _lookup(table: dict[State, int], state: ColumnElement[Any]) -> ColumnElement[int]:
    return case(
        {_const(key.value): _const(rank) for key, rank in table.items()},
        value=state,
        else_=_const(0),
    )


def _incoming_wins(old: Any, new: Any) -> ColumnElement[bool]:
    new_stage, old_stage = _lookup(_STAGE, new.state), _lookup(_STAGE, old.state)
    both_ended_apart = and_(
        old.finished_at.is_not(None),
        new.finished_at.is_not(None),
        old.finished_at != new.finished_at,
    )
    sideways = or_(
        new_stage < _const(_FINAL_STAGE),
        and_(both_ended_apart, new.finished_at > old.finished_at),
        and_(
            not_(both_ended_apart),
            _lookup(_FINAL_PRECEDENCE, new.state) > _lookup(_FINAL_PRECEDENCE, old.state),
        ),
    )
    return or_(
        new_stage > old_stage,
        and_(new_stage == old_stage, new.state != old.state, sideways),
        # A registered job's state is stemhook's placeholder: its first delivery says more.
        old.state_delivery_id.is_(None),
    )
