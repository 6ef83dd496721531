"""Writer processes on one SQLite file take turns on a lock file (app/ingest/turns.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from app.ingest.turns import Turn, Turns, writer_turns


def turns_on(url: str) -> Turns:
    engine = create_engine(url)
    try:
        return writer_turns(engine)
    finally:
        engine.dispose()


def take(turns: Turns, *, within_s: float = 5.0) -> Turn:
    with turns.taken(until=time.monotonic() + within_s) as turn:
        return turn


def test_a_writer_waits_for_the_turn_of_another_and_says_it_waited(tmp_path: Path) -> None:
    first, second = (
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
    )
    when_free = take(second)
    when_taken: list[Turn] = []
    with first.taken(until=time.monotonic() + 5):
        waiter = threading.Thread(target=lambda: when_taken.append(take(second)))
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive(), "the second writer went ahead during the first one's turn"
    waiter.join(5)

    assert (when_free, when_taken) == (Turn.FREE, [Turn.WAITED])
    first.close()
    second.close()


def test_a_turn_that_does_not_come_by_the_deadline_is_missed(tmp_path: Path) -> None:
    holder, waiter = (
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
    )
    with holder.taken(until=time.monotonic() + 5):
        began = time.monotonic()
        missed = take(waiter, within_s=0.3)
        waited_s = time.monotonic() - began
    assert missed is Turn.MISSED
    assert 0.3 <= waited_s < 2
    assert take(waiter) is Turn.FREE, "a missed turn was left taken"
    holder.close()
    waiter.close()


def test_the_turn_of_a_killed_writer_is_free_at_once(tmp_path: Path) -> None:
    turns = turns_on(f"sqlite:///{tmp_path / 'db'}")
    lock = f"{tmp_path / 'db'}-writer.lock"
    holding = f"import fcntl, os, time\nfcntl.flock(os.open({lock!r}, os.O_RDWR), fcntl.LOCK_EX)\n"
    with subprocess.Popen(
        [sys.executable, "-c", holding + "print('held', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        assert take(turns, within_s=0.3) is Turn.MISSED
        holder.kill()
    assert take(turns, within_s=0) is Turn.FREE
    turns.close()


@pytest.mark.parametrize("form", ["sqlite:///{path}", "sqlite:///file:{path}?mode=rwc&uri=true"])
def test_the_lock_file_lies_next_to_the_database_whatever_the_url(
    tmp_path: Path, form: str
) -> None:
    turns = turns_on(form.format(path=tmp_path / "stemhook.db"))
    take(turns)
    turns.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "stemhook.db",
        "stemhook.db-writer.lock",
    ]


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://nobody@127.0.0.1:1/none"])
def test_no_lock_file_without_a_database_file(tmp_path: Path, url: str) -> None:
    # PostgreSQL writers take turns on an advisory lock in the transaction (statements.py).
    assert take(turns_on(url), within_s=0) is Turn.FREE
    assert list(tmp_path.iterdir()) == []
