"""The two references stemhook's ingest is measured against, served as `stemhook serve` is.

    .venv/bin/python -m bench.ingest.reference [--port P] [--workers N]

- POST /bare: read the body, answer 200: what FastAPI on uvicorn can do at all here.
- POST /parse: also decode the body the way stemhook does, the work no implementation of the
  service can skip: xmltodict for XML (with its DTD-refusing expat shim), orjson for JSON.

The decoding is written out here rather than imported from app/providers/decode.py on purpose:
a reference that moved with the code under test could not tell whether that code got faster.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn
from xml.parsers import expat

import orjson
import uvicorn
import xmltodict
from fastapi import FastAPI, Request, Response

ANSWER = b'{"status":"received"}'

app = FastAPI(title="stemhook ingest references")


@app.post("/bare")
async def bare(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


@app.post("/parse")
async def parse(request: Request) -> Response:
    decode(await request.body())
    return Response(ANSWER, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def decode(body: bytes) -> Any:
    """As stemhook decodes a callback: the first character decides between XML and JSON."""
    text = body.lstrip(b" \t\r\n")
    if text.startswith(b"<"):
        return xmltodict.parse(text, expat=_NoDtdExpat, xml_attribs=False, disable_entities=True)
    return orjson.loads(text)


def _refuse_dtd(*_args: object) -> NoReturn:
    raise ValueError("DTD refused")


class _NoDtdExpat:
    """The expat stand-in stemhook hands xmltodict: the same per-parser set-up cost."""

    @staticmethod
    def ParserCreate(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - mirrors expat's name
        parser = expat.ParserCreate(*args, **kwargs)
        parser.StartDoctypeDeclHandler = _refuse_dtd
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.reference", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    # What decides throughput, as app/cli.py's uvicorn.run has it: the loop and HTTP parser
    # uvicorn picks (uvloop, httptools), proxy headers, no access log, the worker count. Its
    # deployment options (forwarded IPs, root path, log format) change nothing per request.
    uvicorn.run(
        "bench.ingest.reference:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        access_log=False,
    )


if __name__ == "__main__":
    main()
