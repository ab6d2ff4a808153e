"""`api2snow dashboard` as a person meets it: the command serves the page on localhost over a local
warehouse that a real graph run filled, a real headless browser (Debian's chromium, driven through
chromium-driver) shows the sections and the numbers, Ctrl-C stops it cleanly, and a taken port is refused.

The browser test skips, saying how to get one, where chromium is not installed (`make browser-test` installs
it and runs this file). API2SNOW_SCREENSHOT=<path.png> also saves what the browser shows (docs/dashboard.png).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import start_stack
from ..integration.test_dashboard import SECTIONS

pytestmark = pytest.mark.integration
CLI = Path(sys.executable).parent / "api2snow"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
NO_BROWSER = (
    "no headless browser here: the browser test needs Debian's chromium and chromium-driver "
    "(`make browser-test` installs them with apt-get and runs it)"
)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "API2SNOW_HOME": str(home), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def filled_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A local home whose warehouse holds one graph run (API A serving some invalid records), and the numbers
    the page must show, counted in the warehouse."""
    from api2snow_cli.local.mock_apis.faults import Faults

    home = tmp_path_factory.mktemp("api2snow-dashboard-home")
    faults = {"api_a": Faults.for_api("api_a", invalid_record_rate=0.05)}
    stack = start_stack(home, history_hours=3, faults=faults)  # a small data set: a quick run
    try:
        run_id, runs = stack.run_graph()
        assert {run.state for run in runs} == {"SUCCEEDED"}
        db = stack.database

        def count(table: str) -> int:
            return stack.session.sql(f"SELECT COUNT(*) AS n FROM {db}.{table}").collect()[0]["N"]

        expected = {"events": count("ANALYTICS.VW_EVENTS"), "rejected": count("RAW.REJECTED_RECORDS")}
    finally:
        stack.stop()
    assert expected["events"] > 0 and expected["rejected"] > 0
    return home, expected


@pytest.fixture(scope="module")
def served(filled_home: tuple[Path, dict[str, int]]) -> Iterator[dict[str, Any]]:
    """`api2snow dashboard --port P` running over the filled home (its own warehouse, under the lock)."""
    home, expected = filled_home
    port = _free_port()
    process = subprocess.Popen(
        [str(CLI), "dashboard", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _healthy(port):
            exited = process.poll()
            assert exited is None, f"api2snow dashboard exited {exited}: {process.stderr.read()}"
            assert time.monotonic() < deadline, "api2snow dashboard did not serve within 90 s"
            time.sleep(0.5)
        yield {"process": process, "port": port, "home": home, "expected": expected}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture()
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(NO_BROWSER)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make install)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.browser
def test_a_person_sees_every_section_and_the_warehouse_numbers(browser, served):  # skips before serving
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"http://127.0.0.1:{served['port']}")
    text = ""

    def rendered(driver: Any) -> bool:  # the app draws after its websocket answers, section by section
        nonlocal text
        text = driver.find_element("tag name", "body").text
        return all(section in text for section in SECTIONS) and "rejected records" in text

    WebDriverWait(browser, 90, poll_frequency=0.5).until(rendered)
    assert "api2snow pipeline" in text
    assert f"{served['expected']['events']:,}" in text  # the events metric
    assert f"{served['expected']['rejected']:,}" in text  # the rejected records metric
    assert "SUCCEEDED" in text and "could not read" not in text
    screenshot = os.environ.get("API2SNOW_SCREENSHOT")
    if screenshot:
        time.sleep(2)  # the charts' last animation frame
        height = browser.execute_script(
            "const main = document.querySelector('[data-testid=\"stMain\"]');"
            "return Math.max(document.body.scrollHeight, main ? main.scrollHeight : 0);"
        )
        browser.set_window_size(1400, height + 100)
        time.sleep(1)
        assert browser.save_screenshot(screenshot)


def test_a_taken_port_is_refused_in_one_line(served):
    result = subprocess.run(
        [str(CLI), "dashboard", "--port", str(served["port"])],
        env=_env(served["home"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: port {served['port']} on 127.0.0.1 is in use (Address already in use): "
        "choose another with --port"
    ]


def test_ctrl_c_stops_the_dashboard_and_frees_the_warehouse(served):
    process = served["process"]
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"dashboard: http://127.0.0.1:{served['port']}" in out and "stopping the dashboard" in out
    assert not _healthy(served["port"])
    # the warehouse is free again: a command that opens it runs at once
    result = subprocess.run(
        [str(CLI), "sql", "-q", "SELECT 1 AS one"], env=_env(served["home"]), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
