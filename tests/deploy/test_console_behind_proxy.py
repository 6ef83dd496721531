"""The console through deploy/nginx.conf, under its prefix: links and the cookie carry the prefix,
and a form is taken from the proxy's own origin (the Host nginx passes on) and no other."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import API_TOKEN
from tests.deploy.conftest import ROOT_PATH

pytestmark = pytest.mark.servers


def test_the_console_is_served_under_the_prefix(proxy: str) -> None:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(proxy))
    with httpx.Client(timeout=30) as browser:
        away = browser.get(f"{proxy}/ui/jobs")
        elsewhere = browser.post(
            f"{proxy}/ui/sign-in", data={"token": API_TOKEN}, headers={"Origin": "http://evil"}
        )
        signed = browser.post(
            f"{proxy}/ui/sign-in", data={"token": API_TOKEN}, headers={"Origin": origin}
        )
        page = browser.get(f"{proxy}/ui/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        out = browser.post(
            f"{proxy}/ui/sign-out", data={"csrf": csrf[1]}, headers={"Origin": origin}
        )

    assert (away.status_code, away.headers["location"]) == (
        303,
        f"{ROOT_PATH}/ui/sign-in?next=%2Fui%2Fjobs",
    )
    assert elsewhere.status_code == 403
    assert signed.status_code == 303
    assert f"Path={ROOT_PATH}/ui" in signed.headers["set-cookie"]
    assert "Secure" not in signed.headers["set-cookie"]  # nginx was asked over http
    assert page.status_code == 200
    assert f'href="{ROOT_PATH}/ui/jobs"' in page.text
    assert (out.status_code, out.headers["location"]) == (303, f"{ROOT_PATH}/ui/sign-in")


def test_behind_a_tls_proxy_the_cookie_is_secure(stemhook: str) -> None:
    """uvicorn believes X-Forwarded-Proto from STEMHOOK_FORWARDED_ALLOW_IPS (127.0.0.1, where
    this client connects from): the request came over https, so the cookie is Secure, and a form
    is taken from the https origin only."""
    host = urlsplit(stemhook).netloc
    over_tls = {"X-Forwarded-Proto": "https"}
    with httpx.Client(timeout=30) as client:
        plain = client.post(
            f"{stemhook}/ui/sign-in",
            data={"token": API_TOKEN},
            headers=over_tls | {"Origin": f"http://{host}"},
        )
        secure = client.post(
            f"{stemhook}/ui/sign-in",
            data={"token": API_TOKEN},
            headers=over_tls | {"Origin": f"https://{host}"},
        )

    assert plain.status_code == 403
    assert secure.status_code == 303
    assert "Secure" in secure.headers["set-cookie"]
