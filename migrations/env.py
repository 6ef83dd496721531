"""Alembic environment: the URL comes from the service's settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from app import models  # noqa: F401 - registers the tables on Base.metadata
from app.config import Settings
from app.db import Base, create_sync_engine

# Any fixed number: replicas starting together migrate one after the other. (On SQLite the
# engine's BEGIN IMMEDIATE already does this.)
MIGRATION_LOCK = 0x5354454D

config = context.config
settings: Settings = config.attributes.get("settings") or Settings()


def run_migrations() -> None:
    engine = create_sync_engine(settings, bounded=False)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                _foreign_keys(connection, on=False)
            with connection.begin():
                if not sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                context.configure(
                    connection=connection,
                    target_metadata=Base.metadata,
                    render_as_batch=sqlite,
                    compare_type=True,
                )
                context.run_migrations()
                if sqlite:
                    _check_foreign_keys(connection)
            if sqlite:
                _foreign_keys(connection, on=True)
    finally:
        engine.dispose()


def _foreign_keys(connection: Connection, *, on: bool) -> None:
    """SQLite copies a table to change a column (batch mode), and dropping the original with
    foreign keys on would delete every row that cascades from it. The pragma is ignored inside a
    transaction: it goes to the driver's connection before SQLAlchemy begins one."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("no driver connection to set SQLite's foreign keys on")
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _check_foreign_keys(connection: Connection) -> None:
    """What foreign keys off let through fails the migration, before it commits."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(
            f"the migration left rows whose foreign keys point nowhere: {broken[:5]}"
        )


run_migrations()
