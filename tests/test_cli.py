"""The `stemhook` command as an operator runs it: real processes in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from app.cli import is_loopback, main
from app.config import get_settings
from app.held_writes import HeldWritesProtocol
from tests.api.payloads import ci_json
from tests.servers import free_port, running_server, server_process

pytestmark = pytest.mark.servers

_OPEN_CALLBACK_SETTINGS = ("STEMHOOK_CALLBACK_TOKEN", "STEMHOOK_ALLOW_UNAUTHENTICATED_CALLBACKS")


def _stemhook(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=os.environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_init_env_creates_a_token_once_and_keeps_other_settings(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("STEMHOOK_MAX_BODY_BYTES=2048")

    first = _stemhook("init-env", cwd=tmp_path)
    second = _stemhook("init-env", cwd=tmp_path)

    lines = env_file.read_text().splitlines()
    assert lines[0] == "STEMHOOK_MAX_BODY_BYTES=2048"
    [token_line] = [line for line in lines if line.startswith("STEMHOOK_API_TOKENS=")]
    token = token_line.split("=", 1)[1]
    assert len(token) >= 32
    assert token in first.stdout
    assert "already configured" in second.stdout
    assert env_file.stat().st_mode & 0o077 == 0


def test_serve_migrates_a_fresh_database_and_honours_proxy_headers(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    token = "serve-test-token-0123456789"
    env = {"STEMHOOK_DATABASE_URL": f"sqlite:///{database}", "STEMHOOK_API_TOKENS": token}

    with running_server(env, tmp_path) as url:
        posted = httpx.post(
            f"{url}/callbacks",
            content=ci_json("j-serve", "Success"),
            headers={"X-Forwarded-For": "198.51.100.23"},
        )
        served = httpx.get(
            f"{url}/v1/jobs/tencent-ci/j-serve", headers={"Authorization": f"Bearer {token}"}
        )

    assert posted.status_code == 200, posted.text
    assert served.json()["state"] == "succeeded"
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        # The test client connects from 127.0.0.1, the proxy uvicorn trusts by default.
        assert connection.scalar(text("SELECT client_addr FROM delivery")) == "198.51.100.23"
        assert connection.scalar(text("SELECT journal_mode FROM pragma_journal_mode")) == "wal"
    engine.dispose()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("10.0.0.1", False),
        ("stemhook.example", False),
    ],
)
def test_loopback_is_127_0_0_0_8_ipv6_one_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _serve_on(host: str, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`stemhook serve` on a documentation address (192.0.2.0/24) no interface has: past the
    callback check it migrates and then cannot bind, so it never serves."""
    env = {k: v for k, v in os.environ.items() if k not in _OPEN_CALLBACK_SETTINGS}
    env |= {"STEMHOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'open.db'}", **settings}
    return subprocess.run(
        [sys.executable, "-m", "app", "serve", "--host", host, "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_on_a_public_address_without_a_callback_token_refuses_to_start(
    tmp_path: Path,
) -> None:
    refused = _serve_on("192.0.2.1", tmp_path)

    assert refused.returncode != 0
    assert "STEMHOOK_CALLBACK_TOKEN" in refused.stderr
    assert "STEMHOOK_ALLOW_UNAUTHENTICATED_CALLBACKS=true" in refused.stderr
    # Refused before anything else: not even the migrations ran.
    assert not (tmp_path / "open.db").exists()


@pytest.mark.parametrize(
    "settings",
    [
        {"STEMHOOK_CALLBACK_TOKEN": "callback-token-0123456789"},
        {"STEMHOOK_ALLOW_UNAUTHENTICATED_CALLBACKS": "true"},
    ],
)
def test_serve_on_a_public_address_starts_with_a_token_or_an_explicit_opt_out(
    tmp_path: Path, settings: dict[str, str]
) -> None:
    started = _serve_on("192.0.2.1", tmp_path, **settings)

    # It got past the check to the migrations, and stopped only where binding failed.
    assert "refusing" not in started.stderr
    assert (tmp_path / "open.db").exists()


def test_serve_on_loopback_without_a_callback_token_starts_with_a_warning(tmp_path: Path) -> None:
    env = {
        "STEMHOOK_CALLBACK_TOKEN": "",
        "STEMHOOK_ALLOW_UNAUTHENTICATED_CALLBACKS": "false",
        "STEMHOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'local.db'}",
    }

    with server_process(env, tmp_path) as server:
        posted = httpx.post(f"{server.url}/callbacks", content=ci_json("j-open", "Success"))

    assert posted.status_code == 200, posted.text
    said = [line for line in server.log.read_text().splitlines() if line.startswith("stemhook:")]
    assert said == [
        "stemhook: warning: callbacks on 127.0.0.1 are accepted without a token"
        " (STEMHOOK_CALLBACK_TOKEN is not set)"
    ]


def test_serve_gives_uvicorn_the_protocol_that_holds_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Dropping it would bring back two writes an answer without any test noticing
    (tests/test_held_writes.py guards the protocol itself)."""
    given: dict[str, Any] = {}
    monkeypatch.setenv("STEMHOOK_DATABASE_URL", f"sqlite:///{tmp_path / 'stemhook.db'}")
    monkeypatch.setattr("app.cli.uvicorn.run", lambda *_args, **kwargs: given.update(kwargs))
    get_settings.cache_clear()
    try:
        main(["serve", "--host", "127.0.0.1", "--port", "8000"])
    finally:
        get_settings.cache_clear()

    assert given["http"] is HeldWritesProtocol
