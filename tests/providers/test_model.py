"""The normalized values: frozen to the type checker, compared and hashed by value at run time."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

from app.providers.model import Job, OutputFile, Provider, Role, State

_REPO = Path(__file__).resolve().parents[2]


def test_the_type_checker_refuses_changing_or_positionally_building_a_value(
    tmp_path: Path,
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent(
            """
            from app.providers.model import Job, OutputFile, Role

            def change(job: Job) -> None:
                job.job_id = "another"

            def build() -> OutputFile:
                return OutputFile(Role.VOCALS)
            """
        )
    )
    out, _, status = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(probe)]
    )
    assert status == 1, out
    assert 'Property "job_id" defined in "Job" is read-only' in out
    assert 'Too many positional arguments for "OutputFile"' in out


def test_values_are_equal_and_hash_alike_by_their_fields() -> None:
    def job(url: str) -> Job:
        output = OutputFile(role=Role.VOCALS, url=url)
        return Job(
            provider=Provider.SUNO,
            job_id="j1",
            kind="separate_vocal",
            state=State.SUCCEEDED,
            provider_state="SUCCESS",
            outputs=(output,),
        )

    assert job("https://a/v.mp3") == job("https://a/v.mp3")
    assert hash(job("https://a/v.mp3")) == hash(job("https://a/v.mp3"))
    assert job("https://a/v.mp3") != job("https://a/other.mp3")
    assert len({job("https://a/v.mp3"), job("https://a/v.mp3"), job("https://a/o.mp3")}) == 2
