"""What the reliability tests share: server settings, payloads, memory and consistency probes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, text

from tests.conftest import API_TOKEN, TEST_WRITE_TIMEOUT_S

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# The merge order of states (README "Duplicates and ordering"); running and paused are one stage.
STAGE = {"submitted": 0, "running": 1, "paused": 1, "succeeded": 2, "failed": 2, "canceled": 2}


def server_env(database_url: str, **settings: object) -> dict[str, str]:
    """Environment of a `stemhook serve` process: STEMHOOK_<NAME> for each keyword."""
    settings = {"write_timeout_s": TEST_WRITE_TIMEOUT_S} | settings
    env = {"STEMHOOK_DATABASE_URL": database_url, "STEMHOOK_API_TOKENS": API_TOKEN}
    return env | {f"STEMHOOK_{name.upper()}": str(value) for name, value in settings.items()}


def media_lab_json(job_id: str, state: int) -> bytes:
    return orjson.dumps(
        {"id": job_id, "state": state, "timing": {"createdAt": "0"}, "inputs": [], "outputs": []}
    )


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident set now (VmRSS) and at its peak so far (VmHWM), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        name: int(re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)[1])  # type: ignore[index]
        for name in ("VmRSS", "VmHWM")
    }


def descendants(pid: int) -> list[int]:
    """The process and every process below it (a server's writer processes are children of
    its forkserver)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue += [int(child) for child in (task / "children").read_text().split()]
            except FileNotFoundError:  # the task or the process ended meanwhile
                continue
    return found


def memory_by_process(pid: int) -> dict[int, dict[str, int]]:
    """memory_kib of the process and of each one below it still running."""
    found = {}
    for member in descendants(pid):
        try:
            found[member] = memory_kib(member)
        except FileNotFoundError:  # it ended meanwhile
            continue
    return found


def tree_memory_kib(pid: int) -> dict[str, int]:
    """memory_kib summed over the process and its descendants."""
    measured = memory_by_process(pid).values()
    return {name: sum(memory[name] for memory in measured) for name in ("VmRSS", "VmHWM")}


def figures(title: str, **values: Any) -> None:
    """One line of the figures a test held, shown under `pytest -s`."""
    print(
        f"\n[{title}] " + ", ".join(f"{name.replace('_', ' ')}: {v}" for name, v in values.items())
    )


# Each query lists what breaks one invariant of the write path; all must come back empty.
_INCONSISTENCIES = {
    "job without a delivery link": """
        SELECT j.id FROM job j
        WHERE NOT EXISTS (SELECT 1 FROM delivery_job l WHERE l.job_pk = j.id)""",
    "job whose delivery count differs from its links": """
        SELECT j.id FROM job j
        WHERE j.deliveries <> (SELECT count(*) FROM delivery_job l WHERE l.job_pk = j.id)""",
    "job without an event": """
        SELECT j.id FROM job j
        WHERE NOT EXISTS (SELECT 1 FROM job_event e WHERE e.job_pk = j.id)""",
    "job whose state is not its latest event's": """
        SELECT j.id FROM job j JOIN job_event e ON e.id = (
            SELECT max(e2.id) FROM job_event e2 WHERE e2.job_pk = j.id)
        WHERE e.to_state <> j.state OR e.delivery_id <> j.state_delivery_id""",
    "job pointing at a missing delivery": """
        SELECT j.id FROM job j
        WHERE NOT EXISTS (SELECT 1 FROM delivery d WHERE d.id = j.last_delivery_id)
           OR NOT EXISTS (SELECT 1 FROM delivery d WHERE d.id = j.state_delivery_id)""",
    "link or event without its job or delivery": """
        SELECT l.job_pk FROM delivery_job l
        WHERE NOT EXISTS (SELECT 1 FROM job j WHERE j.id = l.job_pk)
           OR NOT EXISTS (SELECT 1 FROM delivery d WHERE d.id = l.delivery_id)
        UNION ALL SELECT e.job_pk FROM job_event e
        WHERE NOT EXISTS (SELECT 1 FROM job j WHERE j.id = e.job_pk)
           OR NOT EXISTS (SELECT 1 FROM delivery d WHERE d.id = e.delivery_id)""",
    "accepted or duplicate delivery without jobs": """
        SELECT d.id FROM delivery d
        WHERE d.outcome IN ('accepted', 'duplicate')
          AND NOT EXISTS (SELECT 1 FROM delivery_job l WHERE l.delivery_id = d.id)""",
    "rejected or orphaned delivery with jobs": """
        SELECT d.id FROM delivery d
        WHERE d.outcome IN ('rejected', 'orphaned')
          AND EXISTS (SELECT 1 FROM delivery_job l WHERE l.delivery_id = d.id)""",
    "delivery whose body size is not its body's": """
        SELECT d.id FROM delivery d WHERE d.body IS NOT NULL AND d.body_size <> length(d.body)""",
}


def assert_consistent(engine: Engine) -> None:
    """The stored data obeys the write path's invariants (and SQLite's own file checks)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalars().all() == ["ok"]
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        broken = {
            name: rows
            for name, query in _INCONSISTENCIES.items()
            if (rows := connection.execute(text(query)).scalars().all())
        }
    assert broken == {}


def last_delivery_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT coalesce(max(id), 0) FROM delivery")))
