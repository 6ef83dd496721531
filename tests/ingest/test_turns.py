"""Writer processes on one SQLite file take turns on a lock file (app/ingest/turns.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from app.errors import StorageUnavailable
from app.ingest.turns import Turns, writer_turns


def turns_on(database: Path, *, timeout_s: float = 5.0) -> Turns:
    return writer_turns(create_engine(f"sqlite:///{database}"), timeout_s=timeout_s)


def test_a_writer_waits_for_the_turn_of_another_and_says_it_waited(tmp_path: Path) -> None:
    first, second = turns_on(tmp_path / "db"), turns_on(tmp_path / "db")
    with second.taken() as waited_when_free:
        pass
    waiter_saw: list[bool] = []
    with first.taken():
        waiter = threading.Thread(target=lambda: waiter_saw.append(_take(second)))
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive(), "the second writer went ahead during the first one's turn"
    waiter.join(5)

    assert (waited_when_free, waiter_saw) == (False, [True])
    first.close()
    second.close()


def _take(turns: Turns) -> bool:
    with turns.taken() as waited:
        return bool(waited)


def test_a_turn_that_does_not_come_within_the_timeout_is_unavailable(tmp_path: Path) -> None:
    holder, waiter = turns_on(tmp_path / "db"), turns_on(tmp_path / "db", timeout_s=0.3)
    with holder.taken():
        began = time.monotonic()
        with pytest.raises(StorageUnavailable), waiter.taken():
            pass
    assert 0.3 <= time.monotonic() - began < 2
    holder.close()
    waiter.close()


def test_the_turn_of_a_killed_writer_is_free_at_once(tmp_path: Path) -> None:
    lock = f"{tmp_path / 'db'}-writer.lock"
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({lock!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        turns = turns_on(tmp_path / "db", timeout_s=0.3)
        with pytest.raises(StorageUnavailable), turns.taken():
            pass
        holder.kill()
    with turns.taken() as waited:
        assert waited is False
    turns.close()


def test_postgresql_writers_take_no_file_lock(tmp_path: Path) -> None:
    # They take turns on an advisory lock inside the transaction (app/ingest/statements.py).
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with writer_turns(engine, timeout_s=1).taken() as waited:
        assert waited is False
    assert list(tmp_path.iterdir()) == []
