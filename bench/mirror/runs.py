"""The three measurements: mirror throughput per file set, then paced callbacks (their latency)
and saturating ones (ingest) beside downloads, both in bench/beside.py's rounds: "streaming"
while the relay keeps 1 GiB files streaming in, "idle" once every file posted is stored.

Each runs against a `stemhook serve` of its own (1 worker, mirroring on, fetches admitted to
127.0.0.1/32 only, SQLite at synchronous=FULL) on a fresh database (bench/ingest/databases.py),
its files in a fresh directory beside the scratch files; the files come from
bench/mirror/fileserver.py on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from bench import beside
from bench.beside import Beside, Kinds, Rounds
from bench.ingest.databases import PG_SERVER, Backend, Scratch, fresh
from bench.ingest.processes import group_cpu_s
from bench.ingest.servers import Server, free_port, serving, stemhook_command
from bench.mirror.relay import Relay, written_bytes
from bench.stand_ins import StandIn, started

KIB, MIB, GIB = 1024, 1024**2, 1024**3
# Far beyond what these sets take on a quiet machine: a run this slow has stalled.
PATIENCE_S = 600
KINDS = Kinds(busy="streaming", idle="idle")


@dataclass(frozen=True)
class FileSet:
    name: str
    files: int  # two per callback
    size: int


@dataclass(frozen=True)
class Plan:
    sets: tuple[FileSet, ...]
    stream_size: int
    latency: Rounds  # of paced runs beside downloads
    ingest: Rounds  # of saturating runs beside downloads


@dataclass(frozen=True)
class Throughput:
    set: FileSet
    seconds: float  # from the first callback until every file is stored
    mirror_cpu_s: float
    rest_cpu_s: float  # stemhook's other processes: web process, writer, forkserver
    files_cpu_s: float  # the file server's

    @property
    def mib(self) -> float:
        return self.set.files * self.set.size / MIB


@dataclass(frozen=True)
class FileServer:
    stand_in: StandIn

    def url(self, size: int, name: str) -> str:
        return f"{self.stand_in.origin}/{size}/{name}"

    def cpu_s(self) -> float:
        return self.stand_in.cpu_s()


@contextmanager
def file_server(workdir: Path) -> Iterator[FileServer]:
    source = workdir / "source.bin"
    source.write_bytes(os.urandom(16 * MIB))  # what every file repeats: nothing compressible
    try:
        with started("bench.mirror.fileserver", str(source)) as stand_in:
            yield FileServer(stand_in)
    finally:
        source.unlink()


def throughput(files: FileServer, file_set: FileSet, backend: Backend, workdir: Path) -> Throughput:
    with _stemhook(backend, f"stemhook_bench_mirror_{file_set.name}", workdir) as running:
        server, scratch, _ = running
        mirror = server.background_pid()
        server_before, files_before = group_cpu_s(server.pid), files.cpu_s()
        started = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for job in range(file_set.files // 2):
                urls = [files.url(file_set.size, f"{job}-{stem}.mp3") for stem in ("v", "i")]
                post_suno(http, f"{file_set.name}-{job}", urls)
        _until_stored(scratch, file_set.files)
        seconds = time.perf_counter() - started
        server_after, files_after = group_cpu_s(server.pid), files.cpu_s()
    spent = {pid: used - server_before.get(pid, 0.0) for pid, used in server_after.items()}
    return Throughput(
        file_set,
        seconds,
        mirror_cpu_s=spent[mirror],
        rest_cpu_s=sum(spent.values()) - spent[mirror],
        files_cpu_s=files_after - files_before,
    )


def beside_downloads(
    files: FileServer,
    plan: Plan,
    rounds: Rounds,
    backend: Backend,
    workdir: Path,
    log: Callable[[str], None],
) -> Beside:
    """Tencent CI callbacks (nothing fetched for them) in `rounds` while 1 GiB files stream in,
    and while the mirror is idle; what the mirror wrote meanwhile counted in MiB."""
    measured = "ingest" if rounds.rate is None else "latency"
    with _stemhook(backend, f"stemhook_bench_mirror_{measured}", workdir) as running:
        server, scratch, files_dir = running
        mirror = server.background_pid()
        with Relay(server.url, scratch, _streamer(files, plan)) as relay:

            @contextmanager
            def during(kind: str) -> Iterator[None]:
                if kind == KINDS.busy:
                    with relay.streaming(files_dir):
                        yield
                else:
                    relay.idle()
                    yield

            return beside.measure(
                server.url,
                rounds,
                KINDS,
                workdir,
                during=during,
                done=lambda: written_bytes(mirror) / MIB,
                log=lambda message: log(f"{backend.label} {measured} {message}"),
            )


def _streamer(files: FileServer, plan: Plan) -> Callable[[int, httpx.Client], None]:
    def stream(number: int, http: httpx.Client) -> None:
        post_suno(http, f"stream-{number}", [files.url(plan.stream_size, f"{number}.wav")])

    return stream


def post_suno(http: httpx.Client, task_id: str, urls: list[str]) -> None:
    """A Suno separate_vocal callback naming up to two files (vocals, then instrumental)."""
    stems = dict(zip(("vocal_url", "instrumental_url"), urls, strict=False))
    body = {"code": 200, "msg": "ok", "data": {"task_id": task_id, "vocal_removal_info": stems}}
    http.post("/callbacks/suno", content=orjson.dumps(body)).raise_for_status()


@contextmanager
def _stemhook(backend: Backend, name: str, workdir: Path) -> Iterator[tuple[Server, Scratch, Path]]:
    scratch = fresh(backend, name, workdir=workdir, postgres_server=PG_SERVER)
    files_dir = workdir / f"{name}-files"
    env = {
        "STEMHOOK_DATABASE_URL": scratch.url,
        "STEMHOOK_SQLITE_SYNCHRONOUS": "FULL",
        "STEMHOOK_MIRROR": "true",
        "STEMHOOK_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
        "STEMHOOK_FILES_DIR": str(files_dir),
    }
    port = free_port()
    command = stemhook_command(port, 1)
    try:
        with serving(name, command, port=port, workers=1, workdir=workdir, env=env) as server:
            yield server, scratch, files_dir
    finally:
        shutil.rmtree(files_dir, ignore_errors=True)  # gigabytes: the logs are what is kept
        scratch.drop()


def _until_stored(scratch: Scratch, count: int) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while (statuses := scratch.file_statuses()).get("stored", 0) < count:
        if statuses.get("failed") or time.monotonic() > deadline:
            raise RuntimeError(f"not all {count} files stored: {statuses}")
        time.sleep(0.05)
