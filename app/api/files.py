"""GET {href}: a stored output file's bytes, with the ETag and Range answers an audio player
needs to seek.

The bytes come from a stranger's URL, so they are served as data, never as a page of this
origin: only audio, video, raster images, plain text and octet streams keep their content type
(an HTML or SVG file would run its scripts here), anything but audio and video is a download
(app/api/served_types.py), and every answer forbids sniffing and carries a sandboxing
Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from app.api.deps import FilesDep, SessionDep, require_api_token
from app.api.jobs import JobIdPath, ProviderPath
from app.api.ranges import byte_range
from app.api.schemas.common import ErrorOut
from app.api.served_types import served_type
from app.errors import NotFound
from app.providers.model import Provider
from app.queries.files import stored_copy
from app.storage.store import FileStore, MissingFile
from app.storage.streams import Chunks

router = APIRouter(
    prefix="/v1/jobs",
    tags=["files"],
    dependencies=[Depends(require_api_token)],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
_SANDBOX = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Accept-Ranges": "bytes",
}


@router.get(
    "/{provider}/{job_id}/files/{position}",
    summary="The stored copy of one output file; Range requests answered 206",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the whole file"},
        206: {"description": "the byte range asked for"},
        304: {"description": "If-None-Match matched the file's ETag"},
        416: {"model": ErrorOut, "description": "the range lies past the end of the file"},
    },
)
async def stored_file(
    request: Request,
    provider: ProviderPath,
    job_id: JobIdPath,
    position: Annotated[int, Path(ge=0, le=10_000)],
    session: SessionDep,
    files: FilesDep,
    # Declared for the OpenAPI document; stored_file_answer reads them from the request.
    if_none_match: Annotated[str | None, Header()] = None,
    if_range: Annotated[str | None, Header()] = None,
) -> Response:
    return await stored_file_answer(
        request, provider=provider, job_id=job_id, position=position, session=session, files=files
    )


async def stored_file_answer(
    request: Request,
    *,
    provider: Provider,
    job_id: str,
    position: int,
    session: AsyncSession,
    files: FileStore,
) -> Response:
    """The stored copy's bytes as `request` asks for them (conditional, one range): the API's
    answer, and the console's behind its session."""
    copy = await stored_copy(session, provider=provider.value, job_id=job_id, position=position)
    if copy is None:
        raise NotFound(f"no stored file at output {position} of {provider.value} job {job_id!r}")
    etag = f'"{copy.sha256}"'
    headers = _SANDBOX | {"ETag": etag}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    asked = (
        request.headers.get("range") if request.headers.get("if-range") in (None, etag) else None
    )
    span = byte_range(asked, copy.bytes)
    start, end = span or (0, copy.bytes)
    try:
        chunks = await run_in_threadpool(files.open, copy.storage_key, start, end)
    except MissingFile:
        raise NotFound(f"the stored copy of output {position} is missing from the store") from None
    media_type, disposition = served_type(copy.content_type)
    # As a header, not media_type=: Starlette would add a charset to text/plain, a guess.
    headers["Content-Type"] = media_type
    headers["Content-Disposition"] = disposition
    headers["Content-Length"] = str(end - start)
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{copy.bytes}"
    return StreamingResponse(
        _streamed(chunks),
        status_code=206 if span is not None else 200,
        headers=headers,
    )


async def _streamed(chunks: Chunks) -> AsyncIterator[bytes]:
    """The chunks, each read on a worker thread (a file or a bucket blocks); closed however the
    answer ends, a client that leaves midway included."""
    try:
        while chunk := await run_in_threadpool(next, chunks, b""):
            yield chunk
    finally:
        chunks.close()
