"""Streams the body of one result file that a callback names, from wherever the guard allows;
and asks a provider's API about a job (`exchange`), under the same rules.

A callback's URLs come from a stranger, so every hop (the URL and each redirect) is checked
alike: https, or plain http to an admitted network only (app/fetching/connect.py judges the
addresses); no userinfo; at most `MAX_REDIRECTS` redirects, followed here rather than by httpx
so that each one passes the same checks. Nothing from the environment is used (proxies, netrc,
SSL_CERT_FILE), and no cookie is kept between fetches. The file is asked for as it is
(`Accept-Encoding: identity`) and an encoded body is refused, never decoded: the size cap counts
the file's own bytes, a small compressed body cannot inflate past it, and what is stored is the
file, not a compressed copy that would be served as it. A whole fetch, redirects and body
included, must end within its deadline (app/fetching/deadline.py), whatever the pace of the reads.

Synchronous: it runs in worker threads, and one Fetcher may serve them all: httpcore's pool is
thread-safe (its documentation says so), and the client keeps no state between fetches, as it
refuses every cookie.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Final

import httpx

from app.fetching.addresses import IPNetwork
from app.fetching.connect import GuardedTransport, Resolver
from app.fetching.deadline import DEFAULT_FETCH_TIMEOUT_S, Clock, Deadline, fetching_within
from app.fetching.errors import (
    BadStatus,
    Encoded,
    Gone,
    Refused,
    Retryable,
    TooLarge,
    parse_retry_after,
)

MAX_REDIRECTS: Final = 3
# The largest piece `Download.chunks` yields: what the fetch holds in memory at once.
CHUNK_BYTES: Final = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_GONE = frozenset({403, 404, 410})
# 408: the server gave up waiting for our request, which says nothing about the file.
_RETRYABLE_4XX = frozenset({408, 429})
_HEADERS = {"User-Agent": "stemhook (result file mirror)", "Accept-Encoding": "identity"}
# A Content-Encoding worth naming in an error: a short list of tokens, nothing a stranger can
# stuff with text of their own.
_NAMED_ENCODING = re.compile(r"[A-Za-z0-9_.+-]{1,20}(?:\s*,\s*[A-Za-z0-9_.+-]{1,20}){0,3}")


class Download:
    """One answered fetch: what the headers say, and the body to stream once."""

    def __init__(self, response: httpx.Response, *, max_bytes: int, deadline: Deadline) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._deadline = deadline
        self.content_type: str | None = response.headers.get("content-type")
        self.length: int | None = _content_length(response)
        self.final_url: str = str(response.url)

    def paused(self) -> AbstractContextManager[None]:
        """A wait of the caller's own between two pieces, which the fetch's deadline does not
        count (Deadline.paused)."""
        return self._deadline.paused()

    def chunks(self) -> Iterator[bytes]:
        """The body in pieces of at most CHUNK_BYTES; TooLarge past the cap, Retryable if the
        connection fails, the body ends short of its Content-Length or the fetch's deadline
        passes."""
        received = 0
        for chunk in self._response.iter_raw(CHUNK_BYTES):
            received += len(chunk)
            if received > self._max_bytes:
                raise TooLarge(f"too large: the body grew past the cap of {self._max_bytes} bytes")
            # Also here, as a piece may come from what an earlier read buffered.
            self._deadline.remaining_s()
            yield chunk


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer to `Fetcher.exchange`: a 2xx status, its headers (names lower-case) and
    body."""

    status: int
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


class Fetcher:
    """Opens result-file URLs through the address guard; close() it when done."""

    def __init__(
        self,
        *,
        admitted: Sequence[IPNetwork],
        max_bytes: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        total_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = socket.getaddrinfo,
        clock: Clock = time.monotonic,
    ) -> None:
        """`total_timeout_s` bounds a whole fetch, from `open` to the body's last byte, as
        measured by `clock` (a monotonic one). `ssl_context` replaces the default trust store
        (certifi's), for a private CA or a test's: it must verify certificates and host names,
        as no fetch goes without."""
        if ssl_context is None:
            ssl_context = httpx.create_ssl_context(trust_env=False)
        elif ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname:
            raise ValueError("the SSL context must verify certificates and host names")
        self._max_bytes = max_bytes
        self._total_timeout_s = total_timeout_s
        self._clock = clock
        self._client = httpx.Client(
            transport=GuardedTransport(
                admitted=admitted, resolver=resolver, ssl_context=ssl_context
            ),
            # No proxy, netrc or CA file from the environment: httpx already mounts environment
            # proxies only in front of its own transport, and this keeps it so if that changes.
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=connect_timeout_s,
                read=read_timeout_s,
                write=read_timeout_s,
                pool=connect_timeout_s,
            ),
            headers=_HEADERS,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    @contextmanager
    def open(self, url: str, headers: Mapping[str, str] | None = None) -> Iterator[Download]:
        """GET `url`, following up to MAX_REDIRECTS redirects, each checked like `url`.

        `headers` go to `url`'s origin only, never to another a redirect leads to. Raises a
        FetchError (app/fetching/errors.py) unless the final answer is 200 within the cap, and
        Retryable once `total_timeout_s` has passed since the call, streaming included.
        """
        deadline = Deadline(self._total_timeout_s, self._clock(), self._clock)
        with fetching_within(deadline):
            response = self._follow(checked_url(url), headers)
            try:
                yield Download(response, max_bytes=self._max_bytes, deadline=deadline)
            finally:
                response.close()

    def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One request and its whole answer, held in memory (the cap is this Fetcher's
        `max_bytes`): as `open`, but any 2xx is an answer, and a request with a body is never
        redirected (the body may hold credentials, and resending it elsewhere, or dropping it,
        would be wrong either way). Raises the same FetchErrors as `open`."""
        deadline = Deadline(self._total_timeout_s, self._clock(), self._clock)
        with fetching_within(deadline):
            response = self._follow(
                checked_url(url), headers, method=method, content=body, any_success=True
            )
            try:
                chunks = Download(response, max_bytes=self._max_bytes, deadline=deadline).chunks()
                content = b"".join(chunks)
            finally:
                response.close()
        return Answer(response.status_code, dict(response.headers.items()), content)

    def close(self) -> None:
        self._client.close()

    def _follow(
        self,
        url: httpx.URL,
        headers: Mapping[str, str] | None,
        *,
        method: str = "GET",
        content: bytes | None = None,
        any_success: bool = False,
    ) -> httpx.Response:
        origin, redirects = _origin(url), 0
        while True:
            sent = headers if _origin(url) == origin else None
            response = self._client.send(
                self._client.build_request(method, url, headers=sent, content=content),
                stream=True,
            )
            if response.status_code not in _REDIRECTS:
                return self._accepted(response, any_success=any_success)
            response.close()
            location = response.headers.get("location")
            if location is None or content is not None:
                why = "without a Location" if location is None else "to a request with a body"
                raise BadStatus(
                    f"failed: HTTP {response.status_code} from {url.host} {why}",
                    status=response.status_code,
                )
            if redirects == MAX_REDIRECTS:
                raise Refused(f"refused: more than {MAX_REDIRECTS} redirects")
            redirects += 1
            url = checked_url(location, base=url)

    def _accepted(self, response: httpx.Response, *, any_success: bool) -> httpx.Response:
        """`response` when it is 200 (a file) or, with `any_success`, any 2xx; else closed, and
        the FetchError its status means."""
        status, host = response.status_code, response.url.host
        if status == 200 or (any_success and 200 <= status <= 299):
            _check_unencoded(response)
            length = _content_length(response)
            if length is None or length <= self._max_bytes:
                return response
            response.close()
            raise TooLarge(
                f"too large: {host} announces {length} bytes, over the cap of"
                f" {self._max_bytes} bytes"
            )
        response.close()
        if status in _GONE:
            raise Gone(f"gone: HTTP {status} from {host}", status=status)
        if status in _RETRYABLE_4XX or 500 <= status <= 599:
            retry_after_s = parse_retry_after(
                response.headers.get("retry-after"), now=datetime.now(UTC)
            )
            raise Retryable(f"HTTP {status} from {host}", retry_after_s=retry_after_s)
        raise BadStatus(f"failed: HTTP {status} from {host}", status=status)


def checked_url(text: str, *, base: httpx.URL | None = None) -> httpx.URL:
    """`text` (resolved against `base`, for a Location) as a URL a fetch may try, fragment
    dropped, or Refused. Its addresses are judged when connecting (app/fetching/connect.py).

    Userinfo is refused rather than stripped: httpx would send it as Basic credentials, and a
    callback has no business handing stemhook credentials, nor disguising a host as
    "https://files.provider.example@elsewhere/".
    """
    try:
        url = httpx.URL(text) if base is None else base.join(text)
    except httpx.InvalidURL as error:
        raise Refused(f"refused: not a URL ({error})") from None
    if not url.scheme:
        raise Refused("refused: not an absolute URL")
    if url.scheme not in ("https", "http"):
        raise Refused(f"refused: a {url.scheme} URL is never fetched (https only)")
    if url.userinfo:
        raise Refused(f"refused: the URL to {url.host} carries credentials (userinfo)")
    if not url.host:
        raise Refused("refused: the URL names no host")
    # httpx takes any number, and the socket layer would not connect to the port written.
    if url.port is not None and not 0 < url.port < 65536:
        raise Refused(f"refused: port {url.port} does not exist")
    return url.copy_with(fragment=None)


def _check_unencoded(response: httpx.Response) -> None:
    """Encoded, and the response closed, unless the body is the file as it is."""
    encoding = response.headers.get("content-encoding", "").strip()
    if encoding.lower() in ("", "identity"):
        return
    response.close()
    named = encoding if _NAMED_ENCODING.fullmatch(encoding) else "content"
    raise Encoded(f"failed: {response.url.host} sent the file {named}-encoded though asked not to")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _content_length(response: httpx.Response) -> int | None:
    # h11 has refused a response whose Content-Length is not one number.
    value = response.headers.get("content-length")
    return None if value is None else int(value)
