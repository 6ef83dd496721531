"""A console in front of a real database, and a browser-like client signed in to it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.api.deps import request_time
from app.config import Settings
from app.main import create_app
from tests.conftest import API_TOKEN

ORIGIN = "http://stemhook"
SAME_ORIGIN = {"Origin": ORIGIN}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def open_console(
    settings: Settings, *, base_url: str = ORIGIN, root_path: str = "", now: datetime | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app as a browser sees it behind a proxy that strips `root_path`; its
    pages' clock set to `now` when given."""
    app = create_app(settings)
    if now is not None:
        app.dependency_overrides[request_time] = lambda: now
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(
            app=manager.app, client=("203.0.113.7", 4242), root_path=root_path
        )
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


async def sign_in(
    client: httpx.AsyncClient, *, token: str = API_TOKEN, prefix: str = ""
) -> httpx.Response:
    origin = f"{client.base_url.scheme}://{client.base_url.netloc.decode()}"
    return await client.post(
        f"{prefix}/ui/sign-in", data={"token": token}, headers={"Origin": origin}
    )


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found is not None, "the page has no form with a CSRF token"
    return found[1]


@pytest.fixture
async def browser(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, not signed in."""
    async for client in open_console(settings):
        yield client


@pytest.fixture
async def console(browser: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client signed in to the console."""
    assert (await sign_in(browser)).status_code == 303
    return browser
