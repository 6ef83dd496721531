"""Settings refuse values that would fail later, on a request, instead of at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings


@pytest.mark.parametrize("age", ["0s", "31d", "1000000d"])
def test_a_cursor_max_age_out_of_range_is_refused_at_start_up(age: str) -> None:
    with pytest.raises(ValidationError, match="cursor_max_age"):
        Settings(_env_file=None, cursor_max_age=age)  # type: ignore[call-arg]


def test_a_cursor_max_age_within_range_is_taken() -> None:
    settings = Settings(_env_file=None, cursor_max_age="30d")  # type: ignore[call-arg]

    assert settings.cursor_max_age.days == 30


def test_more_jobs_per_delivery_than_a_postgresql_transaction_may_lock_is_refused() -> None:
    postgresql = "postgresql+psycopg://stemhook@127.0.0.1/stemhook"
    with pytest.raises(ValidationError, match="at most 256 on PostgreSQL"):
        Settings(_env_file=None, database_url=postgresql, max_jobs_per_delivery=257)  # type: ignore[call-arg]

    on_postgresql = Settings(_env_file=None, database_url=postgresql, max_jobs_per_delivery=256)  # type: ignore[call-arg]
    on_sqlite = Settings(_env_file=None, max_jobs_per_delivery=10_000)  # type: ignore[call-arg]
    assert (on_postgresql.max_jobs_per_delivery, on_sqlite.max_jobs_per_delivery) == (256, 10_000)
