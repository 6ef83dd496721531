"""Statement parameters as the write path binds them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Dialect,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from app.db import Json, UtcDateTime
from app.ingest.driver import Cursor, JsonRows, TimeMemo, compile_for
from app.ingest.statements import insert_rows

_times = Table(
    "times",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("first", UtcDateTime),
    Column("last", UtcDateTime),
    prefixes=["TEMPORARY"],
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


_every_type = Table(
    "driver_every_type",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", Lowered),
    Column("label", String(8)),
    Column("note", Text),
    Column("data", LargeBinary),
    Column("document", Json),
    Column("flag", Boolean),
    Column("at", UtcDateTime),
    prefixes=["TEMPORARY"],
)
_EVERY_COLUMN = tuple(column.name for column in _every_type.columns)
_AT = datetime(2026, 12, 2, 15, 30, 1, 250_000, tzinfo=timezone(timedelta(hours=8)))
_AT_UTC = datetime(2026, 12, 2, 15, 30, 1, tzinfo=UTC)
# What a driver that wrote JSON or PostgreSQL literals carelessly would misread: a string NULL,
# quotes, backslashes, braces, commas, blanks, an empty string, a line break, a time in UTC
# and one elsewhere.
_AWKWARD_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "MiXeD",
        "label": "NULL",
        "note": 'a "quoted" \\ {brace}, comma',
        "data": b'\x00\xff{},"',
        "document": {"a": [1, None], "s": "NULL"},
        "flag": True,
        "at": _AT,
    },
    {
        "id": 2,
        "name": None,
        "label": "",
        "note": "  blanks \n ",
        "data": b"",
        "document": [1, "two", {"three": 3.5}],
        "flag": False,
        "at": _AT_UTC,
    },
    {
        "id": 3,
        "name": "ünï",
        "label": None,
        "note": None,
        "data": None,
        "document": None,
        "flag": None,
        "at": _AT,
    },
]
_ALL_NULL_ROWS: list[dict[str, Any]] = [
    dict.fromkeys(_EVERY_COLUMN) | {"id": number} for number in (4, 5)
]


def _stored_every_type(connection: Connection) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in connection.execute(select(_every_type).order_by(_every_type.c.id)).all()
    ]


@pytest.mark.postgres_only
def test_a_batch_is_bound_as_one_row_at_a_time_binds_it(engine: Engine) -> None:
    """One statement for all rows, the rows a JSON document and the bytes an array, stores what
    an execution a row would: None as NULL (a JSON None too), a string NULL as a string, bytes
    with NUL, JSON documents, times converted, and a column of nothing but NULLs."""
    by_row = compile_for(insert(_every_type), engine.dialect)
    batched = compile_for(insert_rows(engine.dialect, _every_type, _EVERY_COLUMN), engine.dialect)
    assert batched.batch is not None
    rows = _AWKWARD_ROWS + _ALL_NULL_ROWS
    with engine.connect() as connection:
        _every_type.create(connection)  # temporary: gone with the connection
        cursor = Cursor(connection)
        cursor.many(by_row, rows)
        expected = _stored_every_type(connection)
        connection.execute(_every_type.delete())
        cursor.many(batched, _AWKWARD_ROWS)
        cursor.many(batched, _ALL_NULL_ROWS)
        cursor.close()
        stored = _stored_every_type(connection)
        connection.rollback()

    assert stored == expected
    assert stored[0] == (
        1,
        "mixed",
        "NULL",
        'a "quoted" \\ {brace}, comma',
        b'\x00\xff{},"',
        {"a": [1, None], "s": "NULL"},
        True,
        _AT.astimezone(UTC),
    )
    assert stored[1][4:] == (b"", [1, "two", {"three": 3.5}], False, _AT_UTC)
    assert stored[2][1:] == ("ünï", None, None, None, None, None, _AT.astimezone(UTC))
    assert stored[3] == (4, "(none)", None, None, None, None, None, None)


def _utc_representable(value: datetime) -> bool:
    try:
        value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted out of datetime's range
        return False
    return True


@pytest.mark.postgres_only
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.datetimes(timezones=st.just(UTC) | st.timezones()).filter(_utc_representable),
        min_size=1,
        max_size=20,
    )
)
def test_times_in_a_batch_are_stored_as_sqlalchemy_stores_them(
    engine: Engine, values: list[datetime]
) -> None:
    """The driver's own conversion of times in a batch's JSON document (_json_time), UTC times
    left with their zone, against SQLAlchemy's bind processor one row at a time."""
    columns = ("id", "first")
    batched = compile_for(insert_rows(engine.dialect, _times, columns), engine.dialect)
    rows = [{"id": number, "first": value} for number, value in enumerate(values)]
    with engine.connect() as connection:
        _times.create(connection)  # temporary: gone with the connection
        connection.execute(insert(_times), rows)
        expected = connection.execute(select(_times.c.first).order_by(_times.c.id)).all()
        connection.execute(_times.delete())
        cursor = Cursor(connection)
        cursor.many(batched, rows)
        cursor.close()
        stored = connection.execute(select(_times.c.first).order_by(_times.c.id)).all()
        connection.rollback()

    assert stored == expected


class Moment(datetime):
    """A datetime subclass, as freezegun's and pendulum's times are."""


@pytest.mark.postgres_only
def test_times_of_a_datetime_subclass_are_stored_from_a_batch(engine: Engine) -> None:
    """orjson writes only datetime itself: a subclass goes through the driver's own default."""
    elsewhere = Moment(2026, 12, 2, 15, 30, 1, 250_000, tzinfo=timezone(timedelta(hours=8)))
    in_utc = Moment(2026, 12, 2, 7, 30, 1, tzinfo=UTC)
    batched = compile_for(insert_rows(engine.dialect, _times, ("id", "first")), engine.dialect)
    with engine.connect() as connection:
        _times.create(connection)  # temporary: gone with the connection
        cursor = Cursor(connection)
        cursor.many(batched, [{"id": 1, "first": elsewhere}, {"id": 2, "first": in_utc}])
        cursor.close()
        stored = connection.execute(select(_times.c.first).order_by(_times.c.id)).scalars().all()
        connection.rollback()

    assert stored == [elsewhere, in_utc]


# A name that must be quoted, in a schema: pg_temp, the session's own, keeps it temporary.
_quoted = Table(
    "Driver Quoted",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("label", String(8)),
    schema="pg_temp",
)


@pytest.mark.postgres_only
def test_a_batch_is_read_as_the_row_type_of_a_table_whose_name_needs_quoting(
    engine: Engine,
) -> None:
    batched = compile_for(insert_rows(engine.dialect, _quoted, ("id", "label")), engine.dialect)
    with engine.connect() as connection:
        _quoted.create(connection)
        cursor = Cursor(connection)
        cursor.many(batched, [{"id": 1, "label": "one"}, {"id": 2, "label": None}])
        cursor.close()
        stored = connection.execute(select(_quoted).order_by(_quoted.c.id)).all()
        connection.rollback()

    assert [tuple(row) for row in stored] == [(1, "one"), (2, None)]


@pytest.mark.postgres_only
def test_bytes_go_to_the_row_of_their_key_whatever_their_place_in_the_arrays(
    engine: Engine,
) -> None:
    """The bytes' arrays are joined to the document's rows by the table's primary key, never by
    position: here the arrays list the rows in the reverse order of the document."""
    batched = compile_for(insert_rows(engine.dialect, _every_type, ("id", "data")), engine.dialect)
    assert batched.batch is not None
    values = batched.batch.values([{"id": 1, "data": b"one"}, {"id": 2, "data": b"two"}])
    for name in batched.batch.arrays:
        values[name].reverse()
    with engine.connect() as connection:
        _every_type.create(connection)
        cursor = connection.connection.cursor()
        cursor.execute(batched.sql, batched.parameters(values, {}))
        cursor.close()
        stored = connection.execute(
            select(_every_type.c.id, _every_type.c.data).order_by(_every_type.c.id)
        ).all()
        connection.rollback()

    assert [tuple(row) for row in stored] == [(1, b"one"), (2, b"two")]


def test_bytes_cannot_go_without_the_primary_key_that_joins_them_to_their_rows() -> None:
    with pytest.raises(ValueError, match="primary key"):
        insert_rows(psycopg_dialect(), _every_type, ("label", "data"))


class Wrapped(TypeDecorator[bytes]):
    impl = LargeBinary
    cache_ok = True


_wrapped_bytes = Table(
    "driver_wrapped_bytes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("wrapped", Wrapped),
    Column("variant", Text().with_variant(LargeBinary(), "postgresql")),
    prefixes=["TEMPORARY"],
)


@pytest.mark.postgres_only
def test_bytes_under_a_type_decorator_or_a_variant_go_as_arrays(engine: Engine) -> None:
    """JSON has no bytes: what binds bytes goes as an array, whatever type wraps it."""
    columns = ("id", "wrapped", "variant")
    batched = compile_for(insert_rows(engine.dialect, _wrapped_bytes, columns), engine.dialect)
    assert batched.batch is not None and batched.batch.arrays == columns
    with engine.connect() as connection:
        _wrapped_bytes.create(connection)
        cursor = Cursor(connection)
        cursor.many(batched, [{"id": 1, "wrapped": b"\x00w", "variant": b"v\xff"}])
        cursor.close()
        stored = connection.execute(select(_wrapped_bytes)).all()
        connection.rollback()

    assert [tuple(row) for row in stored] == [(1, b"\x00w", b"v\xff")]


def test_a_type_a_batch_cannot_carry_is_refused_when_its_statement_is_built() -> None:
    amounts = Table(
        "driver_amounts", MetaData(), Column("id", Integer, primary_key=True), Column("n", Numeric)
    )
    dialect = psycopg_dialect()
    with pytest.raises(TypeError, match="cannot go in a batch's JSON document"):
        compile_for(insert_rows(dialect, amounts, ("id", "n")), dialect)


@pytest.mark.parametrize("name", ["rows", "ordinality"])
def test_a_column_named_as_the_batch_statements_own_names_is_refused(name: str) -> None:
    clashing = Table(
        "driver_clashing", MetaData(), Column("id", Integer, primary_key=True), Column(name, Text)
    )
    with pytest.raises(ValueError, match=name):
        insert_rows(psycopg_dialect(), clashing, ("id",))


@pytest.mark.postgres_only
def test_a_string_too_long_for_its_column_is_refused_as_one_row_at_a_time_refuses_it(
    engine: Engine,
) -> None:
    """The rows are read as the table's row type, whose varchar(n) refuses a longer string
    where a cast to it would cut it."""
    batched = compile_for(insert_rows(engine.dialect, _every_type, ("id", "label")), engine.dialect)
    with engine.connect() as connection:
        _every_type.create(connection)
        cursor = Cursor(connection)
        with pytest.raises(psycopg.errors.StringDataRightTruncation):
            cursor.many(batched, [{"id": 1, "label": "fits"}, {"id": 2, "label": "9 letters"}])
        cursor.close()
        connection.rollback()


@pytest.mark.postgres_only
def test_returned_rows_find_their_rows_by_key_in_whatever_order_they_come(engine: Engine) -> None:
    """A key that comes back runs in a later execution, after the rows before it; the answers
    are matched by key, whatever order the statement returns them in, None where none came."""
    seen = text(
        "SELECT k, v, json_array_length(:rows) FROM json_to_recordset(:rows) AS t(k text, v text)"
        " WHERE v <> 'none' ORDER BY k DESC"
    ).bindparams(bindparam("rows", type_=JsonRows({"k": Text(), "v": Text()})))
    statement = compile_for(seen, engine.dialect, key=("k",))
    rows = [
        {"k": "b", "v": "b1"},
        {"k": "a", "v": "a1"},
        {"k": "c", "v": "none"},
        {"k": "a", "v": "a2"},
        {"k": "d", "v": "d1"},
        {"k": "a", "v": "a3"},
        {"k": "b", "v": "b2"},
    ]
    with engine.connect() as connection:
        cursor = Cursor(connection)
        answers = cursor.many_returning(statement, rows)
        cursor.close()
        connection.rollback()

    # The last column counts the rows of the execution that answered: the key's round.
    assert answers == [
        ("b1", 4),
        ("a1", 4),
        None,
        ("a2", 2),
        ("d1", 4),
        ("a3", 1),
        ("b2", 2),
    ]


def test_a_batch_goes_to_psycopg_as_one_document_and_its_bytes_as_binary_arrays() -> None:
    """A text array is quoted and escaped value by value in Python, a body byte by byte: binary
    parameters skip that (app/ingest/driver.py)."""
    dialect = psycopg_dialect()
    statement = compile_for(insert_rows(dialect, _every_type, _EVERY_COLUMN), dialect)

    placeholders = re.findall(r"%\((\w+)\)(\w)", statement.sql)
    assert sorted(placeholders) == [("data", "b"), ("id", "b"), ("rows", "s")]
