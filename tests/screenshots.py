"""Screenshots of every page and its main states, at 1280 x 800 and on a phone, from a running app: look at a
change in a minute (a few, on a busy machine); and a lesson's view on a projector (1920 x 1080 and 1280 x 720).

Run (a server on the real data and the shipped models; the script starts one unless --url is given):
    chrt -i 0 .venv/bin/python tests/screenshots.py [--url http://localhost:8501] [--out /tmp/cifarmix-shots]
                                                    [--only '^train'] [--no-seed]

The server it starts gets a throw-away home with two short trainings in it (``--no-seed``: none), so the Runs
page has curves, confusion matrices and a comparison. On the desktop pass the script also starts a *smoke* run on
the Train page and takes it through its phases (starting, compiling the first steps, training) to the end, plays
a whole game to its end screen and the classroom chart, and scores a run on a quick look at the test protocol.
Each pass also opens a lesson, joins it by its link, plays a game in it (the classmates' games are added through
the store when the script started the server), and shows the teacher's live view, then closes the lesson.

It drives Debian's Chromium through Playwright (never a downloaded browser) and writes one PNG per page, state
and viewport (``train-phase-desktop.png``, ``game-end-phone.png``, ...), then prints their paths; a state it
cannot reach is named with the reason, and the others are still taken. Not a test: pytest does not collect it
(its name does not start with ``test_``). Run it under ``chrt -i 0`` on a machine that trains: the server and
the trainings it starts inherit the idle priority.
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
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844},
             "projector": {"width": 1920, "height": 1080}, "projector-720": {"width": 1280, "height": 720}}
PROJECTORS = ("projector", "projector-720")  # only the lesson's states
CLASSMATES = ("Ada", "Bo", "Chen", "Dara", "Eli", "Fen", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea")
SETTLE_MS = 1500  # after a page's last change, for charts to draw
SEED_RUNS = (  # short trainings for the Runs page: enough steps for a smoothed step-loss curve, two to compare
    ["--preset", "smoke", "--epochs", "4", "--steps-per-epoch", "30", "--name", "seeded-a"],
    ["--preset", "smoke", "--epochs", "3", "--steps-per-epoch", "30", "--lr", "0.003", "--name", "seeded-b"],
)
LONG = 600_000  # ms: a training on an idle-priority process of a busy machine takes minutes


def environment(home: str) -> dict:
    data = os.environ.get("CIFARMIX_DATA") or str(ROOT.parent / "shared" / "data" / "cifar-10-python.tar.gz")
    return dict(os.environ, CIFARMIX_HOME=home, CIFARMIX_DATA=data)


def seed(home: str) -> None:
    """Train the ``SEED_RUNS`` into ``home`` from the command line (one after the other)."""
    for arguments in SEED_RUNS:
        print("seeding a run:", " ".join(arguments), flush=True)
        subprocess.run([sys.executable, "-m", "cifarmix", "train", *arguments], cwd=ROOT, env=environment(home),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


@contextlib.contextmanager
def server(port: int, seeded: bool):
    """``streamlit run app.py`` on ``port`` with a throw-away home, the shipped models and the real data."""
    global HOME
    home = HOME = tempfile.mkdtemp(prefix="cifarmix-shots-")
    if seeded:
        seed(home)
    streamlit = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or "streamlit"
    process = subprocess.Popen([streamlit, "run", "app.py", "--server.headless", "true", "--server.port", str(port),
                                "--server.address", "127.0.0.1"], cwd=ROOT, env=environment(home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def settle(page, timeout: int = 120_000) -> None:
    """Wait until Streamlit is no longer running the script, then a moment for plotly to draw."""
    with contextlib.suppress(Exception):
        page.wait_for_load_state("networkidle", timeout=timeout)
    with contextlib.suppress(Exception):
        page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=timeout)
    page.wait_for_timeout(SETTLE_MS)


def shoot(page, out: Path, name: str, kind: str) -> Path:
    path = out / f"{name}-{kind}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def text(page, pattern: str):
    return page.get_by_text(re.compile(pattern, re.IGNORECASE)).first


# Scroll an element to the top of the view, below Streamlit's header (the app scrolls a container, not the page).
TO_TOP = """element => {
    element.scrollIntoView({block: 'start'});
    let box = element.parentElement;
    while (box && box.scrollHeight <= box.clientHeight) box = box.parentElement;
    if (box) box.scrollTop -= 72;
}"""


def show(page, pattern: str, timeout: int = 120_000) -> None:
    """Wait for a text to appear, then scroll it to the top of the view."""
    locator = text(page, pattern)
    locator.wait_for(timeout=timeout)
    locator.evaluate(TO_TOP)


def chart(page, index: int, timeout: int = 120_000) -> None:
    """Scroll the ``index``-th visible chart of the page to the top of the view (negative: from the end)."""
    charts = page.locator("[data-testid=stPlotlyChart]:visible")
    charts.first.wait_for(timeout=timeout)
    charts.nth(index if index >= 0 else charts.count() + index).evaluate(TO_TOP)


def press(page, *keys: str) -> None:
    """Keys one at a time, each after the page has answered the one before (a pick reruns the page)."""
    for key in keys:
        page.keyboard.press(key)
        settle(page)


def answer(page, first: str = "1", second: str = "6") -> None:
    """Pick one class per group and submit: the round's reveal."""
    press(page, first, second, "Enter")
    page.get_by_role("button", name=re.compile("Next round|See the results")).wait_for()


def play_to_the_end(page) -> None:
    """From round 1's reveal, the other nine rounds (→ to the next, a pick per group, Enter), to the end."""
    for number in range(2, 11):
        press(page, "ArrowRight")
        text(page, rf"^{number} / 10$").wait_for()
        answer(page, "2", "7")
    page.get_by_role("button", name=re.compile("See the results")).click()
    show(page, "Class by class")


HOME = None  # the home of the server the script started (None with --url): where classmates' games are added


def open_lesson(page, url: str, name: str) -> str:
    """The teacher opens a lesson on the Lesson page; returns the teacher's view's URL."""
    page.goto(f"{url}/lesson")
    page.get_by_label("Name of the lesson").fill(name)
    page.get_by_label("Name of the lesson").press("Tab")
    page.get_by_role("button", name=re.compile("Open the lesson")).click()
    page.wait_for_url(re.compile(r"lesson=[A-Z0-9]{6}&key="))
    text(page, "Waiting for the first finished game").wait_for()
    return page.url


def classmates(lesson_url: str, games: int) -> None:
    """``games`` finished games of classmates in the lesson of ``lesson_url``, saved through the store of the server
    this script started (each with its own share of right answers); nothing with --url."""
    if HOME is None:
        return
    import numpy as np

    os.environ["CIFARMIX_HOME"] = HOME
    sys.path.insert(0, str(ROOT))  # the script runs from tests/: the package is beside it
    from cifarmix import game, lessons
    from cifarmix.store import RunStore

    store = RunStore()
    lesson = lessons.find_lesson(store, re.search(r"lesson=(\w+)", lesson_url).group(1))
    rng = np.random.default_rng(7)
    for number in range(games):
        g = game.new_game(np.arange(10_000) % 10, number, "champion", lesson_id=lesson["id"])
        skill = rng.uniform(0.3, 0.9)
        while g.stage != "over":
            r = g.current
            picks = [c if rng.random() < skill * (0.6 if c in (2, 3) else 1) else (c + 1) % 5
                     for c in (r.first, r.second)]
            model = [c if rng.random() < (0.55 if c in (3, 5) else 0.85) else (c + 2) % 5 for c in (r.first, r.second)]
            g.answer(game.Answer(*picks), game.Answer(*model, (0.8, 0.8)), 3.0)
            g.advance()
        game.record(g, store, CLASSMATES[number % len(CLASSMATES)])


def lesson_states(page, url: str, kind: str):
    """The lesson's states: the teacher's view on a projector; joining and playing in it on the others."""
    if kind in PROJECTORS:
        yield "lesson-start", lambda: page.goto(f"{url}/lesson")
        teacher = {}
        yield "lesson-open", lambda: teacher.setdefault("url", open_lesson(page, url, f"Year 9 · {kind}"))
        yield "lesson-live", lambda: (classmates(teacher["url"], 9), page.goto(teacher["url"]),
                                      text(page, "games finished").wait_for(), page.wait_for_timeout(6000))
        yield "lesson-live-below", lambda: show(page, "People vs the model, class by class")
        yield "lesson-closed", lambda: (page.get_by_role("button", name=re.compile("Close the lesson")).click(),
                                        page.get_by_role("button", name=re.compile("Yes, close it")).click(),
                                        text(page, "Closed at").wait_for())
        return
    teacher = {}

    def join() -> None:  # the teacher's view in another tab, the student's join link in this one
        other = page.context.new_page()
        teacher["url"] = open_lesson(other, url, f"Year 9 · {kind}")
        teacher["page"] = other
        code = re.search(r"lesson=(\w+)", teacher["url"]).group(1)
        page.bring_to_front()  # the student's tab has the keyboard again (its shortcuts play the game)
        page.goto(f"{url}/game?lesson={code}")
        text(page, "You are playing in the lesson").wait_for()

    yield "lesson-join", join
    from test_browser_lesson import play_a_game  # by taps, as a student on a phone plays

    yield "lesson-game-end", lambda: (play_a_game(page), show(page, "Class by class"))
    yield "lesson-game-board", lambda: show(page, "Leaderboard · lesson")


def start_training(page) -> None:
    """A smoke run made long enough to watch (3 epochs of 30 steps), from its first second."""
    for label, value in (("Epochs", "3"), ("Steps per epoch", "30")):
        page.get_by_label(label, exact=True).fill(value)
        page.get_by_label(label, exact=True).press("Tab")
    page.get_by_role("button", name=re.compile("Start training")).click()
    show(page, "before training", timeout=60_000)


def quick_look(page) -> None:
    """Score the shown run on a quick look (2 x 1,000 pairs) and scroll back to its summary."""
    page.get_by_label("Repeats").fill("2")
    page.get_by_label("Test pairs per repeat").fill("1000")
    page.get_by_label("Test pairs per repeat").press("Tab")
    page.get_by_role("button", name=re.compile("Evaluate on the test protocol")).click()
    text(page, "Stored: mean accuracy").wait_for(timeout=LONG)
    page.reload()  # the summary above the form was drawn before the result was stored
    settle(page)
    show(page, "Best mean val. accuracy")


def states(page, url: str, kind: str):
    """Yield (name, callable that brings the page to that state) in the order they are visited."""
    if kind in PROJECTORS:
        yield from lesson_states(page, url, kind)
        return
    desktop = kind == "desktop"
    yield "mixer", lambda: page.goto(f"{url}/")  # the Mixer is the default page, at the root (/mixer is no page)
    yield "mixer-gallery", lambda: show(page, "can you guess")
    yield "game", lambda: page.goto(f"{url}/game")
    yield "game-round", lambda: page.get_by_role("button", name=re.compile("Start a")).click()
    yield "game-reveal", lambda: answer(page)
    yield "game-end", lambda: play_to_the_end(page)
    yield "game-classroom", lambda: show(page, "People vs models")
    yield "train", lambda: page.goto(f"{url}/train")
    if desktop:  # one run, from its first second to its end (the phone then follows it through the URL)
        yield "train-phase", lambda: start_training(page)
        yield "train-first-steps", lambda: show(page, "Step 4 of 4 before training", timeout=LONG)
        yield "train-training", lambda: (chart(page, 0, timeout=LONG), show(page, r"^Run #"))
        yield "train-finished", lambda: (text(page, r"✅ finished").wait_for(timeout=LONG), show(page, r"^Run #"))
    else:
        yield "train-finished", lambda: (page.goto(f"{url}/train?run=3"), show(page, r"^Run #"))
    yield "train-curves", lambda: chart(page, 0)
    yield "train-accuracy", lambda: chart(page, 2)
    yield "train-confusion", lambda: show(page, "Validation confusion matrices")
    yield "runs", lambda: page.goto(f"{url}/runs?run=1")
    yield "runs-curves", lambda: show(page, "How it learned")
    yield "runs-confusion", lambda: show(page, "Confusion matrices on the validation mixes")
    yield "runs-per-class", lambda: chart(page, 4)
    if desktop:
        yield "runs-quick-look", lambda: quick_look(page)
    yield "runs-compare", lambda: (page.get_by_role("tab", name="Compare runs").click(), show(page, "Runs to compare"))
    yield "runs-compare-curves", lambda: chart(page, -2)
    yield "runs-compare-steps", lambda: chart(page, -1)
    yield "runs-peers", lambda: (page.get_by_role("tab", name="Against the peers").click(), chart(page, -1))
    yield from lesson_states(page, url, kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app (default: start one on a free port)")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "cifarmix-shots"))
    parser.add_argument("--port", type=int, default=8599)
    parser.add_argument("--no-seed", action="store_true", help="start the server with no runs in its home")
    parser.add_argument("--only", metavar="REGEX", help="only the states whose name matches, e.g. '^runs' (a state "
                        "may need one before it: 'runs-curves' needs 'runs')")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(server(args.port, seeded=not args.no_seed))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for kind, viewport in VIEWPORTS.items():
                page = browser.new_context(viewport=viewport, device_scale_factor=1).new_page()
                page.set_default_timeout(60_000)
                for name, reach in states(page, url, kind):
                    if args.only and not re.search(args.only, name):
                        continue
                    try:
                        reach()
                        settle(page)
                        print(shoot(page, out, name, kind), flush=True)
                    except Exception as error:  # one missing state must not cost the others
                        print(f"{name}-{kind}: not reached ({type(error).__name__}: {str(error)[:160]}); the page "
                              f"then: {shoot(page, out, name + '-not-reached', kind)}", flush=True)
            browser.close()


if __name__ == "__main__":
    main()
