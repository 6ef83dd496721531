"""Tables: the raw inbox of deliveries, and the normalized jobs they describe.

delivery      every callback as it arrived (body, headers, outcome), kept even when rejected
job           one row per (provider, provider's job id): the merged, current view of the job,
              its output files included
job_event     every state change of a job, with the delivery that caused it
delivery_job  which deliveries touched which jobs, whether each was a duplicate, and the state
              an unconfirmed callback claimed
signature_use which body each signed (provider, task id, timestamp) was first stored with
purge_state   how far retention has got, and which process runs it now (app/retention.py)
job_file      each output file of a succeeded job that stemhook keeps a copy of: where it comes
              from, what became of it, and its place in the work queue (app/work/queue.py)
job_watch     each job stemhook has heard of unfinished: when to ask its provider about it if
              no final state arrives, the polls so far, and its place in the work queue
ci_listing    each Tencent CI queue listed for jobs whose callback never came: how far the
              listing got, and its place in the work queue
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, Id, Json, UtcDateTime
from app.polling.queues import LONGEST_NAME

SHORT = 32
NAME = 255
# The deliveries that hold a provider's answer to a poll (app/providers/registry.py's endpoints),
# as the index of them and the queries it serves spell it.
POLL_ANSWERS = "endpoint LIKE 'poll/%'"


def _sparse_index(column: str, *, postgresql_using: str = "btree") -> Index:
    """An index of the rows where `column` is set: for a column null in most rows and only ever
    looked up by equality (which both databases know implies IS NOT NULL). A row without a value
    writes no index entry (migration 0004)."""
    where = text(f"{column} IS NOT NULL")
    return Index(
        None,
        column,
        sqlite_where=where,
        postgresql_where=where,
        postgresql_using=postgresql_using,
    )


class Delivery(Base):
    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    endpoint: Mapped[str] = mapped_column(String(SHORT))
    provider: Mapped[str | None] = mapped_column(String(SHORT))
    outcome: Mapped[str] = mapped_column(String(SHORT))
    error: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text)
    client_addr: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(Json)
    body_size: Mapped[int]
    # Nullable so that retention can drop old bodies while the delivery's record stays.
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A replay is a new delivery of the same body, pointing at the one it replays.
    replay_of: Mapped[int | None] = mapped_column(ForeignKey("delivery.id"))
    # The transaction that wrote the row, which tells readers whether it is final
    # (app/queries/marks.py).
    tx: Mapped[int] = mapped_column(Id, server_default=text("0"))

    __table_args__ = (
        Index(None, "received_at"),
        _sparse_index("replay_of"),
        Index(None, "outcome", "id"),
        Index(None, "provider", "id"),
        # Poll answers counted by provider and outcome (/metrics): only they are in it.
        Index(
            None,
            "provider",
            "outcome",
            sqlite_where=text(POLL_ANSWERS),
            postgresql_where=text(POLL_ANSWERS),
        ),
    )


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    provider: Mapped[str] = mapped_column(String(SHORT))
    job_id: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(SHORT))
    provider_state: Mapped[str] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    custom_id: Mapped[str | None] = mapped_column(String(NAME))
    user_data: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    input_bucket: Mapped[str | None] = mapped_column(Text)
    input_region: Mapped[str | None] = mapped_column(Text)
    input_object: Mapped[str | None] = mapped_column(Text)
    input_url: Mapped[str | None] = mapped_column(Text)
    media_info: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # The files the job produced, from the delivery that last supplied them: always read and
    # replaced whole with the job, so they live in it (five stems are five rows and ten index
    # entries less per callback).
    outputs: Mapped[list[dict[str, str | None]] | None] = mapped_column(Json)
    tts_input: Mapped[str | None] = mapped_column(Text)
    tts_input_type: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(Text)
    workflow_name: Mapped[str | None] = mapped_column(Text)
    workflow_run_id: Mapped[str | None] = mapped_column(Text)
    workflow_node: Mapped[str | None] = mapped_column(Text)
    tasks: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    template_id: Mapped[str | None] = mapped_column(Text)
    template_name: Mapped[str | None] = mapped_column(Text)
    queue_id: Mapped[str | None] = mapped_column(Text)
    deliveries: Mapped[int]
    first_received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Bookkeeping of the merge (see app/ingest/statements.py): which delivery last touched the
    # job, set its current state, and supplied its outputs; and the state before the last change.
    # A job registered by PUT .../expect has no delivery yet (app/polling/expect.py).
    last_delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id"))
    state_delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id"))
    outputs_delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id"))
    previous_state: Mapped[str | None] = mapped_column(String(SHORT))
    # The highest transaction of its deliveries, which tells readers whether it is final.
    last_tx: Mapped[int] = mapped_column(Id, server_default=text("0"))
    # A registered job's registration transaction (app/polling/expect.py), never changed: a
    # listing whose mark is past it had the job before any delivery (app/queries/jobs.py).
    registered_tx: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (
        UniqueConstraint("provider", "job_id"),
        # Listing: newest first by last receipt, optionally narrowed by state or provider/kind.
        Index(None, "last_received_at", "id"),
        Index(None, "state", "last_received_at", "id"),
        Index(None, "provider", "kind", "last_received_at", "id"),
        _sparse_index("custom_id"),
        Index(None, "created_at"),
        # Equality only, and values may exceed a B-tree entry: a hash index where there is one.
        _sparse_index("user_data", postgresql_using="hash"),
        # The paging snapshot and the long polls find the jobs touched after their mark.
        Index(None, "last_tx"),
    )


class JobEvent(Base):
    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    # Not indexed: no query looks events up by delivery, and deliveries are never deleted.
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"))
    from_state: Mapped[str | None] = mapped_column(String(SHORT))
    to_state: Mapped[str] = mapped_column(String(SHORT))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeliveryJob(Base):
    __tablename__ = "delivery_job"

    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"), primary_key=True)
    job_pk: Mapped[int] = mapped_column(
        ForeignKey("job.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    duplicate: Mapped[bool]
    # The final state an unsigned callback claimed for the job, which was not merged but kept
    # for the provider's word to decide (STEMHOOK_CONFIRM_BY_POLL, app/ingest/statements.py);
    # null for every delivery that was merged. Kept once decided: what it claimed.
    claimed_state: Mapped[str | None] = mapped_column(String(SHORT))

    # On SQLite one B-tree keyed by the primary key, not a table and the key's index besides.
    __table_args__ = {"sqlite_with_rowid": False}


class SignatureUse(Base):
    """A provider that signs only a task id and a time (Suno) vouches for one body, not for any:
    the first body stored under a signed (provider, task id, timestamp) owns it, and another body
    under it is refused (app/ingest/statements.py). Kept after retention drops the bodies."""

    __tablename__ = "signature_use"

    provider: Mapped[str] = mapped_column(String(SHORT), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    # As signed: the header's text, not its number ("0123" would be another signature).
    signed_timestamp: Mapped[str] = mapped_column(Text, primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = {"sqlite_with_rowid": False}


class PurgeState(Base):
    __tablename__ = "purge_state"

    name: Mapped[str] = mapped_column(String(SHORT), primary_key=True)
    # The last delivery retention went past, by (received_at, id): every earlier one has lost its
    # body, so a run starts here instead of reading again what earlier runs dropped.
    purged_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    purged_id: Mapped[int | None] = mapped_column(Id)
    # A lease, so that one process at a time purges, across replicas too.
    leased_by: Mapped[str | None] = mapped_column(String(SHORT))
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class JobFile(Base):
    """An output file of a succeeded job, mirrored by the background fetchers: written with the
    job change that makes it fetchable (in the same transaction), then claimed, fetched and
    stored by a worker. The row is its own task in the work queue (app/work/queue.py): pending
    with a time to run after, leased while a worker holds it, and final once stored, failed or
    skipped."""

    __tablename__ = "job_file"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    # The output's place in the job's `outputs`, which the API shows the file beside.
    position: Mapped[int]
    # Where it comes from, kept here: a later delivery may replace the job's outputs.
    url: Mapped[str | None] = mapped_column(Text)
    bucket: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(Text)
    object: Mapped[str | None] = mapped_column(Text)
    # As the callback claims it: any text a stranger sent, compared, never trusted.
    expected_md5: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(SHORT))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(SHORT))
    md5_verified: Mapped[bool | None]
    content_type: Mapped[str | None] = mapped_column(Text)
    stored_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    storage_key: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # The work queue: tries so far, when it may run next (null once final), and the worker that
    # holds it until when.
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    run_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(SHORT))
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("job_pk", "position"),
        # Listing jobs by the status of their files, and counting files by status.
        Index(None, "status", "job_pk"),
        # What a worker claims next: only tasks still to run are in it.
        Index(
            None,
            "run_after",
            sqlite_where=text("run_after IS NOT NULL"),
            postgresql_where=text("run_after IS NOT NULL"),
        ),
        # The copies retention removes next, oldest first: only those still stored are in it.
        # Status leads so that SQLite, which keeps no statistics here, prefers it to the one above.
        Index(
            None,
            "status",
            "stored_at",
            sqlite_where=text("status = 'stored'"),
            postgresql_where=text("status = 'stored'"),
        ),
    )


class JobWatch(Base):
    """A job stemhook has heard of (or was told to expect) unfinished, watched until a final
    state arrives: written with the job in the transaction that creates it, and due for a poll
    of its provider (app/polling/) when no final state has come by `run_after`. The row is its
    own task in the work queue (app/work/queue.py); the delivery that makes the job final ends
    the watch in its own transaction."""

    __tablename__ = "job_watch"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), unique=True)
    # The job's, which never changes: a poller claims one provider's due watches by index,
    # without reading their jobs.
    provider: Mapped[str] = mapped_column(String(SHORT))
    # waiting, polling, done, gave_up (app/polling/watches.py).
    status: Mapped[str] = mapped_column(String(SHORT))
    polls: Mapped[int] = mapped_column(server_default=text("0"))
    last_polled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # No poll after this: the job is given up on (a callback may still finish it).
    give_up_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The work queue (as in job_file): tries, the next poll, and the worker that holds it.
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    run_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(SHORT))
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        # Listing jobs by their watch (?watch=).
        Index(None, "status", "job_pk"),
        # What a poller claims next, a provider at a time: only watches still to poll are in it.
        Index(
            None,
            "provider",
            "run_after",
            sqlite_where=text("run_after IS NOT NULL"),
            postgresql_where=text("run_after IS NOT NULL"),
        ),
    )


class CiListing(Base):
    """A Tencent CI queue listed for its jobs (STEMHOOK_CI_QUEUES, app/polling/listing.py): how
    far its listing got, so that it goes on from there after a restart, and its place in the
    work queue (app/work/queue.py), so that one process at a time lists it."""

    __tablename__ = "ci_listing"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # The setting's entry: queueId@bucket@region/Tag.
    name: Mapped[str] = mapped_column(String(LONGEST_NAME), unique=True)
    # Every job CI created before this has been listed.
    listed_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # While a window is paged through: where it ends, the next page's token, the pages so far.
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_token: Mapped[str | None] = mapped_column(Text)
    pages: Mapped[int] = mapped_column(server_default=text("0"))
    last_listed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The work queue: claims since the last page listed, the next listing, who holds it.
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    run_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(SHORT))
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
