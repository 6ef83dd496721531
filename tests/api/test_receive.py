"""The receive pipeline over HTTP: answers, what is stored, and how deliveries merge.

Every test runs on SQLite and on PostgreSQL and checks the database itself, not only the answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine, text

from app.config import Settings
from app.ingest.intake import Receipt, Submission
from app.ingest.writer import Writer
from app.main import create_app
from tests.api.payloads import ci_json, suno_json, suno_signed
from tests.conftest import API_TOKEN, PROVIDER_PATIENCE_S, Backend, open_client, refusing_job

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


async def job(client: httpx.AsyncClient, provider: str, job_id: str) -> dict[str, object]:
    answer = await client.get(f"/v1/jobs/{provider}/{job_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_delivery_is_stored_raw_with_its_metadata(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    body = ci_json("j-raw", "Success")
    answer = await client.post(
        "/callbacks/tencent-ci",
        content=body,
        headers={
            "Content-Type": "text/plain",
            "Authorization": "Bearer secret",
            "X-Auth-Token": "secret",
            "X-Request-Id": "t1",
        },
    )

    assert answer.status_code == 200
    delivery_id = answer.json()["delivery_id"]
    [stored] = rows(
        engine,
        "SELECT body, content_type, client_addr, outcome, provider, endpoint, body_size "
        "FROM delivery WHERE id = :id",
        id=delivery_id,
    )
    assert bytes(stored[0]) == body  # type: ignore[arg-type]
    assert stored[1:] == (
        "text/plain",
        "203.0.113.7",
        "accepted",
        "tencent-ci",
        "tencent-ci",
        len(body),
    )
    [(headers,)] = rows(engine, "SELECT headers FROM delivery WHERE id = :id", id=delivery_id)
    assert "secret" not in str(headers)
    assert "x-request-id" in str(headers)


async def test_repeated_delivery_is_recorded_as_duplicate(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    body = ci_json("j-dup", "Success", outputs=("out/v.mp3", "out/a.mp3"))
    first = (await client.post("/callbacks/tencent-ci", content=body)).json()
    second = (await client.post("/callbacks/tencent-ci", content=body)).json()

    assert (first["outcome"], first["duplicate"], first["jobs"][0]["duplicate"]) == (
        "accepted",
        False,
        False,
    )
    assert (second["outcome"], second["duplicate"], second["jobs"][0]["duplicate"]) == (
        "duplicate",
        True,
        True,
    )
    assert rows(engine, "SELECT count(*) FROM job") == [(1,)]
    assert rows(engine, "SELECT outcome FROM delivery ORDER BY id") == [
        ("accepted",),
        ("duplicate",),
    ]
    served = await job(client, "tencent-ci", "j-dup")
    assert served["deliveries"] == 2
    assert len(served["outputs"]) == 2  # type: ignore[arg-type]
    assert served["first_received_at"] < served["last_received_at"]  # type: ignore[operator]


async def test_job_never_moves_backwards_and_every_change_is_an_event(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    for state in ("Submitted", "Running", "Success", "Running", "Submitted"):
        answer = await client.post("/callbacks/tencent-ci", content=ci_json("j-order", state))
        assert answer.status_code == 200

    assert (await job(client, "tencent-ci", "j-order"))["state"] == "succeeded"
    events = rows(
        engine,
        "SELECT e.from_state, e.to_state FROM job_event e JOIN job j ON j.id = e.job_pk "
        "ORDER BY e.id",
    )
    assert events == [(None, "submitted"), ("submitted", "running"), ("running", "succeeded")]
    links = rows(engine, "SELECT duplicate FROM delivery_job ORDER BY delivery_id")
    assert [bool(duplicate) for (duplicate,) in links] == [False, False, False, True, True]


async def test_success_beats_a_retried_failure_without_end_times(client: httpx.AsyncClient) -> None:
    await client.post("/callbacks/tencent-ci", content=ci_json("j-a", "Success"))
    late_failure = ci_json("j-a", "Failed", code="InternalError", message="boom")
    answer = (await client.post("/callbacks/tencent-ci", content=late_failure)).json()

    assert answer["jobs"][0] == {
        "provider": "tencent-ci",
        "job_id": "j-a",
        "state": "succeeded",
        "duplicate": True,
    }
    served = await job(client, "tencent-ci", "j-a")
    assert (served["state"], served["error"]) == ("succeeded", None)

    await client.post("/callbacks/tencent-ci", content=ci_json("j-b", "Failed", code="E1"))
    await client.post("/callbacks/tencent-ci", content=ci_json("j-b", "Success"))
    served = await job(client, "tencent-ci", "j-b")
    assert (served["state"], served["error"]) == ("succeeded", None)


async def test_between_final_states_the_later_end_time_wins(client: httpx.AsyncClient) -> None:
    success = ci_json("j-t", "Success", end="2024-01-01T10:00:05+0800")
    later_failure = ci_json("j-t", "Failed", end="2024-01-01T10:09:00+0800", code="E", message="m")
    earlier_cancel = ci_json("j-t", "Cancel", end="2024-01-01T10:00:01+0800")
    for body in (success, later_failure, earlier_cancel):
        assert (await client.post("/callbacks/tencent-ci", content=body)).status_code == 200

    served = await job(client, "tencent-ci", "j-t")
    assert (served["state"], served["error"]) == ("failed", {"code": "E", "message": "m"})
    assert served["finished_at"] == "2024-01-01T02:09:00Z"


async def test_a_later_delivery_fills_what_an_earlier_one_lacked(client: httpx.AsyncClient) -> None:
    await client.post("/callbacks/tencent-ci", content=ci_json("j-f", "Success"))
    fuller = ci_json("j-f", "Success", user_data="u-1", outputs=("o/v.mp3", "o/a.mp3"))
    answer = (await client.post("/callbacks/tencent-ci", content=fuller)).json()

    assert answer["duplicate"] is True
    served = await job(client, "tencent-ci", "j-f")
    assert served["user_data"] == "u-1"
    assert [output["role"] for output in served["outputs"]] == ["vocals", "accompaniment"]  # type: ignore[attr-defined]


async def test_winning_delivery_replaces_outputs(client: httpx.AsyncClient) -> None:
    await client.post(
        "/callbacks/tencent-ci", content=ci_json("j-o", "Running", outputs=("tmp/v",))
    )
    await client.post(
        "/callbacks/tencent-ci", content=ci_json("j-o", "Success", outputs=("o/v.mp3", "o/a.mp3"))
    )
    served = await job(client, "tencent-ci", "j-o")
    assert [output["object"] for output in served["outputs"]] == ["o/v.mp3", "o/a.mp3"]  # type: ignore[attr-defined]


async def test_a_losing_delivery_neither_replaces_nor_clears_outputs(
    client: httpx.AsyncClient,
) -> None:
    for body in (
        ci_json("j-keep", "Success", outputs=("o/v.mp3", "o/a.mp3")),
        ci_json("j-keep", "Running", outputs=("tmp/v",)),
        ci_json("j-keep", "Success"),
    ):
        assert (await client.post("/callbacks/tencent-ci", content=body)).status_code == 200
    served = await job(client, "tencent-ci", "j-keep")
    assert [output["object"] for output in served["outputs"]] == ["o/v.mp3", "o/a.mp3"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"<Response><JobsDetail>", "application/xml", "malformed XML"),
        (b'{"JobsDetail": ', "application/json", "malformed JSON"),
        (b'{"hello": "world"}', "application/json", "unrecognized payload"),
        (b'{"EventName": "TaskFinish", "JobsDetail": {"State": "Success"}}', None, "JobId"),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><Response>&a;</Response>',
            "text/xml",
            "DTD|entit",
        ),
    ],
)
async def test_bad_payload_is_refused_with_400_and_kept(
    client: httpx.AsyncClient, engine: Engine, body: bytes, content_type: str | None, message: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await client.post("/callbacks", content=body, headers=headers)

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "bad_payload"
    assert re.search(message, error["message"])
    [(stored_body, outcome, stored_error)] = rows(
        engine, "SELECT body, outcome, error FROM delivery WHERE id = :id", id=error["delivery_id"]
    )
    assert (bytes(stored_body), outcome, stored_error) == (body, "rejected", error["message"])  # type: ignore[arg-type]
    assert rows(engine, "SELECT count(*) FROM job") == [(0,)]


async def test_payload_of_another_family_is_refused_at_a_family_endpoint(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/callbacks/tencent-media-lab", content=suno_json("t-1"))
    assert answer.status_code == 400
    assert "not a tencent-media-lab callback" in answer.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/callbacks", "/callbacks/suno"])
async def test_other_methods_on_a_callback_endpoint_are_405_and_store_nothing(
    client: httpx.AsyncClient, engine: Engine, path: str
) -> None:
    answer = await client.put(path, content=suno_json("t-put"))
    assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
    assert answer.json()["error"]["code"] == "http_405"
    assert rows(engine, "SELECT count(*) FROM delivery") == [(0,)]


async def test_callbacks_are_served_below_the_root_path(settings: Settings, engine: Engine) -> None:
    app = create_app(settings.model_copy(update={"root_path": "/stemhook"}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, root_path="/stemhook")
        async with httpx.AsyncClient(transport=transport, base_url="http://stemhook") as client:
            answer = await client.post("/stemhook/callbacks/suno", content=suno_json("t-root"))
    assert answer.status_code == 200, answer.text
    assert rows(engine, "SELECT endpoint FROM delivery") == [("suno",)]


class _FailingOnce:
    """A writer whose first write fails as no error the service knows (a bug), then the real
    one's."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._failed = False

    async def write(self, submission: Submission) -> Receipt:
        if not self._failed:
            self._failed = True
            raise RuntimeError("a bug")
        return await self._writer.write(submission)


async def test_an_unexpected_error_in_a_callback_is_a_logged_500_and_the_next_is_served(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        app.state.writer = _FailingOnce(app.state.writer)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stemhook") as client:
            failed = await client.post("/callbacks/suno", content=suno_json("t-bug"))
            served = await client.post("/callbacks/suno", content=suno_json("t-bug"))
    assert failed.status_code == 500
    assert failed.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert failed.headers["x-request-id"]
    assert any(record.exc_info and "a bug" in str(record.exc_info[1]) for record in caplog.records)
    assert served.status_code == 200, served.text
    assert rows(engine, "SELECT job_id FROM job") == [("t-bug",)]


async def test_family_is_detected_whatever_the_content_type(client: httpx.AsyncClient) -> None:
    for content_type, body in [
        ("text/xml", ci_json("j-ct1", "Success")),
        (
            "application/json",
            b"<Response>" + b"<JobsDetail><JobId>j-ct2</JobId>"
            b"<State>Success</State><Tag>Tts</Tag></JobsDetail></Response>",
        ),
        ("text/plain", suno_json("t-ct3")),
    ]:
        answer = await client.post(
            "/callbacks", content=body, headers={"Content-Type": content_type}
        )
        assert answer.status_code == 200, answer.text
    assert (await job(client, "tencent-ci", "j-ct2"))["kind"] == "tts"
    assert (await job(client, "suno", "t-ct3"))["kind"] == "separate_vocal"


async def test_a_body_sent_in_pieces_is_stored_whole(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    body = ci_json("j-pieces", "Success")
    pieces = [body[start : start + 100] for start in range(0, len(body), 100)]

    async def sent_in_pieces() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    answer = await client.post("/callbacks/tencent-ci", content=sent_in_pieces())

    assert len(pieces) > 2
    assert answer.status_code == 200, answer.text
    assert rows(engine, "SELECT body FROM delivery") == [(body,)]
    assert (await job(client, "tencent-ci", "j-pieces"))["state"] == "succeeded"


async def test_body_above_the_limit_is_refused_with_413_and_not_stored(
    backend: Backend, engine: Engine
) -> None:
    async for client in open_client(backend.settings(max_body_bytes=2048)):
        declared = await client.post("/callbacks", content=b"{" + b" " * 4096 + b"}")
        streamed = await client.post("/callbacks", content=_chunks(b"x" * 1024, 4))

        assert (declared.status_code, streamed.status_code) == (413, 413)
        assert streamed.json()["error"]["code"] == "payload_too_large"
    assert rows(engine, "SELECT count(*) FROM delivery") == [(0,)]


async def test_callback_token_is_required_when_configured(backend: Backend, engine: Engine) -> None:
    token = "callback-token-0123456789"
    async for client in open_client(backend.settings(callback_token=token)):
        missing = await client.post("/callbacks/tencent-ci", content=ci_json("j-tok", "Success"))
        wrong = await client.post(
            "/callbacks/tencent-ci?token=nope", content=ci_json("j-tok", "Success")
        )
        right = await client.post(
            f"/callbacks/tencent-ci?token={token}", content=ci_json("j-tok", "Success")
        )

        assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert rows(engine, "SELECT count(*) FROM delivery") == [(1,)]


async def test_suno_signature_is_verified_when_a_key_is_set(
    backend: Backend, engine: Engine
) -> None:
    key = "suno-hmac-key"

    def signed(task_id: str, timestamp: int) -> dict[str, str]:
        digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
        return {
            "X-Webhook-Timestamp": str(timestamp),
            "X-Webhook-Signature": base64.b64encode(digest).decode(),
        }

    now = int(time.time())
    async for client in open_client(backend.settings(suno_hmac_key=key)):
        body = suno_json("t-sig")
        unsigned = await client.post("/callbacks/suno", content=body)
        stale = await client.post(
            "/callbacks/suno", content=body, headers=signed("t-sig", now - 301)
        )
        other_task = await client.post("/callbacks", content=body, headers=signed("t-other", now))
        good = await client.post("/callbacks", content=body, headers=signed("t-sig", now))

        assert [a.status_code for a in (unsigned, stale, other_task, good)] == [401, 401, 401, 200]
        # Other families are not affected by the Suno key.
        assert (
            await client.post("/callbacks", content=ci_json("j-x", "Success"))
        ).status_code == 200
    assert rows(engine, "SELECT count(*) FROM delivery") == [(2,)]


async def test_a_suno_signature_vouches_for_the_first_body_only(
    backend: Backend, engine: Engine
) -> None:
    key = "suno-hmac-key"
    headers = suno_signed(key, "t-reused", int(time.time()))
    failed = suno_json("t-reused", code=500, msg="separation failed")
    info = {
        "instrumental_url": "https://forged.example/i.mp3",
        "vocal_url": "https://forged.example/v.mp3",
    }
    forged = orjson.dumps(
        {"code": 200, "msg": "ok", "data": {"task_id": "t-reused", "vocal_removal_info": info}}
    )
    async for client in open_client(backend.settings(suno_hmac_key=key)):
        first = await client.post("/callbacks/suno", content=failed, headers=headers)
        reused = await client.post("/callbacks/suno", content=forged, headers=headers)
        retried = await client.post("/callbacks/suno", content=failed, headers=headers)
        found = await job(client, "suno", "t-reused")

    assert (first.status_code, first.json()["outcome"]) == (200, "accepted")
    assert reused.status_code == 401
    error = reused.json()["error"]
    assert error["code"] == "unauthorized"
    assert "already used for another body" in error["message"]
    assert (retried.status_code, retried.json()["outcome"]) == (200, "duplicate")
    assert (found["state"], found["outputs"], found["deliveries"]) == ("failed", [], 2)
    # The forgery is kept as evidence, linked to no job.
    assert rows(
        engine, "SELECT outcome, body FROM delivery WHERE id = :id", id=error["delivery_id"]
    ) == [("refused", forged)]
    assert rows(
        engine, "SELECT count(*) FROM delivery_job WHERE delivery_id = :id", id=error["delivery_id"]
    ) == [(0,)]


async def test_a_signed_delivery_kept_orphaned_still_holds_its_signature(
    backend: Backend, engine: Engine
) -> None:
    key = "suno-hmac-key"
    headers = suno_signed(key, "t-orphan", int(time.time()))
    genuine = suno_json("t-orphan", code=500, msg="separation failed")
    forged = suno_json("t-orphan")
    async for client in open_client(backend.settings(suno_hmac_key=key)):
        with refusing_job(engine, backend, "t-orphan"):
            orphaned = await client.post("/callbacks/suno", content=genuine, headers=headers)
        reused = await client.post("/callbacks/suno", content=forged, headers=headers)

    assert orphaned.json()["error"]["code"] == "unstorable_payload"
    assert (reused.status_code, reused.json()["error"]["code"]) == (401, "unauthorized")


async def test_read_api_requires_a_known_token(client: httpx.AsyncClient) -> None:
    await client.post("/callbacks/tencent-ci", content=ci_json("j-auth", "Success"))
    path = "/v1/jobs/tencent-ci/j-auth"

    anonymous = await client.get(path)
    wrong = await client.get(path, headers={"Authorization": "Bearer not-the-token-at-all"})
    unknown = await client.get("/v1/jobs/tencent-ci/nope", headers=AUTH)

    assert (anonymous.status_code, wrong.status_code, unknown.status_code) == (401, 401, 404)
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert unknown.json()["error"]["code"] == "not_found"
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_database_that_cannot_take_the_write_answers_503_quickly(
    backend: Backend, engine: Engine
) -> None:
    settings = backend.settings(write_timeout_s=1)
    with engine.connect() as blocker, blocker.begin():
        # On SQLite the writer engine's BEGIN IMMEDIATE already holds the one write lock.
        if backend.name == "postgresql":
            blocker.execute(text("LOCK TABLE delivery"))
        async for client in open_client(settings):
            started = time.monotonic()
            answer = await client.post("/callbacks/tencent-ci", content=ci_json("j-503", "Success"))
            elapsed = time.monotonic() - started
            assert answer.status_code == 503
            assert answer.json()["error"] == {
                "code": "storage_unavailable",
                "message": "the database cannot take the write now; retry later",
            }
            assert answer.headers["retry-after"]
            assert elapsed < PROVIDER_PATIENCE_S
            assert (await client.get("/healthz")).status_code == 200
    # Retried as a provider would, once the lock is gone, with the tests' patient write timeout.
    async for client in open_client(backend.settings()):
        retried = await client.post("/callbacks/tencent-ci", content=ci_json("j-503", "Success"))
        assert retried.status_code == 200


async def _chunks(piece: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield piece


async def test_odd_request_metadata_is_stored_as_sent(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    content_type = "application/json; " + "x" * 600
    answer = await client.post(
        "/callbacks", content=ci_json("j-meta", "Success"), headers={"Content-Type": content_type}
    )
    assert answer.status_code == 200, answer.text
    assert rows(engine, "SELECT content_type FROM delivery") == [(content_type,)]


async def test_values_beyond_the_columns_are_a_clear_400_or_unknown_not_a_500(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    long_tag = orjson.dumps(
        {"JobsDetail": {"JobId": "j-tag", "State": "Success", "Tag": "aB" * 32}}
    )
    huge_size = orjson.dumps(
        {
            "JobsDetail": {
                "JobId": "j-size",
                "State": "Success",
                "Tag": "Transcode",
                "Operation": {"MediaInfo": {"Format": {"Size": "1e30", "FormatName": "mp3"}}},
            }
        }
    )
    nul_key = orjson.dumps(
        {
            "code": 200,
            "msg": "",
            "data": {"task_id": "t-nul", "vocal_removal_info": {"x\x00_url": 5}},
        }
    )

    tag = await client.post("/callbacks", content=long_tag)
    size = await client.post("/callbacks", content=huge_size)
    nul = await client.post("/callbacks", content=nul_key)

    assert (tag.status_code, size.status_code, nul.status_code) == (400, 200, 400)
    assert "kind is longer than 64" in tag.json()["error"]["message"]
    media_info = (await job(client, "tencent-ci", "j-size"))["media_info"]
    assert media_info == {
        "format_name": "mp3",
        "duration_s": None,
        "bitrate_kbps": None,
        "size_bytes": None,
        "audio_streams": [],
    }
    [(stored_error,)] = rows(
        engine, "SELECT error FROM delivery WHERE id = :id", id=nul.json()["error"]["delivery_id"]
    )
    assert "\\x00" in str(stored_error)


async def test_jobs_the_database_refuses_are_kept_as_an_orphaned_delivery(
    client: httpx.AsyncClient, engine: Engine, backend: Backend
) -> None:
    bodies = [ci_json(f"j-ok-{n}", "Success") for n in range(8)]
    bodies.insert(4, ci_json("j-poison", "Success"))
    with refusing_job(engine, backend, "j-poison"):
        answers = await asyncio.gather(
            *(client.post("/callbacks/tencent-ci", content=body) for body in bodies)
        )

    poisoned = answers.pop(4)
    assert [answer.status_code for answer in answers] == [200] * 8
    assert poisoned.status_code == 400
    error = poisoned.json()["error"]
    assert error["code"] == "unstorable_payload"
    [(outcome, stored_body)] = rows(
        engine, "SELECT outcome, body FROM delivery WHERE id = :id", id=error["delivery_id"]
    )
    assert (outcome, bytes(stored_body)) == ("orphaned", bodies[4])  # type: ignore[arg-type]
    assert rows(engine, "SELECT count(*) FROM job") == [(8,)]
    assert rows(engine, "SELECT count(*) FROM job WHERE job_id = 'j-poison'") == [(0,)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_final_state_does_not_depend_on_arrival_order(
    client: httpx.AsyncClient, order: tuple[int, ...]
) -> None:
    deliveries = [
        ci_json("j-perm", "Success"),
        ci_json("j-perm", "Failed", end="2024-01-01T10:05:00+0800", code="E"),
        ci_json("j-perm", "Cancel", end="2024-01-01T10:09:00+0800"),
    ]
    for index in order:
        assert (await client.post("/callbacks", content=deliveries[index])).status_code == 200

    served = await job(client, "tencent-ci", "j-perm")
    # No two distinct end times stand between the success and the others: success wins, and
    # it keeps no end time borrowed from a state that lost.
    assert (served["state"], served["finished_at"], served["error"]) == ("succeeded", None, None)


async def test_repeated_request_headers_are_all_kept(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    answer = await client.post(
        "/callbacks",
        content=ci_json("j-hdr", "Success"),
        headers=[("X-Webhook-Sig", "one"), ("X-Webhook-Sig", "two")],
    )
    [(headers,)] = rows(
        engine, "SELECT headers FROM delivery WHERE id = :id", id=answer.json()["delivery_id"]
    )
    stored = headers if isinstance(headers, dict) else orjson.loads(str(headers))
    assert stored["x-webhook-sig"] == "one, two"


async def test_job_id_with_a_nul_character_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/jobs/suno/a%00b", headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_request"


async def test_a_client_hanging_up_mid_body_is_an_info_line_not_an_error(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    incoming = [
        {"type": "http.request", "body": ci_json("j-gone", "Success")[:20], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return incoming.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/callbacks",
        "raw_path": b"/callbacks",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"stemhook"), (b"content-length", b"200")],
        "client": ("203.0.113.7", 4242),
        "server": ("stemhook", 80),
    }
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            await manager.app(scope, receive, send)

    assert sent[0]["status"] == 499
    assert not [record for record in caplog.records if record.levelno > logging.INFO]
    assert not [record for record in caplog.records if record.exc_info]
    assert any("disconnected" in record.getMessage() for record in caplog.records)
    assert rows(engine, "SELECT id FROM delivery") == []
