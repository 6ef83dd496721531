"""The data of the query benchmark: N realistic jobs written straight into a migrated database.

Per backend, a database built by the migrations is filled with N jobs and what goes with them
(deliveries, delivery-job links, outputs, state changes, output files, watches; a few jobs with
a long history of poll answers) by COPY or executemany, and kept: a rerun that finds
N jobs already there only applies pending migrations. Secondary indexes are dropped during the
fill and rebuilt from their own definitions, so the final schema is exactly the migrations'.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
import psycopg

from app import models
from app.config import Settings
from app.ingest.store import output_document
from app.mirror.sources import CosBucket, FileStatus, MirrorPolicy
from app.polling.watches import DEFAULT_WATCH, WatchStatus
from app.providers.model import OutputFile, Provider, Role
from app.providers.registry import poll_endpoint
from app.schema import upgrade_to_head
from app.storage.keys import file_key

TOKEN = "bench-token-0123456789abcdef"
DEFAULT_SQLITE = Path(tempfile.gettempdir()) / "stemhook_bench.db"
DEFAULT_POSTGRES = os.environ.get(
    "STEMHOOK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/stemhook_bench"
)

# --- the data -----------------------------------------------------------------------------

SEED = 20261121
END = datetime(2026, 11, 21)  # naive UTC, as stored
SPAN_S = 90 * 86400
START = END - timedelta(seconds=SPAN_S)
CI, LAB, SUNO = "tencent-ci", "tencent-media-lab", "suno"
# (provider, kind, share of jobs)
KINDS = (
    (CI, "voice_separate", 28),
    (CI, "tts", 12),
    (CI, "speech_recognition", 5),
    (CI, "noise_reduction", 4),
    (CI, "workflow", 3),
    (CI, "transcode", 3),
    (LAB, "music_separate", 25),
    (SUNO, "separate_vocal", 12),
    (SUNO, "split_stem", 7),
    (SUNO, "vocal_separation", 1),
)
STATES = (("succeeded", 850), ("failed", 80), ("running", 30), ("submitted", 25), ("canceled", 15))
FINAL = {"succeeded", "failed", "canceled"}
PROVIDER_STATE = {
    CI: {"succeeded": "Success", "failed": "Failed", "running": "Running"}
    | {"submitted": "Submitted", "canceled": "Cancel"},
    LAB: {"succeeded": "3", "failed": "4", "running": "2", "submitted": "1", "canceled": "5"},
}
CI_ERRORS = (
    ("InternalError", "Internal error, please retry later."),
    ("InvalidInput", "The input object could not be decoded as audio."),
    ("MediaDurationTooLong", "The media duration exceeds the limit of 3600 seconds."),
)
SUNO_ERRORS = (
    ("400", "Invalid parameters."),
    ("451", "Audio download failed."),
    ("500", "Internal error, please try again later."),
)
STEMS = {
    (CI, "voice_separate"): ("vocals", "accompaniment", "bass"),
    (CI, "tts"): ("speech",),
    (LAB, "music_separate"): ("vocals", "accompaniment", "drums"),
    (SUNO, "separate_vocal"): ("accompaniment", "vocals"),
    (SUNO, "split_stem"): ("vocals", "drums", "bass"),
}
CUSTOM_GROUP_SIZES = ((1, 70), (2, 12), (3, 8), (4, 6), (5, 4))
# One job in this many (at least one) has a long history: submitted, running, then this many
# poll answers saying it still runs before the callback that finishes it.
LONG_EVERY = 50_000
LONG_POLLS = 150
# Output files: the share whose fetch failed (a link gone), and how long before the fill's end
# a succeeded job's files are still waiting to be fetched.
FILES_FAILED = 0.02
FILES_PENDING_S = 600
MIRROR = MirrorPolicy(
    enabled=True, cos=True, cos_buckets=frozenset({CosBucket("media-1250000000")})
)
# Every filled row's transaction number (delivery.tx, job.last_tx): below every mark on both
# databases, so readers take the whole fill as final (app/queries/marks.py), and what migration
# 0007 gave a fill made before it, so a reused fill and a fresh one hold the same.
FILLED_TX = 0
# Which rows a fill holds: a kept database of another version is filled again, not measured
# short of rows (2 added state changes, output files, watches and long histories).
FILL_VERSION = 2


def _hex(pk: int, salt: int) -> str:
    """A unique, random-looking 32-hex id: an odd multiplier is a bijection modulo 2**128."""
    return f"{(pk * 0x9E3779B97F4A7C15F39CC0605CEDC835 + salt) % 2**128:032x}"


@dataclass
class Skeleton:
    """Who each job is and when its deliveries came, decided before any row is written."""

    kinds: bytes
    states: bytes
    first_s: array[float]
    custom: array[int]  # custom id group, -1 for none
    # 0 one delivery, 1 submitted/running then final, 2 a duplicate retry, LONG a long history
    second: bytes
    first_delivery: array[int]
    last_delivery: array[int]
    # every delivery in id order: (received, job index or -1 for a rejected one, its place
    # among the job's deliveries)
    deliveries: list[tuple[float, int, int]]


LONG = 3


class Said(NamedTuple):
    """What one delivery of a job said: its state, whether that changed the job (else it is a
    duplicate), and whether it was a poll's answer."""

    state: str
    changed: bool = True
    polled: bool = False


def plan(n: int) -> Skeleton:
    rng = random.Random(SEED)
    kinds = bytes(rng.choices(range(len(KINDS)), [k[2] for k in KINDS], k=n))
    states = bytes(rng.choices(range(len(STATES)), [s[1] for s in STATES], k=n))
    first_s = array("d", sorted(rng.random() * SPAN_S for _ in range(n)))
    custom, second = array("q", bytes(8 * n)), bytearray(n)
    group, left = -1, 0
    sizes, size_weights = [s for s, _ in CUSTOM_GROUP_SIZES], [w for _, w in CUSTOM_GROUP_SIZES]
    for j in range(n):
        provider, state = KINDS[kinds[j]][0], STATES[states[j]][0]
        custom[j] = -1
        if provider == LAB and rng.random() < 0.9:
            # A customer resubmitting a piece shortly after: consecutive Media Lab jobs share it.
            if left == 0:
                group, left = group + 1, rng.choices(sizes, size_weights)[0]
            custom[j], left = group, left - 1
        r = rng.random()
        if r < 0.05 and provider != SUNO and state in FINAL:
            second[j] = 1
        elif r < 0.07:
            second[j] = 2
    separated = [
        j
        for j in range(n)
        if KINDS[kinds[j]][:2] in ((CI, "voice_separate"), (LAB, "music_separate"))
        and STATES[states[j]][0] == "succeeded"
    ]
    for j in rng.sample(separated, min(len(separated), max(1, n // LONG_EVERY))):
        second[j] = LONG
    events = [(first_s[j], j, 0) for j in range(n)]
    for j in range(n):
        if second[j] == LONG:
            at = first_s[j]
            for step in range(1, LONG_POLLS + 3):
                at = min(at + rng.uniform(30, 90), SPAN_S)
                events.append((at, j, step))
        elif second[j]:
            delay = rng.uniform(20, 900) if second[j] == 1 else rng.uniform(60, 7200)
            events.append((min(first_s[j] + delay, SPAN_S), j, 1))
    events += [(rng.random() * SPAN_S, -1, 0) for _ in range(n // 300)]
    events.sort()
    first_delivery, last_delivery = array("q", bytes(8 * n)), array("q", bytes(8 * n))
    for delivery_id, (_at, j, step) in enumerate(events, start=1):
        if j >= 0:
            last_delivery[j] = delivery_id
            if step == 0:
                first_delivery[j] = delivery_id
    return Skeleton(
        kinds, states, first_s, custom, bytes(second), first_delivery, last_delivery, events
    )


class Rows:
    """Every table's rows, streamed in a fixed order; `stamp` stores a naive UTC datetime."""

    def __init__(self, skeleton: Skeleton, stamp: Callable[[datetime], Any]) -> None:
        self.s = skeleton
        self.stamp = stamp

    def tables(self) -> Iterator[tuple[str, list[str], Iterator[tuple[Any, ...]]]]:
        for model, rows in (
            (models.Delivery, self.deliveries()),
            (models.Job, self.jobs()),
            (models.DeliveryJob, self.links()),
            (models.JobEvent, self.events()),
            (models.JobFile, self.files()),
            (models.JobWatch, self.watches()),
        ):
            columns = [column.name for column in model.__table__.columns]
            yield model.__tablename__, columns, self._ordered(columns, rows)

    def _ordered(
        self, columns: list[str], rows: Iterator[dict[str, Any]]
    ) -> Iterator[tuple[Any, ...]]:
        stamp = self.stamp
        for row in rows:
            values = (row.get(column) for column in columns)
            yield tuple(stamp(v) if isinstance(v, datetime) else v for v in values)

    def kind(self, j: int) -> tuple[str, str]:
        provider, kind, _share = KINDS[self.s.kinds[j]]
        return provider, kind

    def job_id(self, j: int) -> str:
        provider, kind = self.kind(j)
        if provider == LAB:
            return str(10**18 + (j * 0x9E3779B97F4A7C15) % 2**59)
        if provider == CI:
            return ("i" if kind == "workflow" else "j") + _hex(j, 1)
        return _hex(j, 2)

    def state(self, j: int) -> str:
        """The job's state as its last delivery left it."""
        provider, kind = self.kind(j)
        state = STATES[self.s.states[j]][0]
        if provider == SUNO:  # Suno calls back once, when the job is over
            return "succeeded" if state == "succeeded" and kind != "vocal_separation" else "failed"
        return state

    def history(self, j: int) -> list[Said]:
        """What each of the job's deliveries said, in order."""
        state, second = self.state(j), self.s.second[j]
        if second == 1:
            return [Said("running" if j % 2 else "submitted"), Said(state)]
        if second == 2:
            return [Said(state), Said(state, changed=False)]
        if second == LONG:
            polls = [Said("running", changed=False, polled=True)] * LONG_POLLS
            return [Said("submitted"), Said("running"), *polls, Said(state)]
        return [Said(state)]

    def received(self, delivery_id: int) -> datetime:
        return START + timedelta(seconds=self.s.deliveries[delivery_id - 1][0])

    def deliveries(self) -> Iterator[dict[str, Any]]:
        rng = random.Random(SEED + 1)
        for delivery_id, (at, j, step) in enumerate(self.s.deliveries, start=1):
            provider: str | None = None
            endpoint = "auto"
            if j < 0:
                body = b'<?xml version="1.0"?><Response><JobsDetail><JobId>j3feb7ccc9e</Response>'
                outcome, error = "rejected", "XML: mismatched tag: line 1, column 64"
            else:
                provider = self.kind(j)[0]
                said = self.history(j)[step]
                body = self._body(j, said.state)
                endpoint = poll_endpoint(Provider(provider)) if said.polled else provider
                outcome, error = "accepted" if said.changed else "duplicate", None
            headers = {
                "host": "hooks.example.com",
                "user-agent": "python-requests/2.31" if provider == SUNO else "Go-http-client/1.1",
                "content-type": "application/json",
                "content-length": str(len(body)),
                "x-forwarded-for": f"203.0.113.{rng.randrange(1, 255)}",
            }
            yield {
                "id": delivery_id,
                "received_at": START + timedelta(seconds=at),
                "endpoint": endpoint,
                "provider": provider,
                "outcome": outcome,
                "error": error,
                "content_type": "application/json",
                "client_addr": f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "headers": orjson.dumps(headers).decode(),
                "body_size": len(body),
                "body": body,
                "tx": FILLED_TX,
            }

    def _body(self, j: int, state: str) -> bytes:
        """A callback of about 300 bytes, as the provider sends it."""
        (provider, kind), job_id = self.kind(j), self.job_id(j)
        if provider == CI:
            tag = "".join(part.title() for part in kind.split("_"))
            text = (
                f'{{"EventName":"TaskFinish","JobsDetail":{{"Code":"Success","Message":"",'
                f'"JobId":"{job_id}","Tag":"{tag}","State":"{PROVIDER_STATE[CI][state]}",'
                f'"CreationTime":"2026-10-02T10:12:26+0800","EndTime":"2026-10-02T10:13:01+0800",'
                f'"QueueId":"p8a1c2e0f3b4d","Input":{{"BucketId":"media-1250000000",'
                f'"Region":"ap-guangzhou","Object":"input/{job_id[:12]}.mp3"}}}}}}'
            )
        elif provider == LAB:
            custom = self.s.custom[j]
            text = (
                f'{{"id":"{job_id}","customId":"{f"order-{custom:07d}" if custom >= 0 else ""}",'
                f'"state":{PROVIDER_STATE[LAB][state]},"timing":{{"createdAt":1759371146000,'
                f'"startedAt":1759371147000,"completedAt":1759371181000}},"inputs":[{{"url":'
                f'"https://media-1250000000.cos.ap-guangzhou.myqcloud.com/in/{job_id}.wav"}}]}}'
            )
        else:
            text = (
                f'{{"code":{200 if state == "succeeded" else 500},"data":{{"task_id":"{job_id}",'
                f'"vocal_removal_info":{{"instrumental_url":"https://file.aiquickdraw.com/s/'
                f'{job_id}_Instrumental.mp3","origin_url":"","vocal_url":'
                f'"https://file.aiquickdraw.com/s/{job_id}_Vocals.mp3"}}}},"msg":"success"}}'
            )
        return text.encode()

    def jobs(self) -> Iterator[dict[str, Any]]:
        rng, outputs = random.Random(SEED + 2), self.outputs()
        for j in range(len(self.s.kinds)):
            row = self._job(j, rng)
            if row["state"] == "succeeded":
                files = [output_document(output) for output in next(outputs)]
                row["outputs"] = orjson.dumps(files).decode()
            yield row

    def state_delivery(self, j: int) -> int:
        """The delivery that made the job's state what it is."""
        changed = self.history(j)[-1].changed
        return self.s.last_delivery[j] if changed else self.s.first_delivery[j]

    def _job(self, j: int, rng: random.Random) -> dict[str, Any]:
        s, (provider, kind), state = self.s, self.kind(j), self.state(j)
        last_d, state_d = s.last_delivery[j], self.state_delivery(j)
        history = self.history(j)
        changes = [said.state for said in history if said.changed]
        row: dict[str, Any] = {
            "id": j + 1,
            "provider": provider,
            "job_id": self.job_id(j),
            "kind": kind,
            "state": state,
            "custom_id": None if s.custom[j] < 0 else f"order-{s.custom[j]:07d}",
            "deliveries": len(history),
            "first_received_at": START + timedelta(seconds=s.first_s[j]),
            "last_received_at": START + timedelta(seconds=s.deliveries[last_d - 1][0]),
            "last_delivery_id": last_d,
            "last_tx": FILLED_TX,
            "state_delivery_id": state_d,
            "outputs_delivery_id": state_d if state == "succeeded" else None,
            "previous_state": changes[-2] if len(changes) > 1 else None,
        }
        if state == "failed":
            errors = {CI: CI_ERRORS, LAB: (("ERROR", ""),), SUNO: SUNO_ERRORS}[provider]
            row["error_code"], row["error_message"] = rng.choice(errors)
        if provider == SUNO:
            row["provider_state"] = "200" if state == "succeeded" else row["error_code"]
            return row
        row["provider_state"] = PROVIDER_STATE[provider][state]
        took = rng.uniform(20, 300)
        row["created_at"] = row["first_received_at"] - timedelta(seconds=took + 5)
        if state != "submitted":
            row["started_at"] = row["first_received_at"] - timedelta(seconds=took)
        if state in FINAL:
            row["finished_at"] = row["first_received_at"] - timedelta(seconds=0.4)
        source = f"input/{rng.randrange(10**6):06d}/{row['job_id'][:12]}.mp3"
        if provider == LAB:
            row["input_url"] = f"https://media-1250000000.cos.ap-guangzhou.myqcloud.com/{source}"
            return row
        row |= {
            "input_bucket": "media-1250000000",
            "input_region": "ap-guangzhou",
            "input_object": source,
            "template_id": f"t1{_hex(s.kinds[j], 3)[:30]}",
            "template_name": f"{kind}-default",
            "queue_id": "p8a1c2e0f3b4d4e5f",
        }
        if rng.random() < 0.3:
            row["user_data"] = f'{{"tenant":"t{rng.randrange(5000):04d}","track":{j}}}'
        if kind == "tts":
            row["tts_input"], row["tts_input_type"] = "今天天气很好，适合出门散步。", "Text"
        if kind == "voice_separate" and state == "succeeded":
            row["media_info"] = _media_info(round(rng.uniform(90, 420), 3))
        if kind == "workflow":
            row |= _workflow(row)
        return row

    def links(self) -> Iterator[dict[str, Any]]:
        for delivery_id, (_at, j, step) in enumerate(self.s.deliveries, start=1):
            if j >= 0:
                duplicate = not self.history(j)[step].changed
                yield {"delivery_id": delivery_id, "job_pk": j + 1, "duplicate": duplicate}

    def events(self) -> Iterator[dict[str, Any]]:
        """Each state change, written with the delivery that made it, as the write path does."""
        event_id = 0
        for delivery_id, (_at, j, step) in enumerate(self.s.deliveries, start=1):
            history = self.history(j) if j >= 0 else []
            if not history or not history[step].changed:
                continue
            before = [said.state for said in history[:step] if said.changed]
            event_id += 1
            yield {
                "id": event_id,
                "job_pk": j + 1,
                "delivery_id": delivery_id,
                "from_state": before[-1] if before else None,
                "to_state": history[step].state,
                "at": self.received(delivery_id),
            }

    def outputs(self) -> Iterator[list[OutputFile]]:
        """The outputs of each succeeded job, in job order."""
        rng = random.Random(SEED + 3)
        output_id = 0
        for j in range(len(self.s.kinds)):
            if self.state(j) != "succeeded":
                continue
            provider, kind = self.kind(j)
            roles = STEMS.get((provider, kind), ("output",))
            if len(roles) == 3:
                roles = roles[: rng.choice((2, 2, 3))]
            prefix = self.job_id(j)[:16]
            files = []
            for role in roles:
                output_id += 1
                name = f"{prefix}_{role}.mp3"
                fields: dict[str, str] = {}
                if provider == CI:
                    fields |= {"bucket": "media-1250000000", "region": "ap-guangzhou"}
                    fields["object"] = f"output/{name}"
                    if rng.random() < 0.5:
                        fields["md5"] = _hex(output_id, 4)
                elif provider == LAB:
                    fields |= {"content_id": "media-1250000000", "destination": "separated"}
                    fields |= {"file_name": name, "object": f"separated/{name}"}
                else:
                    fields |= {"url": f"https://file.aiquickdraw.com/s/{name}", "file_name": name}
                files.append(OutputFile(role=Role(role), **fields))
            yield files

    def files(self) -> Iterator[dict[str, Any]]:
        """The job_file rows the write path queued for each succeeded job's outputs (mirroring
        on, COS keys for the bucket CI writes to; Media Lab names no bucket), then what the
        mirror made of them: most stored, some failed, the last minutes' still pending."""
        rng, outputs = random.Random(SEED + 5), self.outputs()
        file_id = 0
        for j in range(len(self.s.kinds)):
            if self.state(j) != "succeeded":
                continue
            provider, job_id = self.kind(j)[0], self.job_id(j)
            succeeded_at = self.received(self.state_delivery(j))
            pending = succeeded_at > END - timedelta(seconds=FILES_PENDING_S)
            for position, output in enumerate(next(outputs)):
                row = MIRROR.file_row(output, job_pk=j + 1, position=position, now=succeeded_at)
                if row is None:
                    continue
                file_id += 1
                row |= {"id": file_id, "attempts": 0}
                if row["status"] == FileStatus.PENDING and not pending:
                    row |= _fetched(rng, file_id, output, succeeded_at) | {"run_after": None}
                    if rng.random() < FILES_FAILED:
                        host = urlsplit(output.url).hostname if output.url else "cos"
                        row |= {"status": FileStatus.FAILED.value, "attempts": 2}
                        row["error"] = f"gone: HTTP 404 from {host}"
                    else:
                        name = output.file_name or output.url or output.object or ""
                        role, version = output.role.value, f"{file_id:08x}"
                        key = file_key(provider, job_id, position, role, name, version=version)
                        row |= {"status": FileStatus.STORED.value, "storage_key": key}
                yield row

    def watches(self) -> Iterator[dict[str, Any]]:
        """The watch of each job first heard of unfinished: done once it finished, else given up
        past its give-up time (providers not configured to be polled), else waiting."""
        watch_id = 0
        for j in range(len(self.s.kinds)):
            history = self.history(j)
            if history[0].state in FINAL:
                continue
            watch_id += 1
            first, last = self.s.first_delivery[j], self.s.last_delivery[j]
            provider = Provider(self.kind(j)[0])
            row = DEFAULT_WATCH.watch_row(
                job_pk=j + 1, provider=provider, heard_at=self.received(first)
            )
            row |= {"id": watch_id, "polls": 0, "attempts": 0}
            polled = [step for step, said in enumerate(history) if said.polled]
            if polled:
                row["polls"] = len(polled)
                row["last_polled_at"] = self.received(last) - timedelta(seconds=45)
            if history[-1].state in FINAL:
                row |= {"status": WatchStatus.DONE.value, "run_after": None}
            elif row["give_up_at"] <= END:
                row |= {"status": WatchStatus.GAVE_UP.value, "run_after": None}
            yield row


def _fetched(
    rng: random.Random, file_id: int, output: OutputFile, queued_at: datetime
) -> dict[str, Any]:
    """What the mirror writes of a file it fetched: its size, digests, type and when."""
    md5 = output.md5 or _hex(file_id, 7)
    return {
        "bytes": rng.randrange(2_000_000, 16_000_000),
        "sha256": _hex(file_id, 5) + _hex(file_id, 6),
        "md5": md5,
        "md5_verified": True if output.md5 else None,
        "content_type": "audio/mpeg",
        "stored_at": queued_at + timedelta(seconds=rng.uniform(1, 30)),
        "attempts": 1,
    }


def _media_info(duration_s: float) -> str:
    stream = {"codec": "mp3", "sample_rate": 44100, "channels": 2, "bitrate_kbps": 320.0}
    info = {
        "format_name": "mp3",
        "duration_s": duration_s,
        "bitrate_kbps": 320.0,
        "size_bytes": int(duration_s * 40000),
        "audio_streams": [stream | {"duration_s": duration_s}],
    }
    return orjson.dumps(info).decode()


def _workflow(job: dict[str, Any]) -> dict[str, Any]:
    def utc(value: datetime | None) -> str | None:
        return None if value is None else value.replace(tzinfo=UTC).isoformat()

    task = {
        "type": "VoiceSeparate",
        "name": "VoiceSeparate_1581665960537",
        "job_id": "j" + job["job_id"][1:],
        "state": job["state"],
        "provider_state": job["provider_state"],
        "template_id": None,
        "template_name": None,
        "created_at": utc(job.get("created_at")),
        "finished_at": utc(job.get("finished_at")),
    }
    return {
        "workflow_id": "w" + job["job_id"][1:17],
        "workflow_name": "separate-and-transcode",
        "workflow_run_id": job["job_id"],
        "workflow_node": "Start",
        "tasks": orjson.dumps([task]).decode(),
    }


def _insert_sql(table: str, columns: list[str], *, copy: bool) -> str:
    names = ", ".join(f'"{column}"' for column in columns)
    if copy:
        return f"COPY {table} ({names}) FROM STDIN"
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"


# --- the databases ------------------------------------------------------------------------


@dataclass(frozen=True)
class SqliteTarget:
    path: Path
    name: str = "sqlite"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def job_count(self) -> int:
        """The jobs of a fill of this FILL_VERSION, or -1."""
        if not self.path.exists():
            return -1
        try:
            with closing(sqlite3.connect(self.path)) as connection:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                count: int = connection.execute("SELECT count(*) FROM job").fetchone()[0]
        except sqlite3.DatabaseError:
            return -1
        return count if version == FILL_VERSION else -1

    def recreate(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def load(self, skeleton: Skeleton) -> None:
        rows = Rows(skeleton, lambda value: value.isoformat(" ", "microseconds"))
        with closing(sqlite3.connect(self.path, isolation_level=None)) as connection:
            # A lost fill is simply redone (its job count is wrong): no journal, no fsync.
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000"):
                connection.execute(f"PRAGMA {pragma}")
            connection.execute("BEGIN")
            indexes = _without_indexes(
                connection,
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
            )
            for table, columns, table_rows in rows.tables():
                connection.executemany(_insert_sql(table, columns, copy=False), table_rows)
            for _name, ddl in indexes:
                connection.execute(ddl)
            connection.execute("COMMIT")
            connection.execute("ANALYZE")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA user_version = {FILL_VERSION}")

    def size_bytes(self) -> int:
        return self.path.stat().st_size


# Indexes that back no primary key or unique constraint: built once after the load, faster
# than maintained row by row.
PG_SECONDARY_INDEXES = """
SELECT index.relname, pg_get_indexdef(index.oid)
FROM pg_index
JOIN pg_class index ON index.oid = pg_index.indexrelid
JOIN pg_class tab ON tab.oid = pg_index.indrelid
JOIN pg_namespace ON pg_namespace.oid = tab.relnamespace
WHERE pg_namespace.nspname = current_schema()
  AND tab.relname IN ('delivery', 'job', 'delivery_job', 'job_event', 'job_file', 'job_watch')
  AND NOT EXISTS (
    SELECT FROM pg_constraint
    WHERE pg_constraint.conindid = pg_index.indexrelid AND pg_constraint.contype IN ('p', 'u')
  )
"""


@dataclass(frozen=True)
class PostgresTarget:
    url: str
    name: str = "postgresql"

    @property
    def database(self) -> str:
        return self.url.rsplit("/", 1)[1]

    def version(self) -> str:
        with psycopg.connect(self.url) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    def job_count(self) -> int:
        """The jobs of a fill of this FILL_VERSION, or -1."""
        try:
            with psycopg.connect(self.url, connect_timeout=5) as connection:
                row = connection.execute(
                    "SELECT (SELECT count(*) FROM job), shobj_description(oid, 'pg_database')"
                    " FROM pg_database WHERE datname = current_database()"
                ).fetchone()
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            return -1
        return row[0] if row and row[1] == self._fill_comment else -1

    @property
    def _fill_comment(self) -> str:
        return f"stemhook bench fill {FILL_VERSION}"

    def recreate(self) -> None:
        admin_url = self.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.database}"')

    def load(self, skeleton: Skeleton) -> None:
        rows = Rows(skeleton, lambda value: value)
        with psycopg.connect(self.url) as connection:
            # Replica mode skips the foreign-key triggers: the rows are consistent by
            # construction, and checking 4 million references one by one would dominate.
            connection.execute("SET session_replication_role = replica")
            connection.execute("SET maintenance_work_mem = '512MB'")
            indexes = _without_indexes(connection, PG_SECONDARY_INDEXES)
            with connection.cursor() as cursor:
                for table, columns, table_rows in rows.tables():
                    with cursor.copy(_insert_sql(table, columns, copy=True)) as copy:
                        for row in table_rows:
                            copy.write_row(row)
            for _name, ddl in indexes:
                connection.execute(ddl)
            for table in ("delivery", "job", "job_event", "job_file", "job_watch"):
                connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
        with psycopg.connect(self.url, autocommit=True) as connection:
            # VACUUM as autovacuum would soon: statistics, and the visibility map that lets
            # index-only scans skip the table.
            connection.execute("VACUUM (ANALYZE)")
            connection.execute(f"COMMENT ON DATABASE \"{self.database}\" IS '{self._fill_comment}'")

    def size_bytes(self) -> int:
        with psycopg.connect(self.url) as connection:
            row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        return row[0] if row else 0


Target = SqliteTarget | PostgresTarget


def _without_indexes(connection: Any, query: str) -> list[tuple[str, str]]:
    """Drop the indexes the query lists (name, DDL), returning them to be rebuilt."""
    indexes = [(name, ddl) for name, ddl in connection.execute(query).fetchall()]
    for name, _ddl in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    return indexes


def settings_for(target: Target) -> Settings:
    return Settings(_env_file=None, database_url=target.url, api_tokens=TOKEN)


def prepare(target: Target, n: int, *, refill: bool) -> str:
    """The database holding n jobs, built by the migrations; how it came to be, for the report."""
    settings = settings_for(target)
    if not refill and target.job_count() == n:
        upgrade_to_head(settings)  # a migration added since the fill (an index) applies here
        return f"{n:,} jobs reused (--refill rebuilds them)"
    target.recreate()
    upgrade_to_head(settings)
    started = time.perf_counter()
    skeleton = plan(n)
    target.load(skeleton)
    took = time.perf_counter() - started
    deliveries = len(skeleton.deliveries)
    return f"{n:,} jobs and {deliveries:,} deliveries filled in {took:.0f} s"


# --- the measurement ----------------------------------------------------------------------
