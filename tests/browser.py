"""Driving the page (``GET /``) in Debian's headless Chromium through Debian's chromedriver
(``make browser``), for the browser tests (tests/test_page.py) and the page's benchmark
(loadtest/bench_page.py)."""

from __future__ import annotations

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Time for a cold Kokoro load and synthesis on a busy 2-vCPU machine.
PLAY_TIMEOUT_S = 240


def open_browser(width: int, height: int, phone: bool = False) -> WebDriver:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests may run as root
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # No speculative connections: an idle one would hold a test server's only worker (one request
    # at a time, as in production, where Cloud Run's front end holds the browser's connections).
    options.add_experimental_option("prefs", {"net.network_prediction_options": 2})
    if phone:  # a phone's screen and touch (a headless window is at least 500 px wide)
        metrics = {"width": width, "height": height, "pixelRatio": 3, "touch": True, "mobile": True}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(120)
    return driver


def load(browser: WebDriver, url: str) -> None:
    browser.get_log("browser")  # what earlier pages logged is theirs
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))


def fill(browser: WebDriver, element_id: str, text: str) -> None:
    element = browser.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(text)


def speak(browser: WebDriver, voice: str, text: str, fmt: str = "wav") -> None:
    Select(browser.find_element(By.ID, "voice")).select_by_value(voice)
    Select(browser.find_element(By.ID, "format")).select_by_value(fmt)
    fill(browser, "text", text)
    browser.execute_script("delete document.body.dataset.played")
    browser.find_element(By.ID, "speak").click()


def played(browser: WebDriver) -> float:
    """Seconds of audio the page played to the end (fails with the page's error if it showed one)."""
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, PLAY_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.body.dataset.played") or error.is_displayed()
    )
    assert not error.is_displayed(), error.text
    return float(browser.execute_script("return document.body.dataset.played"))


def stats(browser: WebDriver) -> dict[str, str]:
    return {
        dd.get_attribute("data-stat"): dd.text for dd in browser.find_elements(By.CSS_SELECTOR, "#stats dd")
    }


def milliseconds(value: str) -> float:
    return float(value.split(" ms")[0])
