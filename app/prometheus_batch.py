"""prometheus_client's Histogram given many observations at once: the one place that touches
its internals (its public API observes one amount at a time).

Used only with several workers, where every increment also takes a lock and writes to a shared
file: observing each amount instead of a loop turn's counts by bucket more than doubled the
metrics' cost per callback (docs/decisions/, public APIs and adapters). prometheus-client is
pinned to the minor version this was written against (pyproject.toml), and tests/test_metrics.py
fails when the internals move: the exposition must equal observing one by one.
"""

from __future__ import annotations

from prometheus_client import Histogram


def observe_counted(histogram: Histogram, counts: list[int], total: float) -> None:
    """counts[i]: observations in the i-th bucket (the last: above every bound); total: their sum.

    The values are the ones Histogram.observe increments, an amount's sum and its bucket."""
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
