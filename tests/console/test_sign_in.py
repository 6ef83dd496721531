"""Nothing of the console without a session; sessions from API tokens; CSRF on every form that
changes something; the headers every answer carries."""

from __future__ import annotations

import httpx
import pytest

from app.console.pages import SECURITY_HEADERS
from app.console.sessions import COOKIE
from tests.conftest import API_TOKEN, Backend
from tests.console.conftest import SAME_ORIGIN, csrf_of, open_console, sign_in

pytestmark = pytest.mark.anyio
OTHER_TOKEN = "other-token-0123456789abcdef"
PAGES = [
    "/ui/",
    "/ui/jobs",
    "/ui/jobs?state=failed",
    "/ui/jobs/find?job_id=x",
    "/ui/jobs/suno/t-1",
    "/ui/jobs/suno/t-1/files/0",
    "/ui/deliveries",
    "/ui/deliveries/1",
    "/ui/no-such-page",
]


@pytest.mark.parametrize("page", PAGES)
async def test_every_page_leads_to_sign_in_without_a_session(
    browser: httpx.AsyncClient, page: str
) -> None:
    answer = await browser.get(page)

    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/sign-in")
    assert "csrf" not in answer.text


async def test_after_signing_in_the_page_asked_for_is_shown(browser: httpx.AsyncClient) -> None:
    asked = await browser.get("/ui/jobs?state=failed")
    form = await browser.get(asked.headers["location"])
    posted = await browser.post(
        "/ui/sign-in",
        data={"token": API_TOKEN, "next": "/ui/jobs?state=failed"},
        headers=SAME_ORIGIN,
    )

    assert 'name="next" value="/ui/jobs?state=failed"' in form.text
    assert (posted.status_code, posted.headers["location"]) == (303, "/ui/jobs?state=failed")


@pytest.mark.parametrize("wanted", ["https://evil.example/", "//evil.example/", "/v1/jobs"])
async def test_sign_in_leads_nowhere_but_the_console(
    browser: httpx.AsyncClient, wanted: str
) -> None:
    posted = await browser.post(
        "/ui/sign-in", data={"token": API_TOKEN, "next": wanted}, headers=SAME_ORIGIN
    )

    assert posted.headers["location"] == "/ui/"


async def test_a_wrong_token_signs_nobody_in(browser: httpx.AsyncClient) -> None:
    answer = await sign_in(browser, token=API_TOKEN + "x")

    assert answer.status_code == 401
    assert "not one of the configured API tokens" in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")
    assert (await browser.get("/ui/")).status_code == 303


async def test_the_session_cookie_is_http_only_strict_and_scoped_to_the_console(
    browser: httpx.AsyncClient,
) -> None:
    answer = await sign_in(browser)

    cookie = answer.headers["set-cookie"]
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/")
    assert cookie.startswith(f"{COOKIE}=")
    assert API_TOKEN not in cookie
    assert {"HttpOnly", "Path=/ui", "SameSite=strict", "Max-Age=43200"} <= {
        part.strip() for part in cookie.split(";")
    }
    assert "Secure" not in cookie  # asked over http
    assert (await browser.get("/ui/")).status_code == 200


async def test_over_https_the_cookie_is_secure(settings: object) -> None:
    async for client in open_console(settings, base_url="https://stemhook"):  # type: ignore[arg-type]
        answer = await sign_in(client)

        assert "Secure" in answer.headers["set-cookie"]
        assert (await client.get("/ui/")).status_code == 200


async def test_signing_out_ends_the_session(console: httpx.AsyncClient) -> None:
    page = await console.get("/ui/")
    out = await console.post("/ui/sign-out", data={"csrf": csrf_of(page)}, headers=SAME_ORIGIN)

    assert (out.status_code, out.headers["location"]) == (303, "/ui/sign-in")
    assert f'{COOKIE}=""' in out.headers["set-cookie"]
    for page_path in PAGES:
        assert (await console.get(page_path)).status_code == 303


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({"other": "field"}, SAME_ORIGIN),
        ({"csrf": "forged"}, SAME_ORIGIN),
        ({"csrf": None}, {"Origin": "http://evil.example"}),
        ({"csrf": None}, {"Origin": "http://stemhook:8080"}),
        ({"csrf": None}, {"Origin": "null"}),
        ({"csrf": None}, {"Referer": "http://evil.example/ui/"}),
        ({"csrf": None}, {}),
    ],
)
async def test_a_form_without_this_sessions_token_or_from_another_origin_is_refused(
    console: httpx.AsyncClient, fields: dict[str, str | None], headers: dict[str, str]
) -> None:
    csrf = csrf_of(await console.get("/ui/"))
    data = {name: csrf if value is None else value for name, value in fields.items()}

    answer = await console.post("/ui/sign-out", data=data, headers=headers)

    assert answer.status_code == 403
    assert "refused" in answer.text
    assert (await console.get("/ui/")).status_code == 200  # still signed in


async def test_a_form_from_this_origin_by_its_referer_is_taken(
    console: httpx.AsyncClient,
) -> None:
    csrf = csrf_of(await console.get("/ui/"))

    answer = await console.post(
        "/ui/sign-out", data={"csrf": csrf}, headers={"Referer": "http://stemhook/ui/jobs"}
    )

    assert answer.status_code == 303


async def test_signing_in_from_another_site_is_refused(browser: httpx.AsyncClient) -> None:
    answer = await browser.post(
        "/ui/sign-in", data={"token": API_TOKEN}, headers={"Origin": "http://evil.example"}
    )

    assert answer.status_code == 403
    assert COOKIE not in answer.headers.get("set-cookie", "")


async def test_removing_a_token_ends_its_sessions(backend: Backend) -> None:
    both = backend.settings(api_tokens=f"{API_TOKEN},{OTHER_TOKEN}")
    async for client in open_console(both):
        await sign_in(client, token=OTHER_TOKEN)
        cookie = client.cookies[COOKIE]
        assert (await client.get("/ui/")).status_code == 200

    for remaining, status in ((API_TOKEN, 303), (OTHER_TOKEN, 200)):
        async for client in open_console(backend.settings(api_tokens=remaining)):
            client.cookies.set(COOKIE, cookie, domain="stemhook.local", path="/ui")
            assert (await client.get("/ui/")).status_code == status


async def test_every_answer_carries_the_security_headers(browser: httpx.AsyncClient) -> None:
    answers = [
        await browser.get("/ui/sign-in"),
        await browser.get("/ui/"),
        await sign_in(browser, token="wrong"),
        await sign_in(browser),
        await browser.get("/ui/"),
        await browser.get("/ui/no-such-page"),
    ]

    for answer in answers:
        assert {name: answer.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert SECURITY_HEADERS["Cross-Origin-Resource-Policy"] == "same-origin"
    assert answers[-1].status_code == 404


async def test_pages_carry_no_inline_script_or_style(console: httpx.AsyncClient) -> None:
    page = (await console.get("/ui/")).text

    assert "<script>" not in page and "<style" not in page and "style=" not in page
    assert " on" not in page.replace("<option", "")  # no onclick= and the like


async def test_the_static_files_are_served_without_a_session(
    browser: httpx.AsyncClient,
) -> None:
    page = (await browser.get("/ui/sign-in")).text
    for name, media_type in (("console.css", "text/css"), ("console.js", "text/javascript")):
        link = page.split(f"/ui/static/{name}?v=")[1].split('"')[0]
        answer = await browser.get(f"/ui/static/{name}?v={link}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith(media_type)
    assert (await browser.get("/ui/static/../main.py")).status_code in (303, 404)
    assert (await browser.get("/ui/static/nothing.css")).status_code == 404


async def test_under_a_prefix_links_and_the_cookie_carry_it(backend: Backend) -> None:
    settings = backend.settings(root_path="/stemhook")
    async for client in open_console(settings, root_path="/stemhook"):
        away = await client.get("/stemhook/ui/jobs")
        signed = await sign_in(client, prefix="/stemhook")
        page = await client.get("/stemhook/ui/")

        assert away.headers["location"] == "/stemhook/ui/sign-in?next=%2Fui%2Fjobs"
        assert signed.headers["location"] == "/stemhook/ui/"
        assert "Path=/stemhook/ui" in signed.headers["set-cookie"]
        assert page.status_code == 200
        assert 'href="/stemhook/ui/jobs"' in page.text
        assert "/stemhook/ui/static/console.css" in page.text
