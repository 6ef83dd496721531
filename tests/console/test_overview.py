"""The overview: the last 24 hours' counts, each a link to its filtered list, and the chart of
deliveries by outcome hour by hour; all of it under a proxy's prefix too."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine

from app.console.chart import hourly_chart
from tests.api.payloads import ci_json, suno_json
from tests.api.test_job_files import set_files
from tests.conftest import Backend
from tests.console.conftest import open_console, sign_in

pytestmark = pytest.mark.anyio


async def seed(client: httpx.AsyncClient) -> None:
    for body in (ci_json("ok-1", "Success"), ci_json("ok-2", "Success"), suno_json("s-1")):
        assert (await client.post("/callbacks", content=body)).status_code == 200
    bad = ci_json("bad-1", "Failed", code="E", message="m")
    assert (await client.post("/callbacks", content=bad)).status_code == 200
    assert (await client.post("/callbacks/suno", content=b"{oops")).status_code == 400


def cell(page: httpx.Response, provider: str, state: str) -> str:
    found = re.search(
        rf'<td data-provider="{provider}" data-state="{state}">(?:<a [^>]+>)?'
        r"(?:<span [^>]+>)?(\d+)<",
        page.text,
    )
    assert found is not None
    return found[1]


def legend(page: httpx.Response) -> dict[str, int]:
    """The chart's legend: deliveries by outcome, those with any."""
    found = re.findall(r'aria-hidden="true"></span>(\w+) (\d+)</a>', page.text)
    return {outcome: int(count) for outcome, count in found if count != "0"}


async def test_the_overview_counts_the_last_day(backend: Backend, engine: Engine) -> None:
    async for client in open_console(backend.settings()):
        await seed(client)
        set_files(engine, "s-1", "failed", position=0, error="gone")
        await sign_in(client)
        page = await client.get("/ui/")

    assert page.status_code == 200
    assert cell(page, "tencent-ci", "succeeded") == "2"
    assert cell(page, "tencent-ci", "failed") == "1"
    assert cell(page, "suno", "succeeded") == "1"
    assert cell(page, "suno", "failed") == "0"
    for name, count in (("failed-jobs", 1), ("failed-files", 1), ("rejected-deliveries", 1)):
        assert f'<span class="count" id="{name}">{count}</span>' in page.text
    assert "/ui/jobs?state=failed&amp;received_after=" in page.text
    assert "/ui/deliveries?outcome=rejected&amp;outcome=orphaned&amp;received_after=" in page.text
    assert legend(page) == {"accepted": 4, "rejected": 1}
    assert page.text.count('<rect class="o-accepted"') == 1  # all in this hour
    assert page.text.count('<rect class="o-rejected"') == 1
    assert 'aria-label="5 deliveries in the last 24 hours' in page.text


@pytest.mark.parametrize(("later", "shown"), [(timedelta(hours=22), 5), (timedelta(hours=25), 0)])
async def test_the_overview_counts_the_24_hours_up_to_its_clock(
    backend: Backend, later: timedelta, shown: int
) -> None:
    async for client in open_console(backend.settings()):
        await seed(client)
    async for client in open_console(backend.settings(), now=datetime.now(UTC) + later):
        await sign_in(client)
        page = await client.get("/ui/")

    assert page.status_code == 200
    assert f'aria-label="{shown} deliveries in the last 24 hours' in page.text
    assert cell(page, "tencent-ci", "succeeded") == str(min(shown, 2))


async def test_every_page_renders_under_a_prefix(backend: Backend) -> None:
    settings = backend.settings(root_path="/stemhook")
    async for client in open_console(settings, root_path="/stemhook"):
        await seed(client)
        await sign_in(client, prefix="/stemhook")
        pages = {
            path: await client.get(f"/stemhook/ui{path}")
            for path in ("/", "/jobs", "/jobs/tencent-ci/bad-1", "/deliveries")
        }
        first = re.search(r'href="/stemhook/ui(/deliveries/\d+)"', pages["/deliveries"].text)
        assert first is not None
        pages[first[1]] = await client.get(f"/stemhook/ui{first[1]}")
        found = await client.get("/stemhook/ui/jobs/find?job_id=s-1")

    for path, page in pages.items():
        assert page.status_code == 200, path
        links = re.findall(r'(?:href|src|action)="([^#"][^"]*)"', page.text)
        assert links and all(link.startswith("/stemhook/ui") for link in links), path
    assert found.headers["location"] == "/stemhook/ui/jobs/suno/s-1"


def test_the_chart_stacks_each_hours_outcomes() -> None:
    since = datetime(2026, 12, 8, 0, tzinfo=UTC)
    counts = {(0, "accepted"): 3, (0, "rejected"): 1, (5, "accepted"): 4}

    chart = hourly_chart(counts, since=since, hours=24, outcomes=["accepted", "rejected"])

    first, second, third = chart.bars
    assert (first.outcome, second.outcome, third.outcome) == ("accepted", "rejected", "accepted")
    assert first.y + first.height == pytest.approx(chart.baseline, abs=0.1)
    assert second.y + second.height == pytest.approx(first.y, abs=0.1)  # stacked on it
    assert second.y == pytest.approx(third.y, abs=0.1)  # 4 in each hour: the same height
    assert third.title == "05:00–06:00 UTC: 4 accepted"
    assert [label.text for label in chart.hours] == ["00:00", "06:00", "12:00", "18:00"]
    assert chart.total == 8
