"""Screenshots of every page and its main states, at 1280 x 800 and on a phone, from a running app: look at a
change in a minute.

Run (a server on the real data and the shipped models; the script starts one unless --url is given):
    .venv/bin/python tests/screenshots.py [--url http://localhost:8501] [--out /tmp/cifarmix-shots]

It drives Debian's Chromium through Playwright (never a downloaded browser) and writes one PNG per page, state
and viewport (``mixer-desktop.png``, ``game-reveal-phone.png``, ...), then prints their paths. Not a test:
pytest does not collect it (its name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SETTLE_MS = 1500  # after a page's last change, for charts to draw


@contextlib.contextmanager
def server(port: int):
    """``streamlit run app.py`` on ``port`` with a throw-away home, the shipped models and the real data."""
    home = tempfile.mkdtemp(prefix="cifarmix-shots-")
    data = os.environ.get("CIFARMIX_DATA") or str(ROOT.parent / "shared" / "data" / "cifar-10-python.tar.gz")
    environment = dict(os.environ, CIFARMIX_HOME=home, CIFARMIX_DATA=data)
    streamlit = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or "streamlit"
    process = subprocess.Popen([streamlit, "run", "app.py", "--server.headless", "true", "--server.port", str(port),
                                "--server.address", "127.0.0.1"], cwd=ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)


def settle(page) -> None:
    """Wait until Streamlit is no longer running the script, then a moment for plotly to draw."""
    page.wait_for_load_state("networkidle")
    with contextlib.suppress(Exception):
        page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=60_000)
    page.wait_for_timeout(SETTLE_MS)


def shoot(page, out: Path, name: str, kind: str) -> Path:
    path = out / f"{name}-{kind}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def states(page, url: str):
    """Yield (name, callable that brings the page to that state) in the order they are visited."""
    yield "mixer", lambda: page.goto(f"{url}/mixer")
    yield "mixer-gallery", lambda: page.get_by_text(re.compile("can you guess", re.I)).first.scroll_into_view_if_needed()
    yield "game", lambda: page.goto(f"{url}/game")
    yield "game-round", lambda: page.get_by_role("button", name=re.compile("Start a")).click()
    yield "game-reveal", lambda: (page.keyboard.press("1"), page.keyboard.press("6"), page.keyboard.press("Enter"))
    yield "train", lambda: page.goto(f"{url}/train")
    yield "runs", lambda: page.goto(f"{url}/runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app (default: start one on a free port)")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "cifarmix-shots"))
    parser.add_argument("--port", type=int, default=8599)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(server(args.port))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for kind, viewport in VIEWPORTS.items():
                page = browser.new_context(viewport=viewport, device_scale_factor=1).new_page()
                for name, reach in states(page, url):
                    try:
                        reach()
                        settle(page)
                        print(shoot(page, out, name, kind))
                    except Exception as error:  # one missing state must not cost the others
                        print(f"{name}-{kind}: not reached ({type(error).__name__}: {str(error)[:120]})")
            browser.close()


if __name__ == "__main__":
    main()
