"""What is left under /ui: the bare prefix leads to the overview, anything else is no page
(after the session check, so that nothing tells a stranger which pages exist)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.console.guard import SignedIn
from app.console.pages import ConsoleRoute, Problem, redirect

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/ui")
async def bare(request: Request) -> Response:
    return redirect(request, "/")


@router.api_route("/ui/{rest:path}", methods=["GET", "POST"])
async def no_page(_session: SignedIn) -> Response:
    raise Problem(404, "There is no such page.")
