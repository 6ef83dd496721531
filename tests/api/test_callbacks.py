"""The callback endpoints' own helpers, on their own (the endpoints: test_receive.py)."""

from __future__ import annotations

from app.api.callbacks import read_headers


def test_headers_read_in_one_pass_keep_only_the_allowed_and_join_repeats() -> None:
    read = read_headers(
        [
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer secret"),
            (b"x-webhook-sig", b"one"),
            (b"content-length", b"911"),
            (b"x-webhook-sig", b"two"),
            (b"content-type", b"text/plain"),
            (b"x-webhook-caf\xe9", b"\xe9t\xe9"),
            (b"x-auth-token", b"secret"),
            (b"x-hub-signature-256", b"sha256=secret"),
            (b"x-forwarded-for", b"198.51.100.23"),
            (b"x-forwarded-user", b"someone@example.com"),
            (b"user-agent", b"Suno/1.0"),
            (b"x-request-id", b"r-1"),
        ]
    )

    assert (read.content_type, read.content_length) == ("application/json", "911")
    assert read.kept == {
        "content-type": "application/json, text/plain",
        "x-webhook-sig": "one, two",
        "content-length": "911",
        "x-webhook-caf\xe9": "\xe9t\xe9",
        "x-forwarded-for": "198.51.100.23",
        "user-agent": "Suno/1.0",
        "x-request-id": "r-1",
    }


def test_the_body_headers_are_found_beyond_the_kept_headers_limit() -> None:
    many = [(f"x-webhook-h{n}".encode(), b"v" * 2000) for n in range(100)]
    read = read_headers([*many, (b"content-type", b"application/xml")])

    assert read.content_type == "application/xml"
    assert len(read.kept) == 64
    assert {len(value) for value in read.kept.values()} == {1024}
