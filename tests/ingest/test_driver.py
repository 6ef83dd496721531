"""Statement parameters as the write path binds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME

from app.db import UtcDateTime
from app.ingest.driver import TimeMemo, compile_for

_times = Table(
    "times",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("first", UtcDateTime),
    Column("last", UtcDateTime),
)


def test_each_time_object_is_bound_as_its_own_instant_once_converted() -> None:
    statement = compile_for(insert(_times), sqlite.dialect())
    arrival = datetime(2026, 12, 2, 15, 30, 1, 250_000, tzinfo=UTC)
    same_instant_elsewhere = arrival.astimezone(timezone(timedelta(hours=8)))
    later = arrival + timedelta(microseconds=1)
    memo: TimeMemo = {}

    rows = [
        statement.parameters({"id": 1, "first": arrival, "last": arrival}, memo),
        statement.parameters({"id": 2, "first": same_instant_elsewhere, "last": later}, memo),
    ]

    assert rows == [
        (1, "2026-12-02 15:30:01.250000", "2026-12-02 15:30:01.250000"),
        (2, "2026-12-02 15:30:01.250000", "2026-12-02 15:30:01.250001"),
    ]
    assert {id(time) for time, _ in memo.values()} == {
        id(arrival),
        id(same_instant_elsewhere),
        id(later),
    }


@given(st.datetimes(timezones=st.just(UTC) | st.timezones()))
def test_times_are_written_as_sqlalchemy_writes_them_on_sqlite(value: datetime) -> None:
    statement = compile_for(insert(_times), sqlite.dialect())
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted out of datetime's range
        return
    sqlalchemys = SQLITE_DATETIME().bind_processor(sqlite.dialect())
    assert sqlalchemys is not None

    (_, first, _) = statement.parameters({"id": 1, "first": value, "last": None}, {})

    assert first == sqlalchemys(utc.replace(tzinfo=None))
