"""A lesson end to end in a real browser (``streamlit run app.py`` and headless Chromium, as ``test_browser``): a
teacher opens a lesson, a student opens its join link on a phone-sized page, plays a whole game, and the teacher's
view, which nobody reloads, shows the student within a few refreshes; its CSV has the game, and once closed, the
link says so."""

from __future__ import annotations

import re

import pytest
from test_browser import CHROMIUM_ARGS, UI_TIMEOUT_MS, app_url, chromium_path, no_exception_box  # noqa: F401

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 30_000  # the view refreshes every 5 s; a busy machine may take a few refreshes


def play_a_game(page) -> None:
    """Ten rounds by tapping, as on a phone: a class per group, Submit, Next round (See the results after the
    last), each once the page shows it (within the page's default timeout). ``tests/screenshots.py`` uses it too."""
    page.get_by_role("button", name=re.compile(r"Start a \d+-round game")).click()
    for number in range(1, 11):
        page.get_by_text(f"{number} / 10", exact=True).wait_for()
        page.locator(".st-key-game_pick_0 button").click()  # airplane (by key: one button, never a stale copy)
        page.locator(".st-key-game_pick_9 button").click()  # truck
        page.get_by_role("button", name=re.compile("Submit my answer")).click()
        page.get_by_role("button", name=re.compile("Next round" if number < 10 else "See the results")).click()
    page.get_by_text("Class by class").wait_for()


def test_a_teacher_opens_a_lesson_a_student_joins_by_its_link_plays_and_the_live_view_shows_them(
        chromium_path, app_url):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    from cifarmix import lessons
    from cifarmix.store import RunStore

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            expect.set_options(timeout=UI_TIMEOUT_MS)
            teacher = browser.new_page(viewport={"width": 1280, "height": 720})
            teacher.set_default_timeout(UI_TIMEOUT_MS)
            teacher.goto(f"{app_url}/lesson")
            teacher.get_by_label("Name of the lesson").fill("Year 9 · room 4")
            teacher.get_by_role("button", name=re.compile("Open the lesson")).click()
            teacher.wait_for_url(re.compile(r"lesson=[A-Z2-9]{6}&key="))
            code = re.search(r"lesson=(\w+)", teacher.url).group(1)
            expect(teacher.get_by_role("heading", name=re.compile("Year 9 · room 4"))).to_be_visible()
            expect(teacher.get_by_text(lessons.shown_code(code), exact=True)).to_be_visible()
            expect(teacher.locator(".lesson-qr img")).to_be_visible()  # the QR code
            link = teacher.locator(".lesson-link").inner_text()
            assert link == f"{app_url}/game?lesson={code}"
            expect(teacher.get_by_text("Waiting for the first finished game", exact=False)).to_be_visible()
            no_exception_box(teacher)

            student = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            student.set_default_timeout(UI_TIMEOUT_MS)
            student.goto(link.replace(code, lessons.shown_code(code).lower()))  # typed in lower case, with a hyphen
            expect(student.get_by_text("You are playing in the lesson")).to_be_visible()
            student.get_by_placeholder("e.g. Ada").fill("Zoë")
            student.get_by_placeholder("e.g. Ada").press("Tab")
            play_a_game(student)
            expect(student.get_by_text(re.compile("#1 of 1 on the leaderboard of your lesson"))).to_be_visible()
            no_exception_box(student)

            lesson = RunStore().lesson_by_code(code)
            assert [row["player"] for row in RunStore().leaderboard(lesson_id=lesson["id"])] == ["Zoë"]
            # The teacher's page was not touched: its live view brings the student in by itself.
            expect(teacher.locator("table.lesson-standings")).to_contain_text("Zoë", timeout=LIVE_TIMEOUT_MS)
            expect(teacher.locator(".lesson-number").first).to_contain_text("1games finished")
            no_exception_box(teacher)

            # The export, drawn before the game ended, has it: the CSV is made when the button is pressed.
            with teacher.expect_download() as download:
                teacher.get_by_role("button", name=re.compile("Games \\(CSV\\)")).click()
            assert download.value.suggested_filename == f"lesson-{code}-games.csv"
            exported = open(download.value.path(), encoding="utf-8").read().splitlines()
            assert exported[0].startswith("lesson_code,lesson_name,player,score") and len(exported) == 2
            assert exported[1].startswith(f"{code},Year 9 · room 4,Zoë,")

            # Closed: the link now says so, and the student plays on the server-wide board.
            teacher.get_by_role("button", name=re.compile("Close the lesson")).click()
            teacher.get_by_role("button", name=re.compile("Yes, close it")).click()
            expect(teacher.get_by_text(re.compile("Closed at"))).to_be_visible()
            student.goto(link)
            expect(student.get_by_text(re.compile("is closed: it takes no new games"))).to_be_visible()
            no_exception_box(teacher)
        finally:
            browser.close()
