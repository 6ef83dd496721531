"""Debian's headless Chromium, driven through its own chromedriver by Selenium.

`make test` installs both packages (chromium, chromium-driver) like nginx; missing, the browser
tests skip, or fail in CI. Selenium is given both paths, so its Selenium Manager never looks
for (or downloads) a browser or a driver.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Far above what a quiet machine needs; polled, never slept through.
PATIENCE_S = 60
DESKTOP = (1280, 800)
PHONE = (390, 844)


def chromium_paths() -> tuple[str, str]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM, CHROMEDRIVER


@contextmanager
def chromium(log: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium at desktop size that keeps a log of its network events."""
    browser, driver = chromium_paths()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, should anything reach it: no network
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace to sandbox with
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        "--no-first-run",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=driver, log_output=str(log))
    opened = webdriver.Chrome(options=options, service=service)
    try:
        yield opened
    finally:
        opened.quit()


def wait_until(
    driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], Any], what: str
) -> Any:
    """What `condition` returns once it is truthy, polled; a TimeoutException naming `what`
    after PATIENCE_S. An element replaced while the condition read it (the page renews its
    lists) is read again at the next poll."""
    return WebDriverWait(
        driver,
        PATIENCE_S,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition, message=f"still not {what} after {PATIENCE_S} s")


def viewport(driver: webdriver.Chrome, size: tuple[int, int], *, dark: bool = False) -> None:
    """The page laid out at `size` (a phone's as a phone: touch, mobile), light or dark."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == PHONE},
    )
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]},
    )


def screenshots(driver: webdriver.Chrome, folder: Path, name: str, *, dark: bool = False) -> None:
    """`name`-desktop.png and `name`-phone.png of the page shown now."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        viewport(driver, size, dark=dark)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(folder / f"{name}-{label}.png"))
    viewport(driver, DESKTOP)
