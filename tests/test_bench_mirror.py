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
from bench.mirror.runs import KINDS, MIB, FileSet, Throughput


def test_the_section_shows_latency_and_ingest_while_files_stream_in_beside_the_noise() -> None:
    k = KINDS
    runs = (
        Run(k.busy, 0, _load(450), done=500.0),
        Run(k.idle_a, 0, _load(500), done=0.0),
        Run(k.idle_b, 0, _load(500), done=0.0),
    )
    machine = Machine(1.0, 0.0, 0.0, 1.0)
    paced = (
        Run(k.busy, 0, _paced(p50_ms=3, p99_ms=30), done=100.0, machine=machine),
        Run(k.idle_a, 0, _paced(p50_ms=2, p99_ms=20), done=0.0, machine=machine),
        Run(k.idle_b, 0, _paced(p50_ms=2, p99_ms=30), done=0.0, machine=machine),
    )
    outcome = Outcome(
        Backend.SQLITE,
        (Throughput(FileSet("large", 2, 64 * MIB), 2.0, 1.0, 0.1, 0.01),),
        Beside(KINDS, paced),
        Beside(KINDS, runs),
    )

    text = section([outcome], QUICK, Context("cmd", "abc", "today", "2 cores", ("start: 0",)))

    assert text.startswith(MIRROR.begin) and text.endswith(MIRROR.end + "\n")
    assert "### Callback latency while a file streams in" in text
    assert (
        "| backend | idle p99 ms | streaming p99 ms | p99 streaming ÷ idle |"
        " p99 idle b ÷ idle a (noise) | idle p50 ms | streaming p50 ms | p50 streaming ÷ idle |"
        " p50 idle b ÷ idle a (noise) | MiB/s during streaming | MiB during idle |"
    ) in text
    assert (
        "| SQLite | 25.0 | 30.0 | 1.200 (1.200–1.200) | 1.500 (1.500–1.500) | 2.0 | 3.0 |"
        " 1.500 (1.500–1.500) | 1.000 (1.000–1.000) | 20.0 | 0 |"
    ) in text
    assert (
        "| SQLite | 1 | 30.0 | 20.0 | 30.0 | 1.200 | 3.0 | 2.0 | 2.0 | 1.500"
        " | 1.0 | 1.0 | 100 | 0 |"
    ) in text
    assert "### Ingest while files stream in" in text
    assert "| backend | idle req/s | streaming req/s | streaming ÷ idle |" in text
    assert "| SQLite | 500 | 450 | 0.900 (0.900–0.900) | 1.000 (1.000–1.000) | 100.0 | 0 |" in text


def _load(rate: float) -> Load:
    return Load(requests=int(rate * 5), duration_s=5, p50_ms=1, p90_ms=2, p99_ms=3, max_ms=4)


def _paced(*, p50_ms: float, p99_ms: float) -> Load:
    paced = Paced(1500, p50_ms=p50_ms, p90_ms=p99_ms / 2, p99_ms=p99_ms, max_ms=2 * p99_ms)
    return Load(1500, duration_s=5, p50_ms=1, p90_ms=2, p99_ms=3, max_ms=4, paced=paced)
