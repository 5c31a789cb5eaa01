"""The Game page through Streamlit's AppTest: a full round, a full game with its summary and leaderboard entry,
the clock, plain-text names, and the random guesser when no model is trained."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from cifarmix.store import RunStore

APP = "../app.py"
TIMEOUT = 60
BASELINE = "random-baseline"


pytestmark = pytest.mark.usefixtures("fresh_caches")


def game_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    return at.switch_page("pages/game.py").run()


def start_game(at: AppTest, name: str = "Ada", opponent: str | None = None, limit: int = 0) -> AppTest:
    at.text_input(key="game_player").input(name)
    if opponent is not None:
        at.selectbox(key="game_opponent").set_value(opponent)
    at.button_group(key="game_time_limit").set_value(limit)
    at.button(key=start_key(at)).click().run()
    assert not at.exception
    return at


def start_key(at: AppTest) -> str:
    return next(button.key for button in at.button if button.label.startswith("Start a 10-round game"))


def current(at: AppTest):
    return at.session_state["game"]


def answer_round(at: AppTest, right: bool = True) -> None:
    """Pick a class per group (the right ones, or wrong ones), then submit."""
    r = current(at).current
    first, second = r.true_classes if right else ((r.first + 1) % 5, (r.second + 1) % 5 + 5)
    at.button(key=f"game_pick_{first}").click().run()
    at.button(key=f"game_pick_{second}").click().run()
    assert at.button(key=f"game_pick_{first}").proto.type == "primary"  # the pick shows as chosen
    at.button(key="game_submit").click().run()
    assert not at.exception


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_a_full_round_pick_submit_reveal_next(tiny_data, no_models):
    at = game_page()
    assert "No trained model yet" in " ".join(i.value for i in at.info)
    assert at.selectbox(key="game_opponent").options == ["🎲 Random guesser (names one class per group at random)"]
    start_game(at)
    assert metric(at, "Round") == "1 / 10" and metric(at, "You") == "0"
    assert len(at.image) == 1 and at.image[0].captions == ["Round 1: what is in it?"]
    assert at.button(key="game_submit").disabled  # nothing picked yet
    answer_round(at, right=True)

    g = current(at)
    assert g.stage == "reveal" and metric(at, "You") == "20" and metric(at, "Random guesser") == str(g.model_score)
    table = at.dataframe[0].value
    truth = [ui_label(c) for c in g.rounds[0].true_classes]
    assert list(table["Right answer"]) == truth and list(table["You"]) == [f"✅ {t}" for t in truth]
    assert "Model" not in table and not any("sure" in cell for cell in table["Random guesser"])  # no model
    assert [image.captions[0] for image in at.image] == ["the mix you saw", f"A: {truth[0]}", f"B: {truth[1]}"]

    at.button(key="game_next").click().run()
    assert current(at).stage == "guess" and metric(at, "Round") == "2 / 10"
    assert at.button(key="game_submit").disabled  # the picks were cleared for the new round
    at.button(key=f"game_pick_{current(at).current.first}").click().run()
    # the picks, their times, the clock and the model's answer are in the game; beside it, its token for a refresh
    assert game_state_keys(at) == {"game", "game_token"}


def game_state_keys(at: AppTest) -> set[str]:
    """The page's own session keys, beside its widgets' and the setup choices it copies aside."""
    widgets = {"game_submit", "game_next", "game_quit", "game_maps", "game_maps_kept", "game_board_mode"}
    widgets |= {f"game_pick_{cls}" for cls in range(10)}
    setup = {"game_player", "game_opponent", "game_time_limit", "game_mode", "game_alpha_range"}
    setup |= {f"{key}_kept" for key in setup}
    return {key for key in at.session_state if key.startswith("game")} - widgets - setup


def test_a_full_game_ends_in_a_summary_and_a_plain_text_leaderboard_entry(tiny_data, shipped_model):
    name = "**Bo** <b>x</b> [y](z)"  # markdown and HTML, within the 24-character limit
    at = game_page()
    start_game(at, name=name, opponent=shipped_model)
    for number in range(1, 11):
        assert metric(at, "Round") == f"{number} / 10"
        answer_round(at, right=number % 3 != 0)
        at.button(key="game_next").click().run()
    g = current(at)
    # rounds 3, 6 and 9 wrong: three runs of two perfect rounds (20 + 25 each) and a last perfect round (20)
    assert g.stage == "over" and len(g.results) == 10 and g.human_score == 3 * (20 + 25) + 20
    assert not at.exception
    banner = (at.success or at.error or at.info)[0].value
    assert f"{g.human_score} to {g.model_score}" in banner
    per_class = at.dataframe[0].value
    assert len(per_class) == 10 and per_class["Came up"].sum() == 20
    assert per_class["You right"].sum() == 14

    [entry] = RunStore().leaderboard()
    assert (entry["player"], entry["score"], entry["model_score"], entry["opponent"]) == (
        name, g.human_score, g.model_score, shipped_model)
    assert "Your game is #1 of 1 on the leaderboard below." in [c.value for c in at.caption]
    board = at.dataframe[1].value
    assert board["Player"].tolist() == [name] and board["Time per round"].tolist() == ["no limit"]
    from cifarmix import catalog

    assert board["Opponent"].tolist() == [catalog.resolve(shipped_model, RunStore()).title]  # not the raw reference
    assert not any(name in markdown.value for markdown in at.markdown)
    assert RunStore().class_accuracy()["rounds"].sum() == 20
    hardest = next(m.value for m in at.markdown if m.value.startswith("**The hardest pair you met:**"))
    from cifarmix import game

    worst = game.hardest_pair_met(g.results)
    assert set(worst["rounds"]) <= {3, 6, 9} and worst["human"] == 0.0  # the rounds answered wrong
    assert f"{ui_label(worst['a'])} + {ui_label(worst['b'])}" in hardest and "the model named" in hardest
    assert len(at.get("plotly_chart")) == 1  # the classroom chart, which says what it counts
    assert any("A photo the player left unnamed" in c.value and "not counted" in c.value for c in at.caption)

    at.button(key="game_again").click().run()
    assert "game" not in at.session_state and at.text_input(key="game_player").value == name
    assert at.selectbox(key="game_opponent").value == shipped_model


def disk_full_after_the_guesses(store: RunStore) -> None:
    """Make every score insert fail (as a full disk would), after a game's guesses are already inserted."""
    store._write(lambda conn: conn.exec_driver_sql("CREATE TRIGGER disk_full BEFORE INSERT ON scores BEGIN"
                                                   " SELECT RAISE(ABORT, 'database or disk is full'); END"))


def room_again(store: RunStore) -> None:
    store._write(lambda conn: conn.exec_driver_sql("DROP TRIGGER disk_full"))


def test_a_score_that_could_not_be_saved_can_be_saved_again_without_counting_its_guesses_twice(
        tiny_data, no_models):
    at = start_game(game_page())
    disk_full_after_the_guesses(RunStore())  # the guesses would go in, then the score fails
    for _ in range(10):
        answer_round(at)
        at.button(key="game_next").click().run()
    assert current(at).stage == "over" and not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "could not be saved" in errors and "disk is full" in errors and "Nothing of this game was saved" in errors
    assert RunStore().leaderboard() == [] and RunStore().class_accuracy().empty  # the guesses were rolled back

    room_again(RunStore())
    at.button(key="game_save_again").click().run()
    assert not at.exception and not [e for e in at.error if "could not be saved" in e.value]
    [entry] = RunStore().leaderboard()
    assert entry["score"] == current(at).human_score and entry["id"] == current(at).score_id
    assert RunStore().class_accuracy()["rounds"].sum() == 20  # each of the 10 rounds' two heads, once
    assert "Your game is #1 of 1 on the leaderboard below." in [c.value for c in at.caption]


def test_when_the_clock_runs_out_the_picks_so_far_count(tiny_data, no_models):
    at = game_page()
    start_game(at, limit=10)
    assert current(at).time_limit == 10
    r = current(at).current
    at.button(key=f"game_pick_{r.first}").click().run()
    current(at).shown_at -= 10.5  # the round's clock (kept in the Game) ran out
    at.run()
    result = current(at).last_result
    assert current(at).stage == "reveal" and result.timed_out and not result.late
    assert result.human_correct == (True, False) and result.human_points == 10
    assert "Time's up" in " ".join(i.value for i in at.info)


def test_picks_made_in_time_count_even_when_the_page_comes_back_long_after_the_clock(tiny_data, no_models):
    at = game_page()
    start_game(at, limit=10)
    r = current(at).current
    at.button(key=f"game_pick_{r.first}").click().run()
    at.button(key=f"game_pick_{r.second + 5}").click().run()  # both picked at once, well within 10 s
    current(at).shown_at -= 60  # a phone asleep through the end of the round
    at.run()
    result = current(at).last_result
    assert current(at).stage == "reveal" and result.timed_out and not result.late
    assert result.human_correct == (True, True) and result.human_points > 0
    assert not at.warning


def test_quitting_takes_a_confirmation_and_then_ends_the_game_unsaved(tiny_data, no_models):
    at = game_page()
    start_game(at)
    answer_round(at)
    assert "game" in at.session_state and current(at).stage == "reveal"
    at.button(key="game_quit").click().run()
    assert not at.exception and "game" not in at.session_state and RunStore().leaderboard() == []
    assert at.button(key=start_key(at))  # back at the setup


def test_a_store_that_cannot_be_read_leaves_the_game_page_usable(tiny_data, no_models, monkeypatch):
    import sqlite3

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(RunStore, "leaderboard", locked)
    monkeypatch.setattr(RunStore, "class_accuracy", locked)
    at = game_page()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "leaderboard cannot be read right now" in warnings and "database is locked" in warnings
    assert "class-by-class results cannot be read" in warnings
    start_game(at)
    assert not at.exception and metric(at, "Round") == "1 / 10"


def ui_label(cls: int) -> str:
    from pages import ui

    return ui.class_label(cls)


def test_the_round_clock_starts_once_the_model_is_ready_not_while_it_loads(tiny_data, shipped_model, monkeypatch):
    from pages import ui

    loading_seconds = 4.0
    real_get_model = ui.get_model
    loads = []

    def slow_get_model(reference):
        loads.append(reference)
        time.sleep(loading_seconds)  # a big model loading on a busy server
        return real_get_model(reference)

    monkeypatch.setattr(ui, "get_model", slow_get_model)
    at = game_page()
    start_game(at, opponent=shipped_model, limit=10)
    assert current(at).stage == "guess" and loads, "the game never loaded its model: this test would prove nothing"
    on_clock = current(at).seconds_into_round()
    assert on_clock < loading_seconds / 2, "the loading time was taken from the player's 10 s"


def test_setup_choices_survive_a_visit_to_another_page(tiny_data, no_models):
    at = game_page()
    at.text_input(key="game_player").input("Zoe")
    at.button_group(key="game_time_limit").set_value(20)
    at.run()
    at.switch_page("pages/mixer.py").run()
    at.switch_page("pages/game.py").run()
    assert not at.exception
    assert at.text_input(key="game_player").value == "Zoe" and at.button_group(key="game_time_limit").value == 20


def test_enter_submits_but_does_not_also_skip_the_reveal(tiny_data, no_models):
    at = game_page()
    start_game(at)
    shortcuts = {key: at.button(key=key).proto.shortcut for key in ("game_submit",)}
    answer_round(at)
    shortcuts["game_next"] = at.button(key="game_next").proto.shortcut
    assert shortcuts["game_submit"] != shortcuts["game_next"]


def test_the_models_maps_show_only_in_the_reveal_after_the_answer_and_the_choice_is_kept(
        tiny_data, shipped_model, monkeypatch):
    import streamlit as st

    from pages import ui

    st.cache_data.clear()
    explained = []
    real_explain = ui.SharedModel.explain
    monkeypatch.setattr(ui.SharedModel, "explain",
                        lambda self, image: explained.append(1) or real_explain(self, image))
    at = game_page()
    start_game(at, opponent=shipped_model)
    assert current(at).stage == "guess" and not at.toggle and explained == []  # nothing before the answer
    answer_round(at)
    toggle = at.toggle(key="game_maps")
    assert toggle.label == "Where did the model look?" and toggle.value is False and explained == []
    images = len(at.image)
    at = toggle.set_value(True).run()
    assert not at.exception and explained == [1] and len(at.image) == images + 4
    assert any(c.startswith("First head says") for image in at.image for c in image.captions)
    at.button(key="game_next").click().run()
    assert current(at).stage == "guess" and not at.toggle and explained == [1]  # round 2, not answered yet
    answer_round(at)
    assert at.toggle(key="game_maps").value is True and explained == [1, 1]  # kept on: round 2's maps
    assert len([c for image in at.image for c in image.captions if "head says" in c]) == 2


def test_the_random_guesser_has_no_maps_to_show(tiny_data, no_models):
    at = game_page()
    start_game(at)
    answer_round(at)
    assert current(at).stage == "reveal" and not at.toggle


def test_unequal_mixes_draw_each_rounds_weight_from_the_teachers_range_and_keep_their_own_board(
        tiny_data, no_models):
    at = game_page()
    at.button_group(key="game_mode").set_value("unequal").run()
    assert at.slider(key="game_alpha_range").value == (0.2, 0.8)
    at.slider(key="game_alpha_range").set_value((0.3, 0.4)).run()
    start_game(at, name="Una")
    g = current(at)
    assert g.mode == "unequal" and g.alpha_range == (0.3, 0.4)
    assert all(r.alpha in (0.3, 0.35, 0.4) for r in g.rounds)
    assert "unequal mixes (A 30-40%)" in " ".join(c.value for c in at.caption)
    for _ in range(10):
        answer_round(at)
        if current(at).stage == "reveal" and current(at).position == 0:
            weight = g.rounds[0].alpha
            assert f"the mix you saw: {weight:.0%} A + {1 - weight:.0%} B" in [
                c for image in at.image for c in image.captions]
        at.button(key="game_next").click().run()
    assert current(at).stage == "over" and not at.exception
    assert "on the unequal-mixes leaderboard below" in " ".join(c.value for c in at.caption)
    assert at.button_group(key="game_board_mode").value == "unequal"
    board = at.dataframe[1].value
    assert board["Player"].tolist() == ["Una"] and board["Mixes"].tolist() == ["unequal mixes (A 30-40%)"]
    [saved] = RunStore().leaderboard()
    assert saved["mode"] == "unequal" and [r["alpha"] for r in saved["details"]["rounds"]] == [
        r.alpha for r in g.rounds]
    at.button_group(key="game_board_mode").set_value("equal").run()  # the 50 / 50 board: not this game
    assert not at.exception and "No games yet" in " ".join(c.value for c in at.caption)
    assert "After the first game" in " ".join(c.value for c in at.caption)  # nor its classroom chart
