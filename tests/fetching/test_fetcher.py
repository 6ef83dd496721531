"""The fetcher streams what it may and refuses, before connecting, what it may not: every address
a host resolves to is judged, on every redirect hop, and only a judged address is connected to.

Only loopback is ever reached: names are resolved from the tests' table (under .test and
.invalid) or as numeric addresses, and a tripwire fails any test that would connect elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import ip_address, ip_network
from typing import Any
from urllib.parse import quote

import pytest
import trustme

from app.fetching.connect import GuardedBackend, Resolver
from app.fetching.errors import (
    BadStatus,
    Encoded,
    Gone,
    Refused,
    Retryable,
    TooLarge,
    parse_retry_after,
)
from app.fetching.fetcher import CHUNK_BYTES, Fetcher
from tests.fetching.servers import FileServer, Handler, Listener, Route

ADMITTED = (ip_network("127.0.0.1/32"),)
PAYLOAD = bytes(range(256)) * 4096 + b"tail"
NAMES = {
    "files.test": ["127.0.0.1"],
    "split.test": ["127.0.0.1", "127.0.0.2"],
    "split-reversed.test": ["127.0.0.2", "127.0.0.1"],
    # Never connected to: the tripwire below fails the test first.
    "public.test": ["8.8.8.8"],
}
_LOOPBACK = ip_network("127.0.0.0/8")
# Numeric only (AI_NUMERICHOST): taken before the tripwire, which refuses 2130706433 and the like.
_NUMERIC_GETADDRINFO = socket.getaddrinfo


def table_resolver(names: dict[str, list[str]]) -> Resolver:
    """getaddrinfo for the names in `names`, and for numeric hosts only otherwise."""

    def resolve(
        host: str, port: int, family: int, type: int, /
    ) -> Sequence[tuple[int, int, int, str, tuple[Any, ...]]]:
        if host in names:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
                for address in names[host]
            ]
        return _NUMERIC_GETADDRINFO(host, port, family, type, 0, socket.AI_NUMERICHOST)

    return resolve


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails a test that would look up a name or connect outside 127.0.0.0/8."""
    getaddrinfo, create_connection = socket.getaddrinfo, socket.create_connection

    def numeric_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ip_address(host)
        except ValueError:
            pytest.fail(f"a test looked up the name {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    def loopback(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if ip_address(address[0]) not in _LOOPBACK:
            pytest.fail(f"a test connected to {address[0]}")
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    monkeypatch.setattr(socket, "create_connection", loopback)


def _file(handler: Handler) -> None:
    handler.answer(200, PAYLOAD, {"Content-Type": "audio/flac"})


def _big(handler: Handler) -> None:
    handler.answer(200, _big_body(), {"Content-Type": "audio/wav"})


def _big_body() -> bytes:
    return hashlib.sha256(b"stemhook").digest() * (20 * 1024 * 1024 // 32)


def _redirect(handler: Handler) -> None:
    hops = int(handler.query("n"))
    if hops == 0:
        _file(handler)
    else:
        handler.answer(302, b"", {"Location": f"/redirect?n={hops - 1}"})


def _status(handler: Handler) -> None:
    retry_after = handler.query("retry_after") if "retry_after" in handler.path else None
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    handler.answer(int(handler.query("code")), b"status", headers)


def _short(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"only ten b")
    handler.close_connection = True


def _encoded(handler: Handler) -> None:
    encoding = handler.query("as")
    body = gzip.compress(PAYLOAD) if encoding == "gzip" else PAYLOAD
    handler.answer(200, body, {"Content-Encoding": encoding, "Content-Type": "audio/flac"})


def _announced(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", handler.query("length"))
    handler.end_headers()
    handler.close_connection = True


ROUTES: dict[str, Route] = {
    "/file": _file,
    "/big": _big,
    "/echo": Handler.echo,
    "/redirect": _redirect,
    "/to": lambda handler: handler.answer(302, b"", {"Location": handler.query("location")}),
    "/status": _status,
    "/announced": _announced,
    "/short": _short,
    "/encoded": _encoded,
    "/chunked": lambda handler: handler.chunked(int(handler.query("pieces")), b"x" * 65536),
    "/never": Handler.never_answer,
    "/cookie": lambda handler: handler.answer(200, b"", {"Set-Cookie": "session=s; Path=/"}),
}


@pytest.fixture
def serve() -> Iterator[Callable[..., FileServer]]:
    servers: list[FileServer] = []

    def start(tls: ssl.SSLContext | None = None) -> FileServer:
        servers.append(FileServer("127.0.0.1", ROUTES, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(serve: Callable[..., FileServer]) -> FileServer:
    return serve()


@pytest.fixture
def listen() -> Iterator[Callable[[str], Listener]]:
    listeners: list[Listener] = []

    def start(host: str) -> Listener:
        listeners.append(Listener(host))
        return listeners[-1]

    yield start
    for listener in listeners:
        listener.close()


@pytest.fixture
def fetcher_with() -> Iterator[Callable[..., Fetcher]]:
    fetchers: list[Fetcher] = []

    def make(**given: Any) -> Fetcher:
        arguments: dict[str, Any] = {
            "admitted": ADMITTED,
            "max_bytes": 64 * 1024 * 1024,
            "connect_timeout_s": 5.0,
            "read_timeout_s": 5.0,
            "resolver": table_resolver(NAMES),
        }
        fetchers.append(Fetcher(**(arguments | given)))
        return fetchers[-1]

    yield make
    for fetcher in fetchers:
        fetcher.close()


@pytest.fixture
def fetcher(fetcher_with: Callable[..., Fetcher]) -> Fetcher:
    return fetcher_with()


def fetch(fetcher: Fetcher, url: str, headers: dict[str, str] | None = None) -> bytes:
    with fetcher.open(url, headers) as download:
        return b"".join(download.chunks())


def test_a_file_is_streamed_byte_identical_with_its_content_type(
    fetcher: Fetcher, server: FileServer
) -> None:
    url = f"http://127.0.0.1:{server.port}/file"
    with fetcher.open(url) as download:
        body = b"".join(download.chunks())

    assert body == PAYLOAD
    assert (download.content_type, download.length, download.final_url) == (
        "audio/flac",
        len(PAYLOAD),
        url,
    )


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "gzip, br"),
        # A stranger's text is not repeated.
        ("<script>alert(1)</script>", "content"),
        ("x" * 200, "content"),
    ],
)
def test_an_encoded_body_is_a_permanent_failure(
    fetcher: Fetcher, server: FileServer, encoding: str, named: str
) -> None:
    """Neither decoded (a small body could inflate past the cap) nor stored as sent (it would
    be served as the file): asked for the file as it is, the server sent something else."""
    with pytest.raises(Encoded) as failed:
        fetch(fetcher, f"http://127.0.0.1:{server.port}/encoded?as={quote(encoding)}")

    assert str(failed.value) == (
        f"failed: 127.0.0.1 sent the file {named}-encoded though asked not to"
    )


def test_an_identity_encoding_is_the_file_itself(fetcher: Fetcher, server: FileServer) -> None:
    assert fetch(fetcher, f"http://127.0.0.1:{server.port}/encoded?as=identity") == PAYLOAD


def test_a_body_ending_short_of_its_content_length_is_retryable(
    fetcher: Fetcher, server: FileServer
) -> None:
    with pytest.raises(Retryable, match="RemoteProtocolError"):
        fetch(fetcher, f"http://127.0.0.1:{server.port}/short")


def test_a_large_body_streams_in_bounded_chunks(fetcher: Fetcher, server: FileServer) -> None:
    digest, sizes = hashlib.sha256(), []
    with fetcher.open(f"http://127.0.0.1:{server.port}/big") as download:
        for chunk in download.chunks():
            digest.update(chunk)
            sizes.append(len(chunk))

    assert digest.digest() == hashlib.sha256(_big_body()).digest()
    assert sum(sizes) == 20 * 1024 * 1024
    assert max(sizes) <= CHUNK_BYTES


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.2", "127.0.0.2 is a loopback address"),
        # getaddrinfo's readings of other spellings are judged, not the spelling.
        ("2130706434", "127.0.0.2 is a loopback address (resolved from 2130706434)"),
        ("0x7f.0.0.2", "127.0.0.2 is a loopback address (resolved from 0x7f.0.0.2)"),
        ("[::ffff:127.0.0.2]", "::ffff:127.0.0.2 embeds 127.0.0.2 (IPv4-mapped), a loopback"),
    ],
)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_loopback_address_outside_the_admitted_networks_is_refused_unconnected(
    fetcher: Fetcher, listen: Callable[[str], Listener], scheme: str, host: str, reason: str
) -> None:
    listener = listen("127.0.0.2")

    with pytest.raises(Refused, match="^refused: " + re.escape(reason)):
        fetch(fetcher, f"{scheme}://{host}:{listener.port}/file")

    assert not listener.connected()


def test_the_listener_sees_a_fetch_the_guard_lets_through(
    fetcher_with: Callable[..., Fetcher], listen: Callable[[str], Listener]
) -> None:
    """The control for the tests above: an admitted 127.0.0.2 is connected to."""
    listener = listen("127.0.0.2")
    fetcher = fetcher_with(admitted=(ip_network("127.0.0.2/32"),), read_timeout_s=0.2)

    with pytest.raises(Retryable, match="no answer in time"):
        fetch(fetcher, f"http://127.0.0.2:{listener.port}/file")

    assert listener.connected()


@pytest.mark.parametrize("names", ["split.test", "split-reversed.test"])
def test_a_name_with_one_refused_address_among_others_is_refused_unconnected(
    fetcher: Fetcher, listen: Callable[[str], Listener], names: str
) -> None:
    listener = listen("127.0.0.1")

    with pytest.raises(
        Refused, match=rf"^refused: 127\.0\.0\.2 is a loopback address \(resolved from {names}\)$"
    ):
        fetch(fetcher, f"http://{names}:{listener.port}/file")

    assert not listener.connected()


def test_a_name_is_connected_to_at_its_resolved_address_and_sent_as_host(
    fetcher: Fetcher, server: FileServer
) -> None:
    sent = json.loads(fetch(fetcher, f"http://files.test:{server.port}/echo"))

    assert sent["host"] == f"files.test:{server.port}"
    assert sent["accept-encoding"] == "identity"
    assert "cookie" not in sent and "authorization" not in sent


def test_a_redirect_to_a_refused_address_is_refused_unconnected(
    fetcher: Fetcher, server: FileServer, listen: Callable[[str], Listener]
) -> None:
    listener = listen("127.0.0.2")
    target = f"http://127.0.0.2:{listener.port}/file"

    with pytest.raises(Refused, match="^refused: 127.0.0.2 is a loopback address$"):
        fetch(fetcher, f"http://127.0.0.1:{server.port}/to?location={target}")

    assert not listener.connected()
    assert [path for path, _ in server.requests] == ["/to"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "a file URL is never fetched"),
        ("ftp://127.0.0.1/file", "a ftp URL is never fetched"),
        ("https://user:secret@files.test/file", "the URL to files.test carries credentials"),
    ],
)
def test_a_redirect_is_checked_like_the_first_url(
    fetcher: Fetcher, server: FileServer, location: str, reason: str
) -> None:
    with pytest.raises(Refused, match=f"^refused: {reason}") as refused:
        fetch(fetcher, f"http://127.0.0.1:{server.port}/to?location={location}")

    assert "secret" not in str(refused.value)


def test_three_redirects_are_followed(fetcher: Fetcher, server: FileServer) -> None:
    with fetcher.open(f"http://127.0.0.1:{server.port}/redirect?n=3") as download:
        assert b"".join(download.chunks()) == PAYLOAD

    assert download.final_url == f"http://127.0.0.1:{server.port}/redirect?n=0"
    assert len(server.requests) == 4


def test_a_fourth_redirect_is_refused_unfollowed(fetcher: Fetcher, server: FileServer) -> None:
    with pytest.raises(Refused, match="^refused: more than 3 redirects$"):
        fetch(fetcher, f"http://127.0.0.1:{server.port}/redirect?n=4")

    assert len(server.requests) == 4


def test_headers_given_go_to_the_first_origin_only(
    fetcher: Fetcher, serve: Callable[..., FileServer]
) -> None:
    first, other = serve(), serve()
    location = f"http://127.0.0.1:{other.port}/echo"

    sent = json.loads(
        fetch(
            fetcher,
            f"http://127.0.0.1:{first.port}/to?location={location}",
            {"Authorization": "Bearer provider-token"},
        )
    )

    assert first.requests[0][1]["authorization"] == "Bearer provider-token"
    assert "authorization" not in sent


def test_no_cookie_is_kept_between_requests(fetcher: Fetcher, server: FileServer) -> None:
    fetch(fetcher, f"http://127.0.0.1:{server.port}/cookie")

    sent = json.loads(fetch(fetcher, f"http://127.0.0.1:{server.port}/echo"))

    assert "cookie" not in sent


def test_plain_http_is_refused_outside_the_admitted_networks(fetcher: Fetcher) -> None:
    """public.test resolves to a global address, which https may reach but http may not (the
    tripwire fails the test if it is connected to)."""
    with pytest.raises(
        Refused,
        match=r"^refused: plain http to 8\.8\.8\.8 \(resolved from public\.test\), outside the"
        " networks admitted by STEMHOOK_FETCH_ALLOW_NETWORKS: use https$",
    ):
        fetch(fetcher, "http://public.test/file")


@pytest.mark.parametrize(("plain", "allowed"), [(True, False), (False, True)])
def test_a_global_address_is_judged_allowed_for_https_only(plain: bool, allowed: bool) -> None:
    backend = GuardedBackend(admitted=ADMITTED, resolver=table_resolver(NAMES), plain=plain)

    if allowed:
        assert backend.addresses("public.test", 443) == [ip_address("8.8.8.8")]
    else:
        with pytest.raises(Refused, match="plain http to 8.8.8.8"):
            backend.addresses("public.test", 80)
    assert backend.addresses("files.test", 80) == [ip_address("127.0.0.1")]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/file", "a ftp URL is never fetched (https only)"),
        ("file:///etc/passwd", "a file URL is never fetched (https only)"),
        ("gopher://127.0.0.1:70/_", "a gopher URL is never fetched (https only)"),
        ("data:text/plain,hi", "a data URL is never fetched (https only)"),
        ("/file", "not an absolute URL"),
        ("//127.0.0.1/file", "not an absolute URL"),
        ("https:///file", "the URL names no host"),
        ("https://user:secret@files.test/file", "the URL to files.test carries credentials"),
        ("https://files.test:99999/", "port 99999 does not exist"),
        ("https://files.test:0/", "port 0 does not exist"),
        ("https://files.test:x/", "not a URL"),
        ("https://[::1]/file", "::1 is a loopback address"),
        (f"https://{'a' * 64}.test/file", f"{'a' * 64}.test is no host name"),
    ],
)
def test_a_url_is_refused_before_any_connection(fetcher: Fetcher, url: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        fetch(fetcher, url)

    assert str(refused.value).startswith(f"refused: {reason}")
    assert "secret" not in str(refused.value)


def test_a_name_that_does_not_resolve_is_retryable(fetcher: Fetcher) -> None:
    with pytest.raises(Retryable, match="could not resolve nowhere.test"):
        fetch(fetcher, "https://nowhere.test/file")


def test_a_refused_connection_is_retryable(
    fetcher: Fetcher, listen: Callable[[str], Listener]
) -> None:
    listener = listen("127.0.0.1")
    port = listener.port
    listener.close()

    with pytest.raises(Retryable, match="ConnectError"):
        fetch(fetcher, f"http://127.0.0.1:{port}/file")


def test_a_content_length_over_the_cap_is_refused_before_the_body(
    fetcher_with: Callable[..., Fetcher], server: FileServer
) -> None:
    url = f"http://127.0.0.1:{server.port}/announced?length={2**31 + 1}"

    with pytest.raises(TooLarge, match=f"announces {2**31 + 1} bytes, over the cap of 2147483648"):
        fetch(fetcher_with(max_bytes=2**31), url)


@pytest.mark.parametrize(("cap", "fits"), [(len(PAYLOAD), True), (len(PAYLOAD) - 1, False)])
def test_a_body_fits_the_cap_up_to_its_last_byte(
    fetcher_with: Callable[..., Fetcher], server: FileServer, cap: int, fits: bool
) -> None:
    fetcher = fetcher_with(max_bytes=cap)
    url = f"http://127.0.0.1:{server.port}/file"

    if fits:
        assert fetch(fetcher, url) == PAYLOAD
    else:
        with pytest.raises(TooLarge):
            fetch(fetcher, url)


def test_a_chunked_body_growing_past_the_cap_is_cut_off(
    fetcher_with: Callable[..., Fetcher], server: FileServer
) -> None:
    received = 0
    fetcher = fetcher_with(max_bytes=100_000)

    with fetcher.open(f"http://127.0.0.1:{server.port}/chunked?pieces=16") as download:
        assert download.length is None
        with pytest.raises(TooLarge, match="^too large: the body grew past the cap of 100000"):
            for chunk in download.chunks():
                received += len(chunk)

    assert received <= 100_000


@pytest.mark.parametrize("code", [403, 404, 410])
def test_a_missing_file_is_gone(fetcher: Fetcher, server: FileServer, code: int) -> None:
    with pytest.raises(Gone, match=f"^gone: HTTP {code} from 127.0.0.1$") as gone:
        fetch(fetcher, f"http://127.0.0.1:{server.port}/status?code={code}")

    assert gone.value.status == code


@pytest.mark.parametrize(
    ("query", "retry_after_s"),
    [("code=429&retry_after=7", 7.0), ("code=503", None), ("code=500", None), ("code=408", None)],
)
def test_an_overloaded_or_failing_server_is_retryable(
    fetcher: Fetcher, server: FileServer, query: str, retry_after_s: float | None
) -> None:
    with pytest.raises(Retryable, match=r"^HTTP \d{3} from 127.0.0.1$") as retryable:
        fetch(fetcher, f"http://127.0.0.1:{server.port}/status?{query}")

    assert retryable.value.retry_after_s == retry_after_s


@pytest.mark.parametrize("code", [400, 401, 451, 204, 300])
def test_any_other_answer_is_a_permanent_failure_naming_its_status(
    fetcher: Fetcher, server: FileServer, code: int
) -> None:
    with pytest.raises(BadStatus, match=f"^failed: HTTP {code} ") as failed:
        fetch(fetcher, f"http://127.0.0.1:{server.port}/status?code={code}")

    assert failed.value.status == code


def test_a_server_that_never_answers_is_retryable(
    fetcher_with: Callable[..., Fetcher], server: FileServer
) -> None:
    fetcher = fetcher_with(read_timeout_s=0.2)

    with pytest.raises(Retryable, match=r"^127.0.0.1: no answer in time \(ReadTimeout\)$"):
        fetch(fetcher, f"http://127.0.0.1:{server.port}/never")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 120 ", 120.0), ("-1", None), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_in_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=datetime.now(UTC)) == seconds


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    in_90_s = format_datetime(now + timedelta(seconds=90), usegmt=True)
    past = format_datetime(now - timedelta(days=1), usegmt=True)

    assert parse_retry_after(in_90_s, now=now) == 90.0
    assert parse_retry_after(past, now=now) == 0.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_server(
    serve: Callable[..., FileServer], ca: trustme.CA, name: str, seen: list[str | None]
) -> FileServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    context.sni_callback = lambda _socket, server_name, _context: seen.append(server_name)
    return serve(tls=context)


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_verifies_the_certificate_against_the_urls_name(
    fetcher_with: Callable[..., Fetcher], serve: Callable[..., FileServer], ca: trustme.CA
) -> None:
    seen: list[str | None] = []
    server = _tls_server(serve, ca, "files.test", seen)

    body = fetch(fetcher_with(ssl_context=_trusting(ca)), f"https://files.test:{server.port}/file")

    assert body == PAYLOAD
    assert seen == ["files.test"]


@pytest.mark.parametrize(
    ("certified", "host"), [("other.test", "files.test"), ("files.test", "127.0.0.1")]
)
def test_https_refuses_a_certificate_for_another_name(
    fetcher_with: Callable[..., Fetcher],
    serve: Callable[..., FileServer],
    ca: trustme.CA,
    certified: str,
    host: str,
) -> None:
    server = _tls_server(serve, ca, certified, [])

    with pytest.raises(Retryable, match="certificate is not valid for") as failed:
        fetch(fetcher_with(ssl_context=_trusting(ca)), f"https://{host}:{server.port}/file")

    assert failed.value.retry_after_s is None
    assert server.requests == []


def test_an_ssl_context_that_does_not_verify_is_refused() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False

    with pytest.raises(ValueError, match="must verify certificates and host names"):
        Fetcher(
            admitted=ADMITTED,
            max_bytes=1024,
            connect_timeout_s=1,
            read_timeout_s=1,
            ssl_context=context,
        )


def test_proxies_named_by_the_environment_are_ignored(
    fetcher_with: Callable[..., Fetcher],
    server: FileServer,
    listen: Callable[[str], Listener],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two things keep them out: trust_env=False, and httpx mounting environment proxies only in
    front of its own transport. This fails if both go."""
    proxy = listen("127.0.0.1")
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    body = fetch(fetcher_with(), f"http://127.0.0.1:{server.port}/file")

    assert body == PAYLOAD
    assert not proxy.connected()


@pytest.mark.parametrize("host", ["file.aiquick.invalid", "INVALID", "x.Invalid."])
def test_a_name_under_invalid_is_refused_without_a_lookup(host: str) -> None:
    """Benchmark payloads name hosts under .invalid: with mirroring on, not even a DNS server
    may be asked about them."""
    asked: list[str] = []

    def resolver(name: str, *_: object) -> list[Any]:
        asked.append(name)
        return []

    backend = GuardedBackend(admitted=ADMITTED, resolver=resolver, plain=False)

    with pytest.raises(Refused, match="under .invalid"):
        backend.addresses(host, 443)
    assert asked == []


def test_an_exchange_answers_a_2xx_whole_with_its_headers(
    fetcher: Fetcher, server: FileServer
) -> None:
    answer = fetcher.exchange("GET", f"http://127.0.0.1:{server.port}/status?code=202")

    assert (answer.status, answer.body) == (202, b"status")
    assert answer.headers["content-length"] == "6"


def test_an_exchange_sends_its_method_headers_and_body(
    fetcher: Fetcher, server: FileServer
) -> None:
    answer = fetcher.exchange(
        "POST", f"http://127.0.0.1:{server.port}/echo", {"X-Key": "k"}, b'{"id": 1}'
    )

    assert json.loads(answer.body)["x-key"] == "k"
    assert server.bodies == [b'{"id": 1}']


def test_an_exchange_with_a_body_is_never_redirected(fetcher: Fetcher, server: FileServer) -> None:
    with pytest.raises(BadStatus, match="HTTP 302 .* to a request with a body"):
        fetcher.exchange("POST", f"http://127.0.0.1:{server.port}/redirect?n=1", body=b"secret")

    assert server.bodies == [b"secret"]
    assert [path for path, _ in server.requests] == ["/redirect"]


def test_an_exchange_without_a_body_follows_redirects_as_a_fetch_does(
    fetcher: Fetcher, server: FileServer
) -> None:
    answer = fetcher.exchange("GET", f"http://127.0.0.1:{server.port}/redirect?n=2")

    assert answer.body == PAYLOAD
    assert [path for path, _ in server.requests] == ["/redirect"] * 3


@pytest.mark.parametrize(
    ("code", "failure"), [(401, BadStatus), (403, Gone), (429, Retryable), (503, Retryable)]
)
def test_an_exchange_fails_on_other_statuses_as_a_fetch_does(
    fetcher: Fetcher, server: FileServer, code: int, failure: type[Exception]
) -> None:
    with pytest.raises(failure, match=f"HTTP {code}"):
        fetcher.exchange("GET", f"http://127.0.0.1:{server.port}/status?code={code}")


def test_an_exchanges_answer_past_the_cap_is_cut_off(
    fetcher_with: Callable[..., Fetcher], server: FileServer
) -> None:
    small = fetcher_with(max_bytes=100_000)

    with pytest.raises(TooLarge):
        small.exchange("GET", f"http://127.0.0.1:{server.port}/chunked?pieces=2")
