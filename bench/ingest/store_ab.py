"""The writer's store step as it is against as it was at a git ref, alternated in one process:
`python -m bench.ingest.store_ab [--base main] [--backend postgresql]`.

The base is app/ingest/driver.py, statements.py and store.py as they were at the ref (the rest
of the app is shared). Each round stores `--batches` batches of 16 distinct deliveries with
each, in turn (the order alternates), into one database: a SQLite file in /dev/shm, or a fresh
PostgreSQL database on the server of `--postgres-server`; the first round warms up. Printed:
CPU µs a delivery of each (median over rounds) and the median of the rounds' ratios, for this
process and, on PostgreSQL, for the server's backend process of its connection too (read from
/proc/<pid>/schedstat in nanoseconds: the server must run on this machine). Under callgrind
(`--mark`), each phase begins with a call to zlib.adler32, so that

    valgrind --tool=callgrind --dump-before=zlib_adler32 --callgrind-out-file=cg.out \\
        .venv/bin/python -m bench.ingest.store_ab --mark --family tencent-media-lab

writes one profile per phase (cg.out.2, cg.out.3, ... in the printed order, after cg.out.1 for
the start-up): instruction counts that hold still on a loaded machine, where CPU time does not.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import Connection, Engine

from app.config import Settings
from app.db import create_sync_engine
from app.ingest import driver, statements, store
from app.ingest.admission import admit
from app.ingest.frames import Unframer
from app.ingest.intake import Intake, Submission
from app.polling.watches import DEFAULT_WATCH
from app.schema import upgrade_to_head
from bench.ingest.databases import Backend, fresh
from bench.ingest.payloads import FAMILIES, Family
from bench.ingest.writer_cost import MAX_JOBS, MIRROR_DEFAULT, submissions
from bench.query_data import DEFAULT_POSTGRES

BATCH = 16
# In import order: each imports the ones before it.
WRITE_PATH = ("driver", "statements", "store")


@dataclass(frozen=True)
class WritePath:
    cursor: Callable[[Connection], Any]
    build_statements: Callable[..., Any]
    store_batch: Callable[..., Any]


def head() -> WritePath:
    return WritePath(driver.Cursor, statements.build_statements, _as_committed(store))


def _as_committed(module: ModuleType) -> Callable[..., Any]:
    """The store module's store_batch as the committer calls it: after numbering the
    transaction, where the module numbers them (docs/decisions/0012)."""
    if not hasattr(module, "begin"):
        store_batch: Callable[..., Any] = module.store_batch
        return store_batch

    def numbered(cursor: Any, sql: Any, intakes: list[Intake]) -> Any:
        tx = module.begin(cursor, sql, timeout_ms=60_000)
        # What the ref's store_batch takes of what today's does.
        taken = inspect.signature(module.store_batch).parameters
        policies = {"mirror": MIRROR_DEFAULT, "watch": DEFAULT_WATCH}
        kept = {name: policy for name, policy in policies.items() if name in taken}
        return module.store_batch(cursor, sql, intakes, tx=tx, **kept)

    return numbered


def write_path_at(ref: str) -> WritePath:
    """The write path's modules as they were at `ref`, each importing the others of that ref."""
    directory = Path(tempfile.mkdtemp())
    ours = {name: sys.modules[f"app.ingest.{name}"] for name in WRITE_PATH}
    loaded: dict[str, ModuleType] = {}
    try:
        for name in WRITE_PATH:
            source = subprocess.run(
                ["git", "show", f"{ref}:app/ingest/{name}.py"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            path = directory / f"base_{name}.py"
            path.write_text(source)
            spec = importlib.util.spec_from_file_location(f"base_{name}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up there
            sys.modules[f"app.ingest.{name}"] = module  # where the later ones import it from
            spec.loader.exec_module(module)
            loaded[name] = module
    finally:
        sys.modules.update(ours)
    return WritePath(
        loaded["driver"].Cursor,
        loaded["statements"].build_statements,
        _as_committed(loaded["store"]),
    )


def intakes(family: Family, count: int, prefix: str) -> list[Intake]:
    framed = b"".join(submissions(family, count)).replace(b"0badcafe", prefix.encode())
    return [
        admit(Submission.from_wire(wire), suno_key=None, max_jobs=MAX_JOBS)
        for _, _, wire in Unframer().feed(framed)
    ]


@contextmanager
def database(backend: Backend, postgres_server: str) -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as workdir:
        scratch = fresh(
            backend, "stemhook_store_ab", workdir=Path(workdir), postgres_server=postgres_server
        )
        settings = Settings(database_url=scratch.url)
        upgrade_to_head(settings)
        engine = create_sync_engine(settings)
        try:
            yield engine
        finally:
            engine.dispose()
            scratch.drop()


def server_cpu_s(connection: Connection) -> float:
    """CPU time of the server process behind `connection`, or 0 for SQLite (in process)."""
    if connection.dialect.name != "postgresql":
        return 0.0
    backend_pid = connection.connection.driver_connection.info.backend_pid
    return int(Path(f"/proc/{backend_pid}/schedstat").read_text().split()[0]) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--backend", choices=[b.value for b in Backend], default="sqlite")
    parser.add_argument("--postgres-server", default=DEFAULT_POSTGRES.rsplit("/", 1)[0])
    parser.add_argument("--family", action="append", choices=[f.provider for f in FAMILIES])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--mark", action="store_true", help="a zlib.adler32 call before phases")
    args = parser.parse_args()
    paths = {"base": write_path_at(args.base), "head": head()}
    for family in FAMILIES:
        if args.family and family.provider not in args.family:
            continue
        with database(Backend(args.backend), args.postgres_server) as engine:
            compiled = {name: path.build_statements(engine.dialect) for name, path in paths.items()}
            phases = [
                (name, intakes(family, BATCH * args.batches, f"{2 * round_ + turn:08x}"))
                for round_ in range(args.rounds + 1)
                for turn, name in enumerate(("base", "head") if round_ % 2 else ("head", "base"))
            ]
            spent: list[tuple[float, float]] = []
            for number, (name, batch) in enumerate(phases):
                path = paths[name]
                with engine.connect() as connection:
                    if args.mark:
                        zlib.adler32(f"{number} {name}".encode())
                    began, server_began = time.process_time(), server_cpu_s(connection)
                    for start in range(0, len(batch), BATCH):
                        with connection.begin():
                            cursor = path.cursor(connection)
                            path.store_batch(cursor, compiled[name], batch[start : start + BATCH])
                            cursor.close()
                    own = time.process_time() - began
                    server = server_cpu_s(connection) - server_began
                spent.append((own / len(batch) * 1e6, server / len(batch) * 1e6))
            if args.mark:
                zlib.adler32(b"end")
        print(summary(family, args.base, phases, spent), flush=True)


def summary(
    family: Family,
    base: str,
    phases: list[tuple[str, list[Intake]]],
    spent: list[tuple[float, float]],
) -> str:
    rounds = [
        dict(zip([phases[i][0], phases[i + 1][0]], spent[i : i + 2], strict=True))
        for i in range(2, len(phases), 2)
    ]
    columns = {"process": (0,), "server": (1,), "both": (0, 1)}
    if not any(server for _, server in spent):  # SQLite: all in process
        columns = {"process": (0,)}
    figures = []
    for column, parts in columns.items():
        cost = {
            name: [sum(r[name][part] for part in parts) for r in rounds]
            for name in ("base", "head")
        }
        ratios = [h / b for h, b in zip(cost["head"], cost["base"], strict=True)]
        figures.append(
            f"{column}: {base} {statistics.median(cost['base']):.1f}, head "
            f"{statistics.median(cost['head']):.1f}, head/{base} {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f})"
        )
    return (
        f"{family.provider:18} store CPU µs a delivery, {len(rounds)} rounds; "
        + "; ".join(figures)
        + f"; phases: {' '.join(name for name, _ in phases)}"
    )


if __name__ == "__main__":
    main()
