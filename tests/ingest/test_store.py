"""One batch that creates some jobs and merges into others, a job more than once."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from sqlalchemy import Connection, Engine, text

from app.ingest.admission import admit
from app.ingest.intake import Intake, Outcome, Receipt
from tests.api.payloads import ci_json, media_lab_list, suno_json, suno_signed
from tests.ingest.batches import stored, transaction_number, wait_for_a_lock_wait
from tests.ingest.submissions import detected

SUNO_KEY = "suno-hmac-key"


def store(engine: Engine, *deliveries: tuple[str, str]) -> list[Receipt]:
    """One batch in one transaction, as the writer stores it (not the committer, which would
    retry each delivery alone if the batch failed, and so hide the failure)."""
    intakes = [
        admit(
            detected(ci_json(job_id, state)),
            suno_key=None,
            max_jobs=1,
        )
        for job_id, state in deliveries
    ]
    with engine.begin() as connection:
        return stored(connection, intakes)


def signed(body: bytes, headers: dict[str, str]) -> Intake:
    """A Suno delivery whose signature holds, admitted as the writer admits it."""
    lower = {name.lower(): value for name, value in headers.items()}
    return admit(detected(body, headers=lower), suno_key=SUNO_KEY, max_jobs=100)


def job_events(connection: Connection) -> list[tuple[str, str | None, str]]:
    """Each job's state changes, in the order they were written."""
    rows = connection.execute(
        text(
            "SELECT job.job_id, job_event.from_state, job_event.to_state"
            " FROM job_event JOIN job ON job.id = job_event.job_pk"
            " ORDER BY job.job_id, job_event.id"
        )
    ).all()
    return [(job_id, from_state, to_state) for job_id, from_state, to_state in rows]


def outcome(receipt: Receipt) -> tuple[str, str, bool, Outcome]:
    (job,) = receipt.jobs
    return job.job_id, job.state.value, job.duplicate, receipt.outcome


def test_a_batch_creates_new_jobs_and_merges_into_known_ones_in_arrival_order(
    engine: Engine,
) -> None:
    (first,) = store(engine, ("j-known", "Running"))
    assert outcome(first) == ("j-known", "running", False, Outcome.ACCEPTED)

    receipts = store(
        engine,
        ("j-new", "Running"),
        ("j-known", "Success"),
        ("j-new", "Success"),
        ("j-known", "Success"),
        ("j-other", "Failed"),
        ("j-new", "Running"),
    )

    assert [outcome(receipt) for receipt in receipts] == [
        ("j-new", "running", False, Outcome.ACCEPTED),
        ("j-known", "succeeded", False, Outcome.ACCEPTED),
        ("j-new", "succeeded", False, Outcome.ACCEPTED),
        ("j-known", "succeeded", True, Outcome.DUPLICATE),
        ("j-other", "failed", False, Outcome.ACCEPTED),
        ("j-new", "succeeded", True, Outcome.DUPLICATE),
    ]
    with engine.connect() as connection:
        jobs = connection.execute(
            text("SELECT job_id, state, deliveries FROM job ORDER BY job_id")
        ).all()
        events = job_events(connection)
        duplicates = connection.execute(
            text("SELECT count(*) FROM delivery WHERE outcome = 'duplicate'")
        ).scalar_one()
    assert [tuple(row) for row in jobs] == [
        ("j-known", "succeeded", 3),
        ("j-new", "succeeded", 3),
        ("j-other", "failed", 1),
    ]
    assert events == [
        ("j-known", None, "running"),
        ("j-known", "running", "succeeded"),
        ("j-new", None, "running"),
        ("j-new", "running", "succeeded"),
        ("j-other", None, "failed"),
    ]
    assert duplicates == 2


def test_a_job_seen_three_times_in_one_batch_takes_its_deliveries_in_arrival_order(
    engine: Engine,
) -> None:
    """On PostgreSQL each of a job's rows goes in its own statement, after the one before."""
    store(engine, ("j-known", "Submitted"))

    receipts = store(
        engine,
        ("j-known", "Running"),
        ("j-three", "Running"),
        ("j-known", "Pause"),
        ("j-three", "Submitted"),
        ("j-known", "Running"),
        ("j-three", "Success"),
        ("j-fresh", "Failed"),
    )

    assert [outcome(receipt) for receipt in receipts] == [
        ("j-known", "running", False, Outcome.ACCEPTED),
        ("j-three", "running", False, Outcome.ACCEPTED),
        ("j-known", "paused", False, Outcome.ACCEPTED),
        ("j-three", "running", True, Outcome.DUPLICATE),
        ("j-known", "running", False, Outcome.ACCEPTED),
        ("j-three", "succeeded", False, Outcome.ACCEPTED),
        ("j-fresh", "failed", False, Outcome.ACCEPTED),
    ]
    with engine.connect() as connection:
        jobs = connection.execute(
            text("SELECT job_id, state, previous_state, deliveries FROM job ORDER BY job_id")
        ).all()
        events = job_events(connection)
    assert [tuple(row) for row in jobs] == [
        ("j-fresh", "failed", None, 1),
        ("j-known", "running", "paused", 4),
        ("j-three", "succeeded", "running", 3),
    ]
    assert events == [
        ("j-fresh", None, "failed"),
        ("j-known", None, "submitted"),
        ("j-known", "submitted", "running"),
        ("j-known", "running", "paused"),
        ("j-known", "paused", "running"),
        ("j-three", None, "running"),
        ("j-three", "running", "succeeded"),
    ]


def test_each_delivery_and_job_row_finds_its_own_answer_in_a_mixed_batch(
    engine: Engine,
) -> None:
    """Known jobs merged in another order than they were created, between new ones, and a
    delivery of two jobs, one named like a known job of another provider: every receipt, link
    and event names its own delivery and job."""
    store(engine, ("k-1", "Running"), ("k-2", "Running"), ("k-3", "Running"), ("k-4", "Running"))
    bodies = [
        ci_json("k-4", "Success"),
        ci_json("n-1", "Running"),
        media_lab_list(["k-2", "n-2"]),
        ci_json("k-1", "Running"),
        ci_json("n-3", "Failed"),
        ci_json("k-3", "Failed"),
        ci_json("k-2", "Failed"),
    ]
    intakes = [admit(detected(body), suno_key=None, max_jobs=10) for body in bodies]

    with engine.begin() as connection:
        receipts = stored(connection, intakes)

    delivery_ids = [receipt.delivery_id for receipt in receipts]
    assert delivery_ids == sorted(set(delivery_ids))
    assert [
        [(job.job_id, job.state.value, job.duplicate) for job in receipt.jobs]
        for receipt in receipts
    ] == [
        [("k-4", "succeeded", False)],
        [("n-1", "running", False)],
        [("k-2", "succeeded", False), ("n-2", "succeeded", False)],
        [("k-1", "running", True)],
        [("n-3", "failed", False)],
        [("k-3", "failed", False)],
        [("k-2", "failed", False)],
    ]
    with engine.connect() as connection:
        kept = {
            id_: body for id_, body in connection.execute(text("SELECT id, body FROM delivery"))
        }
        links = connection.execute(
            text(
                "SELECT delivery_job.delivery_id, job.provider, job.job_id, delivery_job.duplicate"
                " FROM delivery_job JOIN job ON job.id = delivery_job.job_pk"
            )
        ).all()
        events = connection.execute(
            text(
                "SELECT job_event.delivery_id, job.provider, job.job_id, job_event.to_state"
                " FROM job_event JOIN job ON job.id = job_event.job_pk"
                " WHERE job_event.delivery_id >= :first"
            ),
            {"first": delivery_ids[0]},
        ).all()
    assert [bytes(kept[delivery_id]) for delivery_id in delivery_ids] == bodies
    assert sorted(tuple(row) for row in links if row[0] >= delivery_ids[0]) == sorted(
        (receipt.delivery_id, job.provider.value, job.job_id, job.duplicate)
        for receipt in receipts
        for job in receipt.jobs
    )
    assert sorted(tuple(row) for row in events) == sorted(
        (receipt.delivery_id, job.provider.value, job.job_id, job.state.value)
        for receipt in receipts
        for job in receipt.jobs
        if not job.duplicate
    )


def test_a_signature_used_twice_in_one_batch_vouches_for_its_first_body_only(
    engine: Engine,
) -> None:
    headers = suno_signed(SUNO_KEY, "t-batch", int(time.time()))
    first, forged = suno_json("t-batch"), suno_json("t-batch", msg="forged")

    with engine.begin() as connection:
        receipts = stored(
            connection,
            [signed(first, headers), signed(forged, headers), signed(first, headers)],
        )

    assert [receipt.outcome for receipt in receipts] == [
        Outcome.ACCEPTED,
        Outcome.REFUSED,
        Outcome.DUPLICATE,
    ]
    assert receipts[1].jobs == ()


def test_a_signature_claimed_by_a_rolled_back_delivery_is_free_again(engine: Engine) -> None:
    headers = suno_signed(SUNO_KEY, "t-undone", int(time.time()))
    with engine.connect() as connection, connection.begin() as undone:
        stored(connection, [signed(suno_json("t-undone", msg="undone"), headers)])
        undone.rollback()

    with engine.begin() as connection:
        (receipt,) = stored(connection, [signed(suno_json("t-undone"), headers)])

    assert receipt.outcome is Outcome.ACCEPTED


@pytest.mark.postgres_only
def test_two_transactions_reusing_a_signature_for_two_bodies_never_both_win(
    engine: Engine,
) -> None:
    """As two writer processes would: the second waits for the first (on its job's key lock),
    then finds its claim committed and is refused."""
    headers = suno_signed(SUNO_KEY, "t-race", int(time.time()))
    second_receipts: list[Receipt] = []
    with engine.connect() as first, first.begin() as transaction:
        (first_receipt,) = stored(first, [signed(suno_json("t-race"), headers)])
        forged = signed(suno_json("t-race", msg="forged"), headers)

        def second_writer() -> None:
            with engine.begin() as second:
                second_receipts.extend(stored(second, [forged]))

        racer = threading.Thread(target=second_writer)
        racer.start()
        wait_for_a_lock_wait(engine, racer.is_alive)
        transaction.commit()
    racer.join(timeout=30)

    assert not racer.is_alive()
    assert first_receipt.outcome is Outcome.ACCEPTED
    assert [receipt.outcome for receipt in second_receipts] == [Outcome.REFUSED]


@pytest.mark.postgres_only
def test_a_job_merged_last_by_the_older_transaction_keeps_the_newer_ones_number(
    engine: Engine,
) -> None:
    """A transaction that began first (the lower number) may merge into a job after a later
    one committed: the job is final for readers only once both are, so it keeps the higher."""
    intake = admit(detected(ci_json("j-late", "Success")), suno_key=None, max_jobs=1)
    with engine.connect() as older, older.begin() as transaction:
        older_tx = transaction_number(older)
        store(engine, ("j-late", "Running"))
        stored(older, [intake])
        transaction.commit()
    with engine.connect() as connection:
        newer_tx = connection.execute(
            text("SELECT max(tx) FROM delivery WHERE tx <> :older"), {"older": older_tx}
        ).scalar_one()
        last_tx, state = connection.execute(
            text("SELECT last_tx, state FROM job WHERE job_id = 'j-late'")
        ).one()

    assert older_tx < newer_tx
    assert (last_tx, state) == (newer_tx, "succeeded")


def test_a_jobs_bucket_region_and_queue_keep_their_first_value_whoever_wins_later(
    engine: Engine,
) -> None:
    """Where the provider is asked about the job (a CI poll's host and queue): a later delivery
    may win the job's state, never move its poll elsewhere (an unsigned callback re-addressing
    the poll that would confirm it, record 19). A value the job lacked is still filled."""

    def running_at(region: str | None, queue: str) -> Intake:
        body = orjson.loads(ci_json("j-1", "Running"))
        detail = body["JobsDetail"]
        detail["QueueId"] = queue
        if region is not None:
            detail["Input"] = {"BucketId": "b-1250000000", "Region": region, "Object": "in.mp3"}
        return admit(detected(orjson.dumps(body)), suno_key=None, max_jobs=1)

    def paused_elsewhere() -> Intake:
        body = orjson.loads(ci_json("j-1", "Pause"))
        body["JobsDetail"] |= {
            "QueueId": "q-other",
            "Input": {"BucketId": "other-1250000000", "Region": "ap-other", "Object": "x.mp3"},
        }
        return admit(detected(orjson.dumps(body)), suno_key=None, max_jobs=1)

    with engine.begin() as connection:
        stored(connection, [running_at(None, "q-1")])
    with engine.begin() as connection:
        stored(connection, [running_at("ap-guangzhou", "q-1")])  # fills the bucket and region
    with engine.begin() as connection:
        [receipt] = stored(connection, [paused_elsewhere()])
    assert outcome(receipt) == ("j-1", "paused", False, Outcome.ACCEPTED)  # it won the state
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT input_bucket, input_region, queue_id, input_object FROM job")
        ).one()
    assert tuple(row) == ("b-1250000000", "ap-guangzhou", "q-1", "x.mp3")
