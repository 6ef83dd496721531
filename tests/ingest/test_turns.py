"""Writer processes on one SQLite file take turns on a lock file (app/ingest/turns.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from app.ingest import turns as turns_module
from app.ingest.turns import Turn, Turns, writer_turns


class FakeTime:
    """Stands in for app.ingest.turns' clock: a retry's sleep moves it on at once instead of
    sleeping, and says that a writer found the turn taken and is waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.retried = threading.Event()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.retried.set()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(turns_module, "time", fake)
    return fake


def turns_on(url: str) -> Turns:
    engine = create_engine(url)
    try:
        return writer_turns(engine)
    finally:
        engine.dispose()


def take(turns: Turns, *, within_s: float = 5.0, now: float | None = None) -> Turn:
    start = time.monotonic() if now is None else now
    with turns.taken(until=start + within_s) as turn:
        return turn


def test_a_writer_waits_for_the_turn_of_another_and_says_it_waited(
    tmp_path: Path, clock: FakeTime
) -> None:
    first, second = (
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
    )
    when_free = take(second, now=clock.now)
    when_taken: list[Turn] = []
    with first.taken(until=clock.now + 5):
        # A deadline the fake clock's retries do not reach before the turn comes.
        waiter = threading.Thread(
            target=lambda: when_taken.append(take(second, within_s=1e9, now=clock.now))
        )
        waiter.start()
        assert clock.retried.wait(60), "the second writer never tried"
        assert waiter.is_alive(), "the second writer went ahead during the first one's turn"
    waiter.join(60)

    assert (when_free, when_taken) == (Turn.FREE, [Turn.WAITED])
    first.close()
    second.close()


def test_a_turn_that_does_not_come_by_the_deadline_is_missed(
    tmp_path: Path, clock: FakeTime
) -> None:
    holder, waiter = (
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
    )
    with holder.taken(until=clock.now + 5):
        began = clock.now
        missed = take(waiter, within_s=0.3, now=began)
        waited_s = clock.now - began
    assert missed is Turn.MISSED
    # Given up at the first retry past the deadline: retries are a fraction of a millisecond.
    assert 0.3 <= waited_s < 0.301
    assert take(waiter, now=clock.now) is Turn.FREE, "a missed turn was left taken"
    holder.close()
    waiter.close()


class SleepLog(FakeTime):
    """FakeTime that keeps each retry's pause."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        super().sleep(seconds)


@pytest.mark.parametrize("patient", [False, True])
def test_background_work_waits_its_turn_with_pauses_that_grow_and_writers_with_short_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patient: bool
) -> None:
    """A writer tries again every fraction of a millisecond; background work (patient) doubles
    its pause up to 10 ms, leaving the turn to writers and its CPU to them while it waits, for
    a second: then it tries as often as a writer, lest writers that never pause starve it."""
    clock = SleepLog()
    monkeypatch.setattr(turns_module, "time", clock)
    holder, waiter = (
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
        turns_on(f"sqlite:///{tmp_path / 'db'}"),
    )
    began = clock.now
    with (
        holder.taken(until=began + 5),
        waiter.taken(until=began + 2, patient=patient) as turn,
    ):
        assert turn is Turn.MISSED
    pauses = [round(pause, 6) for pause in clock.pauses]
    if patient:
        assert pauses[:7] == [0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.01]
        longest = len(pauses) - pauses[::-1].index(0.01)  # where the last 10 ms pause ends
        assert set(pauses[7:longest]) == {0.01}
        assert 1.0 <= sum(pauses[:longest]) < 1.0 + 0.0101  # patient for a second
        assert set(pauses[longest:]) == {0.0002}
    else:
        assert set(pauses) == {0.0002}
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
