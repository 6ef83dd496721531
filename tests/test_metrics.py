"""The counts kept in plain Python reach prometheus_client exactly as if observed one by one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from app.ingest.intake import JobReceipt, Outcome, Receipt
from app.metrics import _LATENCY_BUCKETS, Metrics
from app.providers.model import Provider, State
from tests.test_observability import samples

# The bounds themselves are where "<=" and a wrong bisect would part.
_amounts = st.one_of(
    st.sampled_from(_LATENCY_BUCKETS),
    st.floats(min_value=0, max_value=10, allow_nan=False),
)


def _without_created(exposition: bytes) -> dict[object, float]:
    return {
        key: value
        for key, value in samples(exposition.decode()).items()
        if not key[0].endswith("_created")
    }


@given(batches=st.lists(st.lists(_amounts, max_size=30), max_size=4))
def test_latencies_handed_over_in_batches_equal_observing_one_by_one(
    batches: list[list[float]],
) -> None:
    metrics = Metrics.create()
    expected_registry = CollectorRegistry()
    expected = Histogram(
        "stemhook_ingest_seconds",
        "From the arrival of a callback to its answer, stored or refused.",
        buckets=_LATENCY_BUCKETS,
        registry=expected_registry,
    )
    for batch in batches:
        for amount in batch:
            metrics.answered(amount)
            expected.observe(amount)
        metrics.hand_over()

    got = _without_created(metrics.exposition())
    want = _without_created(generate_latest(expected_registry))
    # approx: the sum is added up in another order; the counts are small integers, exact.
    assert {key: got[key] for key in want} == pytest.approx(want)


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
    # Handed over once: a second scrape counts nothing twice.
    assert samples(metrics.exposition().decode()) == counted
