"""Signing in to the console with an API token, signing out, and the console's static files
(the only things served without a session)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.console.guard import CheckedForm, PostedForm
from app.console.pages import ConsoleRoute, Problem, redirect, render, settings_of, ui_path
from app.console.sessions import COOKIE, LIFETIME, issue
from app.console.static import asset
from app.tokens import matching_token

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
NextPath = Annotated[str | None, Query(alias="next", max_length=2048)]


@router.get("/sign-in")
async def sign_in_page(request: Request, wanted: NextPath = None) -> Response:
    return render(request, "sign_in.html", wanted=_safe_next(wanted), failed=False)


@router.post("/sign-in")
async def sign_in(request: Request, form: PostedForm) -> Response:
    settings = settings_of(request)
    wanted = _safe_next(form.get("next"))
    token = matching_token(form.get("token", ""), settings.api_tokens)
    if token is None:
        # No attempt limit of its own, as for /v1: a token has at least 16 characters (record 18).
        return render(request, "sign_in.html", status=401, wanted=wanted, failed=True)
    session = issue(token, now=datetime.now(UTC))
    answer = redirect(request, (wanted or "/ui/").removeprefix("/ui"))
    answer.set_cookie(
        COOKIE,
        session.cookie(),
        max_age=int(LIFETIME.total_seconds()),
        path=ui_path(settings, ""),
        # The scheme the client used: uvicorn takes it from X-Forwarded-Proto when the proxy
        # is one of STEMHOOK_FORWARDED_ALLOW_IPS.
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return answer


@router.post("/sign-out")
async def sign_out(request: Request, _form: CheckedForm) -> Response:
    answer = redirect(request, "/sign-in")
    answer.delete_cookie(
        COOKIE,
        path=ui_path(settings_of(request), ""),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return answer


@router.get("/static/{name}")
async def static_file(name: Annotated[str, Path(max_length=64)]) -> Response:
    found = asset(name)
    if found is None:
        raise Problem(404, "There is no such file.")
    # The URL names the version (?v=digest), so the file may be kept.
    headers = {"Cache-Control": "public, max-age=31536000, immutable"}
    return Response(found.content, media_type=found.content_type, headers=headers)


def _safe_next(wanted: str | None) -> str | None:
    """A console page to go back to after signing in; anything else is dropped. The redirect
    puts the prefix before it, so it cannot lead to another site."""
    return wanted if wanted is not None and wanted.startswith("/ui/") else None
