"""Alembic environment: the URL comes from the service's settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

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
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
