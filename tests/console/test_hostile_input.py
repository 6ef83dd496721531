"""What a stranger sends, shown by the console: a delivery's body is whatever was posted to
/callbacks (up to STEMHOOK_MAX_BODY_BYTES, 1 MiB by default), pretty-printed on its delivery's
page and, as the latest payload, on its job's page; a cookie is whatever a client sends."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from pydantic import SecretStr

from app.console.bodies import shown_body
from app.console.sessions import issue, verify
from tests.api.payloads import suno_json

pytestmark = pytest.mark.anyio

# A console page may show a body larger than it came, by its indentation; not by orders of
# magnitude.
GROWTH = 8


def test_a_hostile_xml_like_body_is_shown_in_linear_time() -> None:
    """Markup that never closes (`<` alone, `<!--` alone), as large as is reshaped: a pattern
    that scans to the end from every `<` takes minutes on it; one pass, milliseconds. The bound
    is a hundred times the one pass's time on a loaded machine, so only the quadratic fails."""
    for body in (b"<" * 250_000, b"<!--" * 60_000):
        started = time.perf_counter()
        shown = shown_body(body)
        assert time.perf_counter() - started < 5, body[:8]
        assert shown.text == body.decode()


@pytest.mark.parametrize(
    "body",
    [
        # Each opening tag one level deeper: the n-th line has 2n spaces, n² bytes in all. 30 KB
        # gives 100 MB of page; a 1 MiB body 120 GB (the process is killed).
        b"<a>" * 10_000,
        # orjson indents up to 254 levels: each "0," below them is a 510-byte line (250 MB of
        # page from a 1 MiB body).
        b"[" * 250 + b"0," * 20_000 + b"0" + b"]" * 250,
    ],
    ids=["xml", "json"],
)
def test_a_hostile_body_is_shown_in_bounded_size(body: bytes) -> None:
    shown = shown_body(body)

    assert len(shown.text) <= GROWTH * len(body) + 1024, (shown.form, len(shown.text))


def test_json_nested_deeper_than_orjson_writes_is_still_shown() -> None:
    """orjson reads 1024 levels but writes 254: 255 to 1024 levels raise TypeError."""
    body = b"[" * 300 + b"]" * 300

    shown = shown_body(body)

    assert shown.text.replace("\n", "").replace(" ", "") == body.decode()


async def test_a_delivery_nested_too_deep_to_indent_still_has_its_page(
    console: httpx.AsyncClient,
) -> None:
    posted = await console.post("/callbacks/suno", content=b"[" * 300 + b"]" * 300)
    delivery_id = posted.json()["error"]["delivery_id"]

    page = await console.get(f"/ui/deliveries/{delivery_id}")

    assert page.status_code == 200


async def test_a_job_whose_latest_payload_nests_deep_still_has_its_page(
    console: httpx.AsyncClient,
) -> None:
    """A valid Suno callback with a field nobody reads, nested 300 deep: the job is stored,
    and its page (which indents the latest payload) fails: anyone who can post a callback for
    a job hides that job's page."""
    # Built as bytes: orjson itself cannot write it.
    body = suno_json("t-deep")[:-1] + b',"extra":' + b"[" * 300 + b"]" * 300 + b"}"
    assert orjson.loads(body)["data"]["task_id"] == "t-deep"
    posted = await console.post("/callbacks/suno", content=body)
    assert posted.status_code == 200, posted.text

    page = await console.get("/ui/jobs/suno/t-deep")

    assert page.status_code == 200


def test_a_cookie_with_a_non_ascii_signature_is_refused_not_an_error() -> None:
    """hmac.compare_digest raises TypeError on a str that is not ASCII; a cookie's value is
    whatever the client sends (Starlette reads the header as latin-1)."""
    token = "first-token-0123456789"
    now = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
    cookie = issue(token.encode(), now=now).cookie()

    assert verify(cookie + "\u00e9", (SecretStr(token),), now=now) is None
