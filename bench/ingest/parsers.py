"""What parsing costs per payload, in process: stemhook's parse_callback against the bare decode.

The bare decode is the reference's (xmltodict with the DTD shim, or orjson): the difference is
what stemhook's own normalization adds. Each figure is the best of several timeit repeats,
the least disturbed by whatever else runs on a shared machine.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from dataclasses import dataclass

from app.providers.model import Provider
from app.providers.registry import parse_callback
from bench.ingest.payloads import Family
from bench.ingest.reference import decode

REPEATS = 7


@dataclass(frozen=True)
class ParserCost:
    family: Family
    size: int
    parse_callback_us: float
    decode_us: float


def parser_costs(families: tuple[Family, ...]) -> list[ParserCost]:
    costs = []
    for family in families:
        body = family.body()
        provider, content_type = Provider(family.provider), family.content_type

        def stemhook(
            body: bytes = body, provider: Provider = provider, content_type: str = content_type
        ) -> object:
            return parse_callback(body, content_type=content_type, provider=provider)

        def bare(body: bytes = body) -> object:
            return decode(body)

        costs.append(ParserCost(family, len(body), _best_us(stemhook), _best_us(bare)))
    return costs


def _best_us(work: Callable[[], object]) -> float:
    timer = timeit.Timer(work)
    number, _took = timer.autorange()  # enough calls for 0.2 s
    return min(timer.repeat(REPEATS, number)) / number * 1e6
