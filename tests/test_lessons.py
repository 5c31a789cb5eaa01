"""Lessons: codes, joining, closing, the teacher's key, standings and per-class numbers from real saved games,
the CSV export, two lessons kept apart from each other and from the server-wide board; and the store's side.

The tests that take ``store_url`` run on both databases (the SQLite file, then a fresh PostgreSQL schema): those of
the lessons' store (opening, finding, closing, a game saved in its lesson or refused when it closed, standings,
ranks and per-class numbers of a lesson). The rest run on SQLite alone."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import threading

import numpy as np
import pytest
from sqlalchemy import text

from cifarmix import game, lessons
from cifarmix.store import RunStore
from cifarmix.store import db as store_db

MODEL = "champion"


def rows_in(store: RunStore, table: str) -> int:
    """How many rows ``table`` holds, read on the store's own database."""
    return store._read(lambda conn: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def play(player: str, store, lesson_id=None, right: int = 10, model_right: int = 5, seed: int = 1,
         opponent: str = MODEL, y=np.arange(400) % 10) -> game.Game:
    """A real 10-round game, played to its end and saved: the player names both classes right in the first
    ``right`` rounds (and none after); the model names the first class right in ``model_right`` rounds."""
    g = game.new_game(y, seed, opponent, lesson_id=lesson_id)
    for number in range(game.ROUNDS):
        r = g.current
        mine = game.Answer(r.first, r.second) if number < right else game.Answer((r.first + 1) % 5,
                                                                                   (r.second + 1) % 5)
        theirs = game.Answer(r.first if number < model_right else (r.first + 1) % 5, (r.second + 1) % 5, (0.9, 0.9))
        g.answer(mine, theirs, 1.0)
        g.advance()
    game.record(g, store, player)
    return g


# ------------------------------------------------------------------------------------------------- codes


def test_codes_are_six_characters_of_an_unambiguous_alphabet_and_do_not_repeat():
    assert lessons.CODE_LENGTH >= 6 and lessons.CODE_SPACE == 31 ** 6 == 887_503_681
    assert not set("0O1IL") & set(lessons.ALPHABET) and len(set(lessons.ALPHABET)) == len(lessons.ALPHABET) == 31
    codes = [lessons.new_code() for _ in range(5000)]
    assert all(len(code) == 6 and set(code) <= set(lessons.ALPHABET) for code in codes)
    assert len(set(codes)) == len(codes)
    assert set("".join(codes)) == set(lessons.ALPHABET)  # every character is drawn


@pytest.mark.parametrize("typed", ["K7MQ4P", "k7mq4p", " k7m-q4p ", "K7M Q4P", "k 7 m . q 4 p",
                                   "http://192.168.1.20:8501/game?lesson=k7m-q4p", "/game?lesson=K7MQ4P&x=1"])
def test_a_typed_code_is_read_however_it_is_written(typed):
    assert lessons.normalise_code(typed) == "K7MQ4P"
    assert lessons.shown_code("K7MQ4P") == "K7M-Q4P"


@pytest.mark.parametrize("typed, message", [
    ("", "Type the lesson's code"), ("   ", "Type the lesson's code"),
    ("K7MQ4", "has 6 characters .* has 5"), ("K7MQ4PX", "has 7"),
    ("K7MQ0P", "without I, L, O, 0 or 1.*'0'"), ("kilo12", r"'1', 'I', 'L', 'O'"), ("K7MQ4é", "'É'")])
def test_a_code_that_cannot_be_one_is_refused_saying_why(typed, message):
    with pytest.raises(lessons.LessonError, match=message):
        lessons.normalise_code(typed)


# ------------------------------------------------------------------------------------- opening and joining


def test_a_lesson_is_opened_joined_by_its_code_typed_in_any_case_and_found_after_a_restart(store_url, store):
    lesson, key = lessons.open_lesson(store, "  Year 9 · Tuesday  ")
    assert lesson["name"] == "Year 9 · Tuesday" and lesson["closed_at"] is None
    assert re.fullmatch(f"[{lessons.ALPHABET}]{{6}}", lesson["code"]) and len(key) >= 20
    typed = lessons.shown_code(lesson["code"]).lower().replace("-", " ")
    assert lessons.join_lesson(store, typed) == lesson
    assert lessons.join_lesson(RunStore(store_url), lesson["code"]) == lesson  # another process, the same store
    assert store.lesson_key_hash(lesson["id"]) == lessons.key_hash(key) != key  # only the hash is kept
    assert lessons.check_key(store, lesson, key) and not lessons.check_key(store, lesson, key + "x")
    assert not lessons.check_key(store, lesson, None) and not lessons.check_key(store, lesson, "")


def test_an_unknown_code_is_refused_with_a_clear_message(store_url, store):
    lessons.open_lesson(store, "mine")
    with pytest.raises(lessons.UnknownLessonError, match="No lesson has the code 234-567. Check the code"):
        lessons.join_lesson(store, "234567")


@pytest.mark.parametrize("name, message", [("   ", "at least one visible"), ("x" * 61, "at most 60")])
def test_a_lesson_needs_a_name(store, name, message):
    with pytest.raises(ValueError, match=message):
        lessons.open_lesson(store, name)
    assert store.lessons() == []


def test_a_code_already_taken_is_drawn_again(store_url, store, monkeypatch):
    first, _ = lessons.open_lesson(store, "first")
    drawn = iter([first["code"], first["code"], "ABCDEF"])
    monkeypatch.setattr(lessons, "new_code", lambda: next(drawn))
    second, _ = lessons.open_lesson(store, "second")
    assert second["code"] == "ABCDEF" and [row["name"] for row in store.lessons()] == ["second", "first"]


def test_closing_takes_the_teachers_key_and_a_closed_lesson_refuses_to_be_joined(store_url, store):
    lesson, key = lessons.open_lesson(store, "physics")
    with pytest.raises(lessons.LessonError, match="Only the teacher's link closes the lesson 'physics'"):
        lessons.close_lesson(store, lesson, "a student's guess")
    assert store.lesson(lesson["id"])["closed_at"] is None
    closed = lessons.close_lesson(store, lesson, key)
    assert closed["closed_at"] is not None
    assert lessons.close_lesson(store, lesson, key)["closed_at"] == closed["closed_at"]  # twice: the first time
    with pytest.raises(lessons.LessonClosedError, match="'physics' .* is closed: it takes no new games. You can still "
                                                        "play; your games go to the server-wide board"):
        lessons.join_lesson(store, lesson["code"])
    assert lessons.find_lesson(store, lesson["code"])["closed_at"] == closed["closed_at"]  # still viewable
    assert store.lessons(open_only=True) == []


def test_a_game_finished_after_its_lesson_closed_is_saved_on_the_server_wide_board_and_says_so(store_url, store):
    lesson, key = lessons.open_lesson(store, "chemistry")
    inside = play("ada", store, lesson["id"])
    lessons.close_lesson(store, lesson, key)
    late = play("bob", store, lesson["id"])  # started while open, finished after the close
    assert inside.lesson_id == lesson["id"] and inside.lesson_note is None
    assert late.lesson_id is None and "not saved in its lesson" in late.lesson_note
    assert "'chemistry'" in late.lesson_note and "server-wide board" in late.lesson_note
    assert [row["player"] for row in store.leaderboard(lesson_id=lesson["id"])] == ["ada"]
    assert [row["player"] for row in store.leaderboard()] == ["bob"]
    assert store.class_accuracy(lesson_id=lesson["id"])["rounds"].sum() == 20  # only ada's picks
    assert store.score_rank(late.score_id) == (1, 1)


def test_the_store_refuses_a_game_for_a_closed_or_unknown_lesson_and_saves_nothing_of_it(store_url, store):
    lesson, key = lessons.open_lesson(store, "art")
    lessons.close_lesson(store, lesson, key)
    guess = {"head": "first", "true_class": 1, "human_class": 1, "model_class": 2, "opponent": MODEL}
    with pytest.raises(lessons.LessonClosedError, match="'art' .* was closed at .* UTC: it takes no new games"):
        store.add_score("ada", 10, 1, MODEL, 0, guesses=[guess], lesson_id=lesson["id"])
    with pytest.raises(lessons.UnknownLessonError, match="no lesson #999"):
        store.add_score("ada", 10, 1, MODEL, 0, guesses=[guess], lesson_id=999)
    assert rows_in(store, "scores") == 0 and rows_in(store, "guesses") == 0


def test_a_close_that_commits_while_a_game_is_saved_is_seen_by_the_games_transaction(store_url, store):
    """The teacher closes the lesson in a transaction that has changed the lesson's row but not yet committed; a game
    saved meanwhile waits for it, then finds the lesson closed and saves nothing (on PostgreSQL, unless the game's
    check locked the lesson's row, it would read the row as it was before the close and be saved in a closed
    lesson)."""
    lesson, _ = lessons.open_lesson(store, "biology")
    closing, release, outcome = threading.Event(), threading.Event(), {}

    def close_slowly(conn) -> None:
        conn.execute(text("UPDATE lessons SET closed_at = :now WHERE id = :id"),
                      {"now": store_db.utc_now(), "id": lesson["id"]})
        closing.set()
        assert release.wait(30)

    def save_game() -> None:
        try:
            outcome["score"] = store.add_score("ada", 10, 1, MODEL, 0, lesson_id=lesson["id"])
        except Exception as error:
            outcome["error"] = error

    closer = threading.Thread(target=store._write, args=(close_slowly,))
    closer.start()
    assert closing.wait(30)
    player = threading.Thread(target=save_game)
    player.start()
    player.join(timeout=1.0)  # it waits for the close's transaction
    release.set()
    closer.join(timeout=30)
    player.join(timeout=30)
    assert not closer.is_alive() and not player.is_alive()
    assert isinstance(outcome.get("error"), lessons.LessonClosedError), outcome
    assert rows_in(store, "scores") == 0 and store.lesson(lesson["id"])["closed_at"] is not None


# ------------------------------------------------------------------------------------------------ results


def test_standings_and_per_class_numbers_come_from_the_lessons_saved_games(store_url, store):
    lesson, _ = lessons.open_lesson(store, "Year 9")
    play("ada", store, lesson["id"], right=10, model_right=5, seed=1)  # 200 + streak bonuses
    play("ada", store, lesson["id"], right=2, seed=2)
    play("bob", store, lesson["id"], right=4, model_right=10, seed=3)
    play("cy", store, lesson["id"], right=4, model_right=10, seed=4)
    found = lessons.results(store, lesson)
    assert len(found.games) == 4 and found.players == 3 and not found.closed
    table = [(row["rank"], row["player"], row["games"], row["best"], row["won"]) for row in found.standings]
    best = found.games[0]["score"]
    assert table == [(1, "ada", 2, best, 1), (2, "bob", 1, 110, 1), (2, "cy", 1, 110, 1)]  # a tie: bob (earlier) first
    assert found.standings[0]["mean"] == (best + 45) / 2  # 2 perfect rounds: 20 + 25
    # 40 rounds, two classes each; every class came up twice per game (balanced dealing): 8 answers a class.
    assert [row["rounds"] for row in found.classes] == [8] * 10 and len(found.classes) == 10
    people = sum(row["human_accuracy"] * row["rounds"] for row in found.classes)
    assert people == pytest.approx(2 * (10 + 2 + 4 + 4))  # both halves right in the rounds played right
    models = sum(row["model_accuracy"] * row["model_rounds"] for row in found.classes)
    assert models == pytest.approx(5 + 5 + 10 + 10)  # its first class, in the rounds it played right
    group_b = [row for row in found.classes if row["class_index"] >= 5]
    assert all(row["model_accuracy"] == 0 for row in group_b)  # the model never named a group-B photo
    assert {row["class_index"] for row in found.hardest_for_model} <= {5, 6, 7, 8, 9}
    assert len(found.hardest_for_people) == lessons.HARDEST_SHOWN
    worst = min(row["human_accuracy"] for row in found.classes)
    assert found.hardest_for_people[0]["human_accuracy"] == worst


def test_the_random_guesser_counts_for_the_people_but_is_no_model_in_a_lesson(store_url, store):
    lesson, _ = lessons.open_lesson(store, "guessers")
    play("ada", store, lesson["id"], opponent=game.BASELINE_OPPONENT)
    found = lessons.results(store, lesson)
    assert all(row["model_accuracy"] is None for row in found.classes)
    assert found.hardest_for_model == [] and len(found.hardest_for_people) == 3


def test_two_lessons_at_once_and_the_server_wide_board_are_kept_apart(store_url, store):
    first, _ = lessons.open_lesson(store, "room 1")
    second, _ = lessons.open_lesson(store, "room 2")
    assert first["code"] != second["code"]
    play("ada", store, first["id"], right=10)
    play("bob", store, second["id"], right=3)
    play("cy", store, second["id"], right=1)
    outside = play("dee", store, None, right=5)
    assert [row["player"] for row in lessons.results(store, first).standings] == ["ada"]
    assert [row["player"] for row in lessons.results(store, second).standings] == ["bob", "cy"]
    assert [row["player"] for row in store.leaderboard()] == ["dee"]  # the server-wide board: no lesson's games
    assert store.class_accuracy()["rounds"].sum() == 20 == store.class_accuracy(lesson_id=first["id"])["rounds"].sum()
    assert store.score_rank(outside.score_id) == (1, 1)
    cy = store.leaderboard(lesson_id=second["id"])[1]
    assert store.score_rank(cy["id"]) == (2, 2)  # ranked in its own lesson


def test_the_csv_export_has_every_game_and_class_and_quotes_formula_like_nicknames(store):
    lesson, _ = lessons.open_lesson(store, "Year 9, room 4")
    play("ada", store, lesson["id"], right=10)
    play("=HYPERLINK(1)", store, lesson["id"], right=3, model_right=10)
    found = lessons.results(store, lesson)
    games = list(csv.DictReader(io.StringIO(lessons.games_csv(found))))
    assert list(games[0]) == list(lessons.GAMES_COLUMNS)
    assert [(row["player"], row["result"], row["opponent"], row["mixes"], row["lesson_name"]) for row in games] == [
        ("ada", "won", MODEL, "equal", "Year 9, room 4"), ("'=HYPERLINK(1)", "lost", MODEL, "equal", "Year 9, room 4")]
    assert [int(row["score"]) for row in games] == [g["score"] for g in found.games]
    assert {row["lesson_code"] for row in games} == {lesson["code"]} and games[0]["time_per_round_s"] == ""
    classes = list(csv.DictReader(io.StringIO(lessons.classes_csv(found))))
    assert [int(row["class_index"]) for row in classes] == list(range(10))
    assert classes[0]["class"] == "airplane" and int(classes[0]["answers_by_people"]) == 4
    assert {row["better"] for row in classes} <= {"people", "models", "tie"}
    assert float(classes[5]["models_right"]) == 0.0


def test_an_empty_lesson_exports_only_the_headers(store_url, store):
    lesson, _ = lessons.open_lesson(store, "empty")
    found = lessons.results(store, lesson)
    assert found.games == [] and found.standings == [] and found.classes == []
    assert lessons.games_csv(found) == ",".join(lessons.GAMES_COLUMNS) + "\n"
    assert lessons.classes_csv(found) == ",".join(lessons.CLASSES_COLUMNS) + "\n"


# ------------------------------------------------------------------------------------------ links and QR


def test_the_join_link_carries_the_code_and_a_local_address_is_recognised():
    assert lessons.join_link("http://192.168.1.20:8501/", "K7MQ4P") == "http://192.168.1.20:8501/game?lesson=K7MQ4P"
    assert lessons.normalise_code(lessons.join_link("http://host:8501", "K7MQ4P")) == "K7MQ4P"
    for url in ("http://localhost:8501", "http://127.0.0.1:8501", "http://[::1]:8501", "http://0.0.0.0:8501"):
        assert lessons.local_address(url), url
    assert not lessons.local_address("http://192.168.1.20:8501") and not lessons.local_address("https://class.example")


def test_the_qr_code_is_a_full_qr_code_of_the_link_as_svg():
    import segno

    link = "http://192.168.1.20:8501/game?lesson=K7MQ4P"
    svg = lessons.qr_svg(link)
    assert svg.startswith("<svg") and "<path" in svg and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "width=" not in svg.split(">", 1)[0]  # no fixed size: the page scales it
    code = segno.make_qr(link, error="m", boost_error=True)
    assert not code.is_micro and code.error in ("M", "Q", "H")


# -------------------------------------------------------------------------------------------------- store


def test_the_lessons_step_adds_the_table_and_a_lesson_column_to_scores_and_guesses(store):
    with sqlite3.connect(store.path) as conn:
        columns = {name: [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]
                   for name in ("lessons", "scores", "guesses")}
    conn.close()
    assert columns["lessons"] == ["id", "code", "name", "teacher_key_hash", "created_at", "closed_at"]
    assert "lesson_id" in columns["scores"] and "lesson_id" in columns["guesses"]
    assert any(isinstance(statement, dict) for statement in store_db.MIGRATIONS[-1])


def test_a_migration_statement_per_dialect_runs_its_sqlite_entry(tmp_path, monkeypatch):
    step = ({"sqlite": "CREATE TABLE extra (id INTEGER PRIMARY KEY AUTOINCREMENT)",
             "postgresql": "CREATE TABLE extra (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)"},)
    monkeypatch.setattr(store_db, "MIGRATIONS", [*store_db.MIGRATIONS, step])
    db = RunStore(tmp_path / "x.sqlite3")
    assert db.schema_version() == len(store_db.MIGRATIONS)
    with sqlite3.connect(db.path) as conn:
        assert "AUTOINCREMENT" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'extra'").fetchone()[0]
    conn.close()


def test_the_store_lists_finds_and_closes_lessons(store_url, store):
    assert store.add_lesson("one", "AAAAAA", "hash") is not None
    assert store.add_lesson("two", "AAAAAA", "hash") is None  # the code is taken: nothing written
    two = store.add_lesson("two", "BBBBBB", "hash")
    assert store.lesson_by_code("BBBBBB") == two == store.lesson(two["id"])
    assert store.lesson_by_code("bbbbbb") is None and store.lesson(999) is None and store.lesson_key_hash(999) is None
    assert "teacher_key_hash" not in two
    store.close_lesson(two["id"])
    assert [row["code"] for row in store.lessons(open_only=True)] == ["AAAAAA"]
    with pytest.raises(lessons.UnknownLessonError, match="no lesson #999 to close"):
        store.close_lesson(999)


# ---------------------------------------------------------------------------------------------------- CLI


def test_the_command_line_lists_exports_and_closes_a_lesson(store, tmp_path, capsys):
    from cifarmix.cli import main

    lesson, _ = lessons.open_lesson(store, "Year 9")
    play("ada", store, lesson["id"])
    assert main(["lesson", "list"]) == 0
    listed = capsys.readouterr().out
    assert lessons.shown_code(lesson["code"]) in listed and "Year 9" in listed and "open" in listed
    assert main(["lesson", "export", lessons.shown_code(lesson["code"]).lower()]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(row["player"], row["lesson_code"]) for row in rows] == [("ada", lesson["code"])]
    out = tmp_path / "classes.csv"
    assert main(["lesson", "export", lesson["code"], "--classes", "--out", str(out)]) == 0
    assert "10 rows" in capsys.readouterr().out and out.read_text().startswith(",".join(lessons.CLASSES_COLUMNS))
    assert main(["lesson", "close", lesson["code"]]) == 0
    assert "closed the lesson 'Year 9'" in capsys.readouterr().out and store.lesson(lesson["id"])["closed_at"]


def test_the_command_line_refuses_an_unknown_code_with_one_message(store, capsys):
    from cifarmix.cli import main

    assert main(["lesson", "export", "ABCDEF"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No lesson has the code ABC-DEF") and "Traceback" not in err
    assert main(["lesson", "list"]) == 0 and "no lessons yet" in capsys.readouterr().out
