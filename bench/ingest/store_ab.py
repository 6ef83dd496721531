"""The writer's store step with app/ingest/driver.py as it is against as it was at a git ref,
alternated in one process: `python -m bench.ingest.store_ab [--base main]`.

Each round stores `--batches` batches of 16 distinct deliveries with each driver, in turn (the
order alternates), on one SQLite file in /dev/shm; the first round warms up. Printed: CPU µs a
delivery of each (median over rounds) and the median of the rounds' ratios. Under callgrind
(`--mark`), each phase begins with a call to zlib.adler32, so that

    valgrind --tool=callgrind --dump-before=zlib_adler32 --callgrind-out-file=cg.out \\
        .venv/bin/python -m bench.ingest.store_ab --mark --family tencent-media-lab

writes one profile per phase (cg.out.2, cg.out.3, ... in the printed order, after cg.out.1 for
the start-up): instruction counts that hold still on a loaded machine, where CPU time does not.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from types import ModuleType

from app.config import Settings
from app.db import create_sync_engine
from app.ingest import driver
from app.ingest import statements as statement_module
from app.ingest.admission import admit
from app.ingest.frames import Unframer
from app.ingest.intake import Intake, Submission
from app.ingest.statements import WriteStatements, build_statements
from app.ingest.store import begin, store_batch
from app.schema import upgrade_to_head
from bench.ingest.payloads import FAMILIES, Family
from bench.ingest.writer_cost import submissions

BATCH = 16


def driver_at(ref: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:app/ingest/driver.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "base_driver.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("base_driver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def statements_with(module: ModuleType, dialect: object) -> WriteStatements:
    """build_statements, compiling with the given driver's compile_for."""
    original = statement_module.compile_for
    statement_module.compile_for = module.compile_for
    try:
        return build_statements(dialect)  # type: ignore[arg-type]
    finally:
        statement_module.compile_for = original


def intakes(family: Family, count: int, prefix: str) -> list[Intake]:
    framed = b"".join(submissions(family, count)).replace(b"0badcafe", prefix.encode())
    return [
        admit(Submission.from_wire(wire), suno_key=None) for _, _, wire in Unframer().feed(framed)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--family", action="append", choices=[f.provider for f in FAMILIES])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--mark", action="store_true", help="a zlib.adler32 call before phases")
    args = parser.parse_args()
    drivers = {"base": driver_at(args.base), "head": driver}
    for family in FAMILIES:
        if args.family and family.provider not in args.family:
            continue
        with tempfile.TemporaryDirectory(dir="/dev/shm") as workdir:
            settings = Settings(database_url=f"sqlite:///{workdir}/db")
            upgrade_to_head(settings)
            engine = create_sync_engine(settings)
            compiled = {
                name: statements_with(module, engine.dialect) for name, module in drivers.items()
            }
            phases = [
                (name, intakes(family, BATCH * args.batches, f"{2 * round_ + turn:08x}"))
                for round_ in range(args.rounds + 1)
                for turn, name in enumerate(("base", "head") if round_ % 2 else ("head", "base"))
            ]
            spent: list[float] = []
            for number, (name, batch) in enumerate(phases):
                if args.mark:
                    zlib.adler32(f"{number} {name}".encode())
                began = time.process_time()
                for start in range(0, len(batch), BATCH):
                    with engine.connect() as connection, connection.begin():
                        cursor = drivers[name].Cursor(connection)
                        sql = compiled[name]
                        tx = begin(cursor, sql, timeout_ms=60_000)
                        store_batch(cursor, sql, batch[start : start + BATCH], tx=tx)
                        cursor.close()
                spent.append((time.process_time() - began) / len(batch) * 1e6)
            if args.mark:
                zlib.adler32(b"end")
            engine.dispose()
        rounds = [
            dict(zip([phases[i][0], phases[i + 1][0]], spent[i : i + 2], strict=True))
            for i in range(2, len(phases), 2)
        ]
        ratios = [r["head"] / r["base"] for r in rounds]
        print(
            f"{family.provider:18} store µs a delivery: {args.base} "
            f"{statistics.median(r['base'] for r in rounds):.1f}, head "
            f"{statistics.median(r['head'] for r in rounds):.1f}; head/{args.base} median "
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}, "
            f"{len(ratios)} rounds); phases: {' '.join(name for name, _ in phases)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
