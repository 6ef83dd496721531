"""What crosses between the web process and the writer process arrives whole and equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.errors import StorageUnavailable
from app.ingest.committer import answer_from_wire, answer_to_wire
from app.ingest.frames import Unframer, frame
from app.ingest.intake import Arrival, JobReceipt, Outcome, Receipt, Submission
from app.providers.model import Provider, State

times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
)


def submission(received_at: datetime, signed_at: datetime | None) -> Submission:
    arrival = Arrival(
        received_at=received_at,
        endpoint="suno",
        content_type="application/json",
        client_addr="203.0.113.7",
        headers={"content-type": "application/json", "x-webhook-timestamp": "1"},
        body=b'{"code": 200}\x00\xff',
    )
    return Submission(arrival=arrival, expected=Provider.SUNO, replay_of=7, signed_at=signed_at)


def crossed(message: Any) -> Any:
    """The message as the other process receives it."""
    [received] = Unframer().feed(frame(message))
    return received


@given(received_at=times, signed_at=st.none() | times)
def test_a_submission_crosses_to_an_equal_one_to_the_microsecond(
    received_at: datetime, signed_at: datetime | None
) -> None:
    sent = submission(received_at, signed_at)
    assert Submission.from_wire(crossed(sent.to_wire())) == sent


def test_answers_and_submissions_without_a_family_cross_to_equal_ones() -> None:
    job = JobReceipt(provider=Provider.TENCENT_CI, job_id="j-1", state=State.FAILED, duplicate=True)
    receipts = [
        Receipt(
            delivery_id=3, outcome=Outcome.DUPLICATE, provider=Provider.TENCENT_CI, jobs=(job,)
        ),
        Receipt(delivery_id=4, outcome=Outcome.REJECTED, error="not XML"),
    ]
    detected = Submission(arrival=submission(datetime.now(UTC), None).arrival, expected=None)

    for receipt in receipts:
        assert answer_from_wire(crossed(answer_to_wire(receipt))) == receipt
    assert Submission.from_wire(crossed(detected.to_wire())) == detected
    error = answer_from_wire(crossed(answer_to_wire(StorageUnavailable("retry"))))
    assert isinstance(error, StorageUnavailable)
    assert str(error) == "retry"


def test_messages_come_out_whole_however_the_stream_is_cut() -> None:
    messages: list[Any] = [
        (1, 2.5, submission(datetime(2026, 1, 1, tzinfo=UTC), None).to_wire()),
        [(1, Receipt(delivery_id=1, outcome=Outcome.ACCEPTED).to_wire())],
        [(2, StorageUnavailable("retry"))],
        b"x" * 70_000,
    ]
    stream = b"".join(frame(message) for message in messages)

    for step in (1, 3, 4, 5, 1000, len(stream)):
        unframer = Unframer()
        received = []
        for start in range(0, len(stream), step):
            received += unframer.feed(stream[start : start + step])
        assert received[:1] == messages[:1]
        assert received[1][0][1] == messages[1][0][1]
        assert str(received[2][0][1]) == "retry"
        assert received[3] == messages[3]
        assert len(received) == len(messages)


def test_a_time_just_after_the_epoch_and_before_it_survive() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for at in (epoch, epoch - timedelta(microseconds=1), epoch + timedelta(microseconds=1)):
        sent = submission(at, at)
        assert Submission.from_wire(crossed(sent.to_wire())) == sent
