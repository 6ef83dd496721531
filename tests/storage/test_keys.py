"""file_key turns whatever a stranger calls a job into a key every store takes, and never
gives two jobs the same key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.storage import UnsafeKey, check_key, file_key
from app.storage.keys import MAX_KEY_LENGTH

HOSTILE_JOB_IDS = [
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "",
    "a/../../b",
    "job\x00id",
    "C:\\Windows\\system32",
    "ｆｕｌｌｗｉｄｔｈ",
    "\udcff",
    "x" * 10_000,
    ".stemhook-partial-abc",
    "job_0123456789abcdef0123456789abcdef",
]


@pytest.mark.parametrize("job_id", HOSTILE_JOB_IDS)
def test_a_hostile_job_id_makes_a_plain_key_under_its_provider(job_id: str) -> None:
    key = file_key("suno", job_id, 0, "vocals", "vocals.mp3")

    assert check_key(key) == key
    provider, job, name = key.split("/")
    assert (provider, name) == ("suno", "0-vocals.mp3")
    assert job not in ("", ".", "..")


def test_a_plain_job_id_is_kept_as_it_is() -> None:
    assert file_key("suno", "3f2a9c1e-77b0", 2, "Instrumental", "https-x/a.MP3") == (
        "suno/3f2a9c1e-77b0/2-instrumental.mp3"
    )


def test_any_other_is_readable_and_hashed() -> None:
    key = file_key("medialab", "Job 42/B", 0, "mix", "mix.wav")

    assert key.startswith("medialab/job-42-b_")
    assert len(key.split("/")[1]) == len("job-42-b_") + 32


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ABC", "abc"),  # the same on a case-insensitive filesystem
        ("a/b", "a-b"),
        ("a/b", "a_b"),
        ("a b", "a-b"),
        ("../x", "x"),
        ("", "job"),
    ],
)
def test_ids_a_slug_would_merge_keep_their_own_keys(first: str, second: str) -> None:
    assert file_key("suno", first, 0, "v", "v.mp3") != file_key("suno", second, 0, "v", "v.mp3")


def test_a_hashed_segment_given_as_an_id_is_not_the_id_it_was_made_from() -> None:
    made = file_key("suno", "Some Job", 0, "v", "v.mp3").split("/")[1]

    assert file_key("suno", made, 0, "v", "v.mp3") != file_key("suno", "Some Job", 0, "v", "v.mp3")


@given(st.text(), st.text())
def test_distinct_job_ids_never_share_a_key(first: str, second: str) -> None:
    if first != second:
        assert file_key("suno", first, 0, "v", "v") != file_key("suno", second, 0, "v", "v")


@given(st.text(), st.integers(min_value=0, max_value=10**6), st.text(), st.text())
def test_any_input_makes_a_bounded_plain_key(job_id: str, index: int, role: str, hint: str) -> None:
    key = file_key("suno", job_id, index, role, hint)

    assert check_key(key) == key
    assert len(key) <= 200 < MAX_KEY_LENGTH


@pytest.mark.parametrize(
    ("role", "hint", "name"),
    [
        ("vocals", "vocals.mp3", "0-vocals.mp3"),
        ("", "", "0-file"),
        ("../..", "x.tar.gz", "0-file.gz"),
        ("Lead Vocals (dry)", "no-extension", "0-lead-vocals-dry"),
        ("v", "folder.d/file", "0-v"),
        ("v", ".mp3", "0-v"),
        ("v", "a.mp3?sig=../../x", "0-v"),
        ("v", "a.waytoolongextension", "0-v"),
    ],
)
def test_role_and_extension_are_reduced_to_plain_words(role: str, hint: str, name: str) -> None:
    assert file_key("suno", "job", 0, role, hint) == f"suno/job/{name}"


@pytest.mark.parametrize("provider", ["", "Suno", "../suno", "s/uno", "x" * 33])
def test_a_provider_name_is_ours_and_plain(provider: str) -> None:
    with pytest.raises(ValueError, match="not a provider name"):
        file_key(provider, "job", 0, "v", "v.mp3")


def test_an_index_is_not_negative() -> None:
    with pytest.raises(ValueError, match="not negative"):
        file_key("suno", "job", -1, "v", "v.mp3")


def test_an_overlong_key_is_refused() -> None:
    with pytest.raises(UnsafeKey, match="at most 512"):
        check_key("a" * 513)
