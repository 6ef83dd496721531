"""What a console request must show before it is answered: a session, and for a form that
changes something, that it was posted from a console page of this origin with the session's
CSRF token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from app.console.pages import SESSION_KEY, Problem, SignInRequired, settings_of
from app.console.sessions import COOKIE, ConsoleSession, csrf_matches, same_origin, verify

# A console form holds a token and a few ids: anything longer is not one.
MAX_FORM_BYTES = 16 * 1024
Form = dict[str, str]


async def signed_in(request: Request) -> ConsoleSession:
    cookie = request.cookies.get(COOKIE)
    tokens = settings_of(request).api_tokens
    session = None if cookie is None else verify(cookie, tokens, now=datetime.now(UTC))
    if session is None:
        raise SignInRequired()
    setattr(request.state, SESSION_KEY, session)
    return session


SignedIn = Annotated[ConsoleSession, Depends(signed_in)]


async def posted_form(request: Request) -> Form:
    """The fields of a form posted from a page of this origin; any other is refused."""
    own = f"{request.url.scheme}://{request.url.netloc}"
    headers = request.headers
    if not same_origin(origin=headers.get("origin"), referer=headers.get("referer"), own=own):
        raise Problem(403, "This form was not sent from a page of the console: refused.")
    if headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Problem(415, "A console form is sent as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Problem(413, "This form is larger than any console form.")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise Problem(400, "This form is not UTF-8.") from None


PostedForm = Annotated[Form, Depends(posted_form)]


async def checked_form(session: SignedIn, form: PostedForm) -> Form:
    """A posted form that changes something: it must carry this session's CSRF token."""
    if not csrf_matches(form.get("csrf"), session):
        raise Problem(403, "This form is not from this session: refused. Reload the page.")
    return form


CheckedForm = Annotated[Form, Depends(checked_form)]
