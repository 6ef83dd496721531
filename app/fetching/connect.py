"""How a fetch reaches the network: the host resolved once, every address it resolves to judged,
the connection made to a judged address and to nothing else.

The check has to sit where the connection is made: a name checked first and connected to later
is resolved twice, and its owner may answer a public address the first time and 127.0.0.1 the
second (DNS rebinding). httpcore, under httpx, has a public seam exactly there: a network
backend (`httpcore.NetworkBackend`, passed as `httpcore.ConnectionPool(network_backend=...)`;
httpcore's "Network Backends" guide names DNS handling among its uses). `GuardedBackend` wraps
the standard `httpcore.SyncBackend` and hands it the judged address in its numeric form, which
`socket.create_connection` parses without a lookup. The host name stays the pool's origin, so
httpcore still sends it as SNI and the certificate is verified against it, never against the
address. httpx's own `HTTPTransport` takes no network backend, so `GuardedTransport` is a small
`httpx.BaseTransport` (httpx's documented extension point) over two such pools: https to
addresses the guard allows, plain http only to addresses inside STEMHOOK_FETCH_ALLOW_NETWORKS.
It turns httpcore's exceptions into the fetch's own (app/fetching/errors.py). Every socket
operation waits no longer than the fetch's deadline allows (app/fetching/deadline.py).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from ipaddress import ip_address
from typing import Any, Protocol

import httpcore
import httpx

from app.fetching.addresses import IPAddress, IPNetwork, is_admitted, why_refused
from app.fetching.deadline import bounded, check
from app.fetching.errors import Refused, Retryable

# Connections kept open between fetches per pool: files come from a few hosts, one at a time.
_KEEPALIVE_CONNECTIONS = 8
_KEEPALIVE_EXPIRY_S = 5.0
# Addresses of one host tried in turn, in the resolver's order (all of them are judged first): a
# name resolving to dozens of unreachable addresses would otherwise cost dozens of connect
# timeouts; four cover a dual-stack host with a spare of each family.
ADDRESSES_TRIED = 4


class Resolver(Protocol):
    """`socket.getaddrinfo`'s shape, called as (host, port, family, type)."""

    def __call__(
        self, host: str, port: int, family: int, type: int, /
    ) -> Sequence[tuple[int, int, int, str, tuple[Any, ...]]]: ...


class GuardedBackend(httpcore.NetworkBackend):
    """Connects only when every address the host resolves to is allowed, and only to those: the
    first ADDRESSES_TRIED of them in turn.

    With `plain` (the http pool) every address must also lie in an admitted network: an
    unencrypted fetch from the internet could be altered on the way.
    """

    def __init__(self, *, admitted: Sequence[IPNetwork], resolver: Resolver, plain: bool) -> None:
        self._admitted = tuple(admitted)
        self._resolver = resolver
        self._plain = plain
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self.addresses(host, port)[:ADDRESSES_TRIED]:
            try:
                stream = self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=bounded(timeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
            else:
                return _DeadlineStream(stream)
        assert failure is not None  # `addresses` returns at least one
        check()  # a connect the deadline cut short is reported as the deadline
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise Refused("refused: a fetch never connects to a Unix socket")

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses `host` resolves to, in the resolver's order, or Refused naming the
        first one the guard refuses: one bad address refuses them all. The lookup itself is the
        system resolver's and waits as long as it allows (its timeouts and attempts, about 30 s
        at most with glibc's defaults); a hop that begins past the deadline does not look up."""
        check()
        if host.rstrip(".").lower().rpartition(".")[2] == "invalid":
            # RFC 6761: no name under .invalid resolves, so none is asked of a DNS server.
            raise Refused(f"refused: {host} is under .invalid, which never resolves")
        try:
            found = self._resolver(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise Retryable(f"could not resolve {host}: {error}") from error
        except UnicodeError as error:
            # The IDNA codec's verdict on a label (too long, empty): no lookup can fix it.
            raise Refused(f"refused: {host} is no host name ({error})") from error
        addresses: list[IPAddress] = []
        for family, *_, sockaddr in found:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise Retryable(f"could not resolve {host}: no IPv4 or IPv6 address")
        for address in addresses:
            self._judge(address, host)
        return addresses

    def _judge(self, address: IPAddress, host: str) -> None:
        named = "" if _same(host, address) else f" (resolved from {host})"
        reason = why_refused(address, admitted=self._admitted)
        if reason is not None:
            raise Refused(f"refused: {reason}{named}")
        if self._plain and not is_admitted(address, admitted=self._admitted):
            raise Refused(
                f"refused: plain http to {address}{named}, outside the networks admitted by"
                " STEMHOOK_FETCH_ALLOW_NETWORKS: use https"
            )


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation waits no longer than the fetch's deadline allows."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _deadline_named():
            return self._stream.read(max_bytes, bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _deadline_named():
            self._stream.write(buffer, bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        with _deadline_named():
            secured = self._stream.start_tls(ssl_context, server_hostname, bounded(timeout))
        return _DeadlineStream(secured)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


@contextmanager
def _deadline_named() -> Iterator[None]:
    """A timeout that the deadline cut short is reported as the deadline, not as a slow read."""
    try:
        yield
    except httpcore.TimeoutException:
        check()
        raise


class GuardedTransport(httpx.BaseTransport):
    """https and http through guarded pools; any other scheme refused."""

    def __init__(
        self, *, admitted: Sequence[IPNetwork], resolver: Resolver, ssl_context: ssl.SSLContext
    ) -> None:
        self._pools = {
            scheme: httpcore.ConnectionPool(
                ssl_context=ssl_context,
                max_connections=None,
                max_keepalive_connections=_KEEPALIVE_CONNECTIONS,
                keepalive_expiry=_KEEPALIVE_EXPIRY_S,
                http1=True,
                http2=False,
                network_backend=GuardedBackend(
                    admitted=admitted, resolver=resolver, plain=scheme == "http"
                ),
            )
            for scheme in ("https", "http")
        }

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pools.get(request.url.scheme)
        if pool is None:
            raise Refused(f"refused: the {request.url.scheme} scheme is never fetched")
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with classified(request.url.host):
            response = pool.handle_request(core)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream, request.url.host),
            extensions=response.extensions,
        )

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], host: str) -> None:
        self._stream = stream
        self._host = host

    def __iter__(self) -> Iterator[bytes]:
        with classified(self._host):
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


@contextmanager
def classified(host: str) -> Iterator[None]:
    """httpcore's failures as the fetch's own: all of them may pass but a local mistake."""
    try:
        yield
    except httpcore.TimeoutException as error:
        kind = type(error).__name__
        raise Retryable(f"{host}: no answer in time ({kind})") from error
    except (httpcore.NetworkError, httpcore.RemoteProtocolError) as error:
        raise Retryable(f"{host}: {type(error).__name__}: {error}") from error


def _same(host: str, address: IPAddress) -> bool:
    try:
        return ip_address(host) == address
    except ValueError:
        return False
