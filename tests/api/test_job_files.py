"""The copies stemhook keeps of output files, as the job contract shows them; listing jobs by
the status of their files; queueing failed files again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text, update

from app import models
from app.mirror.sources import NO_COS_CREDENTIALS
from app.providers.model import Provider
from tests.api.payloads import ci_json, suno_json
from tests.conftest import API_TOKEN, Backend, open_client
from tests.ingest.file_rows import store
from tests.test_observability import samples

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
STORED_AT = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
PENDING = {
    "status": "pending",
    "bytes": None,
    "sha256": None,
    "md5": None,
    "md5_verified": None,
    "content_type": None,
    "stored_at": None,
    "attempts": 0,
    "error": None,
    "href": None,
}


def set_files(engine: Engine, job_id: str, status: str, **values: Any) -> None:
    """What a worker would write: the files of `job_id` (all, or those at `position`) settled."""
    position = values.pop("position", None)
    file = models.JobFile
    settled = (
        update(file)
        .where(
            file.job_pk
            == select(models.Job.id).where(models.Job.job_id == job_id).scalar_subquery()
        )
        .values(status=status, run_after=None, **values)
    )
    if position is not None:
        settled = settled.where(file.position == position)
    with engine.begin() as connection:
        connection.execute(settled)


def file_rows(engine: Engine, job_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT position, status, attempts, error, run_after IS NOT NULL, leased_by"
                " FROM job_file WHERE job_pk = (SELECT id FROM job WHERE job_id = :job_id)"
                " ORDER BY position"
            ),
            {"job_id": job_id},
        )
        return [(p, s, a, e, bool(due), lease) for p, s, a, e, due, lease in found]


async def files(client: httpx.AsyncClient, provider: Provider, job_id: str) -> list[Any]:
    answer = await client.get(f"/v1/jobs/{provider}/{job_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return [output["file"] for output in answer.json()["outputs"]]


async def test_a_file_is_pending_until_stored_then_links_to_its_bytes(
    backend: Backend, engine: Engine
) -> None:
    job_id = "t 1 ä"  # quoted in a path segment
    store(engine, suno_json(job_id))
    settings = backend.settings(root_path="/stemhook")
    async for client in open_client(settings):
        assert await files(client, Provider.SUNO, "t%201%20%C3%A4") == [PENDING, PENDING]

        set_files(
            engine,
            job_id,
            "stored",
            position=1,
            bytes=1234,
            sha256="ab" * 32,
            md5="cd" * 16,
            md5_verified=False,
            content_type="audio/mpeg",
            stored_at=STORED_AT,
            storage_key="suno/t-1/1",
            attempts=2,
            leased_by=None,
            leased_until=None,
        )
        stored = {
            "status": "stored",
            "bytes": 1234,
            "sha256": "ab" * 32,
            "md5": "cd" * 16,
            "md5_verified": False,
            "content_type": "audio/mpeg",
            "stored_at": "2026-12-08T09:30:00Z",
            "attempts": 2,
            "error": None,
            "href": "/stemhook/v1/jobs/suno/t%201%20%C3%A4/files/1",
        }
        assert await files(client, Provider.SUNO, "t%201%20%C3%A4") == [PENDING, stored]
        # The listing and the long poll show the same.
        listed = await client.get("/v1/jobs", headers=AUTH)
        [job] = listed.json()["items"]
        assert [output["file"] for output in job["outputs"]] == [PENDING, stored]
        waited = await client.get("/v1/jobs/suno/t%201%20%C3%A4", params={"wait": 30}, headers=AUTH)
        assert [output["file"] for output in waited.json()["outputs"]] == [PENDING, stored]


async def test_a_skipped_file_says_why_and_an_output_without_a_file_shows_none(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    store(engine, ci_json("j-cos", "Success", outputs=("out/v.mp3", "out/a.mp3")))
    store(engine, ci_json("j-run", "Running", outputs=("tmp/v.mp3",)))

    skipped = {**PENDING, "status": "skipped", "error": NO_COS_CREDENTIALS}
    assert await files(client, Provider.TENCENT_CI, "j-cos") == [skipped, skipped]
    assert await files(client, Provider.TENCENT_CI, "j-run") == [None]


async def listed_ids(client: httpx.AsyncClient, **params: Any) -> list[list[str]]:
    """Every page of the listing, as job ids; `between` runs after each page."""
    between = params.pop("between", None)
    pages: list[list[str]] = []
    cursor = None
    while True:
        answer = await client.get(
            "/v1/jobs", params={**params, **({"cursor": cursor} if cursor else {})}, headers=AUTH
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append([item["job_id"] for item in page["items"]])
        if between is not None:
            between(len(pages))
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_jobs_with_a_failed_file_page_by_page(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    for n in range(9):
        store(engine, suno_json(f"t-{n}"))
    failed = [f"t-{n}" for n in (8, 6, 5, 3, 2, 0)]  # newest first
    for job_id in failed:
        set_files(engine, job_id, "failed", position=1, error="HTTP 404", attempts=5)
    set_files(engine, "t-7", "stored", position=0)

    pages = await listed_ids(client, files="failed", limit=2)
    assert pages == [failed[0:2], failed[2:4], failed[4:6]]
    assert sum(await listed_ids(client, files="stored"), []) == ["t-7"]
    assert sum(await listed_ids(client, files="pending", limit=4), []) == [
        f"t-{n}" for n in range(8, -1, -1)
    ]
    # With the other filters.
    assert sum(await listed_ids(client, files="failed", state="failed"), []) == []
    assert sum(await listed_ids(client, files="failed", provider="suno", limit=5), []) == failed
    refused = await client.get("/v1/jobs", params={"files": "lost"}, headers=AUTH)
    assert refused.status_code == 422


async def test_files_that_change_between_pages_move_no_other_job(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """A file's status changes without its job changing: a job enters or leaves the listing
    between pages, and every job whose files do not change is listed once."""
    for n in range(10):
        store(engine, suno_json(f"t-{n}"))
    for n in range(10):
        set_files(engine, f"t-{n}", "failed", position=0)

    def change(pages: int) -> None:
        if pages == 1:  # seen: t-9, t-8, t-7
            set_files(engine, "t-8", "pending", position=0)  # seen, leaves
            set_files(engine, "t-3", "stored", position=0)  # not reached, leaves
            store(engine, suno_json("t-new"))  # a new job after the snapshot
            set_files(engine, "t-new", "failed", position=1)

    pages = await listed_ids(client, files="failed", limit=3, between=change)

    seen = sum(pages, [])
    assert seen == ["t-9", "t-8", "t-7", "t-6", "t-5", "t-4", "t-2", "t-1", "t-0"]


async def test_retry_queues_the_failed_files_again_and_nothing_else(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    store(engine, suno_json("t-r"), suno_json("t-other"))
    store(engine, ci_json("j-s", "Success", outputs=("out/v.mp3",)))
    set_files(
        engine,
        "t-r",
        "failed",
        position=0,
        error="md5 mismatch",
        md5_verified=False,
        attempts=5,
        leased_by="w-gone",
    )
    set_files(engine, "t-r", "stored", position=1, attempts=1)
    set_files(engine, "t-other", "failed", error="HTTP 404", attempts=3)

    answer = await client.post("/v1/jobs/suno/t-r/files/retry", headers=AUTH)

    assert answer.status_code == 202, answer.text
    shown = [output["file"] for output in answer.json()["outputs"]]
    assert shown == [PENDING, {**shown[1], "status": "stored", "attempts": 1}]
    assert file_rows(engine, "t-r") == [
        (0, "pending", 0, None, True, None),
        (1, "stored", 1, None, False, None),
    ]
    assert file_rows(engine, "t-other") == [
        (0, "failed", 3, "HTTP 404", False, None),
        (1, "failed", 3, "HTTP 404", False, None),
    ]

    # Nothing failed (any more): nothing changes, and the answer says so.
    again = await client.post("/v1/jobs/suno/t-r/files/retry", headers=AUTH)
    skipped = await client.post("/v1/jobs/tencent-ci/j-s/files/retry", headers=AUTH)
    assert (again.status_code, skipped.status_code) == (200, 200)
    assert again.json()["outputs"] == answer.json()["outputs"]
    assert file_rows(engine, "t-r")[0] == (0, "pending", 0, None, True, None)
    assert file_rows(engine, "j-s") == [(0, "skipped", 0, NO_COS_CREDENTIALS, False, None)]


async def test_retry_of_an_unknown_job_or_without_a_token_is_refused(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    store(engine, suno_json("t-a"))
    set_files(engine, "t-a", "failed")

    unknown = await client.post("/v1/jobs/suno/t-nope/files/retry", headers=AUTH)
    anonymous = await client.post("/v1/jobs/suno/t-a/files/retry")
    wrong = await client.post(
        "/v1/jobs/suno/t-a/files/retry", headers={"Authorization": "Bearer nope"}
    )

    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert [row[1] for row in file_rows(engine, "t-a")] == ["failed", "failed"]


async def test_stats_and_metrics_count_files_by_status_and_bytes_stored(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    store(engine, suno_json("t-1"), suno_json("t-2"), suno_json("t-3"))
    store(engine, ci_json("j-cos", "Success", outputs=("out/v.mp3",)))
    set_files(engine, "t-1", "stored", bytes=1000)
    set_files(engine, "t-2", "stored", position=0, bytes=24)
    set_files(engine, "t-2", "failed", position=1, error="HTTP 404")

    stats = (await client.get("/v1/stats", headers=AUTH)).json()
    before = await client.get("/v1/stats", params={"until": "2000-01-01T00:00:00Z"}, headers=AUTH)
    scraped = samples((await client.get("/metrics")).text)

    assert stats["files"] == {
        "pending": 2,
        "stored": 3,
        "failed": 1,
        "skipped": 1,
        "stored_bytes": 2024,
    }
    assert before.json()["files"] == dict.fromkeys(stats["files"], 0)
    assert {key: value for key, value in scraped.items() if key[0].startswith("stemhook_file")} == {
        ("stemhook_files", (("status", "pending"),)): 2,
        ("stemhook_files", (("status", "stored"),)): 3,
        ("stemhook_files", (("status", "failed"),)): 1,
        ("stemhook_files", (("status", "skipped"),)): 1,
        ("stemhook_file_bytes_stored", ()): 2024,
    }
