"""The accountant's pages in a real headless Chromium: pages load, filters work, exports download."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import chromium_or_fail

#: set to a folder (e.g. docs/img) to refresh the README's screenshots while the test runs
SCREENSHOTS = os.environ.get("KKT_SCREENSHOTS")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    chromium, chromedriver = chromium_or_fail()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(tmp_path),
                                           "download.prompt_for_download": False})
    drv = webdriver.Chrome(service=Service(chromedriver), options=opts)
    drv.download_dir = tmp_path  # type: ignore[attr-defined]
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def click_and_wait(b, by: str, selector: str) -> None:  # type: ignore[no-untyped-def]
    """Click a link or submit button and wait for the next page: a click does not always wait for the
    navigation it starts, and the old page's elements would be found (a CI run on a loaded machine did)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    old = b.find_element("tag name", "html")
    b.find_element(by, selector).click()

    def old_page_gone(_driver) -> bool:  # type: ignore[no-untyped-def]
        try:
            old.is_enabled()
        except WebDriverException:
            # stale — or, caught mid-navigation, chromium's "Node with given id does not belong to the
            # document" (an inspector error instead of a stale element; a CI run on a quiet machine had it)
            return True
        return False

    WebDriverWait(b, 20).until(old_page_gone)


def test_ledger_filters_payment_page_and_downloads_in_chromium(served: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    b = browser
    b.get(served + "/")
    assert "Показаны 1–50 из 60" in b.find_element(By.ID, "shown").text
    click_and_wait(b, By.ID, "next")
    assert "Показаны 51–60 из 60" in b.find_element(By.ID, "shown").text

    b.get(served + "/")
    Select(b.find_element(By.NAME, "state")).select_by_value("rejected")
    click_and_wait(b, By.CSS_SELECTOR, "#filters button")
    rows = b.find_elements(By.CSS_SELECTOR, "#receipts tr")[1:]
    assert len(rows) == 1 and "vat18" in rows[0].text

    box = b.find_element(By.NAME, "q")
    box.clear()
    Select(b.find_element(By.NAME, "state")).select_by_value("")
    box.send_keys("S12")
    click_and_wait(b, By.CSS_SELECTOR, "#filters button")
    assert b.find_element(By.CSS_SELECTOR, "#receipts a").text == "12"
    click_and_wait(b, By.CSS_SELECTOR, "#receipts a")
    qr = b.find_element(By.CSS_SELECTOR, ".qr svg")
    assert qr.size["width"] > 50 and qr.size["height"] > 50          # the QR code is drawn
    assert "Платёж 12" in b.find_element(By.TAG_NAME, "h1").text

    b.get(served + "/")
    b.find_element(By.ID, "csv").click()
    target = Path(b.download_dir) / "kkt-ledger.csv"
    deadline = time.monotonic() + 15
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), list(Path(b.download_dir).iterdir())
    assert target.read_bytes().startswith(b"\xef\xbb\xbf") and len(target.read_text("utf-8-sig").splitlines()) == 61


def test_totals_and_lanes_pages_render(served: str, browser) -> None:
    from selenium.webdriver.common.by import By

    b = browser
    b.get(served + "/totals?from=2026-11-01&to=2026-12-31")
    assert b.find_element(By.ID, "summary").is_displayed()
    assert len(b.find_elements(By.CSS_SELECTOR, "#unreceipted tr")) == 4   # header + 2 queued + 1 rejected
    b.get(served + "/lanes")
    assert "kkt1" in b.find_element(By.ID, "lanes").text
    if SCREENSHOTS:
        for name, path in (("web-ledger.png", "/"), ("web-payment.png", "/payment?id=12"),
                           ("web-totals.png", "/totals?from=2026-11-01&to=2026-12-31")):
            b.get(served + path)
            b.save_screenshot(str(Path(SCREENSHOTS) / name))
