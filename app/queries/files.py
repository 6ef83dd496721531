"""The mirrored output files of jobs: what became of each, and how many are in each status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app import models
from app.mirror.sources import MAX_FILES_PER_JOB, FileStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class FileView:
    """What the API shows of a job_file row: no source, storage key or queue columns but
    `attempts`."""

    position: int
    status: FileStatus
    bytes: int | None
    sha256: str | None
    md5: str | None
    md5_verified: bool | None
    content_type: str | None
    stored_at: datetime | None
    attempts: int
    error: str | None


# Job primary key -> output position -> its file.
JobFiles = dict[int, dict[int, FileView]]


@dataclass(frozen=True, slots=True)
class FileCounts:
    by_status: dict[FileStatus, int]
    stored_bytes: int


async def files_of(session: AsyncSession, job_pks: Sequence[int]) -> JobFiles:
    """The files of these jobs, in one query (the (job_pk, position) unique index)."""
    found: JobFiles = {job_pk: {} for job_pk in job_pks}
    if not job_pks:
        return found
    f = models.JobFile
    rows = await session.execute(
        select(
            f.job_pk,
            f.position,
            f.status,
            f.bytes,
            f.sha256,
            f.md5,
            f.md5_verified,
            f.content_type,
            f.stored_at,
            f.attempts,
            f.error,
        ).where(f.job_pk.in_(job_pks))
    )
    for row in rows.mappings():
        values = dict(row)
        job_pk = values.pop("job_pk")
        values["status"] = FileStatus(values["status"])
        found[job_pk][row["position"]] = FileView(**values)
    return found


async def file_counts(
    session: AsyncSession, *, received: tuple[datetime, datetime] | None = None
) -> FileCounts:
    """Files by status and the bytes stored: of every job, or of the jobs last received in
    [since, until) when `received` is given."""
    f = models.JobFile
    if received is None:
        statement = select(f.status, func.count(), func.sum(f.bytes)).group_by(f.status)
    else:
        statement = _files_of_jobs_received(*received, session.get_bind().dialect.name)
    by_status = dict.fromkeys(FileStatus, 0)
    stored_bytes = 0
    for status, count, size in await session.execute(statement):
        by_status[FileStatus(status)] = count
        if status == FileStatus.STORED:
            # PostgreSQL sums a bigint as a numeric (a Decimal here).
            stored_bytes = int(size or 0)
    return FileCounts(by_status, stored_bytes)


def _files_of_jobs_received(
    since: datetime, until: datetime, dialect: str
) -> Select[str, int, int | None]:
    """Files by status of the jobs last received in [since, until), each job's looked up in the
    (job_pk, position) index. Given a join, PostgreSQL hashes the window's jobs against a scan of
    every file (85 ms at 200,000 jobs, against 5 ms probing): a lateral subquery, which its LIMIT
    (the most files a job has) keeps it from flattening into a join, makes it probe."""
    f, job = models.JobFile, models.Job
    in_window = (job.last_received_at >= since, job.last_received_at < until)
    if dialect != "postgresql":  # SQLite probes the index for a plain join
        counted = select(f.status, func.count(), func.sum(f.bytes))
        return counted.join(job, job.id == f.job_pk).where(*in_window).group_by(f.status)
    files = select(f.status, f.bytes).where(f.job_pk == job.id).limit(MAX_FILES_PER_JOB).lateral()
    counted = select(files.c.status, func.count(), func.sum(files.c.bytes)).select_from(job)
    return counted.join(files, true()).where(*in_window).group_by(files.c.status)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCopy:
    """Where a stored file's bytes are, and what they are."""

    storage_key: str
    bytes: int
    sha256: str
    content_type: str | None


async def stored_copy(
    session: AsyncSession, *, provider: str, job_id: str, position: int
) -> StoredCopy | None:
    """The stored copy of the job's output at `position`, or None when there is none (yet)."""
    f, job = models.JobFile, models.Job
    row = (
        await session.execute(
            select(f.storage_key, f.bytes, f.sha256, f.content_type)
            .join(job, job.id == f.job_pk)
            .where(
                job.provider == provider,
                job.job_id == job_id,
                f.position == position,
                f.status == FileStatus.STORED.value,
            )
        )
    ).first()
    if row is None or row.storage_key is None or row.bytes is None or row.sha256 is None:
        return None
    return StoredCopy(
        storage_key=row.storage_key,
        bytes=row.bytes,
        sha256=row.sha256,
        content_type=row.content_type,
    )
