"""Prometheus metrics: what operators alert on.

Each application has its own registry (tests build many applications in one process). Under
`stemhook serve --workers N` the worker processes share a prometheus multiprocess directory,
so that a scrape, answered by whichever worker, counts for the whole service.

A callback's counts are kept in plain Python (~1.7 us a callback) and handed to
prometheus_client later, many callbacks at once: its counters and histograms take a lock for
every increment, and in multiprocess mode also call getpid() and write to a shared file. With one
process, the hand-over waits for the next scrape, which is the only reader. With several, a
worker hands over at the end of its event loop's turn, so that a scrape answered by another
worker sees the callbacks answered before it.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.ingest.intake import Outcome, Receipt
from app.providers.model import FINAL_STATES

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_SIZE_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class BatchedHistogram(Histogram):
    """A Histogram that also takes many observations at once, counted by bucket.

    prometheus_client has no public way to do this; the bucket and sum values are the ones its
    own observe() increments. tests/test_metrics.py checks that the exposition is the same as
    observing one by one, so a change in those internals fails there rather than in production.
    """

    def observe_counted(self, counts: list[int], total: float) -> None:
        """counts[i]: observations in the i-th bucket (the last: above every bound)."""
        self._sum.inc(total)
        for bucket, count in zip(self._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


@dataclass(slots=True)
class _PendingHistogram:
    histogram: BatchedHistogram
    bounds: tuple[float, ...]  # the finite ones; bisect puts anything above them in the last
    counts: list[int] = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, amount: float) -> None:
        # bisect_left: the first bucket whose bound is >= amount, as Histogram.observe's "<=".
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def hand_over(self) -> None:
        if any(self.counts):
            self.histogram.observe_counted(self.counts, self.total)
            self.counts = [0] * len(self.counts)
            self.total = 0.0


@dataclass(slots=True)
class Metrics:
    registry: CollectorRegistry
    deliveries: Counter
    jobs_finished: Counter
    ingest_seconds: BatchedHistogram
    body_bytes: BatchedHistogram
    database_errors: Counter
    _counts: Tally[tuple[Counter, tuple[str, ...]]] = field(default_factory=Tally)
    # Labelled counters by their labels: labels() checks and locks on every call (~1 us).
    _children: dict[tuple[Counter, tuple[str, ...]], Counter] = field(default_factory=dict)
    _latencies: _PendingHistogram = field(init=False)
    _sizes: _PendingHistogram = field(init=False)
    # Several processes count into shared files: hand over at the end of each loop turn.
    _shared: bool = field(default_factory=lambda: MULTIPROCESS_DIR in os.environ)
    _handover_due: bool = False

    def __post_init__(self) -> None:
        self._latencies = _PendingHistogram(self.ingest_seconds, _LATENCY_BUCKETS)
        self._sizes = _PendingHistogram(self.body_bytes, _SIZE_BUCKETS)

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            deliveries=Counter(
                "stemhook_deliveries",
                "Callback deliveries stored, by provider and outcome.",
                ["provider", "outcome"],
                registry=registry,
            ),
            jobs_finished=Counter(
                "stemhook_jobs_finished",
                "Jobs that reached a final state, by provider and state.",
                ["provider", "state"],
                registry=registry,
            ),
            ingest_seconds=BatchedHistogram(
                "stemhook_ingest_seconds",
                "From the arrival of a callback to its answer, stored or refused.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            body_bytes=BatchedHistogram(
                "stemhook_body_bytes",
                "Size of the callback bodies read.",
                buckets=_SIZE_BUCKETS,
                registry=registry,
            ),
            database_errors=Counter(
                "stemhook_database_errors",
                "Writes the database could not take in time or that found too many waiting"
                " (answered 503), or that it refused (kept orphaned).",
                ["kind"],
                registry=registry,
            ),
        )

    def body_read(self, size: int) -> None:
        self._sizes.observe(size)
        self._hand_over_soon()

    def answered(self, seconds: float) -> None:
        self._latencies.observe(seconds)
        self._hand_over_soon()

    def unavailable(self) -> None:
        self._count(self.database_errors, "unavailable")

    def overloaded(self) -> None:
        self._count(self.database_errors, "overloaded")

    def stored(self, receipt: Receipt) -> None:
        # Members, not their .value: they are str already, and .value runs Python code.
        self._count(self.deliveries, receipt.provider or "unknown", receipt.outcome)
        if receipt.outcome is Outcome.ORPHANED:
            self._count(self.database_errors, "refused")
        for job in receipt.jobs:
            if not job.duplicate and job.state in FINAL_STATES:
                self._count(self.jobs_finished, job.provider, job.state)

    def exposition(self) -> bytes:
        self.hand_over()
        if self._shared:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
            return generate_latest(merged)
        return generate_latest(self.registry)

    def hand_over(self) -> None:
        """Give prometheus_client what was counted since the last time."""
        self._handover_due = False
        for key, count in self._counts.items():
            child = self._children.get(key)
            if child is None:
                counter, labels = key
                child = self._children[key] = counter.labels(*labels)
            child.inc(count)
        self._counts.clear()
        self._latencies.hand_over()
        self._sizes.hand_over()

    def _count(self, counter: Counter, *labels: str) -> None:
        self._counts[counter, labels] += 1
        self._hand_over_soon()

    def _hand_over_soon(self) -> None:
        if self._shared and not self._handover_due:
            self._handover_due = True
            asyncio.get_running_loop().call_soon(self.hand_over)
