"""The Lesson page and the Game page's lesson box through Streamlit's AppTest: a teacher opens a lesson, a student
joins by the link (the code as typed, any case) and plays a whole game in it, the teacher's view shows them; an
unknown or closed code, closing with and without the teacher's key, a game that outlives its lesson."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_app_game import APP, TIMEOUT, answer_round, current, start_game

from cifarmix import lessons
from cifarmix.store import RunStore

pytestmark = pytest.mark.usefixtures("fresh_caches")


def page(path: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run().switch_page(path)
    at.query_params.clear()  # the Mixer (the first page) put its pair there
    at.query_params.update(query)
    return at.run()


def html_of(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def teacher_opens(name: str = "Year 9 physics") -> tuple[AppTest, dict, str]:
    at = page("pages/lesson.py")
    at.text_input(key="lesson_new_name").input(name)
    at.button(key="lesson_open").click().run()
    assert not at.exception
    code, key = at.query_params["lesson"], at.query_params["key"]
    return at, RunStore().lesson_by_code(code), key


def play_whole_game(at: AppTest, name: str) -> None:
    start_game(at, name=name)
    for _ in range(10):
        answer_round(at, right=True)
        at.button(key="game_next").click().run()
    assert current(at).stage == "over" and not at.exception


def test_a_teacher_opens_a_lesson_and_sees_its_code_link_and_qr_code(tiny_data, no_models):
    at, lesson, key = teacher_opens()
    assert lesson["name"] == "Year 9 physics" and lessons.check_key(RunStore(), lesson, key)
    assert [t.value for t in at.title] == ["🎓 Year 9 physics"]
    shown = html_of(at)
    assert lessons.shown_code(lesson["code"]) in shown
    assert f"/<wbr>game?lesson={lesson['code']}" in shown and "Waiting for the first finished game" in shown
    assert "localhost" in " ".join(w.value for w in at.warning)  # AppTest has no browser address: it says so
    assert shown.count('<img alt="QR code of the join link" src="data:image/svg+xml;base64,') == 1
    assert [b.label for b in at.get("download_button")] == ["Games (CSV)", "Classes (CSV)"]


def test_a_lesson_needs_a_name(tiny_data, no_models):
    at = page("pages/lesson.py")
    at.text_input(key="lesson_new_name").input("   ")
    at.button(key="lesson_open").click().run()
    assert "at least one visible character" in at.error[0].value and RunStore().lessons() == []


def test_a_student_joins_by_the_link_plays_a_game_and_the_teachers_view_shows_them(tiny_data, no_models):
    _, lesson, key = teacher_opens()
    typed = lessons.shown_code(lesson["code"]).lower()  # k7m-q4p: as a student might type it into the address
    student = page("pages/game.py", lesson=typed)
    assert f"You are playing in the lesson **Year 9 physics** ({lessons.shown_code(lesson['code'])})" in \
        student.success[0].value
    play_whole_game(student, "Zoë <i>x</i>")  # HTML in a nickname stays text on the projector
    assert RunStore().leaderboard(lesson_id=lesson["id"])[0]["player"] == "Zoë <i>x</i>"
    assert RunStore().leaderboard() == []  # not on the server-wide board
    assert "Your game is #1 of 1 on the leaderboard of your lesson below." in [c.value for c in student.caption]
    assert any("Leaderboard · lesson Year 9 physics" in s.value for s in student.subheader)

    teacher = page("pages/lesson.py", lesson=lesson["code"], key=key)  # a refresh of the teacher's view
    shown = html_of(teacher)
    assert "Zoë &lt;i&gt;x&lt;/i&gt;" in shown and "<i>x" not in shown
    assert "<b>1</b><span>games finished</span>" in shown
    assert "<div><h4>Hardest for the class</h4><ol><li>" in shown and "no game against a model yet" in shown
    assert len(teacher.get("plotly_chart")) == 1


def test_a_code_typed_in_the_game_box_joins_and_leaving_plays_outside_again(tiny_data, no_models):
    _, lesson, _ = teacher_opens()
    at = page("pages/game.py")
    at.text_input(key="lesson_code_typed").input(f"  {lesson['code'][:3]} {lesson['code'][3:].lower()} ")
    at.button(key="lesson_join").click().run()
    assert at.query_params["lesson"] == lesson["code"] and "You are playing in the lesson" in at.success[0].value
    at.switch_page("pages/mixer.py").run()
    at.query_params.clear()  # the links between pages carry no code
    at.switch_page("pages/game.py").run()
    assert at.query_params["lesson"] == lesson["code"] and "You are playing in the lesson" in at.success[0].value
    at.button(key="lesson_leave").click().run()
    assert "lesson" not in at.query_params and not at.success
    play_whole_game(at, "Out")
    assert [row["player"] for row in RunStore().leaderboard()] == ["Out"]


def test_an_unknown_code_and_a_closed_lesson_are_refused_and_the_game_goes_to_the_server_wide_board(
        tiny_data, no_models):
    at = page("pages/game.py", lesson="ZZZZZZ")
    assert "No lesson has the code ZZZ-ZZZ" in at.warning[0].value and "lesson" not in at.query_params
    at = page("pages/game.py", lesson="K7M-Q4P0")
    assert "without I, L, O, 0 or 1" in at.warning[0].value

    _, lesson, key = teacher_opens("closed one")
    lessons.close_lesson(RunStore(), lesson, key)
    at = page("pages/game.py", lesson=lesson["code"])
    assert "is closed: it takes no new games" in at.warning[0].value and not at.success
    play_whole_game(at, "Late")
    assert [row["player"] for row in RunStore().leaderboard()] == ["Late"]
    assert RunStore().leaderboard(lesson_id=lesson["id"]) == []


def test_a_game_still_played_when_its_lesson_closes_is_kept_on_the_server_wide_board_and_says_so(
        tiny_data, no_models):
    _, lesson, key = teacher_opens("short lesson")
    at = page("pages/game.py", lesson=lesson["code"])
    start_game(at, name="Slow")
    assert current(at).lesson_id == lesson["id"]
    lessons.close_lesson(RunStore(), lesson, key)
    for _ in range(10):
        answer_round(at)
        at.button(key="game_next").click().run()
    assert "This game was not saved in its lesson" in at.warning[0].value
    assert [row["player"] for row in RunStore().leaderboard()] == ["Slow"]
    assert "Your game is #1 of 1 on the leaderboard below." in [c.value for c in at.caption]


def test_watching_without_the_key_shows_the_view_but_neither_closes_nor_exports(tiny_data, no_models):
    _, lesson, key = teacher_opens()
    watcher = page("pages/lesson.py")
    watcher.text_input(key="lesson_watch_code").input(lesson["code"].lower())
    watcher.button(key="lesson_watch").click().run()
    assert watcher.query_params["lesson"] == lesson["code"] and "key" not in watcher.query_params
    assert [t.value for t in watcher.title] == ["🎓 Year 9 physics"]
    assert not watcher.get("download_button") and not any(b.key == "lesson_close" for b in watcher.button)
    assert any("take the teacher's link" in c.value for c in watcher.caption)
    forged = page("pages/lesson.py", lesson=lesson["code"], key="guessed")
    assert not forged.get("download_button")
    assert RunStore().lesson(lesson["id"])["closed_at"] is None

    teacher = page("pages/lesson.py", lesson=lesson["code"], key=key)
    teacher.button(key="lesson_close").click().run()
    assert RunStore().lesson(lesson["id"])["closed_at"] is not None
    assert "🔒 Closed at" in html_of(teacher) and "QR code" not in html_of(teacher)  # no code to join by


def test_an_unknown_code_on_the_lesson_page_says_so_and_offers_the_forms(tiny_data, no_models):
    at = page("pages/lesson.py", lesson="ABCDEF")
    assert "No lesson has the code ABC-DEF" in at.error[0].value
    assert at.button(key="lesson_open") and at.button(key="lesson_watch")
