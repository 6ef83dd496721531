"""Engines as stemhook configures them."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.db import create_sync_engine


def test_sqlite_binds_none_bytes_and_bools_as_the_driver_would(tmp_path: Path) -> None:
    engine = create_sync_engine(Settings(database_url=f"sqlite:///{tmp_path / 'bind.db'}"))
    try:
        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            cursor.execute("CREATE TABLE bound (a, b, c, d)")
            cursor.execute(
                "INSERT INTO bound VALUES (?, ?, ?, ?)", (None, b"\x00\xff", True, False)
            )
            cursor.execute("SELECT a, typeof(a), b, typeof(b), c, typeof(c), d FROM bound")
            row = cursor.fetchone()
    finally:
        engine.dispose()

    assert row == (None, "null", b"\x00\xff", "blob", 1, "integer", 0)


def test_sqlite_keeps_statement_journals_and_temporary_tables_in_memory(tmp_path: Path) -> None:
    engine = create_sync_engine(Settings(database_url=f"sqlite:///{tmp_path / 'temp.db'}"))
    try:
        with engine.connect() as connection:
            cursor = connection.connection.cursor()
            temp_store = cursor.execute("PRAGMA temp_store").fetchone()
    finally:
        engine.dispose()

    assert temp_store == (2,)  # MEMORY
