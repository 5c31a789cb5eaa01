"""cifarmix.game: dealing rounds, scoring with streaks, the stage machine, summaries, saving."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cifarmix import game
from cifarmix.game import Answer
from cifarmix.store import RunStore

Y_TEST = np.arange(400) % 10  # like the tiny tarball: 40 test images per class


def perfect(r: game.Round) -> Answer:
    return Answer(r.first, r.second)


def wrong(r: game.Round) -> Answer:
    return Answer((r.first + 1) % 5, (r.second + 1) % 5)


def play(g: game.Game, human, model=wrong, seconds: float = 1.0) -> game.Game:
    while g.stage != "over":
        g.answer(human(g.current), model(g.current), seconds)
        g.advance()
    return g


def test_deal_is_reproducible_for_a_seed_and_differs_between_seeds():
    assert game.deal_rounds(Y_TEST, seed=3) == game.deal_rounds(Y_TEST, seed=3)
    assert game.deal_rounds(Y_TEST, seed=3) != game.deal_rounds(Y_TEST, seed=4)


def test_deal_takes_components_from_the_right_groups_with_matching_answers():
    for r in game.deal_rounds(Y_TEST, seed=0):
        assert Y_TEST[r.a_index] == r.first < 5
        assert Y_TEST[r.b_index] == r.second + 5
        assert r.true_classes == (r.first, r.second + 5)


def test_deal_shows_every_class_twice_per_group_and_no_image_twice():
    rounds = game.deal_rounds(Y_TEST, seed=1)
    assert [r.number for r in rounds] == list(range(1, 11))
    assert sorted(r.first for r in rounds) == sorted(list(range(5)) * 2)
    assert sorted(r.second for r in rounds) == sorted(list(range(5)) * 2)
    assert len({r.a_index for r in rounds}) == len({r.b_index for r in rounds}) == 10


def test_deal_refuses_a_test_set_missing_a_class():
    with pytest.raises(ValueError, match="no image of class 9"):
        game.deal_rounds(np.arange(400) % 9, seed=0)


def test_points_per_class_and_a_growing_capped_streak_bonus():
    assert game.round_points((False, False), 4) == (0, 0)
    assert game.round_points((True, False), 4) == (10, 0)  # a half-right round breaks the streak
    assert game.round_points((True, True), 0) == (20, 1)
    assert game.round_points((True, True), 1) == (25, 2)
    assert game.round_points((True, True), 2) == (30, 3)
    assert game.round_points((True, True), 9) == (35, 10)  # bonus capped at MAX_STREAK_BONUS


def test_a_perfect_game_scores_the_maximum_and_the_model_the_same_rules():
    g = play(game.new_game(Y_TEST, seed=0, opponent="m"), perfect, model=perfect)
    assert g.human_score == g.model_score == 20 + 25 + 30 + 35 * 7
    assert g.human_streak == 10 and g.stage == "over" and g.current is None


def test_stages_guess_reveal_over_and_answers_only_while_guessing():
    g = game.new_game(Y_TEST, seed=0, opponent="m", rounds=2)
    assert g.stage == "guess" and g.current.number == 1
    with pytest.raises(RuntimeError):
        g.advance()
    result = g.answer(Answer(g.current.first, None), wrong(g.current), 2.0)
    assert (result.human_correct, result.human_points, g.stage) == ((True, False), 10, "reveal")
    with pytest.raises(RuntimeError):
        g.answer(perfect(g.current), perfect(g.current), 1.0)  # a second answer to the same round
    g.advance()
    assert (g.stage, g.current.number, g.is_last_round) == ("guess", 2, True)
    g.answer(perfect(g.current), perfect(g.current), 1.0)
    g.advance()
    assert g.stage == "over" and len(g.results) == 2


def test_time_limit_marks_timeouts_and_voids_late_answers():
    g = game.new_game(Y_TEST, seed=0, opponent="m", time_limit=10)
    on_time = g.answer(perfect(g.current), wrong(g.current), seconds=10.5)  # the clock's own auto-submit
    assert on_time.timed_out and not on_time.late and on_time.human_points == 20
    g.advance()
    late = g.answer(perfect(g.current), perfect(g.current), seconds=10 + game.LATE_GRACE_S + 1)
    assert late.late and late.human_points == 0 and late.human_correct == (False, False)
    assert late.model_points > 0  # the model is never late
    g.advance()
    slept = g.answer(perfect(g.current), wrong(g.current), seconds=40.0, picked_at=(3.0, 8.0))  # picked in time
    assert slept.timed_out and not slept.late and slept.human_points == 20
    g.advance()
    half = g.answer(perfect(g.current), wrong(g.current), seconds=40.0, picked_at=(3.0, 25.0))
    assert half.late and half.human_correct == (True, False) and half.human_points == 10
    with pytest.raises(ValueError):
        game.new_game(Y_TEST, seed=0, opponent="m", time_limit=0)


def test_the_game_keeps_the_rounds_picks_with_their_times_and_its_clock():
    g = game.new_game(Y_TEST, seed=0, opponent="m", time_limit=10)
    r = g.current
    assert g.seconds_into_round(now=50.0) == 0.0 and g.deadline is None and not g.out_of_time(now=1e9)  # not shown
    assert g.show_round(now=100.0) == 100.0 and g.show_round(now=104.0) == 100.0  # the clock starts once
    assert g.deadline == 110.0 and g.seconds_into_round(now=102.5) == 2.5
    assert g.pick("second", 4, now=101.0) and g.picks == Answer(None, 4) and not g.ready
    g.pick("second", r.second, now=103.0)  # changed her mind: the new pick and its time replace the old
    g.pick("first", r.first, now=105.0)
    assert g.picks == Answer(r.first, r.second) and g.picked_at == (5.0, 3.0) and g.ready
    assert not g.out_of_time(now=109.9) and g.out_of_time(now=110.0)
    g.opponent_answer = wrong(r)
    result = g.submit(now=106.0)
    assert (result.human, result.model, result.seconds) == (Answer(r.first, r.second), wrong(r), 6.0)
    assert result.human_points == 20 and not result.timed_out and g.stage == "reveal"
    assert g.submit(now=107.0) is None and len(g.results) == 1  # a double click scores the round once
    assert not g.pick("first", 0) and g.picks == Answer(r.first, r.second)  # a click after the scoring: ignored
    assert not g.out_of_time(now=1e9)  # revealed: the clock no longer runs
    g.advance()
    assert (g.picks, g.picked_at, g.shown_at, g.opponent_answer) == (game.NO_ANSWER, (None, None), None, None)


def test_the_clock_running_out_scores_the_picks_made_in_time():
    g = game.new_game(Y_TEST, seed=0, opponent="m", time_limit=10)
    r = g.current
    g.opponent_answer = perfect(r)
    g.show_round(now=0.0)
    g.pick("first", r.first, now=3.0)
    g.pick("second", r.second, now=10 + game.LATE_GRACE_S + 1)  # after the limit and its grace
    assert g.out_of_time(now=40.0)
    result = g.submit(now=40.0)  # the page came back long after the clock ran out
    assert result.timed_out and result.late and result.human == Answer(r.first, None) and result.human_points == 10


def test_submit_needs_the_models_answer_and_pick_a_group_and_a_class():
    g = game.new_game(Y_TEST, seed=0, opponent="m")
    with pytest.raises(RuntimeError, match="has not answered"):
        g.submit()
    with pytest.raises(ValueError, match="first, second"):
        g.pick("third", 0)
    with pytest.raises(ValueError, match="0-4"):
        g.pick("first", 5)
    assert g.stage == "guess" and g.picks == game.NO_ANSWER


def test_a_whole_game_played_through_picks_and_submit():
    g = game.new_game(Y_TEST, seed=2, opponent="m")
    clock = 0.0
    while g.stage != "over":
        r = g.current
        g.opponent_answer = wrong(r)
        g.show_round(now=clock)
        g.pick("first", r.first, now=clock + 1)
        g.pick("second", r.second, now=clock + 2)
        g.submit(now=clock + 3)
        g.advance()
        clock += 10
    assert g.human_score == 20 + 25 + 30 + 35 * 7 and g.model_score == 0  # as a perfect game
    assert [round_["seconds"] for round_ in g.details()["rounds"]] == [3.0] * 10


def test_model_answer_is_the_argmax_of_each_head_with_its_probability():
    probs = {"first": np.array([[0.1, 0.6, 0.1, 0.1, 0.1]]), "second": np.array([[0.05, 0.05, 0.1, 0.2, 0.6]])}
    assert game.model_answer(probs) == Answer(1, 4, (0.6, 0.6))
    assert Answer(1, 4).classes() == (1, 9)


def test_play_model_round_mixes_the_current_pair_and_asks_the_model_once():
    x = np.random.default_rng(0).integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    g = game.new_game(Y_TEST, seed=5, opponent="m", alpha=0.3)
    calls = []

    def predict(images):
        calls.append(images)
        return {"first": np.eye(5)[[2]], "second": np.eye(5)[[3]]}

    image, answer = game.play_model_round(g, x, predict)
    expected = 0.3 * x[g.current.a_index].astype(np.float32) + 0.7 * x[g.current.b_index].astype(np.float32)
    np.testing.assert_allclose(image, expected, rtol=1e-6)
    assert len(calls) == 1 and calls[0].shape == (1, 32, 32, 3)
    assert answer == Answer(2, 3, (1.0, 1.0))


def test_class_summary_counts_each_class_where_it_was_the_answer():
    g = play(game.new_game(Y_TEST, seed=2, opponent="m"), perfect, model=wrong)
    summary = game.class_summary(g.results)
    assert [c.class_index for c in summary] == list(range(10))
    assert all(c.rounds == 2 and c.human_correct == 2 and c.model_correct == 0 for c in summary)
    assert {c.winner for c in summary} == {"human"} and summary[3].name == "cat"
    assert game.verdict(g.human_score, g.model_score) == "human"
    assert game.verdict(5, 5) == "tie" and game.verdict(0, 5) == "model"


def test_the_hardest_pair_met_is_the_one_the_player_got_most_wrong():
    g = game.new_game(Y_TEST, seed=3, opponent="champion")
    hard = g.rounds[4]  # this round's pair of classes is the one the player misses

    def player(r: game.Round) -> Answer:
        return wrong(r) if (r.first, r.second) == (hard.first, hard.second) else perfect(r)

    play(g, player, model=perfect)
    worst = game.hardest_pair_met(g.results)
    assert (worst["a"], worst["b"]) == hard.true_classes and worst["human"] == 0.0 and worst["model"] == 1.0
    assert 5 in worst["rounds"] and worst["count"] == len(worst["rounds"])
    sentence = game.hardest_pair_sentence(g.results, "champion")
    assert sentence.startswith("**The hardest pair you met:**") and game.class_label(hard.first) in sentence
    assert f"you named 0 of {2 * worst['count']} photos right; the model named {2 * worst['count']}" in sentence
    perfect_game = play(game.new_game(Y_TEST, seed=3, opponent="champion"), perfect)
    assert "no pair of classes caught you out" in game.hardest_pair_sentence(perfect_game.results)
    assert game.hardest_pair_met([]) is None and game.hardest_pair_sentence([]) == ""


def test_unequal_mixes_draw_a_weight_of_a_per_round_from_the_range_on_the_same_photos():
    equal = game.new_game(Y_TEST, seed=7, opponent="m")
    unequal = game.new_game(Y_TEST, seed=7, opponent="m", alpha_range=(0.2, 0.4))
    assert equal.mode == "equal" and unequal.mode == "unequal" and unequal.alpha_range == (0.2, 0.4)
    assert [(r.a_index, r.b_index) for r in unequal.rounds] == [(r.a_index, r.b_index) for r in equal.rounds]
    weights = [r.alpha for r in unequal.rounds]
    assert all(w in (0.2, 0.25, 0.3, 0.35, 0.4) for w in weights) and len(set(weights)) > 1
    assert weights == [r.alpha for r in game.new_game(Y_TEST, seed=7, opponent="m", alpha_range=(0.2, 0.4)).rounds]
    assert all(r.alpha is None for r in equal.rounds)
    x = np.random.default_rng(0).integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    first = unequal.rounds[0]
    expected = first.alpha * x[first.a_index].astype(np.float32) + (1 - first.alpha) * x[first.b_index]
    np.testing.assert_allclose(game.round_image(x, first, unequal.alpha), expected, atol=1e-3)
    image, _ = game.play_model_round(unequal, x, lambda images: {h: np.eye(5)[[0]] for h in ("first", "second")})
    np.testing.assert_allclose(image, expected, atol=1e-3)  # the model answers the round's own mix
    assert game.new_game(Y_TEST, seed=7, opponent="m", alpha_range=(0.3, 0.3)).rounds[0].alpha == 0.3
    for bad in ((0.6, 0.4), (0.0, 0.5), (0.5, 1.0), ("a", 0.5)):
        with pytest.raises(ValueError, match="range of weights"):
            game.new_game(Y_TEST, seed=7, opponent="m", alpha_range=bad)
    assert game.mode_text("unequal", (0.2, 0.8)) == "unequal mixes (A 20-80%)"
    assert game.mode_text("equal") == "equal mixes (50 / 50)"


def test_an_unequal_game_is_saved_with_its_mode_and_each_rounds_weight(tmp_path):
    store = RunStore(tmp_path / "s.sqlite3")
    g = play(game.new_game(Y_TEST, seed=1, opponent="m", alpha_range=(0.2, 0.8)), perfect)
    game.record(g, store, "Ann")
    plain = play(game.new_game(Y_TEST, seed=1, opponent="m"), wrong)
    game.record(plain, store, "Bo")
    [unequal] = store.leaderboard(mode="unequal")
    assert unequal["player"] == "Ann" and unequal["mode"] == "unequal"
    assert unequal["details"]["alpha_range"] == [0.2, 0.8]
    assert [r["alpha"] for r in unequal["details"]["rounds"]] == [r.alpha for r in g.rounds]
    assert [row["player"] for row in store.leaderboard(mode="equal")] == ["Bo"]
    assert store.score_rank(plain.score_id) == (1, 1)  # first of the one equal-mixes game
    assert store.class_accuracy(mode="unequal")["human_accuracy"].tolist() == [1.0] * 10
    assert store.class_accuracy(mode="equal")["human_accuracy"].tolist() == [0.0] * 10


def test_guess_rows_fit_the_store_and_leave_out_unanswered_heads():
    g = game.new_game(Y_TEST, seed=0, opponent="champion", rounds=2)
    g.answer(Answer(g.current.first, None), perfect(g.current), 1.0)
    g.advance()
    g.answer(wrong(g.current), perfect(g.current), 1.0)
    rows = game.guess_rows(g)
    assert len(rows) == 3
    first = rows[0]
    assert first == {"head": "first", "true_class": g.rounds[0].first, "human_class": g.rounds[0].first,
                     "model_class": g.rounds[0].first, "opponent": "champion"}
    assert rows[2]["true_class"] == g.rounds[1].second + 5 and rows[2]["human_class"] != rows[2]["true_class"]


def test_record_saves_score_and_guesses_once_with_a_clean_name():
    store = RunStore()
    g = play(game.new_game(Y_TEST, seed=0, opponent="random-baseline"), perfect, model=wrong)
    with pytest.raises(RuntimeError):
        game.record(game.new_game(Y_TEST, seed=0, opponent="m"), store, "x")  # not finished
    score_id = game.record(g, store, "  Ada\x00 Lovelace\n ")
    assert game.record(g, store, "Ada") == score_id  # saved once
    [entry] = store.leaderboard()
    assert (entry["player"], entry["score"], entry["model_score"], entry["rounds"], entry["opponent"]) == (
        "Ada Lovelace", g.human_score, 0, 10, "random-baseline")
    assert entry["details"]["seed"] == 0 and len(entry["details"]["rounds"]) == 10
    table = store.class_accuracy()
    assert table["rounds"].sum() == 20 and (table["human_accuracy"] == 1.0).all()
    assert (table["model_accuracy"] == 0.0).all()
    blank = play(game.new_game(Y_TEST, seed=1, opponent="m"), wrong)
    game.record(blank, store, "   ")
    assert store.leaderboard(opponent="m")[0]["player"] == "anonymous"


def test_scores_from_many_simultaneous_players_are_all_kept():
    store = RunStore()
    games = [play(game.new_game(Y_TEST, seed=i, opponent="m"), perfect) for i in range(12)]
    start = threading.Barrier(len(games))
    errors = []

    def finish(i: int) -> None:
        try:
            start.wait()
            game.record(games[i], RunStore(), f"player {i}")
        except Exception as error:  # noqa: BLE001  (any failure is reported by the assert below)
            errors.append(error)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(games))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(e["player"] for e in store.leaderboard(limit=100)) == sorted(f"player {i}" for i in range(12))
    assert store.class_accuracy()["rounds"].sum() == 12 * 20


def test_classroom_summary_names_classes_and_who_does_better():
    store = RunStore()
    store.add_score("ann", 0, 1, "m", 0, guesses=[
        {"head": "first", "true_class": 3, "human_class": 3, "model_class": 5 - 5, "opponent": "m"},
        {"head": "second", "true_class": 9, "human_class": 8, "model_class": 9, "opponent": "m"},
        {"head": "first", "true_class": 0, "human_class": 0, "model_class": 0, "opponent": "m"},
    ])
    rows = {row["name"]: row for row in game.classroom_summary(store.class_accuracy())}
    assert rows["cat"]["winner"] == "human" and rows["truck"]["winner"] == "model"
    assert rows["airplane"]["winner"] == "tie" and rows["cat"]["rounds"] == 1


def test_classroom_summary_has_no_winner_where_only_the_random_guesser_played():
    store = RunStore()
    store.add_score("ann", 0, 1, "m", 0, guesses=[{"head": "first", "true_class": 2, "human_class": 2,
                                                   "model_class": 2, "opponent": game.BASELINE_OPPONENT}])
    [row] = game.classroom_summary(store.class_accuracy(ignored_models=[game.BASELINE_OPPONENT]))
    assert row["human_accuracy"] == 1.0 and row["model_accuracy"] is None and row["winner"] is None


def test_the_sentences_name_the_classes_each_side_did_better_on():
    rows = [game.ClassResult(3, 2, 2, 1), game.ClassResult(9, 2, 0, 2), game.ClassResult(0, 1, 1, 1)]
    assert game.who_did_better(rows) == "**You** did better on 🐱 cat. **The model** did better on 🚚 truck."
    assert game.who_did_better([]) == "You did better on no class. The model did better on no class."
    assert game.who_did_better(rows, game.BASELINE_OPPONENT).endswith("**The random guesser** did better on 🚚 truck.")
    assert game.opponent_noun("champion") == "the model"
    assert game.opponent_noun(game.BASELINE_OPPONENT, sentence_start=True) == "The random guesser"
    summary = [{"class_index": 2, "winner": "human"}, {"class_index": 4, "winner": None}]
    assert game.classroom_sentence(summary) == ("**People** beat the models on 🐦 bird; "
                                                "**models** beat people on no class yet.")


def test_the_random_guesser_spreads_its_answers_and_repeats_them_for_a_replayed_round():
    image = np.zeros((1, 32, 32, 3), dtype=np.float32)
    answers = []
    for seed in range(300):
        g = game.new_game(Y_TEST, seed=seed, opponent=game.BASELINE_OPPONENT)
        answer = game.model_answer(game.random_guesser(g)(image))
        assert answer == game.model_answer(game.random_guesser(g)(image))  # the same round, the same guess
        answers.append((answer.first, answer.second))
    for head in range(2):
        counts = np.bincount([a[head] for a in answers], minlength=5)
        assert counts.min() > 30, counts  # ~60 each: every class is guessed (an untrained net names one)
