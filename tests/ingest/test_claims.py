"""An unsigned callback's claim that a job is final, held where STEMHOOK_CONFIRM_BY_POLL names its
provider (docs/decisions/0019): nothing of it merged, the job registered in its place where new
and its watch due now, the claim judged by the database once the provider's own word makes the
job final (or at once where it is), on both databases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, Engine, select, update

from app import models
from app.ingest.admission import admit
from app.ingest.driver import Cursor
from app.ingest.intake import Intake, Outcome, Receipt
from app.ingest.statements import WriteStatements, build_statements
from app.ingest.store import store_batch
from app.polling.watches import DEFAULT_WATCH
from app.providers.model import Provider
from tests.api.payloads import ci_json, media_lab_list, suno_json
from tests.ingest.batches import MIRROR_ON, stored, transaction_number, wait_for_a_lock_wait
from tests.ingest.submissions import detected, polled
from tests.polling.conftest import answer_of

HEARD = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CI, MEDIA_LAB, SUNO = Provider.TENCENT_CI, Provider.MEDIA_LAB, Provider.SUNO
CONFIRM = frozenset({CI, MEDIA_LAB})


def intake(body: bytes, *, at: datetime, confirm: frozenset[Provider]) -> Intake:
    return admit(detected(body, received_at=at), suno_key=None, max_jobs=10, confirm=confirm)


def store(
    engine: Engine, *bodies: bytes, at: datetime = HEARD, confirm: frozenset[Provider] = CONFIRM
) -> list[Receipt]:
    """Callbacks received at `at`, stored in one transaction with `confirm` as the setting."""
    with engine.begin() as connection:
        return stored(
            connection, [intake(body, at=at, confirm=confirm) for body in bodies], confirm=confirm
        )


def answer(
    engine: Engine, *answers: tuple[Provider, str, str], confirm: frozenset[Provider] = CONFIRM
) -> list[Receipt]:
    """Poll answers (provider, fixture, job id), stored in one transaction."""
    intakes = [_answered(provider, fixture, job_id) for provider, fixture, job_id in answers]
    with engine.begin() as connection:
        return stored(connection, intakes, confirm=confirm)


def job(engine: Engine, job_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        table = models.Job.__table__
        row = connection.execute(select(table).where(table.c.job_id == job_id)).one()
    return dict(row._mapping)


def watch(engine: Engine, job_id: str) -> dict[str, Any]:
    watches, jobs = models.JobWatch, models.Job
    with engine.connect() as connection:
        row = connection.execute(
            select(watches.status, watches.run_after, watches.give_up_at, watches.provider)
            .join(jobs, jobs.id == watches.job_pk)
            .where(jobs.job_id == job_id)
        ).one()
    return dict(row._mapping)


def delivery(engine: Engine, delivery_id: int) -> tuple[str, str | None]:
    with engine.connect() as connection:
        row = connection.execute(
            select(models.Delivery.outcome, models.Delivery.error).where(
                models.Delivery.id == delivery_id
            )
        ).one()
    return (row.outcome, row.error)


def links(engine: Engine, delivery_id: int) -> dict[str, tuple[bool, str | None]]:
    link, jobs = models.DeliveryJob, models.Job
    with engine.connect() as connection:
        rows = connection.execute(
            select(jobs.job_id, link.duplicate, link.claimed_state)
            .join(jobs, jobs.id == link.job_pk)
            .where(link.delivery_id == delivery_id)
        )
        return {row.job_id: (row.duplicate, row.claimed_state) for row in rows}


def counts(engine: Engine) -> tuple[int, int]:
    """Events and files: what only a merge writes."""
    with engine.connect() as connection:
        events = connection.execute(select(models.JobEvent.id)).all()
        files = connection.execute(select(models.JobFile.id)).all()
    return len(events), len(files)


def media_lab_jobs(states: dict[str, int]) -> bytes:
    """A Media Lab listJobsResponse listing each job in its own state."""
    jobs = [
        {"id": job_id, "state": state, "timing": {"createdAt": "0"}, "inputs": [], "outputs": []}
        for job_id, state in states.items()
    ]
    return orjson.dumps({"listJobsResponse": {"jobs": jobs}})


def test_a_claim_about_an_unknown_job_registers_it_and_makes_it_due_without_merging(
    engine: Engine,
) -> None:
    forged = ci_json("j-1", "Success", user_data="forged", outputs=("out/a.mp3", "out/b.mp3"))

    [receipt] = store(engine, forged)

    assert receipt.outcome is Outcome.UNCONFIRMED
    assert [(r.job_id, r.state.value, r.duplicate) for r in receipt.jobs] == [
        ("j-1", "submitted", True)
    ]
    assert delivery(engine, receipt.delivery_id) == ("unconfirmed", None)
    assert links(engine, receipt.delivery_id) == {"j-1": (True, "succeeded")}
    held = job(engine, "j-1")
    # As PUT .../expect registers a job: the provider's own first word will replace all of it.
    assert (held["state"], held["kind"], held["provider_state"], held["deliveries"]) == (
        "submitted",
        "unknown",
        "",
        0,
    )
    assert (held["user_data"], held["outputs"], held["finished_at"]) == (None, None, None)
    assert (held["last_delivery_id"], held["state_delivery_id"]) == (None, None)
    assert held["registered_tx"] is not None and held["registered_tx"] == held["last_tx"]
    assert held["first_received_at"] == held["last_received_at"] == HEARD
    assert watch(engine, "j-1") == {
        "status": "polling",
        "run_after": HEARD,
        "give_up_at": HEARD + DEFAULT_WATCH.give_up_after,
        "provider": "tencent-ci",
    }
    assert counts(engine) == (0, 0)


def test_a_claim_about_an_unfinished_job_makes_its_watch_due_now_and_changes_nothing_else(
    engine: Engine,
) -> None:
    [running] = store(engine, ci_json("j-1", "Running"), ci_json("j-2", "Running"))[:1]
    with engine.begin() as connection:  # j-2's watch was given up on
        connection.execute(
            update(models.JobWatch)
            .where(
                models.JobWatch.job_pk
                == select(models.Job.id).where(models.Job.job_id == "j-2").scalar_subquery()
            )
            .values(status="gave_up", run_after=None)
        )
    before = job(engine, "j-1")
    later = HEARD + timedelta(minutes=2)

    receipts = store(engine, ci_json("j-1", "Success"), ci_json("j-2", "Failed"), at=later)

    assert [receipt.outcome for receipt in receipts] == [Outcome.UNCONFIRMED] * 2
    assert [receipt.jobs[0].state.value for receipt in receipts] == ["running", "running"]
    assert job(engine, "j-1") == before
    assert before["last_delivery_id"] == running.delivery_id
    for job_id in ("j-1", "j-2"):
        due = watch(engine, job_id)
        assert (due["status"], due["run_after"]) == ("polling", later)
        assert due["give_up_at"] == HEARD + DEFAULT_WATCH.give_up_after
    assert counts(engine) == (2, 0)  # the two jobs' creation only


def test_a_claim_about_a_final_job_is_judged_at_once(engine: Engine) -> None:
    # Believed as they came, before the setting named CI.
    store(engine, ci_json("same", "Success"), ci_json("other", "Failed"), confirm=frozenset())
    before = job(engine, "other")

    same, other = store(engine, ci_json("same", "Success"), ci_json("other", "Success"))

    assert (same.outcome, same.error) == (Outcome.DUPLICATE, None)
    reason = "the provider says failed; the callback claimed succeeded (job other)"
    assert (other.outcome, other.error) == (Outcome.REJECTED, reason)
    assert delivery(engine, same.delivery_id) == ("duplicate", None)
    assert delivery(engine, other.delivery_id) == ("rejected", reason)
    assert links(engine, other.delivery_id) == {"other": (True, "succeeded")}
    assert job(engine, "other") == before


def test_the_delivery_that_finishes_a_job_judges_the_claims_held_about_it(engine: Engine) -> None:
    true, forged, again = store(
        engine,
        ci_json("j-true", "Success"),
        ci_json("j-forged", "Success", outputs=("out/evil.mp3",)),
        ci_json("j-true", "Success", end="2024-01-01T10:05:00+0800"),
    )
    assert {true.outcome, forged.outcome, again.outcome} == {Outcome.UNCONFIRMED}

    answered = answer(
        engine,
        (CI, "describe_media_job_success.xml", "j-true"),
        (CI, "describe_media_job_failed.xml", "j-forged"),
    )

    assert [receipt.outcome for receipt in answered] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert delivery(engine, true.delivery_id) == ("duplicate", None)
    assert delivery(engine, again.delivery_id) == ("duplicate", None)
    reason = "the provider says failed; the callback claimed succeeded (job j-forged)"
    assert delivery(engine, forged.delivery_id) == ("rejected", reason)
    # What the provider said, and nothing the forged callback said.
    failed = job(engine, "j-forged")
    assert (failed["state"], failed["error_code"], failed["user_data"]) == (
        "failed",
        "InvalidInput",
        "retry-3",
    )
    assert failed["state_delivery_id"] == answered[1].delivery_id
    assert (watch(engine, "j-true")["status"], watch(engine, "j-forged")["status"]) == (
        "done",
        "done",
    )


def test_claims_are_judged_only_where_the_finishing_batch_names_their_provider(
    engine: Engine,
) -> None:
    """Settings of the day: a claim held while the setting named CI, and whose job a later batch
    finishes after it stopped naming it, stays unconfirmed (listed, to replay)."""
    [held] = store(engine, ci_json("j-1", "Success"))

    answer(engine, (CI, "describe_media_job_success.xml", "j-1"), confirm=frozenset({SUNO}))

    assert job(engine, "j-1")["state"] == "succeeded"
    assert delivery(engine, held.delivery_id) == ("unconfirmed", None)


def test_a_callback_s_unfinished_jobs_merge_and_its_final_ones_are_held(engine: Engine) -> None:
    [mixed] = store(engine, media_lab_jobs({"ml-run": 2, "ml-done": 3}))

    assert mixed.outcome is Outcome.UNCONFIRMED
    assert {r.job_id: (r.state.value, r.duplicate) for r in mixed.jobs} == {
        "ml-run": ("running", False),
        "ml-done": ("submitted", True),
    }
    assert links(engine, mixed.delivery_id) == {
        "ml-run": (False, None),
        "ml-done": (True, "succeeded"),
    }
    assert job(engine, "ml-run")["deliveries"] == 1

    answer(engine, (MEDIA_LAB, "get_job_completed.json", "ml-done"))

    # Confirmed, and it did change a job (ml-run): accepted, not a duplicate.
    assert delivery(engine, mixed.delivery_id) == ("accepted", None)


def test_a_delivery_claiming_several_jobs_waits_for_all_and_any_one_rejects_it(
    engine: Engine,
) -> None:
    [both] = store(engine, media_lab_list(["x", "y"], state=3))
    [wrong] = store(engine, media_lab_list(["p", "q"], state=4))

    answer(engine, (MEDIA_LAB, "get_job_completed.json", "x"))
    assert delivery(engine, both.delivery_id) == ("unconfirmed", None)
    answer(engine, (MEDIA_LAB, "get_job_completed.json", "y"))
    assert delivery(engine, both.delivery_id) == ("duplicate", None)

    # q is still unfinished: p's answer contradicts the delivery already.
    answer(engine, (MEDIA_LAB, "get_job_completed.json", "p"))
    reason = "the provider says succeeded; the callback claimed failed (job p)"
    assert delivery(engine, wrong.delivery_id) == ("rejected", reason)
    answer(engine, (MEDIA_LAB, "get_job_completed.json", "q"))
    assert delivery(engine, wrong.delivery_id) == ("rejected", reason)


def test_one_batch_holding_and_finishing_a_job_judges_the_claim_by_the_batch_s_end(
    engine: Engine,
) -> None:
    claim = intake(ci_json("j-1", "Success"), at=HEARD, confirm=CONFIRM)
    answered = _answered(CI, "describe_media_job_failed.xml", "j-1")
    with engine.begin() as connection:
        held, _ = stored(connection, [claim, answered], confirm=CONFIRM)

    reason = "the provider says failed; the callback claimed succeeded (job j-1)"
    assert (held.outcome, held.error) == (Outcome.REJECTED, reason)
    assert [(r.job_id, r.state.value) for r in held.jobs] == [("j-1", "failed")]
    assert delivery(engine, held.delivery_id) == ("rejected", reason)


def test_signed_suno_callbacks_and_callbacks_of_providers_not_named_are_merged(
    engine: Engine,
) -> None:
    [suno, ci] = store(engine, suno_json("t-1"), ci_json("j-1", "Success"), confirm=frozenset())
    [named] = store(engine, suno_json("t-2"), confirm=frozenset({CI}))

    assert [r.outcome for r in (suno, ci, named)] == [Outcome.ACCEPTED] * 3
    assert job(engine, "t-2")["state"] == "succeeded"


class _Recording:
    """A DB-API cursor that notes the SQL of every statement it runs."""

    def __init__(self, cursor: Any, seen: list[str]) -> None:
        self._cursor, self._seen = cursor, seen

    def execute(self, sql: str, *args: Any) -> Any:
        self._seen.append(sql)
        return self._cursor.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._seen.append(sql)
        return self._cursor.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def _statements_run(
    connection: Connection,
    sql: WriteStatements,
    intakes: list[Intake],
    confirm: frozenset[Provider],
) -> list[str]:
    tx = transaction_number(connection)
    cursor = Cursor(connection)
    seen: list[str] = []
    cursor._cursor = _Recording(cursor._cursor, seen)  # the test's own spy on the driver
    try:
        store_batch(
            cursor, sql, intakes, tx=tx, mirror=MIRROR_ON, watch=DEFAULT_WATCH, confirm=confirm
        )
    finally:
        cursor.close()
    return seen


def test_without_the_setting_the_write_path_runs_only_the_statements_it_ran_before(
    engine: Engine,
) -> None:
    """The ingest benchmark's path pays nothing for the setting: with it off, a batch of every
    kind of delivery (final callbacks of every family, unfinished ones, one that finishes a job,
    a duplicate) runs only the statements that existed before it, whose SQL knows no claim."""
    sql = build_statements(engine.dialect)
    store(engine, ci_json("j-finish", "Running"), confirm=frozenset())
    bodies = [
        ci_json("j-1", "Success", outputs=("out/a.mp3",)),
        media_lab_list(["ml-1", "ml-2"], state=3),
        suno_json("t-1"),
        ci_json("j-2", "Running"),
        ci_json("j-finish", "Success"),
        ci_json("j-1", "Success"),
    ]
    intakes = [intake(body, at=HEARD, confirm=frozenset()) for body in bodies]
    with engine.begin() as connection:
        run = _statements_run(connection, sql, intakes, frozenset())

    before = [
        sql.begin,
        sql.lock_jobs,
        sql.claim_signature,
        sql.insert_delivery,
        sql.insert_delivery.batch and sql.insert_delivery.batch.new_ids,
        sql.mark_duplicate,
        sql.insert_job,
        sql.upsert_job,
        sql.insert_event,
        sql.insert_link,
        sql.insert_file,
        sql.insert_watch,
        sql.end_watch,
    ]
    known = {statement.sql for statement in before if statement}
    assert set(run) <= known
    assert {sql.end_watch.sql, sql.insert_watch.sql, sql.mark_duplicate.sql} <= set(run)
    assert not any("claimed_state" in statement for statement in known)


def test_with_the_setting_a_batch_holding_nothing_runs_no_statement_of_claims(
    engine: Engine,
) -> None:
    sql = build_statements(engine.dialect)
    claims = {
        statement.sql
        for statement in (
            sql.insert_placeholder,
            sql.find_job,
            sql.insert_claim,
            sql.due_watch,
            sql.lock_claims,
            sql.resolve_claims,
        )
        if statement is not None
    }
    intakes = [intake(suno_json("t-1"), at=HEARD, confirm=CONFIRM)]
    with engine.begin() as connection:
        run = _statements_run(connection, sql, intakes, CONFIRM)

    assert claims.isdisjoint(run)


@pytest.mark.postgres_only
def test_two_transactions_finishing_two_jobs_one_delivery_claims_judge_it_one_after_the_other(
    engine: Engine,
) -> None:
    """Writers commit in parallel on PostgreSQL: each of two transactions finishing one of the
    delivery's two claimed jobs sees the other's job unfinished in its snapshot. The second waits
    for the first on the delivery's lock, then judges it seeing both jobs final; neither leaves
    it unconfirmed for good."""
    [both] = store(engine, media_lab_list(["x", "y"], state=3))
    finish_y = [_answered(MEDIA_LAB, "get_job_completed.json", "y")]
    with engine.connect() as first, first.begin() as transaction:
        stored(first, [_answered(MEDIA_LAB, "get_job_completed.json", "x")], confirm=CONFIRM)

        def second_writer() -> None:
            with engine.begin() as second:
                stored(second, finish_y, confirm=CONFIRM)

        racer = threading.Thread(target=second_writer)
        racer.start()
        wait_for_a_lock_wait(engine, racer.is_alive)
        transaction.commit()
    racer.join(timeout=30)

    assert not racer.is_alive()
    assert delivery(engine, both.delivery_id) == ("duplicate", None)


def _answered(provider: Provider, fixture: str, job_id: str) -> Intake:
    return admit(polled(answer_of(provider, fixture, job_id), provider), suno_key=None, max_jobs=10)
