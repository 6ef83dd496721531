"""Prometheus metrics: what operators alert on.

Each application has its own registry (tests build many applications in one process). Under
`stemhook serve --workers N` the worker processes share a prometheus multiprocess directory,
so that a scrape, answered by whichever worker, counts for the whole service.

A callback's counts are kept in plain Python (~1.7 us a callback): prometheus_client's counters
and histograms take a lock for every increment, and in multiprocess mode also call getpid() and
write to a shared file. With one process, a collector of our own reads them at each scrape, the
only reader. With several, they must reach the shared files, which only prometheus_client's own
metrics write: a worker hands them over at the end of its event loop's turn, many callbacks at
once (histograms through app/prometheus_batch.py), so that a scrape answered by another worker
sees the callbacks answered before it.

The output files are counted where their status changes, in the database, by whichever process
fetched them: each scrape reads the counts there (`file_gauges`), the same for every worker. So
are polls, which the background processes make (`poll_gauges`): the answers stored as deliveries
by provider and outcome, and the watches by provider and status.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from app.ingest.intake import Outcome, Receipt
from app.prometheus_batch import observe_counted
from app.providers.model import FINAL_STATES
from app.queries.files import FileCounts
from app.queries.polls import PollCounts

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_SIZE_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


# eq=False: hashed by identity, in C; a dataclass hashes its fields in Python, on every count.
@dataclass(frozen=True, slots=True, eq=False)
class _Family:
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # a histogram's finite bounds


DELIVERIES = _Family(
    "stemhook_deliveries",
    "Callback deliveries stored, by provider and outcome.",
    labels=("provider", "outcome"),
)
JOBS_FINISHED = _Family(
    "stemhook_jobs_finished",
    "Jobs that a delivery this service received brought to a final state, by provider and"
    " state (not those a poll answer finished).",
    labels=("provider", "state"),
)
DATABASE_ERRORS = _Family(
    "stemhook_database_errors",
    "Writes the database could not take in time or that found too many waiting"
    " (answered 503), or that it refused (kept orphaned).",
    labels=("kind",),
)
INGEST_SECONDS = _Family(
    "stemhook_ingest_seconds",
    "From the arrival of a callback to its answer, stored or refused.",
    buckets=_LATENCY_BUCKETS,
)
BODY_BYTES = _Family(
    "stemhook_body_bytes", "Size of the callback bodies read.", buckets=_SIZE_BUCKETS
)
_COUNTERS = (DELIVERIES, JOBS_FINISHED, DATABASE_ERRORS)
_HISTOGRAMS = (INGEST_SECONDS, BODY_BYTES)


class _Buckets:
    """A histogram's observations, counted by bucket in plain Python."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # the finite ones; bisect puts anything above them in the last
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        # bisect_left: the first bucket whose bound is >= amount, as Histogram.observe's "<=".
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount


Counts = Tally[tuple[_Family, tuple[str, ...]]]
Histograms = dict[_Family, _Buckets]


class _Local:
    """The collector of one process's counts, as prometheus_client's own metrics expose them."""

    def __init__(self, counts: Counts, histograms: Histograms) -> None:
        self.counts = counts
        self.histograms = histograms
        self.created = time.time()  # every series counts from here

    def collect(self) -> Iterator[Metric]:
        for family in _COUNTERS:
            counter = CounterMetricFamily(family.name, family.documentation, labels=family.labels)
            for (counted, labels), count in self.counts.items():
                if counted is family:
                    counter.add_metric(labels, count, created=self.created)
            yield counter
        for family, buckets in self.histograms.items():
            histogram = HistogramMetricFamily(family.name, family.documentation)
            bounds = [*map(floatToGoString, family.buckets), "+Inf"]
            cumulative = list(zip(bounds, accumulate(buckets.counts), strict=True))
            histogram.add_metric([], cumulative, buckets.total)
            histogram.add_sample(f"{family.name}_created", {}, self.created)
            yield histogram


class _Shared:
    """prometheus_client's own metrics, which write to the files the workers share."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counters = {
            family: Counter(family.name, family.documentation, family.labels, registry=registry)
            for family in _COUNTERS
        }
        self.histograms = {
            family: Histogram(
                family.name, family.documentation, buckets=family.buckets, registry=registry
            )
            for family in _HISTOGRAMS
        }
        # Labelled counters by their labels: labels() checks and locks on every call (~1 us).
        self.children: dict[tuple[_Family, tuple[str, ...]], Counter] = {}

    def take(self, counts: Counts, histograms: Histograms) -> None:
        """Adds what was counted to the shared files, and empties the counts."""
        for key, count in counts.items():
            child = self.children.get(key)
            if child is None:
                family, labels = key
                child = self.children[key] = self.counters[family].labels(*labels)
            child.inc(count)
        counts.clear()
        for family, buckets in histograms.items():
            if any(buckets.counts):
                observe_counted(self.histograms[family], buckets.counts, buckets.total)
                buckets.counts, buckets.total = [0] * len(buckets.counts), 0.0


class Metrics:
    __slots__ = ("registry", "_counts", "_histograms", "_shared", "_due")

    def __init__(self, *, shared: bool) -> None:
        self.registry = CollectorRegistry()
        self._counts: Counts = Tally()
        self._histograms: Histograms = {family: _Buckets(family.buckets) for family in _HISTOGRAMS}
        # One process: counted here and collected at each scrape; several: handed over.
        self._shared = _Shared(self.registry) if shared else None
        if self._shared is None:
            self.registry.register(_Local(self._counts, self._histograms))
        self._due = False  # a hand-over is scheduled

    @classmethod
    def create(cls) -> Metrics:
        return cls(shared=MULTIPROCESS_DIR in os.environ)

    def body_read(self, size: int) -> None:
        self._histograms[BODY_BYTES].observe(size)
        self._hand_over_soon()

    def answered(self, seconds: float) -> None:
        self._histograms[INGEST_SECONDS].observe(seconds)
        self._hand_over_soon()

    def unavailable(self) -> None:
        self._count(DATABASE_ERRORS, "unavailable")

    def overloaded(self) -> None:
        self._count(DATABASE_ERRORS, "overloaded")

    def stored(self, receipt: Receipt) -> None:
        # Members, not their .value: they are str already, and .value runs Python code.
        self._count(DELIVERIES, receipt.provider or "unknown", receipt.outcome)
        if receipt.outcome is Outcome.ORPHANED:
            self._count(DATABASE_ERRORS, "refused")
        for job in receipt.jobs:
            if not job.duplicate and job.state in FINAL_STATES:
                self._count(JOBS_FINISHED, job.provider, job.state)

    def exposition(self) -> bytes:
        if self._shared is None:
            return generate_latest(self.registry)
        self.hand_over()
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(merged)

    def hand_over(self) -> None:
        """Give prometheus_client's shared metrics what was counted since the last time."""
        self._due = False
        if self._shared is not None:
            self._shared.take(self._counts, self._histograms)

    def _count(self, family: _Family, *labels: str) -> None:
        self._counts[family, labels] += 1
        self._hand_over_soon()

    def _hand_over_soon(self) -> None:
        if self._shared is not None and not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self.hand_over)


class _Read:
    """A collector of figures read once, for one scrape."""

    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def file_gauges(counts: FileCounts) -> bytes:
    """The exposition of the output files' counts, to follow `Metrics.exposition`'s."""
    files = GaugeMetricFamily(
        "stemhook_files", "Output files stemhook keeps a copy of, by status.", labels=("status",)
    )
    for status, count in counts.by_status.items():
        files.add_metric([status.value], count)
    stored = GaugeMetricFamily(
        "stemhook_file_bytes_stored", "Bytes of the output files stored.", counts.stored_bytes
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Read(files, stored))
    return generate_latest(registry)


def poll_gauges(counts: PollCounts) -> bytes:
    """The exposition of the polls' counts, to follow `Metrics.exposition`'s."""
    answers = GaugeMetricFamily(
        "stemhook_poll_answers",
        "Providers' answers to polls stored, by provider and outcome (accepted: the job changed;"
        " duplicate: no news; rejected: an error answer).",
        labels=("provider", "outcome"),
    )
    for provider, outcome, count in counts.answers:
        answers.add_metric([provider, outcome], count)
    watches = GaugeMetricFamily(
        "stemhook_watches",
        "Watches of unfinished jobs waiting for their first poll, polling, or given up.",
        labels=("provider", "status"),
    )
    failing = GaugeMetricFamily(
        "stemhook_watches_failing",
        "Of those, the watches whose last poll failed (no answer, an HTTP error, a wrong key).",
        labels=("provider", "status"),
    )
    for provider, status, count, failed in counts.watches:
        watches.add_metric([provider, status], count)
        failing.add_metric([provider, status], failed)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Read(answers, watches, failing))
    return generate_latest(registry)
