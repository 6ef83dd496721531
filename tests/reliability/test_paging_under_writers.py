"""Paging through /v1/jobs and /v1/deliveries while two server processes write: no listing
skips or repeats what was there when it began (app/queries/marks.py).

Each server is a replica with its own writer process, so their transactions commit in parallel
and in any order. Between pages, jobs the listing has not reached and jobs it has seen get newer
deliveries (they move to the top), new jobs arrive, and a background poster keeps writes in
flight while each page is read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.payloads import ci_json
from tests.conftest import API_TOKEN, Backend
from tests.reliability.support import figures, server_env
from tests.servers import running_server

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
EXISTING = [f"j-{n:03d}" for n in range(60)]
PAGE = 7


async def post(http: httpx.AsyncClient, url: str, job_id: str, state: str) -> int:
    answer = await http.post(f"{url}/callbacks/tencent-ci", content=ci_json(job_id, state))
    assert answer.status_code == 200, answer.text
    delivery_id: int = answer.json()["delivery_id"]
    return delivery_id


async def pages(http: httpx.AsyncClient, url: str, path: str) -> Any:
    """Each page's items, the next one fetched once the caller resumes the generator."""
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
        answer = await http.get(f"{url}{path}", params=params, headers=AUTH)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        yield page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return


async def keep_posting(http: httpx.AsyncClient, urls: list[str], stop: asyncio.Event) -> int:
    posted = 0
    while not stop.is_set():
        await post(http, urls[posted % 2], f"bg-{posted}", "Running")
        posted += 1
    return posted


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/deliveries"])
async def test_paging_under_writers_in_two_processes_neither_skips_nor_repeats(
    backend: Backend, tmp_path: Path, path: str
) -> None:
    env = server_env(backend.url)
    with running_server(env, tmp_path) as first, running_server(env, tmp_path) as second:
        urls = [first, second]
        async with httpx.AsyncClient(timeout=30) as http:
            before = [
                await post(http, urls[n % 2], job_id, "Running")
                for n, job_id in enumerate(EXISTING)
            ]
            stop = asyncio.Event()
            background = asyncio.create_task(keep_posting(http, urls, stop))
            listed: list[Any] = []
            written_between_pages = read_pages = 0
            async for items in pages(http, first, path):
                read_pages += 1
                listed += [item["job_id"] if path == "/v1/jobs" else item["id"] for item in items]
                seen = [job for job in EXISTING if job in listed]
                unseen = [job for job in EXISTING if job not in listed]
                # Both processes at once: the last jobs not reached yet, a job already seen,
                # and a new one, each to either server.
                targets = [*unseen[-2:], *seen[:1], f"new-{len(listed)}"]
                await asyncio.gather(
                    *(
                        post(http, urls[n % 2], job_id, "Success")
                        for n, job_id in enumerate(targets * 2)
                    )
                )
                written_between_pages += len(targets) * 2
            stop.set()
            written_meanwhile = await background

    expected = EXISTING if path == "/v1/jobs" else before
    missing = set(expected) - set(listed)
    figures(
        f"paging {path} under writes, {backend.name}, 2 server processes",
        pages=read_pages,
        items_listed=len(listed),
        written_while_paging=written_between_pages + written_meanwhile,
        skipped=len(missing),
        repeated=len(listed) - len(set(listed)),
    )
    assert len(listed) == len(set(listed)), "a listing repeated an item"
    assert not missing, f"the listing skipped what was there when it began: {sorted(missing)}"
    assert written_between_pages > 0 and written_meanwhile > 0
