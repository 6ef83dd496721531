"""The writer's SQL runner: statements compiled once, run on the DB-API cursor directly.

SQLAlchemy defines every statement (app/ingest/statements.py) and owns engines, pooling and
transactions; only the per-execution machinery is skipped, because the writer runs the same few
statements thousands of times a second and that machinery cost more than SQLite itself
(docs/decisions/0004-driver-level-statements.md). What it did for the values is still its own:
each bound column's bind processor, taken once per statement through the public type API, as
its execution would apply it. Two exceptions, for speed: times on SQLite (_sqlite_time), and
times in a batch's JSON document on PostgreSQL (_json_time).

On PostgreSQL a statement of the write path takes all the rows of a batch in one execution,
because executing it once a row cost the server more than the rows themselves
(docs/decisions/0014-multi-row-statements-on-postgresql.md). The rows go as one JSON document
(`Batch`), an array of one object a row, which the statement reads back as the table's row type,
numbered in the document's order (as json_populate_recordset returns them: true in practice, not
a documented promise, and tests/ingest/ would catch a change); bytes, which JSON cannot carry, go
as one binary array a column, with the table's primary key alongside, joined to their rows by
that key (app/ingest/statements.py). orjson encodes the document in C, where psycopg packed an
array value by value in Python, the writer's largest cost on PostgreSQL before. What such a
statement returns comes back in no guaranteed order, so each returned row begins with its row's
key (`Compiled.key`, e.g. provider and job id) and is matched by it: rows that share a key run in
successive executions, in their order, which also keeps ON CONFLICT DO UPDATE from meeting one
row twice in one statement (which PostgreSQL refuses). An insert that returns its new ids takes
them first instead (`Batch.new_ids`): a sequence hands out increasing values, so the ids one
statement took, sorted, go to the rows in their order, whatever order they came back in. SQLite
runs the same statements once a row: there an execution costs a function call, not a round
through a server.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Connection, Dialect, Integer, LargeBinary, String
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine

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
    # The columns each returned row begins with, naming the row it answers (module docstring):
    # values the database returns as they were bound. The answer is what follows them.
    key: tuple[str, ...] = ()
    batch: Batch | None = None

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


class JsonRows(TypeDecorator[Any]):
    """The type of a statement's parameter that carries the rows of a batch: a JSON array of
    one object a row, with the values of `columns` (each of its type) under their names. The
    driver encodes it (`Batch`), not this type: its JSON impl only has the parameter cast to
    json in the SQL."""

    impl = JSON
    cache_ok = True

    def __init__(self, columns: Mapping[str, TypeEngine[Any]]) -> None:
        super().__init__()
        self.columns = tuple(columns.items())


@dataclass(frozen=True, slots=True)
class Batch:
    """How a statement that takes a batch's rows at once is fed (module docstring): `columns`
    as one JSON document bound as `document`, and each of `arrays` as one list."""

    document: str
    columns: tuple[str, ...]
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    # Each column's conversion (_json_conversion) where it has one, and whether it binds None
    # as None: a None is then not passed to it.
    conversions: tuple[tuple[int, Convert, bool], ...]
    arrays: tuple[str, ...]
    # For an insert whose rows are answered with their new ids: the statement that takes `n`
    # ids, bound to the rows as `id` (module docstring).
    new_ids: Compiled | None

    def values(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The statement's values for these rows. Their objects leave NULLs out, which the
        server then need not parse: a missing key reads as NULL from a row type."""
        objects = []
        for row in rows:
            ordered = list(self.pick(row))
            for index, convert, keeps_none in self.conversions:
                value = ordered[index]
                if value is not None or not keeps_none:
                    ordered[index] = convert(value)
            pairs = zip(self.columns, ordered, strict=True)
            objects.append({name: value for name, value in pairs if value is not None})
        document = orjson.dumps(objects, default=_json_default)
        values: dict[str, Any] = {self.document: document.decode()}
        for name in self.arrays:
            values[name] = [row[name] for row in rows]
        return values


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Picks the values of `names` in order, in C, as a comprehension over the names cost the
    writer more per row (docs/decisions/0004-driver-level-statements.md). One name's itemgetter
    returns the value, not a tuple, hence the lambda."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    return lambda values: tuple(values[name] for name in names)


def compile_for(
    statement: ClauseElement,
    dialect: Dialect,
    *,
    key: tuple[str, ...] = (),
    new_ids: Compiled | None = None,
) -> Compiled:
    """A statement that binds a JsonRows parameter takes a batch's rows at once (Batch), every
    other parameter that is not a constant then being a column's array; `new_ids` is then the
    statement that takes the ids of an insert's rows."""
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
    sql, batch = compiled.string, None
    for bind, name in compiled.bind_names.items():
        if isinstance(bind.type, JsonRows):
            arrays = tuple(other for other in names if other != name and other not in constants)
            batch = _batch(name, bind.type, arrays, dialect, new_ids)
            # The driver encodes the document itself (Batch.values).
            conversions = tuple(c for c in conversions if names[c[0]] != name)
            sql = _binary_arrays(sql, arrays, dialect)
    return Compiled(
        sql,
        names,
        positional,
        conversions,
        constants,
        pick=_picker(names),
        key=key,
        batch=batch,
    )


def _batch(
    document: str,
    rows: JsonRows,
    arrays: tuple[str, ...],
    dialect: Dialect,
    new_ids: Compiled | None,
) -> Batch:
    # Plain strings: orjson takes no subclass (SQLAlchemy's quoted_name) as a key.
    columns = tuple(str(name) for name, _ in rows.columns)
    conversions = tuple(
        (index, convert, convert(None) is None)
        for index, (_, column_type) in enumerate(rows.columns)
        if (convert := _json_conversion(column_type, dialect)) is not None
    )
    return Batch(document, columns, _picker(columns), conversions, arrays, new_ids)


def _json_conversion(column_type: TypeEngine[Any], dialect: Dialect) -> Convert | None:
    """What a column's value becomes in a batch's JSON document: a JSON column's document goes
    as it is, nested, where its bind processor would encode it as a string of its own. A type
    whose values JSON would not carry as its column reads them is refused when the statement is
    built, not by the first batch that holds one."""
    if isinstance(column_type, UtcDateTime):
        return _json_time
    if isinstance(column_type.dialect_impl(dialect), JSON):
        return None
    if not isinstance(_bound_type(column_type, dialect), String | Integer | Boolean):
        raise TypeError(
            f"{column_type!r} cannot go in a batch's JSON document: only strings, integers,"
            " booleans, UtcDateTime and JSON do (and bytes, as arrays)"
        )
    return _bind_processor(column_type, dialect)


def carries_bytes(column_type: TypeEngine[Any], dialect: Dialect) -> bool:
    """Whether the column binds bytes on `dialect`, which a batch sends as arrays, JSON having
    no bytes: a LargeBinary, a variant's or under a TypeDecorator too."""
    return isinstance(_bound_type(column_type, dialect), LargeBinary)


def _bound_type(column_type: TypeEngine[Any], dialect: Dialect) -> TypeEngine[Any]:
    """The type under the column's on `dialect`: its variant's, and what TypeDecorators wrap
    (UtcDateTime aside, whose times the driver converts itself)."""
    bound = column_type.dialect_impl(dialect)
    while isinstance(bound, TypeDecorator) and not isinstance(bound, UtcDateTime):
        bound = bound.type_engine(dialect)
    return bound


def _json_time(value: datetime | None) -> datetime | None:
    """A UtcDateTime in a batch's JSON document: an aware time in UTC, which orjson writes with
    its zone and PostgreSQL reads as the time it stores (a timestamp without time zone ignores a
    zone in its input). UTC times, nearly all of them, go as they are: converting each cost the
    writer more than any other value of its document."""
    if value is None or value.tzinfo is UTC:
        return value
    return _in_utc(value)


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass an aware one")
    return value.astimezone(UTC)


def _json_default(value: Any) -> str:
    """What orjson writes for a value it does not know: a time of a datetime subclass
    (freezegun's, pendulum's), which it refuses, in UTC as _json_time writes a time."""
    if isinstance(value, datetime):
        return _in_utc(value).isoformat()
    raise TypeError(f"{type(value).__name__} cannot go in a batch's JSON document")


def _binary_arrays(sql: str, columns: tuple[str, ...], dialect: Dialect) -> str:
    """psycopg's placeholders for binary parameters (`%(name)b`) in place of SQLAlchemy's
    `%(name)s`, which psycopg sends as text: an array in text quotes and escapes each value in
    Python (a body byte by byte)."""
    if dialect.driver != "psycopg":
        return sql
    for name in columns:
        sql = sql.replace(f"%({name})s", f"%({name})b")
    return sql


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
        # Untyped: the DB-API's cursor, whichever driver's.
        self._cursor: Any = connection.connection.cursor()
        self._times: TimeMemo = {}

    def one(self, statement: Compiled, values: Mapping[str, Any]) -> Sequence[Any]:
        (row,) = self.many_returning(statement, [values])
        return answered(row)

    def run(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        self._cursor.execute(statement.sql, statement.parameters(values, self._times))

    def many_returning(
        self, statement: Compiled, rows: Sequence[Mapping[str, Any]]
    ) -> list[Sequence[Any] | None]:
        """Each row's answer, in order; None where it returned none (DO NOTHING). As if the rows
        ran one by one, in order, provided a row affects no row of another key."""
        if not rows:
            return []
        batch = statement.batch
        if batch is None:
            returned: list[Sequence[Any] | None] = []
            for row in rows:
                self._cursor.execute(statement.sql, statement.parameters(row, self._times))
                returned.append(self._cursor.fetchone())
            width = len(statement.key)
            return [None if row is None else row[width:] for row in returned]
        if batch.new_ids is not None:
            return self._inserted_with_new_ids(statement, batch, batch.new_ids, rows)
        return self._matched_by_key(statement, batch, rows)

    def either_returning(
        self, first: Compiled, then: Compiled, rows: Sequence[Mapping[str, Any]]
    ) -> list[Sequence[Any]]:
        """Each row's answer from `first` (an insert that does nothing where its row exists) or,
        where it returned none, from `then`, in order; each statement runs over the rows at once."""
        answers = self.many_returning(first, rows)
        missing = [index for index, answer in enumerate(answers) if answer is None]
        found = self.many_returning(then, [rows[index] for index in missing])
        for index, answer in zip(missing, found, strict=True):
            answers[index] = answer
        return [answered(answer) for answer in answers]

    def fetched(
        self, statement: Compiled, rows: Sequence[Mapping[str, Any]]
    ) -> list[Sequence[Any]]:
        """Every row the statement returned for these rows, in no order: for a statement that
        may return any number of rows for each (an UPDATE ... RETURNING)."""
        if not rows:
            return []
        if statement.batch is not None:
            self._cursor.execute(statement.sql, self._batched(statement, statement.batch, rows))
            return list(self._cursor.fetchall())
        found: list[Sequence[Any]] = []
        for row in rows:
            self._cursor.execute(statement.sql, statement.parameters(row, self._times))
            found += self._cursor.fetchall()
        return found

    def many(self, statement: Compiled, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if statement.batch is not None:
            self._cursor.execute(statement.sql, self._batched(statement, statement.batch, rows))
        else:
            parameters = [statement.parameters(row, self._times) for row in rows]
            self._cursor.executemany(statement.sql, parameters)

    def close(self) -> None:
        self._cursor.close()

    def _inserted_with_new_ids(
        self,
        statement: Compiled,
        batch: Batch,
        new_ids: Compiled,
        rows: Sequence[Mapping[str, Any]],
    ) -> list[Sequence[Any] | None]:
        self._cursor.execute(new_ids.sql, new_ids.parameters({"n": len(rows)}, self._times))
        ids = sorted(new_id for (new_id,) in self._cursor.fetchall())
        numbered = [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)]
        self._cursor.execute(statement.sql, self._batched(statement, batch, numbered))
        return [(new_id,) for new_id in ids]

    def _matched_by_key(
        self, statement: Compiled, batch: Batch, rows: Sequence[Mapping[str, Any]]
    ) -> list[Sequence[Any] | None]:
        width = len(statement.key)
        keys = list(map(_picker(statement.key), rows))
        answers: list[Sequence[Any] | None] = [None] * len(rows)
        for round_ in _rounds(keys):
            parameters = self._batched(statement, batch, [rows[index] for index in round_])
            self._cursor.execute(statement.sql, parameters)
            found = {tuple(row[:width]): row[width:] for row in self._cursor.fetchall()}
            for index in round_:
                answers[index] = found.get(keys[index])
        return answers

    def _batched(self, statement: Compiled, batch: Batch, rows: Sequence[Mapping[str, Any]]) -> Any:
        """The statement's parameters for these rows: their document, and each array column's
        values as one list, which the column's array type converts value by value."""
        return statement.parameters(batch.values(rows), self._times)


def answered(answer: Sequence[Any] | None) -> Sequence[Any]:
    """A statement's answer that must be there."""
    if answer is None:
        raise RuntimeError("expected a returned row, got none")
    return answer


def _rounds(keys: list[tuple[Any, ...]]) -> list[list[int]]:
    """The rows' indexes in rounds where each key appears once: a key's first row in the first,
    its second in the second, and so on."""
    seen: dict[tuple[Any, ...], int] = {}
    rounds: list[list[int]] = []
    for index, key in enumerate(keys):
        depth = seen.get(key, 0)
        seen[key] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append(index)
    return rounds
