"""The hostile inputs tried against a real server (tests/reliability/test_hostile_input.py)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BODY_BYTES = 1024 * 1024  # the default STEMHOOK_MAX_BODY_BYTES


@dataclass(frozen=True)
class Hostile:
    """A body the server must refuse with 400 and keep as a rejected delivery."""

    name: str
    body: bytes
    message: str  # what the 400's message must say (a regular expression)
    content_type: str | None = None
    path: str = "/callbacks"


def kept_inputs(canary: str) -> list[Hostile]:
    """`canary` is a URL nobody may ever fetch: an external entity or DTD pointing there."""
    lol = "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' if n else '<!ENTITY lol0 "lol">'
        for n in range(10)
    )
    envelope = b'{"EventName": "TaskFinish", "JobsDetail": %s}'
    valid_xml = ci_xml("j-hostile")
    return [
        Hostile(
            "billion laughs",
            f'<?xml version="1.0"?><!DOCTYPE lolz [{lol}]><lolz>&lol9;</lolz>'.encode(),
            "DTD",
            "application/xml",
            "/callbacks/tencent-ci",
        ),
        Hostile(
            "quadratic blowup",
            b'<!DOCTYPE r [<!ENTITY a "' + b"a" * 50_000 + b'">]><r>' + b"&a;" * 20_000 + b"</r>",
            "DTD",
            "text/xml",
        ),
        Hostile(
            "external entity, file",
            b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Response>&x;</Response>',
            "DTD",
            "text/xml",
        ),
        Hostile(
            "external entity, http",
            f'<!DOCTYPE r [<!ENTITY x SYSTEM "{canary}/entity">]><Response>&x;</Response>'.encode(),
            "DTD",
            "text/xml",
        ),
        Hostile(
            "external parameter entity",
            f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{canary}/p.dtd"> %p;]><Response/>'.encode(),
            "DTD",
        ),
        Hostile(
            "external DTD",
            f'<!DOCTYPE Response SYSTEM "{canary}/evil.dtd">'.encode() + valid_xml,
            "DTD",
            "text/xml",
        ),
        Hostile("DTD around a valid callback", b"<!DOCTYPE Response>" + valid_xml, "DTD"),
        Hostile(
            "XML nested 10,000 deep",
            b"<Response>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</Response>",
            "unrecognized payload",
        ),
        Hostile(
            "XML nested 10,000 deep in a job id",
            valid_xml.replace(b"j-hostile", b"<a>" * 10_000 + b"</a>" * 10_000),
            "must be text",
        ),
        Hostile("JSON arrays nested 10,000 deep", b"[" * 10_000 + b"]" * 10_000, "depth"),
        Hostile(
            "JSON objects nested 10,000 deep",
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            "depth",
            "application/json",
        ),
        Hostile(
            "JSON nested 10,000 deep in a callback",
            envelope % (b"[" * 10_000 + b"]" * 10_000),
            "depth",
            "application/json",
            "/callbacks/tencent-ci",
        ),
        Hostile(
            "invalid UTF-8 in JSON",
            envelope % b'{"JobId": "j-\xff\xfe", "State": "Success"}',
            "UTF-8",
            "application/json",
        ),
        Hostile(
            "invalid UTF-8 in XML",
            valid_xml.replace(b"j-hostile", b"j-\xc3\x28\xff"),
            "malformed XML",
            "text/xml",
        ),
        Hostile(
            "lone surrogate in JSON",
            envelope % b'{"JobId": "j-\\ud800", "State": "Success"}',
            "surrogate",
        ),
        Hostile("NUL bytes in JSON", b'{"EventName": "TaskFinish"\x00\x00}', "malformed JSON"),
        Hostile("NUL bytes in XML", valid_xml.replace(b"Tts", b"T\x00s"), "malformed XML"),
        Hostile(
            "escaped NUL in a job id",
            envelope % b'{"JobId": "j-\\u0000", "State": "Success", "Tag": "Tts"}',
            "NUL",
        ),
        Hostile("only NUL bytes", b"\x00" * 4096, "neither XML nor JSON"),
        Hostile("empty body", b"", "empty", "application/json"),
        Hostile(
            "binary labelled JSON",
            bytes(range(256)) * 16,
            r"neither XML nor JSON \(content type 'application/json'\)",
            "application/json",
        ),
        Hostile(
            "binary labelled PNG",
            b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64,
            "neither XML nor JSON",
            "image/png",
        ),
        Hostile("text without a content type", b"EventName=TaskFinish", "neither XML nor JSON"),
        Hostile(
            "malformed JSON labelled XML",
            b'{"EventName": "TaskFinish",',
            "malformed JSON",
            "text/xml",
        ),
        Hostile(
            "junk exactly at the size limit",
            b"[" + b" " * (MAX_BODY_BYTES - 1),
            "malformed JSON",
            "application/json",
        ),
    ]


def ci_xml(job_id: str) -> bytes:
    return (
        f"<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>{job_id}</JobId>"
        "<State>Success</State><Tag>Tts</Tag></JobsDetail></Response>"
    ).encode()


MALFORMED_HTTP = {
    "NUL in a header": b"POST /callbacks HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    "non-numeric Content-Length": b"POST /callbacks HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 1e9\r\n\r\n{}",
    "bad chunk size": b"POST /callbacks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\n{}\r\n0\r\n\r\n",
    "Content-Length with chunked": b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
}
