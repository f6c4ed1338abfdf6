"""Headless Chromium from Debian's packages, driven by Selenium through Debian's chromedriver, for the UI tests.

``ensure_installed()`` installs ``chromium`` and ``chromium-driver`` with apt-get when they are missing
(``python -m tests.browser install`` does it for scripts/test). ``chromium()`` starts a fresh browser
(its own temporary profile, no network of its own: no sync, updates, QUIC or background requests) and
quits it, profile and all, however the block ends. Nothing is downloaded: the driver and browser are
named by path, so Selenium Manager never runs.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.debian import apt_install

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--autoplay-policy=no-user-gesture-required",
)


class BrowserError(RuntimeError):
    """Chromium or its driver is missing and could not be installed."""


def ensure_installed() -> tuple[Path, Path]:
    """Chromium's and chromedriver's paths, installing Debian's packages first when they are missing."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        apt_install(["chromium", "chromium-driver"], BrowserError, "Chromium or its chromedriver is")
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        raise BrowserError(f"apt-get installed chromium but {CHROMIUM} or {CHROMEDRIVER} is missing.")
    return CHROMIUM, CHROMEDRIVER


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Selenium ``webdriver.Chrome`` on headless Debian Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser_path, driver_path = ensure_installed()
    profile = tempfile.mkdtemp(prefix="camb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(browser_path)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(driver_path)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.browser install")
    print("Chromium: {}, chromedriver: {}".format(*ensure_installed()))
