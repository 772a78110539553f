"""`make screenshots`: docs/screenshots/*.png of every page, taken by headless chromium.

The pages are served as the browser test serves them (the shipped configuration, a month of
calls at the Paris reception); the README shows one of them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.web.browser import (  # noqa: E402
    ADMIN,
    PASSWORD,
    browser_missing,
    chromium,
    served_app,
)

OUT = REPO / "docs" / "screenshots"


def _log_in(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/login")
    driver.find_element(By.NAME, "name").send_keys(ADMIN)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()


def _shoot(driver: Any, name: str) -> None:
    # The whole page, not just the window: set the window to the document's height.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(max(width, 390), min(max(height, 600), 2400))
    path = OUT / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(REPO)}")


def main() -> int:
    """Serve the pages, take each one's picture."""
    why = browser_missing()
    if why is not None:
        print(f"make screenshots: {why}", file=sys.stderr)
        return 1
    from selenium.webdriver.common.by import By

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, served_app(Path(folder)) as site:
        driver: Any = chromium(site.downloads)
        try:
            driver.implicitly_wait(5)
            driver.get(site.url + "/login")
            _shoot(driver, "login")
            _log_in(driver, site.url)
            _shoot(driver, "numbers")
            driver.get(site.url + "/numbers/+33170000001?limit=12")
            driver.find_elements(By.CSS_SELECTOR, "li.call summary")[1].click()
            _shoot(driver, "call-log")
            driver.get(site.url + "/numbers/+33170000001/report?period=2026-11")
            _shoot(driver, "report")
            driver.get(site.url + "/targets")
            _shoot(driver, "targets")
            driver.set_window_size(390, 844)  # a phone
            driver.get(site.url + "/numbers/+33170000001?limit=8")
            driver.find_elements(By.CSS_SELECTOR, "li.call summary")[0].click()
            driver.save_screenshot(str(OUT / "call-log-phone.png"))
            print("wrote docs/screenshots/call-log-phone.png")
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
