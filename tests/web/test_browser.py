"""The dashboard in headless Chromium: sign in, open a failed renewal, retry it.

Needs Debian's chromium and chromium-driver (.ci/run installs them) and is
skipped, with the reason shown, when /usr/bin/chromium is missing. The
screenshots go to test-artifacts/ at the repository root, or to
$REBILL_TEST_ARTIFACTS.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from models import CycleState
from rebill.runtime import Runtime
from sandbox.server import SandboxServer
from scheduler.tick import tick
from tests.factories import make_store, make_subscription
from tests.fixtures.sandbox import seed_store
from tests.web.conftest import OPERATOR_PASSWORD, SECRET_KEY
from web.app import create_app
from web.operators import add_operator
from worker.renewal import renew

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(
    os.environ.get(
        "REBILL_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"
    )
)
API_TOKEN = "sandbox-api-token-browser"
# Seconds a page may take to show an element before the test fails.
PAGE_WAIT_SECONDS = 20
DESKTOP = (1280, 900)
PHONE = (390, 844)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
    reason="needs Debian's chromium and chromium-driver: "
    "apt-get install -y chromium chromium-driver",
)


@dataclass(frozen=True)
class LiveDashboard:
    url: str
    cycle_id: int


def fail_one_renewal(runtime: Runtime, sandbox: SandboxServer) -> int:
    """Renew one subscription against the sandbox with a declined card."""
    seeded = seed_store(sandbox.state, access_token=API_TOKEN)
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        store = make_store(
            session,
            seeded.store_hash,
            access_token=API_TOKEN,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        make_subscription(session, store, next_billing_at=now)
        add_operator(session, "alice", OPERATOR_PASSWORD, now)
        session.commit()
    (cycle_id,) = tick(runtime, now, lambda _cycle_id: None).opened
    sandbox.state.inject_fault(seeded.store_hash, "payments", "error", code=30106)
    # Insufficient funds: the renewal waits for its first dunning retry.
    assert renew(cycle_id, runtime) == CycleState.RETRY_SCHEDULED
    return cycle_id


@pytest.fixture
def live_dashboard(
    runtime: Runtime, sandbox: SandboxServer, database_url: str
) -> Iterator[LiveDashboard]:
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser test runs once, on SQLite")
    cycle_id = fail_one_renewal(runtime, sandbox)
    # The worker's renewal runs inside the request, so the page that follows
    # "retry now" already shows the new attempt.
    app = create_app(
        runtime,
        enqueue=lambda queued_id: renew(queued_id, runtime),
        secret_key=SECRET_KEY,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveDashboard(f"http://127.0.0.1:{server.server_port}", cycle_id)
    server.shutdown()
    thread.join()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from selenium import webdriver

    # Selenium Manager must not try to download a browser or a driver.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options,
        service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)),
    )
    driver.set_window_size(*DESKTOP)
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(*size)
        assert driver.save_screenshot(str(ARTIFACTS / f"{name}-{label}.png"))
    driver.set_window_size(*DESKTOP)


def test_retry_now_shows_new_attempt(live_dashboard: LiveDashboard, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, PAGE_WAIT_SECONDS)
    browser.get(f"{live_dashboard.url}/login")
    browser.find_element(By.NAME, "username").send_keys("alice")
    browser.find_element(By.NAME, "password").send_keys(OPERATOR_PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    today = wait.until(shown.presence_of_element_located((By.ID, "today")))
    assert "1 in dunning" in " ".join(today.text.split())
    screenshot(browser, "overview")

    browser.find_element(By.LINK_TEXT, "Failures").click()
    wait.until(shown.presence_of_element_located((By.ID, "failures")))
    browser.find_element(By.LINK_TEXT, f"#{live_dashboard.cycle_id}").click()
    attempts = wait.until(shown.presence_of_element_located((By.ID, "attempts")))
    assert "Attempt 1: soft_decline" in attempts.text
    assert "code 30106" in attempts.text

    browser.find_element(By.ID, "action-retry").click()
    wait.until(shown.text_to_be_present_in_element((By.ID, "attempts"), "Attempt 2"))
    attempts = browser.find_element(By.ID, "attempts")
    assert "Attempt 2: paid" in attempts.text
    assert browser.find_element(By.ID, "cycle-state").text == "paid"
    flash = browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert f"cycle {live_dashboard.cycle_id}: retry queued" in flash
    assert "operator alice · retry_cycle_now · ok" in browser.page_source
    screenshot(browser, "timeline")
