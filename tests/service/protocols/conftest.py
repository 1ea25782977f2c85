"""The headless browser the console tests drive: Debian's chromium and chromium-driver,
given to selenium explicitly (so Selenium Manager never downloads one)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import REPO_ROOT

REPORTS = REPO_ROOT / "reports"


def _browser_paths() -> tuple[str, str]:
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("chromium and chromium-driver are missing: run `make deps-system`")
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary, driver = _browser_paths()
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1500,1000")
    options.binary_location = binary
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()
