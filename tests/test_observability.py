"""What operators see: metrics, one log line per request, and retention of raw bodies."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from app.logs import _LineWriter
from tests.api.payloads import ci_json, suno_json
from tests.conftest import API_TOKEN, Backend, open_client
from tests.reliability.support import server_env
from tests.servers import running_server

# Far beyond what the scrapes take on a quiet machine.
PATIENCE_S = 60

pytestmark = [pytest.mark.anyio, pytest.mark.servers]


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def test_metrics_count_deliveries_jobs_latency_and_sizes(backend: Backend) -> None:
    async for client in open_client(backend.settings(metrics_token="metrics-token-0123456789")):
        await client.post("/callbacks", content=ci_json("j-m", "Running"))
        await client.post("/callbacks", content=ci_json("j-m", "Success"))
        await client.post("/callbacks", content=ci_json("j-m", "Success"))
        await client.post("/callbacks/suno", content=b"{broken")
        anonymous = await client.get("/metrics")
        scraped = await client.get(
            "/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"}
        )

    assert anonymous.status_code == 401
    counted = samples(scraped.text)
    ci = ("provider", "tencent-ci")
    assert counted[("stemhook_deliveries_total", (("outcome", "accepted"), ci))] == 2
    assert counted[("stemhook_deliveries_total", (("outcome", "duplicate"), ci))] == 1
    assert (
        counted[("stemhook_deliveries_total", (("outcome", "rejected"), ("provider", "suno")))] == 1
    )
    assert counted[("stemhook_jobs_finished_total", (ci, ("state", "succeeded")))] == 1
    assert counted[("stemhook_ingest_seconds_count", ())] == 4
    assert counted[("stemhook_body_bytes_count", ())] == 4


def worker_of(answer: httpx.Response) -> str:
    """Which worker answered: a made-up request id starts with its process's own prefix."""
    return answer.headers["x-request-id"].split("-")[0]


async def test_metrics_of_several_workers_add_up(backend: Backend, tmp_path: Path) -> None:
    env = server_env(backend.url)
    accepted = ("stemhook_deliveries_total", (("outcome", "accepted"), ("provider", "suno")))
    posted_by: set[str] = set()
    posted = 0
    totals: dict[str, float] = {}
    with running_server(env, tmp_path, workers=2) as url:
        # New connections until both workers have taken callbacks, then until both have been
        # scraped: the kernel decides which worker accepts a connection.
        while len(posted_by) < 2 and posted < 400:
            async with httpx.AsyncClient(timeout=30) as fresh:
                answers = await asyncio.gather(
                    *(
                        fresh.post(f"{url}/callbacks", content=suno_json(f"t-w{posted + n}"))
                        for n in range(20)
                    )
                )
            posted += len(answers)
            posted_by |= {worker_of(answer) for answer in answers}
        # A worker hands its counts over at the end of its loop turn, just after its answers
        # went out: a scrape by the other worker may come first, so scrape again until both
        # agree (they never do if a worker's counts never reach the shared files). Several
        # scrapes at once, each on a connection of its own, as the callbacks were: one at a time,
        # a busy machine's kernel may hand every one of them to the same worker.
        deadline = time.monotonic() + PATIENCE_S
        while totals != dict.fromkeys(posted_by, posted) and time.monotonic() < deadline:
            async with httpx.AsyncClient(timeout=30) as fresh:
                scrapes = await asyncio.gather(*(fresh.get(f"{url}/metrics") for _ in range(8)))
            for scrape in scrapes:
                totals[worker_of(scrape)] = samples(scrape.text)[accepted]

    assert len(posted_by) == 2
    assert totals == dict.fromkeys(posted_by, posted)


async def test_one_json_line_per_request_without_secrets(backend: Backend, tmp_path: Path) -> None:
    token = "callback-secret-0123456789"
    env = server_env(backend.url, callback_token=token)
    with running_server(env, tmp_path) as url:
        posted = httpx.post(
            f"{url}/callbacks/tencent-ci?token={token}",
            content=ci_json("j-log", "Success"),
            headers={"X-Request-Id": "req-42"},
        )
        read = httpx.get(
            f"{url}/v1/jobs/tencent-ci/j-log", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
    log_text = next(tmp_path.glob("server-*.log")).read_text()

    assert posted.headers["x-request-id"] == "req-42"
    assert read.headers["x-request-id"]
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("logger") == "stemhook.request"]
    callback = next(line for line in requests if line["path"] == "/callbacks/tencent-ci")
    assert callback["request_id"] == "req-42"
    assert (callback["status"], callback["provider"], callback["outcome"]) == (
        200,
        "tencent-ci",
        "accepted",
    )
    assert callback["delivery_id"] == posted.json()["delivery_id"]
    assert callback["jobs"] == ["j-log:succeeded"]
    assert callback["ms"] >= 0
    assert any(line["path"] == "/v1/jobs/tencent-ci/j-log" for line in requests)
    assert token not in log_text
    assert API_TOKEN not in log_text


async def test_request_lines_of_one_loop_turn_go_out_in_one_write_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stderr", Recorder())
    lines = _LineWriter(json=True)
    for number in range(3):
        lines.write(f"POST /callbacks {number}", {"n": number})
    assert writes == []
    await asyncio.sleep(0)

    assert len(writes) == 1
    assert [json.loads(line)["n"] for line in writes[0].splitlines()] == [0, 1, 2]


async def test_purge_drops_old_bodies_and_keeps_jobs_and_events(
    client: httpx.AsyncClient, engine: Engine, backend: Backend, tmp_path: Path
) -> None:
    old = (await client.post("/callbacks", content=ci_json("j-old", "Success"))).json()
    new = (await client.post("/callbacks", content=ci_json("j-new", "Success"))).json()
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE delivery SET received_at = '2020-01-01 00:00:00' WHERE id = :id"),
            {"id": old["delivery_id"]},
        )

    purged = subprocess.run(
        [sys.executable, "-m", "app", "purge", "--deliveries-older-than", "30d"],
        cwd=tmp_path,
        env=os.environ | {"STEMHOOK_DATABASE_URL": backend.url},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert "Dropped the bodies of 1 deliveries" in purged.stdout
    with engine.connect() as connection:
        bodies = dict(connection.execute(text("SELECT id, body IS NULL FROM delivery")).all())
        assert connection.scalar(text("SELECT count(*) FROM job")) == 2
        assert connection.scalar(text("SELECT count(*) FROM job_event")) == 2
    assert bodies == {old["delivery_id"]: True, new["delivery_id"]: False}
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    kept = (await client.get(f"/v1/deliveries/{old['delivery_id']}", headers=auth)).json()
    assert (kept["body"], kept["outcome"], kept["body_size"]) == (
        None,
        "accepted",
        len(ci_json("j-old", "Success")),
    )


async def test_retention_runs_by_itself_when_configured(backend: Backend, engine: Engine) -> None:
    settings = backend.settings(purge_deliveries_older_than="1s", purge_every="1s")
    async for client in open_client(settings):
        posted = (await client.post("/callbacks", content=ci_json("j-ret", "Success"))).json()
        for _ in range(600):  # a purge each second: a minute is generous on any machine
            await asyncio.sleep(0.1)
            with engine.connect() as connection:
                gone = connection.scalar(
                    text("SELECT body IS NULL FROM delivery WHERE id = :id"),
                    {"id": posted["delivery_id"]},
                )
            if gone:
                break
    assert gone
