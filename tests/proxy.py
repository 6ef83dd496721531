"""A TCP proxy in front of the shared PostgreSQL server that fails the ways a database does.

The real server is never stopped (other test runs use it); its clients see it go away through
this instead:
- `refuse()`: the listener closes and every connection is cut — connection refused, as from a
  stopped server or a host whose port closed;
- `mute()`: connections stay open, new ones are even accepted, but nothing is answered any more,
  as from a hung pooler or a network that silently drops; `mute_at(marker)` does the same from
  the moment a client sends `marker` (say the COMMIT), which is swallowed with it;
- `delay_at(marker, seconds)`: the next client message holding `marker` is passed on late, as
  from a server slow to make a commit durable;
- `restore()`: forwarding again on the same port. Connections that carried anything while
  muted are cut (their protocol state is lost); idle ones simply carry on.
`abandoned` is set once a client hangs up on a connection that carried something while muted:
the moment it gave up on the database, which a test can wait for instead of sleeping.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

ACCEPT_POLL_S = 0.05


@dataclass(eq=False)
class _Link:
    client: socket.socket
    upstream: socket.socket | None
    broken: bool = False  # something was swallowed while muted

    def cut(self) -> None:
        for end in (self.client, self.upstream):
            if end is not None:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()


class FaultyProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._muted = threading.Event()
        self._mute_marker: bytes | None = None
        self._delay: tuple[bytes, float] | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._listening = threading.Event()
        self._acceptor = self._start_accepting()
        self.abandoned = threading.Event()

    def refuse(self) -> None:
        self._stop_accepting()
        self._cut(lambda link: True)

    def mute(self) -> None:
        self._muted.set()

    def mute_at(self, marker: bytes) -> None:
        self._mute_marker = marker

    def delay_at(self, marker: bytes, seconds: float) -> None:
        self._delay = (marker, seconds)

    def restore(self) -> None:
        self._mute_marker = None
        self._delay = None
        with self._lock:  # a link is marked broken under it too: none escapes the cut
            self._muted.clear()
            broken = [link for link in self._links if link.broken]
        self._cut(lambda link: link in broken)
        if not self._listening.is_set():
            self._listener = socket.create_server(("127.0.0.1", self.port))
            self._acceptor = self._start_accepting()

    def close(self) -> None:
        self.refuse()

    def _start_accepting(self) -> threading.Thread:
        self._listener.settimeout(ACCEPT_POLL_S)
        self._listening.set()
        acceptor = threading.Thread(target=self._accept, daemon=True)
        acceptor.start()
        return acceptor

    def _stop_accepting(self) -> None:
        if self._listening.is_set():
            self._listening.clear()
            self._acceptor.join()
            self._listener.close()

    def _cut(self, which: Callable[[_Link], bool]) -> None:
        with self._lock:
            cut = [link for link in self._links if which(link)]
            self._links = [link for link in self._links if link not in cut]
        for link in cut:
            link.cut()

    def _accept(self) -> None:
        while self._listening.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            with self._lock:  # as restore() looks: a muted link is cut or never muted
                if self._muted.is_set():
                    self._links.append(_Link(client, None, broken=True))
                    continue
            upstream = socket.create_connection(self._upstream)
            link = _Link(client, upstream)
            with self._lock:
                self._links.append(link)
            for source, target in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=self._pump, args=(link, source, target))
                pump.daemon = True
                pump.start()

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                marker = self._mute_marker
                if marker is not None and source is link.client and marker in data:
                    self._muted.set()
                with self._lock:
                    link.broken = link.broken or self._muted.is_set()
                if link.broken:  # swallowed until restore() cuts it: its protocol is lost
                    continue
                delay = self._delay
                if delay is not None and source is link.client and delay[0] in data:
                    self._delay = None
                    time.sleep(delay[1])
                target.sendall(data)
            if source is link.client and link.broken:
                self.abandoned.set()
        except OSError:
            pass
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
