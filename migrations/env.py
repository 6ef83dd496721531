"""Alembic environment: the URL comes from the service's settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context

from app import models  # noqa: F401 - registers the tables on Base.metadata
from app.config import Settings
from app.db import Base, create_sync_engine

config = context.config
settings: Settings = config.attributes.get("settings") or Settings()


def run_migrations() -> None:
    engine = create_sync_engine(settings)
    try:
        with engine.begin() as connection:
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
