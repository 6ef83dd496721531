"""The console in a real headless Chromium, against `stemhook serve` on loopback: sign in, read
the overview, filter jobs, play a stored stem and seek in it (Range answered 206), replay a
rejected delivery, be refused a cross-site form, sign out and find every page closed.

Screenshots of each page at desktop and phone widths go to STEMHOOK_TEST_SCREENSHOTS when set
(`make screenshots`: docs/screenshots/), else to the test's temporary folder.
"""

from __future__ import annotations

import array
import io
import json
import math
import os
import threading
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlalchemy import Engine, func, select

from app import models
from app.db import create_sync_engine
from app.schema import upgrade_to_head
from app.storage.local import LocalStore
from tests.api.payloads import ci_json, suno_json
from tests.api.test_job_files import set_files
from tests.conftest import API_TOKEN, Backend
from tests.console.browser import chromium, chromium_paths, screenshots, wait_until
from tests.ingest.file_rows import store
from tests.reliability.support import server_env
from tests.servers import Server, server_process

pytestmark = pytest.mark.servers

STEM_JOB = "suno-stem-1"
STEM_URL = f"/ui/jobs/suno/{STEM_JOB}/files/1"
# Long enough that the browser does not buffer all of it before a seek to the middle.
STEM_SECONDS = 120
HAVE_ENOUGH_DATA = 4


def wav(seconds: int, rate: int = 44100) -> bytes:
    """A 441 Hz tone, mono 16-bit PCM: one period of 100 samples, repeated."""
    period = array.array(
        "h", (int(12000 * math.sin(2 * math.pi * n / 100)) for n in range(100))
    ).tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(period * (seconds * rate // 100))
    return out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("STEMHOOK_TEST_SCREENSHOTS")
    return Path(given) if given else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Server, Engine]]:
    """`stemhook serve` over a SQLite database holding a Suno job whose vocals are stored (a
    real WAV), a CI job that succeeded, one that failed and a rejected delivery."""
    chromium_paths()  # before starting anything
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'stemhook.db'}")
    upgrade_to_head(backend.settings())
    engine = create_sync_engine(backend.settings())
    files = LocalStore(tmp_path / "files")
    stem = files.write(f"suno/{STEM_JOB}/1-vocals.wav", [wav(STEM_SECONDS)])
    store(engine, ci_json("ci-ok", "Success"))
    store(engine, ci_json("ci-bad", "Failed", code="InvalidInput", message="no audio stream"))
    store(engine, suno_json(STEM_JOB))
    store(engine, ci_json("ci-running", "Running"))
    set_files(
        engine,
        STEM_JOB,
        "stored",
        position=1,
        bytes=stem.size,
        sha256=stem.sha256,
        md5=stem.md5,
        content_type="audio/wav",
        storage_key=stem.key,
        stored_at=datetime.now(UTC),
    )
    set_files(engine, STEM_JOB, "failed", position=0, error="the source answered 404")
    env = server_env(backend.url, files_dir=files.root)
    with server_process(env, tmp_path) as server:
        rejected = httpx.post(f"{server.url}/callbacks/suno", content=b'{"code": 200, "data": ')
        assert rejected.status_code == 400
        yield server, engine
    engine.dispose()


@pytest.fixture
def other_origin() -> Iterator[tuple[str, dict[str, str]]]:
    """A site on another port of 127.0.0.1, which serves at / the page put in the dict."""
    page: dict[str, str] = {"html": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page["html"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", page
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def deliveries(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(models.Delivery)).scalar())


def network(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The DevTools network events logged since the last call."""
    return [
        message["message"]
        for entry in driver.get_log("performance")
        if (message := json.loads(entry["message"]))["message"]["method"].startswith("Network.")
    ]


def text_of(driver: webdriver.Chrome, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def test_the_console_in_a_real_browser(
    seeded: tuple[Server, Engine],
    other_origin: tuple[str, dict[str, str]],
    folder: Path,
    tmp_path: Path,
) -> None:
    server, engine = seeded
    ui = f"{server.url}/ui"
    with chromium(tmp_path / "chromedriver.log") as driver:
        # Nothing without a session: the overview leads to sign-in.
        driver.get(f"{ui}/")
        wait_until(driver, lambda d: "/ui/sign-in" in d.current_url, "at the sign-in page")
        screenshots(driver, folder, "sign-in")
        driver.find_element(By.ID, "token").send_keys("not-the-token-at-all")
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".alert"), "refused")
        driver.find_element(By.ID, "token").send_keys(API_TOKEN)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait_until(driver, lambda d: d.current_url == f"{ui}/", "at the overview")

        # The overview shows the seeded counts.
        assert text_of(driver, "td[data-provider=tencent-ci][data-state=succeeded]") == "1"
        assert text_of(driver, "td[data-provider=tencent-ci][data-state=running]") == "1"
        assert text_of(driver, "td[data-provider=tencent-ci][data-state=failed]") == "1"
        assert text_of(driver, "td[data-provider=suno][data-state=succeeded]") == "1"
        assert text_of(driver, "#failed-jobs") == "1"
        assert text_of(driver, "#failed-files") == "1"
        assert text_of(driver, "#rejected-deliveries") == "1"
        screenshots(driver, folder, "overview")

        # Jobs filtered by state, with the form.
        driver.find_element(By.CSS_SELECTOR, "nav a[href$='/ui/jobs']").click()
        wait_until(driver, lambda d: d.find_elements(By.ID, "jobs"), "at the jobs")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-state]")) == 4
        # A new job appears without a reload (the marker would not survive one).
        driver.execute_script("window.unreloaded = true")
        posted = httpx.post(f"{server.url}/callbacks", content=ci_json("ci-new", "Success"))
        assert posted.status_code == 200
        wait_until(driver, lambda d: "ci-new" in text_of(d, "#job-rows"), "showing the new job")
        assert driver.execute_script("return window.unreloaded") is True
        driver.find_element(By.CSS_SELECTOR, ".filters summary").click()
        driver.find_element(By.CSS_SELECTOR, "input[name=state][value=failed]").click()
        driver.find_element(By.CSS_SELECTOR, ".filters button[type=submit]").click()
        wait_until(driver, lambda d: "state=failed" in d.current_url, "filtered")
        shown = driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-state]")
        assert [row.get_attribute("data-state") for row in shown] == ["failed"]
        assert "ci-bad" in shown[0].text
        screenshots(driver, folder, "jobs")

        # The Suno job, found by its id; its stored stem plays and seeks.
        driver.find_element(By.ID, "find-id").send_keys(STEM_JOB)
        driver.find_element(By.CSS_SELECTOR, ".search button[type=submit]").click()
        wait_until(driver, lambda d: d.current_url.endswith(f"/suno/{STEM_JOB}"), "at the job")
        network(driver)  # what came before
        audio = driver.find_element(By.CSS_SELECTOR, "audio")
        assert audio.get_attribute("src") == f"{server.url}{STEM_URL}"
        driver.execute_script("arguments[0].play()", audio)
        ready = "return arguments[0].readyState"
        wait_until(driver, lambda d: d.execute_script(ready, audio) == HAVE_ENOUGH_DATA, "ready")
        driver.execute_script("arguments[0].pause()", audio)
        duration = driver.execute_script("return arguments[0].duration", audio)
        assert duration == pytest.approx(STEM_SECONDS, abs=0.1)
        driver.execute_script("arguments[0].currentTime = arguments[0].duration / 2", audio)
        wait_until(
            driver,
            lambda d: (
                not d.execute_script("return arguments[0].seeking", audio)
                and d.execute_script(ready, audio) == HAVE_ENOUGH_DATA
            ),
            "seeked to the middle",
        )
        ranges = _ranges_answered(network(driver), f"{server.url}{STEM_URL}")
        assert any(start > 0 and status == 206 for start, status in ranges), ranges
        screenshots(driver, folder, "job")
        screenshots(driver, folder, "job-dark", dark=True)

        # An unfinished job's page shows it finish, without a reload.
        driver.get(f"{ui}/jobs/tencent-ci/ci-running")
        wait_until(driver, lambda d: "Waiting" in text_of(d, "#live-status"), "waiting")
        driver.execute_script("window.unreloaded = true")
        posted = httpx.post(f"{server.url}/callbacks", content=ci_json("ci-running", "Success"))
        assert posted.status_code == 200
        wait_until(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, "h1 .state-succeeded"), "finished"
        )
        assert driver.execute_script("return window.unreloaded") is True

        # A rejected delivery, replayed: the new delivery replays it.
        driver.get(f"{ui}/deliveries?outcome=rejected")
        rows = driver.find_elements(By.CSS_SELECTOR, "#deliveries tr.stands-out a")
        assert len(rows) == 1
        screenshots(driver, folder, "deliveries")
        rejected_id = rows[0].text
        rows[0].click()
        wait_until(driver, lambda d: d.current_url.endswith(f"/{rejected_id}"), "at the delivery")
        screenshots(driver, folder, "delivery")
        before = deliveries(engine)
        driver.find_element(By.XPATH, "//button[text()='Replay']").click()
        wait_until(driver, lambda d: not d.current_url.endswith(f"/{rejected_id}"), "replayed")
        assert f"delivery {rejected_id}" in text_of(driver, ".facts")
        assert deliveries(engine) == before + 1
        screenshots(driver, folder, "replayed")

        # A page of another origin (same site: another port) posting a form is refused.
        site, page = other_origin
        page["html"] = (
            f'<form id="f" method="post" action="{ui}/deliveries/{rejected_id}/replay">'
            '<input type="hidden" name="csrf" value="guessed"></form>'
            "<script>document.getElementById('f').submit()</script>"
        )
        driver.get(f"{site}/")
        wait_until(driver, lambda d: d.current_url.startswith(ui), "posted to the console")
        wait_until(driver, lambda d: "refused" in d.page_source, "refused")
        assert deliveries(engine) == before + 1

        # Signing out closes every page, the stem's bytes included.
        driver.get(f"{ui}/")
        driver.find_element(By.CSS_SELECTOR, ".sign-out button").click()
        wait_until(driver, lambda d: "/ui/sign-in" in d.current_url, "signed out")
        for path in ("/", "/jobs", f"/jobs/suno/{STEM_JOB}", "/deliveries", STEM_URL[3:]):
            driver.get(f"{ui}{path}")
            wait_until(driver, lambda d: "/ui/sign-in" in d.current_url, f"{path} closed")
            assert not driver.find_elements(By.CSS_SELECTOR, "nav a")
    assert '"status":206' in server.log.read_text().replace(" ", "")


def _ranges_answered(events: list[dict[str, Any]], url: str) -> list[tuple[int, int]]:
    """(first byte asked for, status answered) of each request of `url` with a Range."""
    asked: dict[str, int] = {}
    answered: list[tuple[int, int]] = []
    for event in events:
        params = event["params"]
        if event["method"] == "Network.requestWillBeSent" and params["request"]["url"] == url:
            headers = {name.lower(): value for name, value in params["request"]["headers"].items()}
            if "range" in headers:
                asked[params["requestId"]] = int(headers["range"].split("=")[1].split("-")[0])
        elif event["method"] == "Network.responseReceived" and params["requestId"] in asked:
            answered.append((asked[params["requestId"]], params["response"]["status"]))
    return answered
