"""A body no parser can read is the body's fault, whatever the parser raised: 400 `bad_payload`,
kept raw as a rejected delivery, one warning line and no traceback; never a 500, never lost.

Through HTTP with the real writer process, on both backends.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from app.config import Settings
from app.providers.model import Provider
from tests.conftest import API_TOKEN, open_client

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ENDPOINTS = ["/callbacks", *(f"/callbacks/{provider}" for provider in Provider)]
UNKNOWN_ENCODING = b'<?xml version="1.0" encoding="x-nope"?><Response/>'
DEEP = 100_000


def stored(engine: Engine, delivery_id: int) -> tuple[bytes, str]:
    with engine.connect() as connection:
        body, outcome = connection.execute(
            text("SELECT body, outcome FROM delivery WHERE id = :id"), {"id": delivery_id}
        ).one()
    return bytes(body), outcome


@pytest.mark.anyio
async def test_an_unknown_xml_encoding_is_a_stored_rejection_without_a_traceback(
    client: httpx.AsyncClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await client.post("/callbacks/tencent-ci", content=UNKNOWN_ENCODING)

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "bad_payload"
    assert "LookupError" in error["message"]
    assert stored(engine, error["delivery_id"]) == (UNKNOWN_ENCODING, "rejected")
    listed = await client.get("/v1/deliveries", params={"outcome": "rejected"}, headers=AUTH)
    assert [item["id"] for item in listed.json()["items"]] == [error["delivery_id"]]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not [record for record in caplog.records if record.exc_info]


@asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(settings):
        yield client


@contextmanager
def _app_in_a_thread(settings: Settings) -> Iterator[tuple[BlockingPortal, httpx.AsyncClient]]:
    """The app of the `client` fixture, driven from synchronous code (hypothesis' examples)."""
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(_opened(settings)) as client,
    ):
        yield portal, client


encodings = st.sampled_from(["x-nope", "utf-7", "bogus", "", "utf-16", "ebcdic-cp-be"]) | st.text(
    st.characters(codec="ascii", exclude_characters='"'), max_size=30
)
soup = st.binary(max_size=300)


@st.composite
def xml_with_encoding(draw: st.DrawFn) -> bytes:
    declaration = f'<?xml version="1.0" encoding="{draw(encodings)}"?>'.encode()
    return declaration + draw(soup | st.just(b"<Response><JobsDetail/></Response>"))


EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
bodies = xml_with_encoding() | soup | soup.map(lambda raw: b"<" + raw) | soup.map(b"{".__add__)


def test_any_body_is_answered_4xx_or_200_and_stored(settings: Settings, engine: Engine) -> None:
    with _app_in_a_thread(settings) as (portal, client):

        @given(body=bodies, endpoint=st.sampled_from(ENDPOINTS))
        @example(body=UNKNOWN_ENCODING, endpoint="/callbacks/tencent-ci")
        @example(body=b"[" * DEEP + b"]" * DEEP, endpoint="/callbacks")
        @example(body=b'{"a":' * DEEP + b"1" + b"}" * DEEP, endpoint="/callbacks/suno")
        @example(body=b"<a>" * DEEP + b"</a>" * DEEP, endpoint="/callbacks")
        @example(body=b'{"code":' + b"9" * 5000 + b"}", endpoint="/callbacks")
        @example(body=b'{"code":1e999999,"data":{}}', endpoint="/callbacks/suno")
        @EXAMPLES
        def answered_and_kept(body: bytes, endpoint: str) -> None:
            answer = portal.call(functools.partial(client.post, endpoint, content=body))
            assert answer.status_code in (200, 400), answer.text
            refused = answer.status_code == 400
            receipt = answer.json()["error"] if refused else answer.json()
            expected = ("rejected", "orphaned") if refused else ("accepted", "duplicate")
            stored_body, outcome = stored(engine, receipt["delivery_id"])
            assert stored_body == body
            assert outcome in expected

        answered_and_kept()
