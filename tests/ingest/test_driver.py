"""Statement parameters as the write path binds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    insert,
    select,
)
from sqlalchemy.dialects import sqlite

from app.db import Json, UtcDateTime
from app.ingest.driver import Cursor, TimeMemo, compile_for

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
    """The driver's own conversion of times on SQLite (app/ingest/driver.py, _sqlite_time)
    against SQLAlchemy's: a change of its storage format fails here."""
    dialect = sqlite.dialect()
    statement = compile_for(insert(_times), dialect)
    try:
        value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted out of datetime's range
        return
    sqlalchemys = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert sqlalchemys is not None

    (_, first, last) = statement.parameters({"id": 1, "first": value, "last": None}, {})

    assert (first, last) == (sqlalchemys(value), sqlalchemys(None))


def test_a_naive_time_is_refused_on_sqlite_as_sqlalchemy_refuses_it() -> None:
    statement = compile_for(insert(_times), sqlite.dialect())
    naive = datetime(2026, 12, 2, 15, 30)

    with pytest.raises(ValueError, match="naive"):
        statement.parameters({"id": 1, "first": naive, "last": None}, {})


class Lowered(TypeDecorator[str]):
    """A type with a bind processor of its own, which the driver knows nothing about (and
    which binds None as a value)."""

    impl = String(20)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return "(none)" if value is None else value.lower()


_kinds = Table(
    "driver_kinds",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", Lowered),
    Column("document", Json),
    Column("flag", Boolean),
    Column("at", UtcDateTime),
    prefixes=["TEMPORARY"],
)


def test_values_are_bound_as_sqlalchemy_binds_them(engine: Engine) -> None:
    at = datetime(2026, 12, 2, 15, 30, 1, 250_000, tzinfo=timezone(timedelta(hours=8)))
    rows: list[dict[str, Any]] = [
        {"id": 1, "name": "MiXeD", "document": {"a": [1, None]}, "flag": True, "at": at},
        {"id": 2, "name": None, "document": None, "flag": None, "at": None},
    ]
    with engine.connect() as connection:
        _kinds.create(connection)  # temporary: gone with the connection
        cursor = Cursor(connection)
        cursor.many(compile_for(insert(_kinds), engine.dialect), rows)
        cursor.close()
        stored = connection.execute(select(_kinds).order_by(_kinds.c.id)).all()
        connection.rollback()

    assert [tuple(row) for row in stored] == [
        (1, "mixed", {"a": [1, None]}, True, at.astimezone(UTC)),
        (2, "(none)", None, None, None),
    ]
