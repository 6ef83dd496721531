"""The schema comes only from migrations: they must build exactly what the models describe."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from app import models  # noqa: F401 - registers the tables on Base.metadata
from app.db import Base
from app.schema import alembic_config
from tests.conftest import Backend


def test_migrated_database_matches_the_models(backend: Backend, engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrations_go_down_and_up_again(backend: Backend, engine: Engine) -> None:
    config = alembic_config(backend.settings())
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    test_migrated_database_matches_the_models(backend, engine)
