"""Hostile and odd bodies at the decoding layer, always through `parse_callback`.

Anything that is not a callback must end in ParseError, whichever family the endpoint expects:
the HTTP layer maps ParseError to a 4xx, and any other exception would be a 500 and a retry
storm. XML must never expand entities nor fetch anything a DTD points at.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.providers.model import ParseError, Provider
from app.providers.registry import parse_callback

ENDPOINTS: list[Provider | None] = [None, *Provider]

_JOB_XML = (
    "<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>{job_id}</JobId>"
    "<State>Success</State><Tag>VoiceSeparate</Tag></JobsDetail></Response>"
)
CI_XML = _JOB_XML.format(job_id="j1").encode()
CI_JSON = b'{"EventName":"TaskFinish","JobsDetail":{"JobId":"j1","State":"Success","Tag":"Tts"}}'

# Expanded, this is 10^9 "lol"s: about 3 GB.
BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        b'<!ENTITY lol%d "%s">\n'
        % (level, (b"&lol%d;" % (level - 1) if level > 1 else b"&lol;") * 10)
        for level in range(1, 10)
    )
    + b"]>\n"
    + _JOB_XML.format(job_id="&lol9;").encode()
)
# One 100 kB entity referenced 10,000 times: 1 GB without any nesting.
QUADRATIC_BLOWUP = (
    b'<!DOCTYPE r [<!ENTITY a "'
    + b"x" * 100_000
    + b'">]>'
    + _JOB_XML.format(job_id="&a;" * 10_000).encode()
)
DEEP_XML = b"<Response>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</Response>"
DEEP_XML_IN_JOB = _JOB_XML.format(job_id="<a>" * 10_000 + "</a>" * 10_000).encode()
DEEP_JSON_LIST = b"[" * 10_000 + b"]" * 10_000
DEEP_JSON_OBJECT = b'{"JobsDetail":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001


def _external_entity(uri: str) -> bytes:
    return (f'<!DOCTYPE r [<!ENTITY x SYSTEM "{uri}">]>' + _JOB_XML.format(job_id="&x;")).encode()


def _parameter_entity(uri: str) -> bytes:
    return (f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{uri}"> %p;]>' + CI_XML.decode()).encode()


HOSTILE: dict[str, bytes] = {
    "billion laughs": BILLION_LAUGHS,
    "quadratic blowup": QUADRATIC_BLOWUP,
    "external entity file": _external_entity("file:///etc/passwd"),
    "external entity http": _external_entity("http://127.0.0.1:9/x"),
    "external DTD": b'<!DOCTYPE Response SYSTEM "http://127.0.0.1:9/x.dtd">' + CI_XML,
    "bare doctype": b"<!DOCTYPE Response>" + CI_XML,
    "parameter entity": _parameter_entity("http://127.0.0.1:9/evil.dtd"),
    "internal parameter entity": (
        b"<!DOCTYPE r [<!ENTITY % p \"<!ENTITY x 'boom'>\"> %p;]>"
        + _JOB_XML.format(job_id="&x;").encode()
    ),
    "undeclared entity": _JOB_XML.format(job_id="&x;").encode(),
    "unclosed XML": b"<Response><JobsDetail><JobId>j1</JobId>",
    "mismatched XML tags": b"<Response><JobsDetail></Response></JobsDetail>",
    "two XML roots": CI_XML + CI_XML,
    "XML then junk": CI_XML + b"{}",
    "truncated JSON": CI_JSON[:-5],
    "JSON trailing comma": b'{"JobsDetail": {"JobId": "j1",}}',
    "JSON single quotes": b"{'JobsDetail': {}}",
    "JSON NaN": b'{"JobsDetail": {"JobId": NaN}}',
    "JSON then junk": CI_JSON + b" trailing",
    "empty": b"",
    "whitespace only": b" \r\n\t \n",
    "BOM only": b"\xef\xbb\xbf",
    "deep XML": DEEP_XML,
    "deep XML inside a job": DEEP_XML_IN_JOB,
    "deep JSON list": DEEP_JSON_LIST,
    "deep JSON object": DEEP_JSON_OBJECT,
    "invalid UTF-8 in XML": _JOB_XML.encode().replace(b"{job_id}", b"j\xff\xfe1"),
    "invalid UTF-8 in JSON": CI_JSON.replace(b'"j1"', b'"j\xc3\x281"'),
    "UTF-16 BOM then garbage": b"\xff\xfe\x00\xd8<\x00",
    "raw NUL in XML": CI_XML.replace(b"j1", b"j\x001"),
    "escaped NUL in JSON JobId": CI_JSON.replace(b'"j1"', b'"j\\u00001"'),
    "plain text": b"JobId=j1&State=Success",
    "binary": bytes(range(256)),
    "empty JSON list": b"[]",
    "JSON string": b'"JobsDetail"',
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("provider", ENDPOINTS, ids=str)
def test_hostile_body_is_a_parse_error(body: bytes, provider: Provider | None) -> None:
    started = time.perf_counter()
    with pytest.raises(ParseError):
        parse_callback(body, provider=provider)
    # Anything expanded or fetched would take minutes (a billion laughs) or hang; refusing it
    # takes milliseconds: 30 s tells them apart on any machine.
    assert time.perf_counter() - started < 30


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local port that records whether anything tried to connect to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


def _connection_attempted(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


@pytest.mark.parametrize(
    "make_body",
    [
        _external_entity,
        _parameter_entity,
        lambda uri: f'<!DOCTYPE Response SYSTEM "{uri}">'.encode() + CI_XML,
    ],
    ids=["external entity", "parameter entity", "external DTD"],
)
def test_xml_never_fetches(listener: socket.socket, make_body: Callable[[str], bytes]) -> None:
    port = listener.getsockname()[1]
    body = make_body(f"http://127.0.0.1:{port}/x")
    with pytest.raises(ParseError):
        parse_callback(body)
    assert not _connection_attempted(listener)


def test_external_file_is_never_read_into_a_job(tmp_path: Path) -> None:
    # Were the entity resolved, this would parse and the secret would become the job id.
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with pytest.raises(ParseError) as raised:
        parse_callback(_external_entity(secret.as_uri()), provider=Provider.TENCENT_CI)
    assert "TOP-SECRET" not in str(raised.value)


def test_nul_in_json_job_id_is_named() -> None:
    with pytest.raises(ParseError, match="NUL"):
        parse_callback(HOSTILE["escaped NUL in JSON JobId"], provider=Provider.TENCENT_CI)


def test_neither_xml_nor_json_names_the_content_type() -> None:
    with pytest.raises(ParseError, match="neither XML nor JSON.*text/plain"):
        parse_callback(b"hello", content_type="text/plain")


SNIFFED: dict[str, tuple[bytes, str | None]] = {
    "JSON labelled text/xml": (CI_JSON, "text/xml"),
    "XML labelled application/json": (CI_XML, "application/json"),
    "XML as text/plain": (CI_XML, "text/plain"),
    "JSON as text/plain": (CI_JSON, "text/plain"),
    "XML without content type": (CI_XML, None),
    "JSON without content type": (CI_JSON, None),
    "UTF-8 BOM before XML": (b"\xef\xbb\xbf" + CI_XML, "application/xml"),
    "UTF-8 BOM before JSON": (b"\xef\xbb\xbf" + CI_JSON, "application/json"),
    "leading whitespace before XML": (b"\r\n \t" + CI_XML, None),
    "leading whitespace before JSON": (b"\n\n  " + CI_JSON, None),
    "whitespace before an XML declaration": (
        b'\n <?xml version="1.0" encoding="UTF-8"?>\n' + CI_XML,
        "text/xml",
    ),
    "BOM and whitespace before an XML declaration": (
        b'\xef\xbb\xbf\n<?xml version="1.0" encoding="UTF-8"?>' + CI_XML,
        "text/xml; charset=utf-8",
    ),
    "UTF-16 XML": (CI_XML.decode().encode("utf-16"), "text/xml"),
    "CRLF line endings": (CI_XML.replace(b"><", b">\r\n<"), "text/xml"),
}


@pytest.mark.parametrize(("body", "content_type"), SNIFFED.values(), ids=SNIFFED.keys())
@pytest.mark.parametrize("provider", [None, Provider.TENCENT_CI], ids=str)
def test_body_decides_the_format(
    body: bytes, content_type: str | None, provider: Provider | None
) -> None:
    parsed = parse_callback(body, content_type=content_type, provider=provider)
    assert parsed.provider is Provider.TENCENT_CI
    assert [job.job_id for job in parsed.jobs] == ["j1"]
