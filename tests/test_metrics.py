"""The counts kept in plain Python are exposed exactly as prometheus_client's own metrics would
expose them, observed one by one; with several workers, prometheus_client's own metrics count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from app.ingest.intake import JobReceipt, Outcome, Receipt
from app.metrics import _LATENCY_BUCKETS, _SIZE_BUCKETS, MULTIPROCESS_DIR, Metrics
from app.prometheus_batch import observe_counted
from app.providers.model import Provider, State
from tests.test_observability import samples

# The bounds themselves are where "<=" and a wrong bisect would part.
_amounts = st.one_of(
    st.sampled_from(_LATENCY_BUCKETS),
    st.floats(min_value=0, max_value=10, allow_nan=False),
)
_sizes = st.one_of(st.sampled_from(_SIZE_BUCKETS), st.integers(min_value=0, max_value=1 << 23))
_outcomes = st.sampled_from([Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.ORPHANED])


def _receipt(number: int, outcome: Outcome) -> Receipt:
    lab = Provider.MEDIA_LAB
    job = JobReceipt(provider=lab, job_id=f"j{number}", state=State.SUCCEEDED, duplicate=False)
    if outcome is Outcome.ORPHANED:
        return Receipt(delivery_id=number, outcome=outcome)
    return Receipt(delivery_id=number, outcome=outcome, provider=lab, jobs=(job,))


def _by_key(exposition: bytes) -> tuple[set[object], dict[object, float]]:
    """Every sample's key, and the values of those that are not creation times."""
    counted = samples(exposition.decode())
    values = {key: value for key, value in counted.items() if not key[0].endswith("_created")}
    return set(counted), values


@given(
    batches=st.lists(
        st.lists(st.tuples(_amounts, _sizes, _outcomes), max_size=30), min_size=1, max_size=4
    )
)
def test_counted_in_plain_python_equals_prometheus_clients_metrics_observed_one_by_one(
    batches: list[list[tuple[float, int, Outcome]]],
) -> None:
    metrics = Metrics.create()
    registry = CollectorRegistry()
    latency = Histogram(
        "stemhook_ingest_seconds",
        "From the arrival of a callback to its answer, stored or refused.",
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )
    size = Histogram(
        "stemhook_body_bytes",
        "Size of the callback bodies read.",
        buckets=_SIZE_BUCKETS,
        registry=registry,
    )
    deliveries = Counter(
        "stemhook_deliveries",
        "Callback deliveries stored, by provider and outcome.",
        ["provider", "outcome"],
        registry=registry,
    )
    finished = Counter(
        "stemhook_jobs_finished",
        "Jobs that reached a final state, by provider and state.",
        ["provider", "state"],
        registry=registry,
    )
    errors = Counter(
        "stemhook_database_errors",
        "Writes the database could not take (answered 503) or refused (kept orphaned).",
        ["kind"],
        registry=registry,
    )
    for batch in batches:
        for number, (amount, body_size, outcome) in enumerate(batch):
            receipt = _receipt(number, outcome)
            metrics.answered(amount)
            metrics.body_read(body_size)
            metrics.stored(receipt)
            latency.observe(amount)
            size.observe(body_size)
            deliveries.labels(receipt.provider or "unknown", outcome).inc()
            if receipt.jobs:
                finished.labels(Provider.MEDIA_LAB, State.SUCCEEDED).inc()
            if outcome is Outcome.ORPHANED:
                errors.labels("refused").inc()
        metrics.exposition()  # a scrape between batches counts nothing twice

    got_keys, got = _by_key(metrics.exposition())
    want_keys, want = _by_key(generate_latest(registry))
    assert got_keys == want_keys
    # approx: the sum is added up in another order; the counts are small integers, exact.
    assert got == pytest.approx(want)


@given(amounts=st.lists(_amounts, max_size=30))
def test_counts_handed_over_by_bucket_equal_observing_one_by_one(amounts: list[float]) -> None:
    """The guard of app/prometheus_batch.py: it fails, loudly, when the internals move."""
    batched, one_by_one = CollectorRegistry(), CollectorRegistry()
    histograms = [
        Histogram("seconds", "Seconds.", buckets=_LATENCY_BUCKETS, registry=registry)
        for registry in (batched, one_by_one)
    ]
    bounds = (*_LATENCY_BUCKETS, float("inf"))
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[next(index for index, bound in enumerate(bounds) if amount <= bound)] += 1
        histograms[1].observe(amount)

    observe_counted(histograms[0], counts, sum(amounts))

    got_keys, got = _by_key(generate_latest(batched))
    want_keys, want = _by_key(generate_latest(one_by_one))
    assert got_keys == want_keys
    assert got == pytest.approx(want)


def test_a_scrape_sees_what_is_pending_without_a_hand_over() -> None:
    metrics = Metrics.create()
    lab = Provider.MEDIA_LAB
    finished = JobReceipt(provider=lab, job_id="a", state=State.SUCCEEDED, duplicate=False)
    again = JobReceipt(provider=lab, job_id="a", state=State.SUCCEEDED, duplicate=True)
    metrics.stored(Receipt(delivery_id=1, outcome=Outcome.ACCEPTED, provider=lab, jobs=(finished,)))
    metrics.stored(Receipt(delivery_id=2, outcome=Outcome.DUPLICATE, provider=lab, jobs=(again,)))
    metrics.stored(Receipt(delivery_id=3, outcome=Outcome.ORPHANED))
    metrics.body_read(5000)

    counted = samples(metrics.exposition().decode())
    provider = ("provider", "tencent-media-lab")
    assert counted[("stemhook_deliveries_total", (("outcome", "accepted"), provider))] == 1
    assert counted[("stemhook_deliveries_total", (("outcome", "duplicate"), provider))] == 1
    unknown = ("provider", "unknown")
    assert counted[("stemhook_deliveries_total", (("outcome", "orphaned"), unknown))] == 1
    assert counted[("stemhook_jobs_finished_total", (provider, ("state", "succeeded")))] == 1
    assert counted[("stemhook_database_errors_total", (("kind", "refused"),))] == 1
    assert counted[("stemhook_body_bytes_bucket", (("le", "16384.0"),))] == 1
    assert counted[("stemhook_body_bytes_bucket", (("le", "4096.0"),))] == 0
    # A second scrape counts nothing twice.
    assert samples(metrics.exposition().decode()) == counted


# prometheus_client picks its multiprocess values when it is imported: a process of its own.
_TWO_SCRAPES = """
import asyncio
from app.ingest.intake import Outcome, Receipt
from app.metrics import Metrics

async def main() -> None:
    metrics = Metrics.create()
    for amount in (0.0005, 0.001, 0.003, 7.0):
        metrics.answered(amount)
    metrics.body_read(5000)
    metrics.stored(Receipt(delivery_id=1, outcome=Outcome.ORPHANED))
    metrics.exposition()
    metrics.stored(Receipt(delivery_id=2, outcome=Outcome.ORPHANED))
    await asyncio.sleep(0)  # the end of the loop's turn hands the second one over
    print(Metrics.create().exposition().decode())  # as another worker's scrape reads it

asyncio.run(main())
"""


def test_with_several_workers_the_shared_files_hold_every_count(tmp_path: Path) -> None:
    env = {**os.environ, MULTIPROCESS_DIR: str(tmp_path)}
    exposition = subprocess.run(
        [sys.executable, "-c", _TWO_SCRAPES], env=env, capture_output=True, text=True, check=True
    ).stdout

    counted = samples(exposition)
    unknown = ("provider", "unknown")
    assert counted[("stemhook_deliveries_total", (("outcome", "orphaned"), unknown))] == 2
    assert counted[("stemhook_database_errors_total", (("kind", "refused"),))] == 2
    buckets = {
        le: counted[("stemhook_ingest_seconds_bucket", (("le", le),))]
        for le in ("0.001", "0.0025", "0.005", "5.0", "+Inf")
    }
    assert buckets == {"0.001": 2, "0.0025": 2, "0.005": 3, "5.0": 3, "+Inf": 4}
    assert counted[("stemhook_ingest_seconds_sum", ())] == pytest.approx(7.0045)
    assert counted[("stemhook_body_bytes_bucket", (("le", "16384.0"),))] == 1
