"""End to end in a real browser: ``streamlit run app.py`` driven by headless Chromium through Playwright.

One test visits every page, plays a game round, starts a smoke-sized training run and watches its loss curve
grow, then opens the finished run on the Runs page. Debian's Chromium is used (never ``playwright install``); the
test is skipped without it, except in CI, where that fails it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 60
UI_TIMEOUT_MS = 30_000
TRAINING_TIMEOUT_MS = 90_000
EPOCHS = 4  # smoke preset, 4 steps per epoch: long enough to watch the curve grow between refreshes

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    from cifarmix import serving

    try:
        serving.wait_healthy(url, process, SERVER_START_S)
    except serving.ServeError as error:
        raise AssertionError(f"{error}:\n{log.read_text()}") from None


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; in CI (``CI`` set) the browser test must run, so fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("playwright (Python) is not installed (pip install -r requirements-dev.txt)")
    return CHROMIUM


@pytest.fixture
def app_url(tiny_data, cifarmix_home, tmp_path):
    """A real ``streamlit run app.py`` on a free port, on the tiny data and an isolated home; stopped after."""
    port = free_port()
    log = tmp_path / "streamlit.log"
    environment = dict(os.environ, CIFARMIX_DATA=str(tiny_data), CIFARMIX_HOME=str(cifarmix_home),
                       CIFARMIX_MAX_TRAININGS="1", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    streamlit = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or "streamlit"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [streamlit, "run", "app.py", "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _stop_training_processes(cifarmix_home)


def _stop_training_processes(home: Path) -> None:
    """End any training the test started (normally finished already), through the public jobs API."""
    from cifarmix import jobs
    from cifarmix.store import RunStore

    store = RunStore()
    for run in jobs.active_runs(store):
        jobs.kill(run["id"], store)


@contextlib.contextmanager
def chromium_page(chromium_path: Path, width: int, height: int):
    """A page of headless Chromium at ``width`` x ``height`` with the tests' timeouts; the browser closes after."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def no_exception_box(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0, page.locator("[data-testid=stException]").first.inner_text()


def open_page(page, url: str, title: str) -> None:
    page.get_by_role("link", name=re.compile(title)).first.click()
    page.wait_for_load_state()


def step_points(page) -> int:
    """Steps on the first line of the first chart (the step-loss curve), as plotly holds them (the line has no
    markers once there are enough steps to smooth); 0 while no chart is drawn yet."""
    chart = page.locator(".js-plotly-plot").first
    if not chart.count():
        return 0
    return chart.evaluate("plot => plot._fullData && plot._fullData.length ? plot._fullData[0]._length || 0 : 0")


def watch_step_curve(page) -> list[tuple[bool, int]]:
    """Sample (still running?, points on the step curve) until the run's heading says finished."""
    samples = []
    finished = page.get_by_role("heading", name=re.compile("— .*finished"))
    deadline = time.time() + TRAINING_TIMEOUT_MS / 1000
    while time.time() < deadline:
        done = finished.count() > 0
        samples.append((not done, step_points(page)))
        if done:
            return samples
        time.sleep(0.5)
    raise AssertionError(f"the run did not finish in time: {samples}")


def wait_for(read, good, seconds: float):
    """Read a value every half second until ``good(value)`` or ``seconds`` pass; returns the last value read."""
    deadline = time.time() + seconds
    value = read()
    while not good(value) and time.time() < deadline:
        time.sleep(0.5)
        value = read()
    return value


def test_every_page_a_game_round_and_a_live_training_run_in_chromium(chromium_path, app_url):
    from playwright.sync_api import expect

    from cifarmix.store import RunStore

    with chromium_page(chromium_path, 1400, 1600) as page:
        # The first visit of a fresh server is a deep link: it must still get app.py's navigation and sidebar.
        page.goto(f"{app_url}/game")
        expect(page.get_by_role("heading", name=re.compile("Guess the two classes"))).to_be_visible()
        expect(page.get_by_text(re.compile(r"CIFAR-10: [\d,]+ train"))).to_be_visible()  # the shared sidebar
        no_exception_box(page)

        # Mixer (the home page): a link with a pair in it shows that pair. The tiny data's test image i has
        # label i % 10, so test image 3 is a cat and test image 8 a ship.
        page.goto(f"{app_url}/?a=3&b=8&w=0.3")
        expect(page.get_by_role("heading", name=re.compile("Mixer"))).to_be_visible()
        expect(page.get_by_text("Component A: 🐱 cat (test image 3)")).to_be_visible()
        expect(page.get_by_text("Component B: 🚢 ship (test image 8)")).to_be_visible()
        expect(page.get_by_text("The mix: 30% A + 70% B")).to_be_visible()
        no_exception_box(page)

        # Game: start a game and play one round against the random guesser.
        page.get_by_role("link", name=re.compile("Game")).first.click()
        expect(page.get_by_role("heading", name=re.compile("Guess the two classes"))).to_be_visible()
        page.get_by_role("button", name=re.compile(r"Start a \d+-round game")).click()
        page.get_by_role("button", name=re.compile("airplane")).click()
        page.get_by_role("button", name=re.compile("truck")).click()
        page.get_by_role("button", name=re.compile("Submit my answer")).click()
        expect(page.get_by_text(re.compile(r"You \+\d+ · Model \+\d+"))).to_be_visible()
        no_exception_box(page)

        # Train: start a smoke-sized run (4 short epochs); its id goes into the URL, its step-loss curve grows.
        page.get_by_role("link", name=re.compile("Train")).first.click()
        expect(page.get_by_role("heading", name="Train a model")).to_be_visible()
        expect(page.get_by_role("combobox", name="Start from a preset")).to_be_visible()  # smoke by default
        page.get_by_label("Epochs", exact=True).fill(str(EPOCHS))
        page.get_by_role("button", name="Start training").click()
        page.wait_for_url(re.compile(r"[?&]run=\d+"))
        run_id = int(re.search(r"run=(\d+)", page.url).group(1))
        expect(page.get_by_role("heading", name=re.compile(rf"Run #{run_id}"))).to_be_visible()
        samples = watch_step_curve(page)
        while_running = [points for running, points in samples if running and points]
        assert while_running, f"never saw the curve while the run was running: {samples}"
        # The finished heading can come a moment before the redrawn chart: give the last chart time to arrive.
        final_points = wait_for(lambda: step_points(page), lambda points: points > while_running[0], seconds=20)
        assert final_points > while_running[0], f"the curve did not grow: {samples}, then {final_points}"
        assert RunStore().get_run(run_id)["status"] == "finished"
        no_exception_box(page)

        # Runs: the finished run with its curves and confusion matrices.
        page.get_by_role("link", name=re.compile("Evaluate it, see its mistakes")).click()
        expect(page.get_by_role("heading", name="Training runs")).to_be_visible()
        expect(page.get_by_text("Confusion matrices on the validation mixes")).to_be_visible()
        expect(page.locator(".js-plotly-plot").nth(4)).to_be_visible()
        assert f"run={run_id}" in page.url
        no_exception_box(page)
