"""Hostile input over HTTP against a real server, while ordinary callbacks keep arriving.

Entity expansion, external entities and DTDs, 10,000-deep nesting, broken encodings and NUL
bytes, wrong or missing content types, 10 MB and 1 GB bodies, trickled bodies and malformed
HTTP all get a clear 4xx, quickly; what fits the size limit is kept raw as a rejected delivery;
the server's memory stays bounded; and an ordinary callback sent meanwhile is answered 200.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.api.payloads import ci_json, suno_json
from tests.conftest import PROVIDER_PATIENCE_S, Backend
from tests.reliability.hostile import MALFORMED_HTTP, MAX_BODY_BYTES, Hostile, kept_inputs
from tests.reliability.rawhttp import (
    Answer,
    Connection,
    Streamed,
    post_streaming,
    send_raw,
    status,
)
from tests.reliability.support import figures, last_delivery_id, memory_kib, server_env
from tests.servers import server_process

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

BODY_TIMEOUT_S = 1
MEMORY_GROWTH_BOUND_KIB = 150 * 1024
BLOCK = b"A" * 65536
GIB = 1024**3
SLOW_BODIES = 20
ORDINARY_AT_LEAST = 5


def blocks(total: int) -> Iterator[bytes]:
    """`total` bytes in 64 KiB blocks of one shared buffer: a huge body costs no memory here."""
    whole, rest = divmod(total, len(BLOCK))
    yield from itertools.repeat(BLOCK, whole)
    if rest:
        yield BLOCK[:rest]


async def too_large(url: str) -> dict[str, Streamed]:
    """Bodies past the limit, declared by Content-Length or discovered while streaming."""
    declared = {
        "10 MB, Content-Length": 10 * 1024 * 1024,
        "1 GB, Content-Length": GIB,
        "limit + 1 byte, Content-Length": MAX_BODY_BYTES + 1,
    }
    streamed = {"10 MB, chunked": 10 * 1024 * 1024, "1 GB, chunked": GIB}
    posts = {
        name: post_streaming(
            url, "/callbacks", blocks(size), headers=[("Content-Length", str(size))], chunked=False
        )
        for name, size in declared.items()
    } | {
        name: post_streaming(url, "/callbacks", blocks(size), chunked=True)
        for name, size in streamed.items()
    }
    return dict(zip(posts, await asyncio.gather(*posts.values()), strict=True))


async def trickled(url: str) -> list[Streamed]:
    """Bodies sent a byte at a time, each far slower than the body timeout allows."""
    return list(
        await asyncio.gather(
            *(
                post_streaming(
                    url,
                    "/callbacks",
                    itertools.repeat(b"{", 1000),
                    headers=[] if n % 2 else [("Content-Length", "1000")],
                    chunked=bool(n % 2),
                    pause_s=0.2,
                )
                for n in range(SLOW_BODIES)
            )
        )
    )


async def malformed(url: str) -> dict[str, Answer | None]:
    answers = await asyncio.gather(*(send_raw(url, raw) for raw in MALFORMED_HTTP.values()))
    return dict(zip(MALFORMED_HTTP, answers, strict=True))


async def kept(url: str, inputs: list[Hostile]) -> list[Answer]:
    async with Connection.open(url) as connection:
        return [
            await connection.request(
                "POST",
                hostile.path,
                hostile.body,
                [("Content-Type", hostile.content_type)] if hostile.content_type else [],
            )
            for hostile in inputs
        ]


@dataclass(frozen=True)
class Ordinary:
    delivery_id: int | None
    status: int
    elapsed_s: float


async def ordinary_callbacks(url: str, stop: asyncio.Event) -> list[Ordinary]:
    """Well-formed callbacks one after another until stopped, and at least ORDINARY_AT_LEAST
    however slowly they go, with whatever label (the body decides)."""
    labels = itertools.cycle(
        [[], [("Content-Type", "text/plain")], [("Content-Type", "image/png")]]
    )
    sent: list[Ordinary] = []
    async with Connection.open(url) as connection:
        while not stop.is_set() or len(sent) < ORDINARY_AT_LEAST:
            n = len(sent)
            body = suno_json(f"ordinary-{n}") if n % 2 else ci_json(f"ordinary-{n}", "Success")
            started = time.monotonic()
            answer = await connection.request("POST", "/callbacks", body, next(labels))
            delivery_id = answer.json()["delivery_id"] if answer.status == 200 else None
            sent.append(Ordinary(delivery_id, answer.status, time.monotonic() - started))
            await asyncio.sleep(0.05)
    return sent


async def warmed_up(url: str, inputs: list[Hostile]) -> int:
    """Run the paths once, so that the memory baseline holds what a working process holds;
    returns how many deliveries that stored."""
    await kept(url, [inputs[0], inputs[-1]])
    async with Connection.open(url) as connection:
        answer = await connection.request("POST", "/callbacks", ci_json("warm-up", "Success"))
    assert answer.status == 200
    return 3


def canary_listener() -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    return listener


def was_contacted(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
    except BlockingIOError:
        return False
    return True


async def test_hostile_input_gets_a_clear_4xx_with_bounded_memory(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    first_id = last_delivery_id(engine) + 1
    env = server_env(backend.url, body_timeout_s=BODY_TIMEOUT_S)
    with canary_listener() as canary, server_process(env, tmp_path) as server:
        inputs = kept_inputs(f"http://127.0.0.1:{canary.getsockname()[1]}")
        warm_up = await warmed_up(server.url, inputs)
        before = memory_kib(server.process.pid)

        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            ordinary = group.create_task(ordinary_callbacks(server.url, stop))
            try:
                rejected, refused, slow, broken = await asyncio.gather(
                    kept(server.url, inputs),
                    too_large(server.url),
                    trickled(server.url),
                    malformed(server.url),
                )
            finally:
                stop.set()
        after = memory_kib(server.process.pid)
        contacted = was_contacted(canary)
        alive = server.process.poll() is None

    growth_kib = after["VmHWM"] - before["VmRSS"]
    stored = stored_since(engine, first_id)
    wrong, not_kept = misanswered(inputs, rejected), not_stored_raw(inputs, rejected, stored)
    calm = ordinary.result()
    acknowledged = {o.delivery_id for o in calm if o.status == 200}
    lost = [d for d in acknowledged if stored.get(d, ("", b""))[0] != "accepted"]
    figures(
        f"hostile input, {backend.name}",
        inputs_tried=len(inputs) + len(refused) + len(slow) + len(broken),
        kept_as_rejected=f"{len(inputs) - len(not_kept)}/{len(inputs)}",
        too_large={
            name: (s.status, f"{s.bytes_sent >> 10} KiB sent") for name, s in refused.items()
        },
        slow_bodies=dict(Counter(s.status for s in slow)),
        slowest_slow_body_s=round(max(s.elapsed_s for s in slow), 2),
        malformed_http={name: status(answer) for name, answer in broken.items()},
        server_memory_mib={
            "RSS before": before["VmRSS"] >> 10,
            "RSS after": after["VmRSS"] >> 10,
            "peak": after["VmHWM"] >> 10,
        },
        ordinary_callbacks_meanwhile=dict(Counter(o.status for o in calm)),
        slowest_ordinary_s=round(max(o.elapsed_s for o in calm), 2),
        external_fetches=int(contacted),
        deliveries_lost=len(lost),
    )
    assert wrong == {}
    assert not_kept == []
    assert all("root:" not in answer.body.decode("latin-1") for answer in rejected)
    assert not contacted
    assert {name: s.status for name, s in refused.items()} == dict.fromkeys(refused, 413)
    assert all(s.bytes_sent < 64 * 1024 * 1024 for s in refused.values())
    assert {s.status for s in slow} == {408}
    assert max(s.elapsed_s for s in slow) < BODY_TIMEOUT_S + PROVIDER_PATIENCE_S
    assert {name: status(answer) for name, answer in broken.items()} == dict.fromkeys(broken, 400)
    assert growth_kib < MEMORY_GROWTH_BOUND_KIB
    assert alive
    assert {o.status for o in calm} == {200}
    assert max(o.elapsed_s for o in calm) < PROVIDER_PATIENCE_S
    assert lost == []
    # Nothing but the kept bodies and the ordinary callbacks was stored: no 413, 408 or bad HTTP.
    assert len(stored) == warm_up + len(inputs) + len(acknowledged)


def misanswered(inputs: list[Hostile], answers: list[Answer]) -> dict[str, tuple[int, bytes]]:
    """Inputs not answered 400 bad_payload with the message they call for."""
    return {
        hostile.name: (answer.status, answer.body[:200])
        for hostile, answer in zip(inputs, answers, strict=True)
        if answer.status != 400
        or answer.json()["error"]["code"] != "bad_payload"
        or not re.search(hostile.message, answer.json()["error"]["message"])
    }


def not_stored_raw(
    inputs: list[Hostile], answers: list[Answer], stored: dict[int, tuple[str, bytes]]
) -> list[str]:
    """Inputs answered 400 whose delivery is not a rejected one holding exactly what was sent."""
    return [
        hostile.name
        for hostile, answer in zip(inputs, answers, strict=True)
        if answer.status == 400
        and stored.get(answer.json()["error"]["delivery_id"]) != ("rejected", hostile.body)
    ]


def stored_since(engine: Engine, first_id: int) -> dict[int, tuple[str, bytes]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, outcome, body FROM delivery WHERE id >= :first"), {"first": first_id}
        )
        return {row.id: (row.outcome, bytes(row.body)) for row in rows}
