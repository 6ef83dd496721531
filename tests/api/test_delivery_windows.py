"""GET /v1/deliveries over a window of arrival time: every delivery received in it, newest
first, paged without a skip or a repeat, whether the window is read whole or walked to
(record 20)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert

from app import models
from app.queries import deliveries
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

DAY = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW_START, WINDOW_END = DAY + timedelta(days=1), DAY + timedelta(days=2)
CI, SUNO = "tencent-ci", "suno"


@dataclass(frozen=True)
class Arrival:
    hour: float  # after DAY
    outcome: str
    provider: str | None

    @property
    def received_at(self) -> datetime:
        return DAY + timedelta(hours=self.hour)


# In the order they are stored, so ids follow this order, not the hours: ids grow with arrival
# only roughly (writers commit in parallel, replicas' clocks differ), and a listing must not
# lean on it.
ARRIVALS = [
    Arrival(1, "accepted", CI),  # the day before the window
    Arrival(5, "rejected", None),
    Arrival(20, "duplicate", SUNO),
    Arrival(25, "accepted", SUNO),  # the window
    Arrival(26, "rejected", None),
    Arrival(60, "accepted", CI),  # after the window, stored among its deliveries
    Arrival(30, "accepted", CI),
    Arrival(33, "duplicate", CI),
    Arrival(40, "rejected", None),
    *(Arrival(48 + h, "accepted", SUNO if h % 3 else CI) for h in range(1, 11)),  # after it
    Arrival(3, "duplicate", CI),  # before the window, stored late
    Arrival(47.5, "duplicate", SUNO),  # in the window, stored after everything received later
]


@pytest.fixture
def stored(engine: Engine) -> list[int]:
    """ARRIVALS in the database; their ids, in the same order."""
    ids = []
    with engine.begin() as connection:
        for arrival in ARRIVALS:
            row = {
                "received_at": arrival.received_at,
                "endpoint": arrival.provider or "auto",
                "provider": arrival.provider,
                "outcome": arrival.outcome,
                "headers": {},
                "body_size": 2,
                "body": b"{}",
            }
            ids.append(
                connection.scalar(insert(models.Delivery).returning(models.Delivery.id), row)
            )
    return ids


def expected(stored: list[int], params: dict[str, Any]) -> list[int]:
    after, before = params.get("received_after"), params.get("received_before")
    outcomes, provider = params.get("outcome", []), params.get("provider")
    found = [
        delivery_id
        for delivery_id, arrival in zip(stored, ARRIVALS, strict=True)
        if (after is None or arrival.received_at >= datetime.fromisoformat(after))
        and (before is None or arrival.received_at < datetime.fromisoformat(before))
        and (not outcomes or arrival.outcome in outcomes)
        and (provider is None or arrival.provider == provider)
    ]
    return sorted(found, reverse=True)


async def paged(client: httpx.AsyncClient, params: dict[str, Any]) -> list[int]:
    """Every page of the listing, two deliveries a page, followed by its cursors."""
    listed: list[int] = []
    asked = {**params, "limit": 2}
    while True:
        answer = await client.get("/v1/deliveries", params=asked, headers=AUTH)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        listed += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            return listed
        asked["cursor"] = page["next_cursor"]


WINDOW = {"received_after": WINDOW_START.isoformat(), "received_before": WINDOW_END.isoformat()}
FILTERS = [
    WINDOW,
    WINDOW | {"outcome": ["rejected"]},
    WINDOW | {"outcome": ["rejected", "duplicate"]},
    WINDOW | {"provider": SUNO},
    WINDOW | {"provider": CI, "outcome": ["accepted", "duplicate"]},
    {"received_after": WINDOW_START.isoformat()},
    {"received_before": WINDOW_END.isoformat()},
    {"received_after": WINDOW_START.isoformat(), "received_before": "2999-01-01T00:00:00Z"},
]


@pytest.fixture(params=["chosen", "window whole", "walked to"])
def read(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """How the listing reads a window: as it chooses, or forced one way."""
    if request.param != "chosen":
        whole = request.param == "window whole"

        async def forced(*_args: object) -> bool:
            return whole

        monkeypatch.setattr(deliveries, "_window_first", forced)


@pytest.mark.usefixtures("read")
async def test_a_window_lists_every_delivery_received_in_it_once_newest_first(
    client: httpx.AsyncClient, stored: list[int]
) -> None:
    for params in FILTERS:
        want = expected(stored, params)
        assert want, params  # each filter finds something, so that a page of nothing fails
        assert await paged(client, params) == want, params


@pytest.fixture
def choices(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each choice the listing makes between reading a window whole and walking to it."""
    made: list[bool] = []
    choose = deliveries._window_first

    async def noted(*args: Any) -> bool:
        made.append(await choose(*args))
        return made[-1]

    monkeypatch.setattr(deliveries, "_window_first", noted)
    return made


async def test_a_past_window_is_read_whole_and_walked_below_its_first_page(
    client: httpx.AsyncClient, stored: list[int], choices: list[bool]
) -> None:
    """Eleven deliveries came after the window and six in it: its first page reads the window
    rather than walk past the eleven; the next pages start below the window's top and walk."""
    assert await paged(client, WINDOW) == expected(stored, WINDOW)
    assert choices == [True, False, False]

    choices.clear()
    assert await paged(client, {"received_after": WINDOW_START.isoformat()})
    assert await paged(client, FILTERS[-1])  # nothing came after its end
    assert not any(choices)
