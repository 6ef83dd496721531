"""How the console answers: pages rendered from templates/, the headers every answer carries,
and the errors that become pages (or the way to sign in) rather than the API's JSON."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import Response

from app.api.served_types import served_type
from app.config import Settings
from app.console.sessions import ConsoleSession
from app.console.static import asset
from app.errors import StemhookError

HERE = Path(__file__).parent
# The console's own files only: no inline script or style, no other origin, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # Another port of this host is the same site to SameSite=Strict: its pages may not embed
    # the console's answers (a stem in an <audio>, a long poll) with the session's cookie.
    "Cross-Origin-Resource-Policy": "same-origin",
}
SESSION_KEY = "console_session"  # request.state: the session the guard found


class SignInRequired(Exception):
    """No valid session: the answer is the way to the sign-in page, back here after."""


class Problem(Exception):
    """A page that cannot be shown as asked: answered as a page saying why, with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ui_path(settings: Settings, path: str = "/") -> str:
    """The URL path of a console page, the proxy's prefix included."""
    return f"{settings.root_path}/ui{path}"


def segment(value: str) -> str:
    """A value as one path segment of a link."""
    return quote(value, safe="")


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state["settings"]
    return settings


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    settings = settings_of(request)
    session: ConsoleSession | None = getattr(request.state, SESSION_KEY, None)
    page = (
        _environment()
        .get_template(template)
        .render(
            ui=ui_path(settings, ""),
            static=lambda name: f"{ui_path(settings, '/static/')}{name}?v={_digest(name)}",
            csrf=None if session is None else session.csrf,
            current=request.url.path,
            **context,
        )
    )
    return HTMLResponse(page, status_code=status)


def redirect(request: Request, path: str, query: Mapping[str, str] | None = None) -> Response:
    """303 to a console page: after a form, the browser asks for it with GET."""
    location = ui_path(settings_of(request), path)
    if query:
        location += "?" + urlencode(query)
    return RedirectResponse(location, status_code=303)


class ConsoleRoute(APIRoute):
    """A console route: its answers carry the security headers, and the console's errors
    become pages (FastAPI's documented way to wrap a route's handler)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                response = _to_sign_in(request)
            except Problem as problem:
                response = _problem(request, problem.status, problem.message)
            except RequestValidationError:
                # Only path parameters are validated by FastAPI here: no such page.
                response = _problem(request, 404, "There is no such page.")
            except StemhookError as error:
                response = _problem(request, error.status_code, error.message)
            for name, value in SECURITY_HEADERS.items():
                # A stored file keeps its own, stricter policy (app/api/files.py).
                response.headers.setdefault(name, value)
            return response

        return answer


def _to_sign_in(request: Request) -> Response:
    wanted = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if request.url.query:
        wanted += "?" + request.url.query
    query = {"next": wanted} if request.method == "GET" and wanted != "/ui/" else None
    return redirect(request, "/sign-in", query)


def _problem(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "problem.html", status=status, status_code=status, message=message)


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["segment"] = segment
    environment.tests["playable"] = lambda content_type: served_type(content_type)[1] == "inline"
    return environment


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _digest(name: str) -> str:
    """Changes with the file, so that a browser never keeps an old copy of a new version."""
    found = asset(name)
    if found is None:
        raise LookupError(f"no static file {name!r}")
    return found.digest
