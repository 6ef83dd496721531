"""The machine and the code the figures were measured on, for the report."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psycopg

from bench.ingest.hiccups import durable_append
from bench.ingest.servers import REPO
from bench.ingest.wrk import WRK

PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "xmltodict", "orjson")
PACKAGES_DB = ("sqlalchemy", "psycopg")
POSTGRES_SETTINGS = (
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "shared_buffers",
    "data_directory",
)
# What the figures depend on: a change elsewhere (tests, docs) does not move them.
MEASURED_PATHS = ("app", "migrations", "pyproject.toml")


SYNC_PROBE_S = 10.0
# Counted as a stall: far above a healthy sync (~0.3 ms here), and long enough that a few in
# one paced run show in its p99 (report.py says when one alone decides it).
STALL_S = 0.02


@dataclass(frozen=True)
class Syncs:
    """How long the scratch disk took to make an append durable, over a few seconds."""

    count: int
    seconds: float
    median_us: float
    p99_us: float
    max_ms: float
    stalls: int  # syncs slower than STALL_S

    def __str__(self) -> str:
        return (
            f"{self.median_us:.0f} µs median, {self.p99_us:.0f} µs p99, {self.max_ms:.1f} ms"
            f" at most, {self.stalls} over {STALL_S * 1000:.0f} ms"
            f" ({self.count:,} syncs in {self.seconds:.0f} s)"
        )


@dataclass
class Facts:
    """Gathered at the start; the load and the code fingerprint are noted again as it goes."""

    date: str
    commit: str
    uncommitted: list[str]  # `git status --short` of the measured paths
    diff_sha: str  # of `git diff HEAD` over them
    code: str  # fingerprint of the measured files at the start (see fingerprint())
    cpu: str
    cores: int
    memory_gb: float
    system: str
    python: str
    sqlite: str
    postgresql: str
    postgres_settings: dict[str, str]
    packages: dict[str, str]
    wrk: str
    scratch_filesystem: str
    postgres_filesystem: str  # of its data directory, when the server is on this machine
    fdatasync: Syncs
    load: list[str] = field(default_factory=list)  # load averages as the run went
    code_at_end: str = ""

    @property
    def code_changed(self) -> bool:
        """The code under test was edited while the benchmark ran: servers started at
        different times ran different code."""
        return bool(self.code_at_end) and self.code_at_end != self.code

    def note_load(self, when: str) -> None:
        self.load.append(load(when))


def load(when: str) -> str:
    one, five, _fifteen = os.getloadavg()
    return f"{when}: {one:.2f} (1 min), {five:.2f} (5 min)"


def commit() -> str:
    return _git("rev-parse", "--short", "HEAD")


def machine(postgres_server: str) -> str:
    """The machine and the databases' versions in one line, for a section of its own."""
    postgresql = _postgres(postgres_server, ("server_version",))["server_version"]
    return (
        f"{os.cpu_count()} cores ({_cpu()}), {_memory_gb():.0f} GB,"
        f" {platform.system()} {platform.release()}; Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}, PostgreSQL {postgresql}"
    )


def machine_or_cores(postgres_server: str) -> str:
    """`machine`, or the cores alone on a machine without PostgreSQL (a SQLite-only run)."""
    try:
        return machine(postgres_server)
    except psycopg.OperationalError:
        return f"{os.cpu_count()} cores"


@dataclass(frozen=True)
class Context:
    """What a later benchmark's section says of its run: how it was started, at which commit,
    when, on what, and the machine's load average at its start and end."""

    command: str
    commit: str
    date: str
    machine: str
    loads: tuple[str, ...]

    @classmethod
    def of(cls, module: str, loads: list[str], postgres_server: str) -> Context:
        """The run of `python -m module` with this process's arguments."""
        return cls(
            command=shlex.join(["python", "-m", module, *sys.argv[1:]]),
            commit=commit(),
            date=time.strftime("%Y-%m-%d", time.gmtime()),
            machine=machine_or_cores(postgres_server),
            loads=tuple(loads),
        )


def gather(scratch: Path, postgres_server: str) -> Facts:
    postgres_settings = _postgres(postgres_server, ("server_version", *POSTGRES_SETTINGS))
    facts = Facts(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=commit(),
        uncommitted=_git("status", "--short", "--", *MEASURED_PATHS).splitlines(),
        diff_sha=_sha(_git("diff", "HEAD", "--", *MEASURED_PATHS)),
        code=fingerprint(),
        cpu=_cpu(),
        cores=os.cpu_count() or 0,
        memory_gb=_memory_gb(),
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        sqlite=sqlite3.sqlite_version,
        postgresql=postgres_settings.pop("server_version"),
        postgres_settings=postgres_settings,
        packages={name: _version(name) for name in PACKAGES + PACKAGES_DB},
        wrk=_wrk_version(),
        scratch_filesystem=_filesystem(scratch),
        postgres_filesystem=_postgres_filesystem(postgres_settings["data_directory"]),
        fdatasync=_fdatasync(scratch),
    )
    facts.note_load("start")
    return facts


def fingerprint() -> str:
    """sha256 of the files the servers run, as they are on disk: app/, migrations/, and
    pyproject.toml. Unlike the commit, it sees uncommitted edits made during the run."""
    digest = hashlib.sha256()
    files = [p for d in ("app", "migrations") for p in (REPO / d).rglob("*.py")]
    for path in sorted(files) + [REPO / "pyproject.toml"]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def _cpu() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _postgres(server: str, settings: tuple[str, ...]) -> dict[str, str]:
    """The server's values of `settings`, over one connection; "unreachable" if it is not."""
    try:
        with psycopg.connect(f"{server}/postgres", connect_timeout=5) as connection:
            rows = [connection.execute(f"SHOW {name}").fetchone() for name in settings]
    except psycopg.OperationalError:
        return dict.fromkeys(settings, "unreachable")
    return {name: str(row[0]) if row else "?" for name, row in zip(settings, rows, strict=True)}


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


def _wrk_version() -> str:
    run = subprocess.run([WRK, "--version"], capture_output=True, text=True, check=False)
    return (run.stdout + run.stderr).splitlines()[0].split(" Copyright")[0].strip()


def _postgres_filesystem(data_directory: str) -> str:
    """Where PostgreSQL keeps its data, if it told us: it may lie on another disk than the SQLite
    files, and then the sync probes beside those say nothing of its commits."""
    return _filesystem(Path(data_directory)) if data_directory.startswith("/") else "unknown"


def _filesystem(path: Path) -> str:
    """The mount holding the SQLite files: on tmpfs an fsync would prove nothing."""
    best = ("?", "?", "")
    with suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if str(path.resolve()).startswith(mount) and len(mount) >= len(best[2]):
                best = (device, kind, mount)
    return f"{best[1]} on {best[0]} (mounted at {best[2]})"


def _fdatasync(directory: Path, seconds: float = SYNC_PROBE_S) -> Syncs:
    """4 KB appends made durable one after another, as SQLite does for each commit in WAL
    mode at FULL, for a few seconds: long enough to catch the disk's occasional stalls."""
    path = directory / "fdatasync.probe"
    took = []
    with path.open("ab") as file:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            took.append(durable_append(file))
    path.unlink()
    took.sort()
    return Syncs(
        count=len(took),
        seconds=seconds,
        median_us=statistics.median(took) * 1e6,
        p99_us=took[int(len(took) * 0.99)] * 1e6,
        max_ms=took[-1] * 1e3,
        stalls=sum(one > STALL_S for one in took),
    )
