"""The `stemhook` command as an operator runs it: real processes in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.api.payloads import ci_json
from tests.servers import running_server


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
