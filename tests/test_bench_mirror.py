"""bench/mirror's report: throughput, latency beside a download, and ingest beside downloads."""

from __future__ import annotations

from bench.beside import Beside, Run
from bench.ingest.databases import Backend
from bench.ingest.facts import Context
from bench.ingest.hiccups import Machine
from bench.ingest.report import MIRROR
from bench.ingest.wrk import Load, Paced
from bench.mirror.__main__ import QUICK
from bench.mirror.report import Outcome, section
from bench.mirror.runs import GIB, KINDS, MIB, FileSet, Latency, Throughput, Window


def test_the_section_shows_ingest_while_files_stream_in_beside_the_noise() -> None:
    k = KINDS
    runs = (
        Run(k.busy, 0, _load(450), done=500.0),
        Run(k.idle_a, 0, _load(500), done=0.0),
        Run(k.idle_b, 0, _load(500), done=0.0),
    )
    window = Window(Paced(100, 1, 2, 3, 4), Machine(1.0, 0.0, 0.0, 1.0))
    outcome = Outcome(
        Backend.SQLITE,
        (Throughput(FileSet("large", 2, 64 * MIB), 2.0, 1.0, 0.1, 0.01),),
        Latency(window, window, GIB, 1),
        Beside(KINDS, runs),
    )

    text = section([outcome], QUICK, Context("cmd", "abc", "today", "2 cores", ("start: 0",)))

    assert text.startswith(MIRROR.begin) and text.endswith(MIRROR.end + "\n")
    assert "### Ingest while files stream in" in text
    assert "| backend | idle req/s | streaming req/s | streaming ÷ idle |" in text
    assert "| SQLite | 500 | 450 | 0.900 (0.900–0.900) | 1.000 (1.000–1.000) | 100.0 | 0 |" in text


def _load(rate: float) -> Load:
    return Load(requests=int(rate * 5), duration_s=5, p50_ms=1, p90_ms=2, p99_ms=3, max_ms=4)
