"""The schema is Alembic's: upgrading to head is the only way tables come to exist."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.config import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def upgrade_to_head(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")


def head_revision(settings: Settings) -> str | None:
    """The revision the code expects the database at."""
    head: str | None = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
    return head
