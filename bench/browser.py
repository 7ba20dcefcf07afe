"""Open a report page in headless Chromium (selenium with the system's chromedriver):
console errors, the charts that rendered, and a full-page screenshot.

    python -m bench.browser REPORT.html SCREENSHOT.png

Uses the Debian packages ``chromium`` and ``chromium-driver``; nothing is
downloaded (selenium's driver manager is told to stay offline).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


@dataclass
class PageCheck:
    title: str
    console_errors: list[str]
    charts: list[tuple[str, int, int]]  # (figure id, rendered width, height)
    tables: list[str]  # ids of the tables on the page


def available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium() -> Iterator[Any]:
    """A selenium driver for a fresh headless Chromium profile (the portal's tests, bench)."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
        try:
            yield driver
        finally:
            driver.quit()


def check_page(page: Path, screenshot: Path | None = None) -> PageCheck:
    """Load ``page`` in a fresh headless Chromium profile and report what rendered."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
        try:
            driver.get(page.resolve().as_uri())
            errors = [e["message"] for e in driver.get_log("browser")
                      if e.get("level") == "SEVERE"]
            charts = []
            for fig in driver.find_elements(By.CSS_SELECTOR, "figure.chart"):
                svg = fig.find_element(By.TAG_NAME, "svg")
                charts.append((fig.get_attribute("id") or "", svg.size["width"],
                               svg.size["height"]))
            tables = [t.get_attribute("id") or "" for t in
                      driver.find_elements(By.TAG_NAME, "table")]
            if screenshot is not None:
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1280, min(int(height) + 40, 8000))
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(screenshot))
            return PageCheck(driver.title, errors, charts, tables)
        finally:
            driver.quit()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    result = check_page(Path(args[0]), Path(args[1]))
    print(f"{result.title}: {len(result.charts)} charts, "
          f"{len(result.console_errors)} console errors")
    for e in result.console_errors:
        print(f"  {e}")
    return 1 if result.console_errors or not result.charts else 0


if __name__ == "__main__":
    sys.exit(main())
