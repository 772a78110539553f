"""In a real browser (headless chromium): log in, open a number, filter, expand a call,
download the CSV, see the charts."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import PASSWORD, USER, ServedApp, chromium, served_app
from tests.web.browser import skip_or_fail_without_browser as _need_browser


@pytest.fixture
def site(tmp_path: Path) -> Iterator[ServedApp]:
    _need_browser()
    with served_app(tmp_path) as served:
        yield served


@pytest.fixture
def driver(site: ServedApp) -> Iterator[Any]:
    browser: Any = chromium(site.downloads)
    browser.implicitly_wait(5)
    try:
        yield browser
    finally:
        browser.quit()


def _wait_for_file(folder: Path, pattern: str, seconds: float = 15.0) -> Path:
    """A finished download (chromium writes *.crdownload first). Polls: the browser offers
    no event for a finished download."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} in {folder}: {list(folder.iterdir())}")


@pytest.mark.timeout(120)
def _replaced(element: Any) -> bool:
    """Whether `element`'s document has been replaced by a navigation."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        # Chromium sometimes says so in its inspector's words instead (seen with 156).
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def test_log_in_open_a_number_filter_expand_download_and_see_the_chart(
    site: ServedApp, driver: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(site.url + "/")
    assert driver.current_url.startswith(site.url + "/login")
    driver.find_element(By.NAME, "name").send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()

    # The numbers page; open the Paris reception.
    assert driver.find_element(By.TAG_NAME, "h1").text == "Numbers"
    driver.find_element(By.LINK_TEXT, "01 70 00 00 01").click()
    assert "Times in Europe/Paris" in driver.find_element(By.CLASS_NAME, "sub").text
    everything = len(driver.find_elements(By.CSS_SELECTOR, "li.call"))
    assert everything == 50  # a first page

    # Filter: the calls nobody answered.
    Select(driver.find_element(By.NAME, "disposition")).select_by_value("no_answer")
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
    # The filtered page must have replaced this one before its calls are read (else stale).
    WebDriverWait(driver, 30).until(lambda _: _replaced(page))
    calls = driver.find_elements(By.CSS_SELECTOR, "li.call")
    assert calls and all("no_answer" in c.get_attribute("class") for c in calls)
    assert "disposition=no_answer" in driver.current_url

    # Expand the first call: its leg and the cause in words appear.
    first = calls[0]
    legs = first.find_element(By.CSS_SELECTOR, "table.legs")
    assert not legs.is_displayed()
    first.find_element(By.TAG_NAME, "summary").click()
    assert legs.is_displayed()
    assert "ceo-mobile" in legs.text
    assert any(word in legs.text for word in ("no answer", "call rejected", "user busy"))

    # Download the filtered CSV.
    driver.find_element(By.ID, "download-csv").click()
    downloaded = _wait_for_file(site.downloads, "calls-*.csv")
    with downloaded.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {r["disposition"] for r in rows} == {"no_answer"}

    # The report: figures and two charts drawn as SVG.
    driver.find_element(By.LINK_TEXT, "Report").click()
    assert int(driver.find_element(By.ID, "fig-calls").text) > 0
    chart = driver.find_element(By.CSS_SELECTOR, "#chart-per-day svg")
    assert chart.is_displayed() and chart.size["width"] > 300
    assert driver.find_element(By.CSS_SELECTOR, "#chart-hour-of-week svg").is_displayed()
    bars = driver.find_elements(By.CSS_SELECTOR, "#chart-per-day .series rect")
    assert len(bars) > 10  # bars were drawn
