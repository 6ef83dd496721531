"""The callback endpoints' own helpers, on their own (the endpoints: test_receive.py)."""

from __future__ import annotations

from app.api.callbacks import read_headers


def test_headers_read_in_one_pass_keep_all_but_credentials_and_join_repeats() -> None:
    read = read_headers(
        [
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer secret"),
            (b"x-sig", b"one"),
            (b"content-length", b"911"),
            (b"x-sig", b"two"),
            (b"content-type", b"text/plain"),
            (b"x-caf\xe9", b"\xe9t\xe9"),
        ]
    )

    assert (read.content_type, read.content_length) == ("application/json", "911")
    assert read.kept == {
        "content-type": "application/json, text/plain",
        "x-sig": "one, two",
        "content-length": "911",
        "x-caf\xe9": "\xe9t\xe9",
    }


def test_the_body_headers_are_found_beyond_the_kept_headers_limit() -> None:
    many = [(f"x-h{n}".encode(), b"v" * 2000) for n in range(100)]
    read = read_headers([*many, (b"content-type", b"application/xml")])

    assert read.content_type == "application/xml"
    assert len(read.kept) == 64
    assert {len(value) for value in read.kept.values()} == {1024}
