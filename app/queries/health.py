"""What readiness asks the database: the schema revision it is at (None before any migration)."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession


async def schema_revision(session: AsyncSession) -> str | None:
    migrated = await session.run_sync(
        lambda sync: inspect(sync.connection()).has_table("alembic_version")
    )
    if not migrated:
        return None
    revision: str | None = await session.scalar(text("SELECT version_num FROM alembic_version"))
    return revision
