"""The console's delivery pages: the inbox with the API's filters, a delivery whole (never a
credential), and its Replay button, which goes through the same replay as /v1."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine, func, select, update

from app import models
from tests.api.payloads import ci_json, suno_json, suno_signed
from tests.conftest import Backend
from tests.console.conftest import SAME_ORIGIN, csrf_of, open_console, sign_in

pytestmark = pytest.mark.anyio
SUNO_KEY = "suno-key-0123456789"


ROW = re.compile(
    r'<tr data-outcome="(\w+)"( class="stands-out")?>\s*<td data-label="Id"><a [^>]+>(\d+)'
)


def listed(page: httpx.Response) -> list[tuple[str, str, bool]]:
    """(id, outcome, stands out) of each row of the inbox."""
    return [(id_, outcome, bool(marked)) for outcome, marked, id_ in ROW.findall(page.text)]


@pytest.fixture
async def inbox(
    backend: Backend, engine: Engine
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, int]]]:
    """A signed-in console over an accepted CI delivery, a rejected Suno one and a signed
    Suno one; the ids by name."""
    async for client in open_console(backend.settings(suno_hmac_key=SUNO_KEY)):
        accepted = await client.post("/callbacks", content=ci_json("j-1", "Success"))
        rejected = await client.post("/callbacks/suno", content=b"{oops")
        signed = await client.post(
            "/callbacks",
            content=suno_json("t-signed"),
            headers=suno_signed(SUNO_KEY, "t-signed", int(time.time()))
            | {"Authorization": "Bearer callers-secret", "X-Request-Id": "r-7"},
        )
        ids = {
            "accepted": accepted.json()["delivery_id"],
            "rejected": rejected.json()["error"]["delivery_id"],
            "signed": signed.json()["delivery_id"],
        }
        await sign_in(client)
        yield client, ids


async def test_the_inbox_lists_newest_first_and_rejected_ones_stand_out(
    inbox: tuple[httpx.AsyncClient, dict[str, int]],
) -> None:
    client, ids = inbox

    rows = listed(await client.get("/ui/deliveries"))

    assert rows == [
        (str(ids["signed"]), "accepted", False),
        (str(ids["rejected"]), "rejected", True),
        (str(ids["accepted"]), "accepted", False),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("outcome=rejected", ["rejected"]),
        ("outcome=rejected&outcome=accepted&provider=tencent-ci", ["accepted"]),
        # A body sent to Suno's endpoint is Suno's, parsed or not.
        ("provider=suno&outcome=", ["signed", "rejected"]),
        ("received_before=2000-01-01T00:00", []),
    ],
)
async def test_the_inbox_filters_as_the_api_does(
    inbox: tuple[httpx.AsyncClient, dict[str, int]], query: str, expected: list[str]
) -> None:
    client, ids = inbox

    rows = listed(await client.get(f"/ui/deliveries?{query}"))

    assert [row[0] for row in rows] == [str(ids[name]) for name in expected]


async def test_the_inbox_pages_with_the_apis_cursors(
    inbox: tuple[httpx.AsyncClient, dict[str, int]],
) -> None:
    client, ids = inbox
    seen: list[str] = []
    url: str | None = "/ui/deliveries?limit=2"
    while url is not None:
        page = await client.get(url)
        seen += [row[0] for row in listed(page)]
        found = re.search(r'<a rel="next" href="([^"]+)"', page.text)
        url = found[1].replace("&amp;", "&") if found else None

    assert seen == [str(ids[name]) for name in ("signed", "rejected", "accepted")]
    assert (await client.get("/ui/deliveries?outcome=lost")).status_code == 422


async def test_a_delivery_page_shows_no_credential(
    inbox: tuple[httpx.AsyncClient, dict[str, int]], engine: Engine
) -> None:
    client, ids = inbox
    # As an older delivery stored them, before headers were kept by allowlist.
    with engine.begin() as connection:
        stored = connection.execute(
            select(models.Delivery.headers).where(models.Delivery.id == ids["signed"])
        ).scalar_one()
        connection.execute(
            update(models.Delivery)
            .where(models.Delivery.id == ids["accepted"])
            .values(headers={"authorization": "Bearer old-secret", "x-request-id": "r-old"})
        )
    signature = stored["x-webhook-signature"]

    signed = (await client.get(f"/ui/deliveries/{ids['signed']}")).text
    older = (await client.get(f"/ui/deliveries/{ids['accepted']}")).text

    assert signature not in signed and "callers-secret" not in signed
    assert "x-webhook-timestamp" in signed and "r-7" in signed
    assert "old-secret" not in older and "r-old" in older
    assert 'href="/ui/jobs/suno/t-signed">t-signed</a>' in signed


async def test_a_rejected_delivery_shows_why_and_its_body(
    inbox: tuple[httpx.AsyncClient, dict[str, int]],
) -> None:
    client, ids = inbox

    page = await client.get(f"/ui/deliveries/{ids['rejected']}")

    assert page.status_code == 200
    assert '<p class="alert" role="alert">' in page.text
    assert '<pre class="body" id="body" tabindex="0">{oops</pre>' in page.text
    assert "Not replayed." in page.text


async def test_replay_makes_a_new_delivery_through_the_apis_path(
    inbox: tuple[httpx.AsyncClient, dict[str, int]], engine: Engine
) -> None:
    client, ids = inbox
    page = await client.get(f"/ui/deliveries/{ids['accepted']}")

    replayed = await client.post(
        f"/ui/deliveries/{ids['accepted']}/replay",
        data={"csrf": csrf_of(page)},
        headers=SAME_ORIGIN,
    )
    new_page = await client.get(replayed.headers["location"])
    original = await client.get(f"/ui/deliveries/{ids['accepted']}")

    new_id = int(replayed.headers["location"].rsplit("/", 1)[1])
    assert replayed.status_code == 303 and new_id > ids["signed"]
    assert f'href="/ui/deliveries/{ids["accepted"]}">delivery {ids["accepted"]}</a>' in (
        new_page.text
    )
    assert '<span class="badge outcome-duplicate">duplicate</span>' in new_page.text
    assert f'<a href="/ui/deliveries/{new_id}">delivery {new_id}</a>' in original.text
    with engine.connect() as connection:
        replay_of = connection.execute(
            select(models.Delivery.replay_of).where(models.Delivery.id == new_id)
        ).scalar_one()
    assert replay_of == ids["accepted"]


@pytest.mark.parametrize(
    "headers", [SAME_ORIGIN, {"Origin": "http://evil.example"}], ids=["no-token", "cross-site"]
)
async def test_a_replay_without_the_sessions_token_or_from_another_site_changes_nothing(
    inbox: tuple[httpx.AsyncClient, dict[str, int]], engine: Engine, headers: dict[str, str]
) -> None:
    client, ids = inbox
    csrf = csrf_of(await client.get(f"/ui/deliveries/{ids['rejected']}"))
    data = {"csrf": "forged"} if headers is SAME_ORIGIN else {"csrf": csrf}

    answer = await client.post(
        f"/ui/deliveries/{ids['rejected']}/replay", data=data, headers=headers
    )

    assert answer.status_code == 403
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(models.Delivery)).scalar() == 3


async def test_replaying_what_is_no_longer_kept_says_so(
    inbox: tuple[httpx.AsyncClient, dict[str, int]], engine: Engine
) -> None:
    client, ids = inbox
    csrf = csrf_of(await client.get("/ui/deliveries"))
    with engine.begin() as connection:
        connection.execute(
            update(models.Delivery).where(models.Delivery.id == ids["rejected"]).values(body=None)
        )

    page = await client.get(f"/ui/deliveries/{ids['rejected']}")
    gone = await client.post(
        f"/ui/deliveries/{ids['rejected']}/replay", data={"csrf": csrf}, headers=SAME_ORIGIN
    )
    missing = await client.post(
        "/ui/deliveries/999999/replay", data={"csrf": csrf}, headers=SAME_ORIGIN
    )

    assert "No longer kept" in page.text and "Replay</button>" not in page.text
    assert gone.status_code == 410 and "no longer kept" in gone.text
    assert missing.status_code == 404
    assert (await client.get("/ui/deliveries/999999")).status_code == 404
