"""A poller's claim reads the first rows of one provider's range of the (provider, run_after)
index and nothing else: no job, no other provider's watches, no sort of everything due. Found
through the job, the claim walked every due watch and probed its job (PostgreSQL: ~490 ms of
server CPU a poll with 10,000 watches due, bench/polling)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text

from app import models
from app.polling.watches import DEFAULT_WATCH
from app.polling.worker import WATCHES, _of
from app.providers.model import Provider
from app.work.queue import claim
from tests.conftest import Backend

DUE_EACH = 1_000
LIMIT = 4
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(engine: Engine) -> None:
    """DUE_EACH due watches of Suno jobs and as many of Media Lab jobs, the two interleaved by
    due time (a claim ordered by time alone would meet both), the statistics gathered."""
    jobs, watches = [], []
    for n in range(2 * DUE_EACH):
        provider = (Provider.SUNO, Provider.MEDIA_LAB)[n % 2]
        jobs.append(
            {
                "id": n + 1,
                "provider": provider.value,
                "job_id": f"j{n}",
                "kind": "unknown",
                "state": "submitted",
                "provider_state": "",
                "deliveries": 0,
                "first_received_at": AT,
                "last_received_at": AT,
            }
        )
        row = DEFAULT_WATCH.watch_row(job_pk=n + 1, provider=provider, heard_at=AT)
        watches.append(row | {"run_after": AT + timedelta(seconds=n)})
    with engine.begin() as connection:
        connection.execute(insert(models.Job), jobs)
        connection.execute(insert(models.JobWatch), watches)
        connection.execute(text("ANALYZE"))


def _claim_statement(engine: Engine) -> tuple[str, Any]:
    """The statement `claim` sends to the database, and its parameters (rolled back)."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            now = AT + timedelta(days=1)
            lease = timedelta(minutes=1)
            claimed = claim(
                connection,
                WATCHES,
                worker="w",
                now=now,
                lease=lease,
                limit=LIMIT,
                where=_of(Provider.SUNO),
            )
            assert sorted(row.job_pk for row in claimed) == [1, 3, 5, 7]  # the first due, Suno's
            transaction.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    (last,) = [item for item in sent if "job_watch" in item[0]]
    return last


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.postgres_only
def test_a_claim_on_postgresql_reads_only_the_rows_it_claims(
    backend: Backend, engine: Engine
) -> None:
    _fill(engine)
    statement, parameters = _claim_statement(engine)
    with engine.connect() as connection, connection.begin() as transaction:
        explained = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
        ).scalar_one()
        transaction.rollback()
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    nodes = list(_nodes(plan))
    assert not [node for node in nodes if node.get("Relation Name") == "job"], plan
    (chosen,) = [node for node in nodes if node.get("Subplan Name") == "CTE due"]
    scans = [node for node in _nodes(chosen) if node.get("Relation Name") == "job_watch"]
    assert [(scan["Index Name"], scan["Actual Rows"]) for scan in scans] == [
        ("ix_job_watch_provider_run_after", LIMIT)
    ], chosen
    assert not [node for node in _nodes(chosen) if node["Node Type"] == "Sort"], chosen


@pytest.mark.sqlite_only
def test_a_claim_on_sqlite_searches_one_providers_range_in_order(
    backend: Backend, engine: Engine
) -> None:
    _fill(engine)
    statement, parameters = _claim_statement(engine)
    with engine.connect() as connection:
        plan = [
            str(row[-1])
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ]
    assert any(
        "job_watch USING INDEX ix_job_watch_provider_run_after (provider=?" in step for step in plan
    ), plan
    # In index order: no sort of the due rows, and the job table is never read.
    assert not any("TEMP B-TREE" in step or " job " in f"{step} " for step in plan), plan
