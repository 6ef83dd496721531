"""The console's job pages over seeded jobs: the list with the API's filters and cursors, finding
a job by id, a job whole, and its stored stems played through the session."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from app.storage.local import LocalStore
from tests.api.payloads import ci_json, suno_json
from tests.api.test_job_files import set_files
from tests.conftest import FIXTURES, Backend
from tests.console.conftest import open_console, sign_in
from tests.ingest.file_rows import store

pytestmark = pytest.mark.anyio
STEM = bytes(range(256)) * 64


def rows(page: httpx.Response) -> list[str]:
    """The job ids the list shows, in order."""
    body = page.text.split('<table class="list" id="jobs">')[1].split("</table>")[0]
    return re.findall(r'<td class="id" data-label="Job"><a href="[^"]+">([^<]+)</a>', body)


@pytest.fixture
async def seeded(backend: Backend, engine: Engine, tmp_path: Path) -> Any:
    """Suno job s-1 with its vocals stored, CI jobs ci-ok (succeeded) and ci-bad (failed)."""
    files = LocalStore(tmp_path / "files")
    stored = files.write("suno/s-1/1-vocals.wav", [STEM])
    store(engine, ci_json("ci-ok", "Success", user_data="batch 7"))
    store(engine, ci_json("ci-bad", "Failed", code="InvalidInput", message="no audio stream"))
    store(engine, suno_json("s-1"))
    set_files(
        engine,
        "s-1",
        "stored",
        position=1,
        bytes=stored.size,
        sha256=stored.sha256,
        md5=stored.md5,
        md5_verified=True,
        content_type="audio/wav",
        storage_key=stored.key,
    )
    set_files(engine, "s-1", "failed", position=0, error="the source answered 404")
    settings = backend.settings(files_dir=files.root)
    async for client in open_console(settings):
        assert (await sign_in(client)).status_code == 303
        yield client


async def test_the_list_shows_every_job_newest_first(seeded: httpx.AsyncClient) -> None:
    page = await seeded.get("/ui/jobs")

    assert page.status_code == 200
    assert rows(page) == ["s-1", "ci-bad", "ci-ok"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=failed", ["ci-bad"]),
        ("state=failed&state=succeeded", ["s-1", "ci-bad", "ci-ok"]),
        ("provider=suno", ["s-1"]),
        ("provider=tencent-ci&has_error=false", ["ci-ok"]),
        ("user_data=batch+7", ["ci-ok"]),
        ("files=failed", ["s-1"]),
        ("watch=idle&provider=tencent-ci", ["ci-bad", "ci-ok"]),
        ("kind=nothing", []),
        # A form sends its empty fields: they filter nothing.
        ("provider=&kind=&state=failed&received_after=&has_error=", ["ci-bad"]),
        ("received_after=2000-01-01T00:00&received_before=2000-01-02T00:00", []),
    ],
)
async def test_the_list_filters_as_the_api_does(
    seeded: httpx.AsyncClient, query: str, expected: list[str]
) -> None:
    assert rows(await seeded.get(f"/ui/jobs?{query}")) == expected


async def test_a_wrong_filter_is_said_on_the_page(seeded: httpx.AsyncClient) -> None:
    for query in ("state=lost", "received_after=yesterday", "cursor=forged", "colour=red"):
        page = await seeded.get(f"/ui/jobs?{query}")
        assert page.status_code == 422
        assert 'class="alert"' in page.text
        assert rows(page) == []


async def test_pages_follow_the_apis_cursors(seeded: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url: str | None = "/ui/jobs?limit=1&provider=tencent-ci"
    while url is not None:
        page = await seeded.get(url)
        seen += rows(page)
        found = re.search(r'<a rel="next" href="([^"]+)"', page.text)
        url = found[1].replace("&amp;", "&") if found else None
        assert url is None or "provider=tencent-ci" in url

    assert seen == ["ci-bad", "ci-ok"]


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("job_id=ci-ok", "/ui/jobs/tencent-ci/ci-ok"),
        ("job_id=ci-ok&provider=", "/ui/jobs/tencent-ci/ci-ok"),
        ("job_id=+s-1+&provider=suno", "/ui/jobs/suno/s-1"),
    ],
)
async def test_finding_a_job_by_id_goes_to_it(
    seeded: httpx.AsyncClient, query: str, location: str
) -> None:
    answer = await seeded.get(f"/ui/jobs/find?{query}")

    assert (answer.status_code, answer.headers["location"]) == (303, location)


async def test_an_unknown_job_id_is_not_found(seeded: httpx.AsyncClient) -> None:
    for query in ("job_id=nobody", "job_id=s-1&provider=tencent-ci"):
        answer = await seeded.get(f"/ui/jobs/find?{query}")
        assert answer.status_code == 404
        assert "No job has the id" in answer.text
    assert (await seeded.get("/ui/jobs/suno/nobody")).status_code == 404
    assert (await seeded.get("/ui/jobs/nowhere/s-1")).status_code == 404


async def test_a_job_page_shows_its_error_times_and_payload(seeded: httpx.AsyncClient) -> None:
    page = await seeded.get("/ui/jobs/tencent-ci/ci-bad")

    assert page.status_code == 200
    text = page.text
    assert '<span class="badge state-failed">failed</span>' in text
    assert "<strong>InvalidInput</strong>: no audio stream" in text
    assert "Created</dt><dd><time" in text
    # The latest payload, indented, with its copy button.
    assert '"EventName": "TaskFinish"' in text.replace("&#34;", '"')
    assert 'data-copy="latest-body"' in text
    # The timeline: the delivery, then the state it made.
    timeline = text.split('id="timeline"')[1].split("</ol>")[0]
    delivery = re.search(r">delivery \d+</a>", timeline)
    assert delivery is not None and delivery.start() < timeline.index("first heard of")


async def test_a_stored_stem_is_played_through_the_session(seeded: httpx.AsyncClient) -> None:
    page = await seeded.get("/ui/jobs/suno/s-1")
    player = re.search(r'<audio controls preload="metadata" src="([^"]+)"', page.text)

    assert player is not None and player[1] == "/ui/jobs/suno/s-1/files/1"
    assert "md5-verified" in page.text
    assert "Could not be stored: the source answered 404" in page.text
    whole = await seeded.get(player[1])
    part = await seeded.get(player[1], headers={"Range": "bytes=100-199"})
    assert (whole.status_code, whole.content) == (200, STEM)
    assert (part.status_code, part.content) == (206, STEM[100:200])
    assert part.headers["content-range"] == f"bytes 100-199/{len(STEM)}"
    # The file's own policy, not the page's.
    assert part.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert (await seeded.get("/ui/jobs/suno/s-1/files/0")).status_code == 404


async def test_a_stored_stem_is_not_served_without_a_session(seeded: httpx.AsyncClient) -> None:
    seeded.cookies.clear()

    answer = await seeded.get("/ui/jobs/suno/s-1/files/1")

    assert answer.status_code == 303


async def test_an_xml_payload_is_shown_one_element_a_line(backend: Backend, engine: Engine) -> None:
    body = (FIXTURES / "tencent-ci" / "seed000_case1_voice_separate.xml").read_bytes()
    store(engine, body)
    async for client in open_console(backend.settings()):
        await sign_in(client)
        listed = rows(await client.get("/ui/jobs"))
        page = await client.get(f"/ui/jobs/tencent-ci/{listed[0]}")

    shown = page.text.split('id="latest-body" tabindex="0">')[1].split("</pre>")[0]
    assert "\n  &lt;EventName&gt;TaskFinish&lt;/EventName&gt;" in shown


async def test_the_job_pages_script_waits_on_the_job(seeded: httpx.AsyncClient) -> None:
    final = await seeded.get("/ui/jobs/tencent-ci/ci-bad/wait")
    unknown = await seeded.get("/ui/jobs/tencent-ci/nobody/wait")

    assert final.status_code == 200
    assert final.json()["state"] == "failed"
    assert unknown.status_code == 404
    seeded.cookies.clear()
    assert (await seeded.get("/ui/jobs/tencent-ci/ci-bad/wait")).status_code == 303


async def test_only_the_first_page_of_a_list_renews_itself(seeded: httpx.AsyncClient) -> None:
    first = await seeded.get("/ui/jobs?limit=1")
    found = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert found is not None
    later = await seeded.get(found[1].replace("&amp;", "&"))

    assert '<tbody id="job-rows" data-refresh=' in first.text
    assert '<tbody id="job-rows">' in later.text
