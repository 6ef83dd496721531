"""The writer's SQL runner: statements compiled once, run on the DB-API cursor directly.

SQLAlchemy defines every statement (app/ingest/statements.py) and owns engines, pooling and
transactions; only the per-execution machinery is skipped, because the writer runs the same few
statements thousands of times a second and that machinery cost more than SQLite itself
(docs/decisions/0004-driver-level-statements.md). What it did for the values is still its own:
each bound column's bind processor, taken once per statement through the public type API, as
its execution would apply it. One exception, for speed: times on SQLite (_sqlite_time).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from app.db import UtcDateTime

Convert = Callable[[Any], Any]
# Times converted for one cursor, by object, because a delivery's arrival time is one object
# written four times (delivery, job twice, event). Each entry holds its time, so no id is reused
# while the memo lives.
TimeMemo = dict[int, tuple[datetime, Any]]


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    names: tuple[str, ...]
    positional: bool
    # SQLAlchemy's bind processor of each value that has one (the rest goes to the driver as is),
    # and whether it binds None as None: a None is then not passed to it.
    conversions: tuple[tuple[int, Convert, bool], ...]
    # Values bound when the statement was built (constants such as outcome="duplicate").
    defaults: Mapping[str, Any]
    # The values of `names`, in order (_picker).
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]]

    def parameters(self, values: Mapping[str, Any], times: TimeMemo) -> Any:
        if self.defaults:
            values = {**self.defaults, **values}
        ordered = list(self.pick(values))
        for index, convert, keeps_none in self.conversions:
            value = ordered[index]
            if value is None and keeps_none:
                continue
            if type(value) is datetime:
                converted = times.get(id(value))
                if converted is None:
                    converted = times[id(value)] = (value, convert(value))
                ordered[index] = converted[1]
            else:
                ordered[index] = convert(value)
        return tuple(ordered) if self.positional else dict(zip(self.names, ordered, strict=True))


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Picks the values of `names` in order, in C, as a comprehension over the names cost the
    writer more per row (docs/decisions/0004-driver-level-statements.md). One name's itemgetter
    returns the value, not a tuple, hence the lambda."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    return lambda values: tuple(values[name] for name in names)


def compile_for(statement: ClauseElement, dialect: Dialect) -> Compiled:
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not a SQL statement: {statement!r}")
    positional = compiled.positiontup is not None
    names = tuple(compiled.positiontup or compiled.bind_names.values())
    processors = {
        name: _bind_processor(bind.type, dialect) for bind, name in compiled.bind_names.items()
    }
    conversions = tuple(
        (index, convert, convert(None) is None)
        for index, name in enumerate(names)
        if (convert := processors.get(name)) is not None
    )
    constants = {name: value for name, value in compiled.params.items() if value is not None}
    return Compiled(compiled.string, names, positional, conversions, constants, pick=_picker(names))


def _bind_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Convert | None:
    if dialect.name == "sqlite" and isinstance(column_type, UtcDateTime):
        return _sqlite_time
    # dialect_impl: the type as this dialect binds it (a variant's, a TypeDecorator's own).
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _sqlite_time(value: datetime | None) -> str | None:
    """What SQLAlchemy binds for a UtcDateTime on SQLite, faster, for the few times of every
    delivery (docs/decisions/0004-driver-level-statements.md).

    tests/ingest/test_driver.py holds it equal to SQLAlchemy's own processor, so a change of
    its storage format fails there. Built from two-digit strings: isoformat formats an aware
    time's offset only for it to be cut off, and strftime is slower still. A UTC time (nearly
    all of them) keeps its zone, as converting it would cost the writer on every delivery.
    """
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        value = value.astimezone(UTC)
    two = _TWO_DIGITS
    return (
        f"{value.year:04d}-{two[value.month]}-{two[value.day]} "
        f"{two[value.hour]}:{two[value.minute]}:{two[value.second]}.{value.microsecond:06d}"
    )


_TWO_DIGITS = tuple(f"{number:02d}" for number in range(100))


class Cursor:
    """The driver's cursor of a connection, taking named values and compiled statements."""

    def __init__(self, connection: Connection) -> None:
        # Untyped: executemany(returning=True) is psycopg's own, beyond the DB-API.
        self._cursor: Any = connection.connection.cursor()
        # psycopg 3 returns rows from executemany, in one pipelined round trip; sqlite3 drops
        # them, so there statements that return rows run one row at a time.
        self._returning_many = connection.dialect.driver == "psycopg"
        self._times: TimeMemo = {}

    def one(self, statement: Compiled, values: Mapping[str, Any]) -> Sequence[Any]:
        self._cursor.execute(statement.sql, statement.parameters(values, self._times))
        row: Sequence[Any] = self._cursor.fetchone()
        return row

    def run(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        self._cursor.execute(statement.sql, statement.parameters(values, self._times))

    def many_returning(
        self, statement: Compiled, rows: Iterable[Mapping[str, Any]]
    ) -> list[Sequence[Any] | None]:
        """Each row's one returned row, in order; None where it returned none (DO NOTHING)."""
        parameters = [statement.parameters(row, self._times) for row in rows]
        if not parameters:
            return []
        if not self._returning_many:
            returned: list[Sequence[Any] | None] = []
            for values in parameters:
                self._cursor.execute(statement.sql, values)
                returned.append(self._cursor.fetchone())
            return returned
        self._cursor.executemany(statement.sql, parameters, returning=True)
        returned = [self._cursor.fetchone()]
        while self._cursor.nextset():
            returned.append(self._cursor.fetchone())
        return returned

    def many(self, statement: Compiled, rows: Iterable[Mapping[str, Any]]) -> None:
        parameters = [statement.parameters(row, self._times) for row in rows]
        if parameters:
            self._cursor.executemany(statement.sql, parameters)

    def close(self) -> None:
        self._cursor.close()
