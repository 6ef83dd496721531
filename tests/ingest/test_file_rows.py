"""The files a succeeding delivery queues for fetching, in the transaction that stores it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.mirror.sources import (
    BUCKET_NOT_ALLOWED,
    MIRROR_OFF,
    NO_COS_CREDENTIALS,
    CosBucket,
    MirrorPolicy,
)
from tests.api.payloads import ci_json, suno_json
from tests.ingest.batches import MIRROR_ON
from tests.ingest.file_rows import store

# ci_json's outputs are in bucket b-1 of ap-chongqing.
COS_B1 = MirrorPolicy(enabled=True, cos=True, cos_buckets=frozenset({CosBucket("b-1")}))


def cos_allowing(*buckets: CosBucket) -> MirrorPolicy:
    return MirrorPolicy(enabled=True, cos=True, cos_buckets=frozenset(buckets))


def files(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT job.job_id, position, url, bucket, object, status, error,"
                " run_after IS NOT NULL AS due, attempts"
                " FROM job_file JOIN job ON job.id = job_file.job_pk"
                " ORDER BY job.job_id, position"
            )
        ).mappings()
        return [dict(row) | {"due": bool(row["due"])} for row in rows]


def test_a_succeeded_suno_task_queues_each_stem_once(engine: Engine) -> None:
    store(engine, suno_json("t-1"))
    store(engine, suno_json("t-1"))  # the provider's retry: a duplicate queues nothing more

    assert files(engine) == [
        {
            "job_id": "t-1",
            "position": position,
            "url": url,
            "bucket": None,
            "object": None,
            "status": "pending",
            "error": None,
            "due": True,
            "attempts": 0,
        }
        for position, url in enumerate(["https://f.example/i.mp3", "https://f.example/v.mp3"])
    ]


def test_nothing_is_queued_before_a_job_succeeds(engine: Engine) -> None:
    store(engine, suno_json("t-2", code=500, msg="separation failed"))
    store(engine, ci_json("j-running", "Running", outputs=("out/a.mp3",)))

    assert files(engine) == []


@pytest.mark.parametrize(
    ("mirror", "status", "error"),
    [
        (COS_B1, "pending", None),
        (cos_allowing(CosBucket("b-1", "ap-chongqing")), "pending", None),
        (cos_allowing(CosBucket("b-2"), CosBucket("b-1", "ap-chongqing")), "pending", None),
        (MIRROR_ON, "skipped", NO_COS_CREDENTIALS),
        (
            MirrorPolicy(enabled=False, cos=True, cos_buckets=COS_B1.cos_buckets),
            "skipped",
            MIRROR_OFF,
        ),
        # The keys sign reads of the buckets STEMHOOK_COS_BUCKETS names only.
        (cos_allowing(), "skipped", BUCKET_NOT_ALLOWED),
        (cos_allowing(CosBucket("b-2")), "skipped", BUCKET_NOT_ALLOWED),
        (cos_allowing(CosBucket("b-1", "ap-guangzhou")), "skipped", BUCKET_NOT_ALLOWED),
        (cos_allowing(CosBucket("b-10"), CosBucket("b-1-1")), "skipped", BUCKET_NOT_ALLOWED),
    ],
)
def test_a_file_in_a_cos_bucket_is_fetched_only_with_credentials_for_its_bucket(
    engine: Engine, mirror: MirrorPolicy, status: str, error: str | None
) -> None:
    store(engine, ci_json("j-1", "Success", outputs=("out/a.mp3",)), mirror=mirror)

    [row] = files(engine)
    assert (row["bucket"], row["object"], row["status"], row["error"], row["due"]) == (
        "b-1",
        "out/a.mp3",
        status,
        error,
        status == "pending",
    )


def test_a_job_that_succeeds_in_a_later_delivery_queues_then(engine: Engine) -> None:
    store(engine, ci_json("j-2", "Running"), mirror=COS_B1)
    store(
        engine,
        ci_json("j-2", "Success", outputs=("out/b.mp3",)),
        ci_json("j-3", "Success", outputs=("out/c.mp3",)),
        mirror=COS_B1,
    )

    assert [(row["job_id"], row["object"], row["status"]) for row in files(engine)] == [
        ("j-2", "out/b.mp3", "pending"),
        ("j-3", "out/c.mp3", "pending"),
    ]
