"""Game: "guess the two classes" against a model — 10 rounds, points, streaks, a leaderboard, a classroom table.

Each round shows one mixed test image; the player picks one class per group (buttons, or the keys 1-5 and 6-0),
the model answers the same image, and the reveal shows both photos. Rules and scoring live in
``cifarmix.game``; this page only draws them and keeps the game in the session: one key, whose ``Game`` holds
the round's picks, their times, its clock and the model's answer too. The game is also shelved under a token in
the page's link (``?game=``), so a refresh mid-game, a new session, resumes it (``resume_from_link``). During a
game only the round's section reruns on a click (``round_section``, a fragment).
"""

from __future__ import annotations

import math
import secrets
import time

import pandas as pd
import streamlit as st

from cifarmix import figures, game, mixing, shelf
from cifarmix.store import DATABASE_ERRORS, PLAYER_NAME_MAX
from pages import lesson_join, ui, use_app_navigation

use_app_navigation()  # first: a legacy run of this page runs app.py instead

GAME_KEY = "game"
TOKEN_KEY = "game_token"  # the game's token on the shelf of games in progress (``games_in_progress``)
RESUME_PARAM = "game"  # the link's query parameter that names it: a refreshed page resumes the game
LEADERBOARD_SIZE = 10
ERROR_KEY = "game_error"
RETRY_KEY = "game_save_retry"  # the save failed in a way that trying again may mend
TIME_LIMITS = (0, 10, 20, 30)
SETUP_KEYS = ("game_player", "game_opponent", "game_time_limit", "game_mode", "game_alpha_range")
BOARD_MODE_KEY = "game_board_mode"  # which mode's games the leaderboard and the classroom chart show
MAPS_KEY = "game_maps"  # the reveal's "Where did the model look?" toggle; its choice is kept across rounds
GROUPS = {"first": ("Group A", range(5), "12345"), "second": ("Group B", range(5, 10), "67890")}


# ------------------------------------------------------------------------------------------------ actions


def start_game(y) -> None:
    keep_setup()  # the setup widgets vanish during the game
    limit = st.session_state.get("game_time_limit") or None
    unequal = st.session_state.get("game_mode") == "unequal"
    alpha_range = tuple(st.session_state.get("game_alpha_range") or game.DEFAULT_ALPHA_RANGE) if unequal else None
    st.session_state[GAME_KEY] = game.new_game(y, secrets.randbits(32), st.session_state["game_opponent"],
                                               time_limit=limit, alpha_range=alpha_range,
                                               lesson_id=lesson_join.lesson_for_new_game())  # lessons: issue 16
    keep_for_refresh(st.session_state[GAME_KEY])
    st.session_state.pop(ERROR_KEY, None)


def advance(g: game.Game) -> None:
    """Next round; after the last one, save the game to the leaderboard."""
    if g.stage != "reveal":
        return
    g.advance()
    if g.stage == "over":
        st.session_state[BOARD_MODE_KEY] = g.mode  # the board where this game ranks
        save(g)


def save(g: game.Game) -> None:
    """Save the finished game (score and guesses together); a failure is shown with a button to try again."""
    st.session_state.pop(ERROR_KEY, None)
    st.session_state.pop(RETRY_KEY, None)
    try:
        game.record(g, ui.run_store(), st.session_state.get("game_player_kept") or "")
    except (*DATABASE_ERRORS, OSError) as error:  # a full disk, a locked store: say so, keep the game
        st.session_state[ERROR_KEY] = (f"Your score could not be saved ({type(error).__name__}: {error}). "
                                       "Nothing of this game was saved; the game stays here, so you can try again.")
        st.session_state[RETRY_KEY] = True
    except ValueError as error:  # the game's own record is malformed: trying again would fail the same way
        st.session_state[ERROR_KEY] = f"Your score could not be saved: {error}"


def quit_game() -> None:
    st.session_state.pop(GAME_KEY, None)
    games_in_progress().drop(st.session_state.pop(TOKEN_KEY, None))


# ------------------------------------------------------------------------------ a refresh resumes the game


@st.cache_resource
def games_in_progress() -> shelf.Shelf:
    """This server process's games in progress, each (game, player name) under the token of its page's link."""
    return shelf.Shelf()


def keep_for_refresh(g: game.Game) -> None:
    """Shelve a new game under a token; the page writes it into the link (``?game=``): a refresh resumes it."""
    st.session_state[TOKEN_KEY] = games_in_progress().put((g, st.session_state.get("game_player_kept") or ""))


def resume_from_link() -> None:
    """A new session on a link with ``?game=`` (a refresh, a dropped connection): back to the shelved game, the
    same object, so the same round, picks, score and clock. The token is in the link; the game stays in the
    server process that runs it (a proxy's sticky cookie brings the browser back to it: ``cifarmix.serving``)."""
    token = st.query_params.get(RESUME_PARAM)
    if not token or GAME_KEY in st.session_state:
        return
    found = games_in_progress().get(token)
    if found is None:
        st.info("The game of this link is not on the server any more (it ended hours ago, or the server was "
                "restarted). Finished games are on the leaderboard; start a new one below.", icon="🔗")
        del st.query_params[RESUME_PARAM]
        return
    st.session_state[GAME_KEY], st.session_state["game_player_kept"] = found
    st.session_state[TOKEN_KEY] = token


def link_to_game() -> None:
    """The page's link names the game in progress (``?game=<token>``), or nothing once there is none."""
    token = st.session_state.get(TOKEN_KEY) if GAME_KEY in st.session_state else None
    if token and st.query_params.get(RESUME_PARAM) != token:
        st.query_params[RESUME_PARAM] = token
    elif not token and RESUME_PARAM in st.query_params:
        del st.query_params[RESUME_PARAM]


# ----------------------------------------------------------------------------------------------- sections


def header() -> None:
    ui.page_header("🎮 Guess the two classes",
                   "Each picture is two photos averaged: one airplane, automobile, bird, cat or deer, and one dog, "
                   "frog, horse, ship or truck. Name both — then see whether the model did better.")


def opponents() -> list[str]:
    return [ui.BASELINE] + [entry.reference for entry in ui.model_entries()]


def setup(y) -> None:
    with st.container(border=True):
        st.subheader("New game")
        lesson_join.join_box()  # lessons (issue 16): the lesson this student plays in, or a box for its code
        choices = opponents()
        for key in SETUP_KEYS:  # back from a game: the choices made before it
            if key not in st.session_state and st.session_state.get(f"{key}_kept") is not None:
                st.session_state[key] = st.session_state[f"{key}_kept"]
        if st.session_state.get("game_opponent") not in choices:
            active = ui.active_model()
            st.session_state["game_opponent"] = ("champion" if "champion" in choices
                                                 else active.reference if active else ui.BASELINE)
        columns = st.columns([3, 3, 4], gap="medium")
        columns[0].text_input("Your name (for the leaderboard)", key="game_player", placeholder="e.g. Ada",
                              help=f"Longer names are cut to {PLAYER_NAME_MAX} characters.")
        known = ui.model_titles()
        titles = {reference: ui.model_title(reference, known) for reference in choices}
        columns[1].selectbox("Play against", choices, format_func=titles.get, key="game_opponent",
                             help="The shipped models, with their accuracy on the test protocol: the "
                                  "all-convolutional net plays at the strength of the seed notebook, the residual "
                                  "net for CPUs is our best. Runs you trained here come after them; the random "
                                  "guesser shows what chance scores.")
        st.session_state.setdefault("game_time_limit", 0)
        columns[2].segmented_control("Time per round", TIME_LIMITS, required=True,
                                     format_func=lambda s: f"{s} s" if s else "No limit", key="game_time_limit")
        mixes = st.columns([3, 7], gap="medium", vertical_alignment="bottom")
        st.session_state.setdefault("game_mode", "equal")
        mixes[0].segmented_control("Mixes", list(game.MODES), required=True, key="game_mode",
                                   format_func={"equal": "50 / 50", "unequal": "Unequal"}.get,
                                   help="50 / 50: every picture is a plain average (the task). Unequal: each "
                                        "round gives photo A its own share, drawn from the range you set; "
                                        "the leaderboard keeps the two kinds of game apart.")
        if st.session_state.get("game_mode") == "unequal":
            st.session_state.setdefault("game_alpha_range", game.DEFAULT_ALPHA_RANGE)
            mixes[1].slider("Share of photo A in each round, drawn from", mixing.ALPHA_MIN, mixing.ALPHA_MAX,
                            step=mixing.ALPHA_STEP, key="game_alpha_range", format="%.2f",
                            help="Each round picks a weight of A in this range at random (B gets the rest).")
        if len(choices) == 1:
            st.info("No trained model yet: you can play against the random guesser. Train a model on the "
                    "*Train* page to get a real opponent.", icon="🤖")
        st.button(f"Start a {game.ROUNDS}-round game", icon="▶️", type="primary", on_click=start_game, args=(y,))
    keep_setup()


def rank_text(score_id: int, mode: str = "equal", in_lesson: bool = False) -> str:
    try:
        rank, games = ui.run_store().score_rank(score_id)
    except (LookupError, *DATABASE_ERRORS) as error:  # a deleted score, a locked store: the game itself is saved
        return f"Your score is saved; its rank cannot be shown right now ({type(error).__name__})."
    where = "below" if rank <= LEADERBOARD_SIZE else f"(the top {LEADERBOARD_SIZE} are below)"
    board = "the unequal-mixes leaderboard" if mode == "unequal" else "the leaderboard"
    board = f"{board} of your lesson" if in_lesson else board
    return f"Your game is #{rank} of {games} on {board} {where}."


def keep_setup() -> None:
    """Copy the setup choices aside: Streamlit forgets a widget's value on a page where it is not drawn (during a
    game, or after a visit to another page), and the copies bring them back."""
    for key in SETUP_KEYS:
        st.session_state[f"{key}_kept"] = st.session_state.get(key)


def scoreboard(g: game.Game) -> None:
    columns = st.columns([2, 2, 2, 3, 1.4], vertical_alignment="center")
    columns[0].metric("Round", f"{min(g.position + 1, len(g.rounds))} / {len(g.rounds)}")
    columns[1].metric("You", g.human_score, delta=f"🔥 {g.human_streak} in a row" if g.human_streak > 1 else None,
                      delta_color="off")
    columns[2].metric(game.opponent_label(g.opponent), g.model_score, delta=f"🔥 {g.model_streak} in a row" if g.model_streak > 1 else None,
                      delta_color="off")
    limit = f" · {g.time_limit:g} s per round" if g.time_limit else ""
    mixes = f" · {game.mode_text(g.mode, g.alpha_range)}" if g.mode != "equal" else ""
    columns[3].caption(f"Playing against {ui.escape_markdown(ui.model_title(g.opponent))}{limit}{mixes}")
    with columns[4].popover("Quit", help="Abandon this game"):  # two steps: one stray tap loses nothing
        st.markdown("Abandon this game? It will not be saved.")
        st.button("Yes, quit", on_click=quit_game, key="game_quit", type="primary")


def model_answer_for(g: game.Game, x) -> game.Answer | None:
    """The opponent's answer to the current round, computed once (kept in the game) while the player thinks."""
    if g.opponent_answer is not None:
        return g.opponent_answer
    if g.opponent == ui.BASELINE:
        _, g.opponent_answer = game.play_model_round(g, x, game.random_guesser(g))
        return g.opponent_answer
    model = ui.get_model(g.opponent)
    if model is None:
        return None
    # a test-image mix: the model's answer is kept per server (a class dealt the same rounds asks once)
    g.opponent_answer = game.model_answer(model.predict_pairs([game.round_pair(g.current, g.alpha)], x))
    return g.opponent_answer


def guess_stage(g: game.Game, x) -> None:
    if model_answer_for(g, x) is None:
        st.button("Choose another opponent", on_click=quit_game)
        return
    # Only now, with the model loaded and its answer ready, is the round shown: its clock starts here.
    g.show_round()
    if g.out_of_time():
        g.submit()  # the clock ran out: the picks made so far count
        st.rerun()
    left, right = st.columns([4, 6], gap="large")
    with left:
        ui.show_image(game.round_image(x, g.current, g.alpha), f"Round {g.current.number}: what is in it?",
                      factor=11)
    with right:
        if g.time_limit:
            countdown(g.deadline, g.time_limit)
        for column, head in zip(st.columns(2, gap="medium"), GROUPS):
            with column:
                pick_buttons(g, head)
        # a double click, or the clock and the button at once, scores the round once (Game.submit)
        st.button("Submit my answer", icon="✅", type="primary", disabled=not g.ready, on_click=g.submit,
                  shortcut="Enter", width="stretch", key="game_submit")
        st.caption("Keyboard: 1–5 pick in group A, 6–0 in group B, Enter submits, → goes to the next round.")


def pick_buttons(g: game.Game, head: str) -> None:
    label, classes, keys = GROUPS[head]
    st.markdown(f"**{label}:** which one is in it?")
    chosen = getattr(g.picks, head)
    for cls, key in zip(classes, keys):
        st.button(ui.class_label(cls), key=f"game_pick_{cls}", on_click=g.pick, args=(head, cls % 5),
                  type="primary" if chosen == cls % 5 else "secondary", shortcut=key, width="stretch")


@st.fragment(run_every=1)
def countdown(deadline: float, limit: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        st.rerun()  # the whole page: it sees the clock ran out and scores the round
    st.progress(min(1.0, left / limit), text=f"⏱️ {math.ceil(left)} s left")


def reveal_stage(g: game.Game, x) -> None:
    result = g.last_result
    r = result.round
    if result.late:
        st.warning("Too late — a pick made after the time limit does not count.", icon="⏰")
    elif result.timed_out:
        st.info("Time's up! The picks you had made counted.", icon="⏱️")
    title, action = st.columns([7, 3], vertical_alignment="center")  # Next round at the top: no scrolling
    title.subheader(f"You +{result.human_points} · {game.opponent_label(g.opponent)} +{result.model_points}"
                    + (f" · 🔥 {result.human_streak} perfect rounds in a row!" if result.human_streak > 1 else ""),
                    anchor=False)
    last = g.is_last_round
    action.button("See the results" if last else "Next round", icon="🏁" if last else "▶️", type="primary",
                  on_click=advance, args=(g,), shortcut="Right", key="game_next", width="stretch",
                  help="Keyboard: → (not Enter, so a second Enter after Submit cannot skip this reveal)")
    columns = st.columns(3, gap="medium")
    with columns[0]:
        weight = game.round_pair(r, g.alpha).alpha
        ui.show_image(game.round_image(x, r, g.alpha), "the mix you saw" + (
            f": {weight:.0%} A + {1 - weight:.0%} B" if g.mode != "equal" else ""), factor=6)
    with columns[1]:
        ui.show_image(x[r.a_index], f"A: {ui.class_label(r.true_classes[0])}", factor=6)
    with columns[2]:
        ui.show_image(x[r.b_index], f"B: {ui.class_label(r.true_classes[1])}", factor=6)
    st.dataframe(reveal_table(result, g.opponent), hide_index=True)
    where_the_model_looked(g, x)


def where_the_model_looked(g: game.Game, x) -> None:
    """After the answer (this is only ever drawn in the reveal): each head's saliency map of the round's mix,
    behind a toggle whose choice is kept for the next rounds. The random guesser looks nowhere."""
    if g.opponent == ui.BASELINE:
        return
    kept = f"{MAPS_KEY}_kept"
    if not st.toggle("Where did the model look?", value=bool(st.session_state.get(kept)), key=MAPS_KEY,
                     help="Each head's saliency map of this mix: the brighter a pixel, the more it raised the "
                          "head's probability for the answer it gave. Shown only once you have answered."):
        st.session_state[kept] = False
        return
    st.session_state[kept] = True
    model = ui.get_model(g.opponent)
    if model is None:
        return
    r = g.last_result.round
    found = ui.pair_maps(model, game.round_pair(r, g.alpha), x)
    ui.show_maps(game.round_image(x, r, g.alpha), found, components=(x[r.a_index], x[r.b_index]))


def reveal_table(result: game.RoundResult, opponent: str) -> pd.DataFrame:
    """Right answers, yours (those that counted) and the opponent's (with its confidence; the random guesser has
    none)."""
    rows = []
    random_guesser = opponent == ui.BASELINE
    for head, truth, mine, theirs, confidence, me_right, it_right in zip(
            ("A", "B"), result.round.true_classes, result.human.classes(), result.model.classes(),
            result.model.confidence, result.human_correct, result.model_correct):
        rows.append({"Group": head, "Right answer": ui.class_label(truth),
                     "You": ("✅ " if me_right else "❌ ") + (ui.class_label(mine) if mine is not None else "—"),
                     game.opponent_label(opponent): ("✅ " if it_right else "❌ ")
                     + ui.class_label(theirs) + ("" if random_guesser else f" ({confidence:.0%} sure)")})
    return pd.DataFrame(rows)


def summary(g: game.Game) -> None:
    outcome = game.verdict(g.human_score, g.model_score)
    score = f"{g.human_score} to {g.model_score}"
    them = game.opponent_noun(g.opponent)
    if outcome == "human":
        st.success(f"**You beat {them}, {score}!**", icon="🏆")
        if st.session_state.get("game_balloons") != g.seed:
            st.session_state["game_balloons"] = g.seed
            st.balloons()
    elif outcome == "model":
        st.error(f"**{game.opponent_noun(g.opponent, sentence_start=True)} wins, {score}.** Try again?", icon="🤖")
    else:
        st.info(f"**A tie, {score}.**", icon="🤝")
    if st.session_state.get(ERROR_KEY):
        st.error(st.session_state[ERROR_KEY], icon="💾")
        if st.session_state.get(RETRY_KEY):
            st.button("Try saving again", icon="💾", on_click=save, args=(g,), key="game_save_again")
    elif g.score_id is not None:
        if g.lesson_note:  # lessons: its lesson closed before the game ended
            st.warning(g.lesson_note, icon="🎓")
        st.caption(rank_text(g.score_id, g.mode, in_lesson=g.lesson_id is not None))
    per_class = game.class_summary(g.results)
    st.markdown("#### Class by class")
    st.markdown(game.who_did_better(per_class, g.opponent))
    st.markdown(game.hardest_pair_sentence(g.results, g.opponent))
    them = game.opponent_label(g.opponent)
    st.dataframe(pd.DataFrame([{
        "Class": ui.class_label(c.class_index), "Came up": c.rounds, "You right": c.human_correct,
        f"{them} right": c.model_correct, "Better": {"human": "🙋 you", "model": f"🤖 {them.lower()}", "tie": "="}[c.winner],
    } for c in per_class]), hide_index=True)
    st.caption("This table counts every round of this game: a photo you left unanswered (the time ran out) "
               "counts as not right for you. The classroom chart below counts only answered picks, over every "
               + ("game of your lesson." if g.lesson_id is not None else "game played here."))
    st.button("Play again", icon="🔁", type="primary", on_click=quit_game, key="game_again")


def board_mode() -> str:
    """Which games the leaderboard and the classroom chart show: 50 / 50 or unequal mixes (kept apart)."""
    st.session_state.setdefault(BOARD_MODE_KEY, "equal")
    return st.segmented_control("Games with", list(game.MODES), format_func=game.MODES.get, required=True,
                                key=BOARD_MODE_KEY) or "equal"


def board_lesson(g: game.Game | None) -> dict | None:
    """The lesson whose games the leaderboard and the chart show (lessons, issue 16): the finished game's, else
    the one this student plays in; None: the server-wide board (games outside any lesson)."""
    if g is not None and g.stage == "over" and g.score_id is not None:
        if g.lesson_id is None:
            return None
        try:
            return ui.run_store().lesson(g.lesson_id)
        except DATABASE_ERRORS:  # a locked store: still the lesson's board (the board itself says it cannot read)
            return {"id": g.lesson_id, "name": "your lesson"}
    return lesson_join.joined()


def leaderboard(mode: str, lesson: dict | None = None) -> None:
    st.subheader("🏆 Leaderboard" + ("" if mode == "equal" else " · unequal mixes")
                 + (f" · lesson {ui.escape_markdown(lesson['name'])}" if lesson else ""))
    try:
        rows = ui.run_store().leaderboard(limit=LEADERBOARD_SIZE, mode=mode,
                                          lesson_id=lesson["id"] if lesson else None)
    except DATABASE_ERRORS as error:  # a locked or damaged store: say so, the page goes on
        st.warning(f"The leaderboard cannot be read right now ({type(error).__name__}: {error}).", icon="🏆")
        return
    if not rows:
        st.caption("No games yet — be the first on the board!")
        return
    titles = ui.model_titles()
    # Names go into a dataframe: shown as plain text, never interpreted as markdown or HTML.
    st.dataframe(pd.DataFrame([{
        "#": rank, "Player": row["player"], "Score": row["score"], "Opponent's score": row["model_score"],
        "Opponent": ui.model_title(row["opponent"], titles), "Time per round": time_limit_text(row["details"]),
        **({"Mixes": game.mode_text(row["mode"], (row["details"] or {}).get("alpha_range"))}
           if mode != "equal" else {}),
        "Date": ui.format_time(row["created_at"]),
    } for rank, row in enumerate(rows, start=1)]), hide_index=True, column_order=LEADERBOARD_ORDER, column_config={
        "#": st.column_config.NumberColumn(width="small"), "Score": st.column_config.NumberColumn(width="small"),
        "Opponent's score": st.column_config.NumberColumn("Opp. score", width="small"),
        "Time per round": st.column_config.TextColumn(width="small"),
        "Opponent": st.column_config.TextColumn(width="large")})


# What fits at 1280 px comes first; the long opponent title last (the table scrolls sideways for it).
LEADERBOARD_ORDER = ("#", "Player", "Score", "Opponent's score", "Time per round", "Mixes", "Date", "Opponent")


def time_limit_text(details: dict | None) -> str:
    """A leaderboard game's clock: ``"10 s"``, ``"no limit"`` (or ``"-"`` for a game saved without details)."""
    if not details or "time_limit" not in details:
        return "-"
    return f"{details['time_limit']:g} s" if details["time_limit"] else "no limit"


def classroom(mode: str, lesson: dict | None = None) -> None:
    st.subheader("👩‍🏫 People vs models, over every game played "
                 + (f"in the lesson {ui.escape_markdown(lesson['name'])}" if lesson else "here")
                 + ("" if mode == "equal" else " with unequal mixes"))
    try:
        rows = game.classroom_summary(ui.run_store().class_accuracy(ignored_models=[ui.BASELINE], mode=mode,
                                                                    lesson_id=lesson["id"] if lesson else None))
    except DATABASE_ERRORS as error:
        st.warning(f"The class-by-class results cannot be read right now ({type(error).__name__}: {error}).",
                   icon="👩‍🏫")
        return
    if not rows:
        st.caption("After the first game, this shows per class how often people and models were right.")
        return
    if all(r["model_accuracy"] is None for r in rows):
        st.markdown("So far people have played only the random guesser, which is no model: the chart shows how "
                    "often people were right on each class; the models' bars appear after a game against a "
                    "trained model.")
    else:
        st.markdown(game.classroom_sentence(rows))
    st.plotly_chart(figures.classroom(rows), key="game_classroom", config={"displayModeBar": False})
    st.caption("Counted: every finished game's answered picks, one per photo in the mix. A photo the player left "
               "unnamed (or named after the clock ran out) is not counted, and quit games are not saved. Games "
               "against the random guesser count for the people, not for the models."
               + (" Only this lesson's games." if lesson else " Games played in a lesson count in their lesson."))


@st.fragment
def round_section(x) -> None:
    """The game in progress. A fragment: a pick, Submit and Next round rerun only this section (not the sidebar
    and its catalog scan, not the page). Quitting, or the last round's results, rerun the whole page (the setup,
    or the summary and the boards)."""
    g = st.session_state.get(GAME_KEY)
    if g is None or g.stage == "over":
        st.rerun()
    scoreboard(g)
    if g.stage == "guess":
        guess_stage(g, x)
    else:
        reveal_stage(g, x)


# ----------------------------------------------------------------------------------------------------- page

resume_from_link()
link_to_game()
current = st.session_state.get(GAME_KEY)
if current is None or current.stage == "over":
    header()  # not during a round: on a projector the picture, the picks and Next round must fit one screen
splits = ui.require_data()
if current is None or current.stage == "over":
    if current is None:
        setup(splits.y_test)
    else:
        summary(current)
    shown_mode, shown_lesson = board_mode(), board_lesson(current)
    leaderboard(shown_mode, shown_lesson)
    classroom(shown_mode, shown_lesson)
else:
    round_section(splits.x_test)
