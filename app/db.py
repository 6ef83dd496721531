"""Database plumbing: the declarative base, column types, URLs and engines.

Two engines share one database: a synchronous one for the ingest writer, which owns every
write transaction from one thread, and an asyncio one for the read API. A plain
`postgresql://` URL drives both through psycopg 3 (sync and async); SQLite uses the stdlib
driver for writes and aiosqlite for reads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import JSON, BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from app.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database, the same on both backends."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def sync_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


def async_url(url: str) -> URL:
    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _engine_options(url: URL, settings: Settings, *, bounded: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.get_backend_name() == "postgresql":
        timeout_s = max(1, int(settings.write_timeout_s))
        # Fail fast instead of hanging toward the providers' 15 s limit when PostgreSQL is gone:
        # refused or unreachable (connect_timeout), partitioned (unacknowledged sends), or dead
        # without a word (keepalive probes unanswered).
        connect_args: dict[str, Any] = {
            "connect_timeout": timeout_s,
            "tcp_user_timeout": timeout_s * 1000,
            "keepalives": 1,
            "keepalives_idle": timeout_s,
            "keepalives_interval": 1,
            "keepalives_count": 3,
        }
        # Short index-driven queries only: JIT compiling one costs more than running it
        # (docs/decisions/0005-durability-settings.md).
        server = ["-c jit=off"]
        if bounded:
            timeout_ms = int(settings.write_timeout_s * 1000)
            server += [f"-c lock_timeout={timeout_ms}", f"-c statement_timeout={timeout_ms}"]
            # A transaction idle between two statements (its client partitioned away) would
            # hold readers' transaction mark back until the server's keepalive gave up on it.
            server.append(f"-c idle_in_transaction_session_timeout={timeout_ms}")
        connect_args["options"] = " ".join(server)
        options["connect_args"] = connect_args
    return options


def _bind_plain_values_directly() -> None:
    """CPython 3.11's sqlite3 looks up an adapter for every parameter that is not exactly an
    int, float, str or bytearray (so for every None, bytes and bool), and its failed look-up on
    its protocol type formats an AttributeError message each time (3.12 no longer does): half of
    what binding a job row, mostly NULLs, cost (docs/decisions/0004-driver-level-statements.md).
    With an adapter registered for these types the look-up finds it at once. Each gives back
    what it was given (a bool as the integer sqlite3 would bind), so what is stored does not
    change. Registered process-wide, idempotently, as sqlite3 keeps them."""
    sqlite3.register_adapter(type(None), _unchanged)
    sqlite3.register_adapter(bytes, bytes)
    sqlite3.register_adapter(bool, int)


def _unchanged(value: None) -> None:
    return value


def _configure_sqlite(
    engine: Engine, settings: Settings, *, synchronous: str | None = None
) -> None:
    busy_ms = int(settings.write_timeout_s * 1000)
    synchronous = synchronous or settings.sqlite_synchronous
    _bind_plain_values_directly()

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # The writer's upserts each keep a statement journal that SQLite would spill past 64 KiB
        # to a temporary file per batch, two writes for every changed page; in memory it is a
        # copy of those pages (docs/decisions/0005-durability-settings.md). The read API's
        # temporary sorts live in memory too; its queries are paged and indexed.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()


def _begin_immediate(engine: Engine) -> None:
    """Writers take SQLite's write lock when they begin, not halfway through.

    A deferred transaction that reads first and writes later cannot wait for the lock: when
    another process writes meanwhile it fails at once with "database is locked", whatever
    busy_timeout says. Taking the lock in BEGIN makes the wait honour busy_timeout.
    """

    @event.listens_for(engine, "connect")
    def _driver_stays_out(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # On the driver's connection, skipping exec_driver_sql's execution context on every
        # batch (docs/decisions/0004-driver-level-statements.md). Its errors are the driver's
        # (is_unavailable reads them).
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")


def create_sync_engine(
    settings: Settings, *, bounded: bool = True, background: bool = False
) -> Engine:
    """`bounded=False` is for migrations, whose statements may rightly take long.

    `background=True` is for background work (the mirror): its commits are not waited for on
    disk (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off), so that its many small
    transactions do not take the disk's flushes from the callbacks'. A crash may lose the last of
    them, never corrupt anything: the work is done again (a file fetched again), and the next
    durable commit of a callback makes them durable too."""
    url = sync_url(settings.database_url)
    options = _engine_options(url, settings, bounded=bounded)
    if background and url.get_backend_name() == "postgresql":
        options["connect_args"]["options"] += " -c synchronous_commit=off"
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, settings, synchronous="NORMAL" if background else None)
        _begin_immediate(engine)
    return engine


def create_read_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings.database_url)
    # Reads check a pooled connection before use. The writer does not: its transactions run
    # under a watchdog that a ping during checkout would escape, and a dead connection there
    # fails one batch as unavailable (503, retried by the provider) before it is replaced.
    options = _engine_options(url, settings, bounded=True) | {"pool_pre_ping": True}
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine.sync_engine, settings)
    return engine


@dataclass(frozen=True, slots=True)
class ReadDatabase:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


def open_read_database(settings: Settings) -> ReadDatabase:
    engine = create_read_engine(settings)
    return ReadDatabase(engine, async_sessionmaker(engine, expire_on_commit=False))


# SQLSTATE classes and codes meaning "the database cannot take this now; retry later":
# connection exceptions, transaction rollbacks (deadlock, serialization), insufficient
# resources, operator intervention (shutdown, statement timeout), lock not available, and
# read-only transactions (a standby after failover).
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})
_UNAVAILABLE_SQLSTATES = frozenset({"55P03", "25006"})
_UNAVAILABLE_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
    }
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "not now" (answer 503) rather than "not this data".

    Takes SQLAlchemy's wrapped errors and the drivers' own (the writer runs on raw cursors).
    """
    original: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        original = exc.orig
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or sqlstate in _UNAVAILABLE_SQLSTATES
    if isinstance(original, sqlite3.Error):
        return original.sqlite_errorcode & 0xFF in _UNAVAILABLE_SQLITE_CODES
    # Without a SQLSTATE, psycopg's operational and interface errors are the connection's.
    return isinstance(original, psycopg.OperationalError | psycopg.InterfaceError)


def interrupt(dbapi_connection: Any) -> None:
    """Make a call blocked on this connection in another thread fail now.

    SQLite has an interrupt for that. A PostgreSQL server that stopped answering (a hung pooler
    or proxy that still acknowledges TCP) is only noticed by shutting the socket down under the
    blocked read; the driver then raises and the connection is discarded.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.interrupt()
        return
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None or pgconn.socket < 0:
        return
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(pgconn.socket)) as sock:
        sock.shutdown(socket.SHUT_RDWR)
