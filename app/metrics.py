"""Prometheus metrics: what operators alert on.

Each application has its own registry (tests build many applications in one process). Under
`stemhook serve --workers N` the worker processes share a prometheus multiprocess directory,
so that a scrape, answered by whichever worker, counts for the whole service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.ingest.intake import Outcome, Receipt
from app.providers.model import FINAL_STATES

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_SIZE_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    deliveries: Counter
    jobs_finished: Counter
    ingest_seconds: Histogram
    body_bytes: Histogram
    database_errors: Counter
    # Labelled counters by their labels: prometheus_client's labels() checks and locks on every
    # call (~1 us each, two a callback in the web process); the children it returns never change.
    _children: dict[tuple[Counter, str, str], Counter] = field(default_factory=dict)

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
            ingest_seconds=Histogram(
                "stemhook_ingest_seconds",
                "From the arrival of a callback to its answer, stored or refused.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            body_bytes=Histogram(
                "stemhook_body_bytes",
                "Size of the callback bodies read.",
                buckets=_SIZE_BUCKETS,
                registry=registry,
            ),
            database_errors=Counter(
                "stemhook_database_errors",
                "Writes the database could not take (answered 503) or refused (kept orphaned).",
                ["kind"],
                registry=registry,
            ),
        )

    def stored(self, receipt: Receipt) -> None:
        provider = receipt.provider.value if receipt.provider else "unknown"
        self._child(self.deliveries, provider, receipt.outcome.value).inc()
        if receipt.outcome is Outcome.ORPHANED:
            self.database_errors.labels("refused").inc()
        for job in receipt.jobs:
            if not job.duplicate and job.state in FINAL_STATES:
                self._child(self.jobs_finished, job.provider.value, job.state.value).inc()

    def _child(self, counter: Counter, first: str, second: str) -> Counter:
        key = (counter, first, second)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(first, second)
        return child

    def exposition(self) -> bytes:
        if MULTIPROCESS_DIR in os.environ:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
            return generate_latest(merged)
        return generate_latest(self.registry)
