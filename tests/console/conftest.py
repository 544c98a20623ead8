"""Fixtures for the web console suite: the real broker binary ($STAMPEDE_BIN, default
<repo>/target/debug/stampede, started by tests/python/stampede_process.py on free ports) and
Debian's headless Chromium driven by Selenium through /usr/bin/chromedriver.

Selenium is handed the driver and browser paths, so its own manager (which would download a
browser) never runs. Screenshots of every page go to <repo>/target/test-output/console/.
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))

from stampede_process import StampedeProcess, split_host_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = REPO / "target" / "test-output" / "console"
# Upper bound for waiting on any visible condition; reached only when something is broken.
WAIT = 10.0

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError as e:  # pragma: no cover - the venv is made by scripts/python-env
    webdriver = None
    SELENIUM_MISSING = str(e)


def stampede_binary():
    return os.environ.get("STAMPEDE_BIN") or str(REPO / "target" / "debug" / "stampede")


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


class Broker:
    """A started broker: its STOMP address, its HTTP base URL and its process."""

    def __init__(self, process, stomp):
        self.process = process
        self.host, self.port = stomp
        self.http = "http://" + process.http_address
        self.ws = "ws://" + process.http_address + "/ws"
        # An Authorization header for the admin API when it asks for one (users mode).
        self.auth = None

    def api(self, method, path, body=None, auth=None):
        """(status, JSON) of an admin API request made outside the browser."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.http + "/api" + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth or self.auth:
            req.add_header("Authorization", auth or self.auth)
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self):
        self.process.stop()


def start_broker(tmp_path_factory, config_text=None):
    data_dir = tmp_path_factory.mktemp("stampede-console")
    config = None
    if config_text is not None:
        config = data_dir / "broker.toml"
        config.write_text(config_text(StampedeProcess(stampede_binary(), data_dir)))
    process = StampedeProcess(stampede_binary(), data_dir, config=config)
    stomp = process.start()
    return Broker(process, stomp)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = start_broker(tmp_path_factory)
    try:
        yield b
    finally:
        b.stop()


def make_driver():
    if webdriver is None:
        pytest.skip("selenium is not installed: " + SELENIUM_MISSING)
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip("%s is missing (scripts/browser-env installs Debian's chromium and "
                        "chromium-driver)" % path)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--disable-extensions", "--no-first-run",
                "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture(scope="session")
def driver():
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture(scope="session")
def shots():
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(driver, name):
        # The whole page, not the viewport: grow the window to the page, then put it back.
        size = driver.get_window_size()
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], max(size["height"], min(height, 4000)))
        try:
            driver.save_screenshot(str(SHOTS / (name + ".png")))
        finally:
            driver.set_window_size(size["width"], size["height"])

    return take


def console_errors(driver, allowed=()):
    """SEVERE browser console entries since the last call, but those containing an `allowed`
    substring (the browser logs every 4xx answer as an error, also those a test asks for)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and not any(a in e["message"] for a in allowed)]


@pytest.fixture
def console_log(driver):
    """Fails the test on console errors; `console_log.allow(substring)` names one it expects."""
    allowed = []

    class Log:
        allow = allowed.append

    driver.get_log("browser")  # what earlier tests left
    yield Log
    severe = console_errors(driver, allowed)
    assert not severe, "console errors: %s" % json.dumps(severe, indent=1)
