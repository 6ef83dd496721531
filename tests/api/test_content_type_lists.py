"""A content type listing several types (browsers take the last) is served as an octet stream."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.api.test_file_serving import HREF, client  # noqa: F401 - fixture
from tests.api.test_job_files import AUTH, set_files

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "sent", ["audio/mpeg, text/html", "image/png,image/svg+xml", "video/x\tx, text/html"]
)
async def test_a_content_type_list_ending_in_a_page_type_is_served_as_an_octet_stream(
    client: httpx.AsyncClient,  # noqa: F811
    engine: Engine,
    sent: str,
) -> None:
    """The allow-list checks only the text before the first ';' with startswith(), so a source
    answering `Content-Type: audio/mpeg, text/html` has that header served back verbatim.
    Browsers that follow the Fetch standard take the last MIME type of a comma list (text/html);
    only the CSP sandbox then keeps its scripts from running on stemhook's origin."""
    set_files(engine, "t-1", "stored", position=1, content_type=sent)

    answer = await client.get(HREF, headers=AUTH)

    assert answer.headers["content-type"] == "application/octet-stream"
