"""Mixer: pick two test images (or let chance pick), mix them, and see what the model makes of the mix.

The pair on screen lives in the URL (``?a=<test index>&b=<test index>&w=<weight of A>``), so a copied link
shows the same mix; a bad link value gives a warning and a random (or default) value instead.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

import numpy as np
import streamlit as st

from cifarmix import figures, game, mixing, pairs
from pages import ui, use_app_navigation

use_app_navigation()  # first: a legacy run of this page runs app.py instead

PAIR_KEY = "mixer_pair"
GALLERY_SEED_KEY = "mixer_gallery_seed"
GALLERY_SIZES = (6, 12, 18)
GALLERY_COLUMNS = 6
CONTROLS_HEIGHT = 170  # px: the same for the three columns, so the three images line up
SIDES = {"a": ("Component A", range(5)), "b": ("Component B", range(5, 10))}


# ------------------------------------------------------------------------------------------------ state


def rng() -> np.random.Generator:
    return np.random.default_rng(secrets.randbits(64))


def current_pair(y: np.ndarray) -> pairs.Pair:
    """The pair of this session; on a session's first visit, the one in the URL (warning about bad values)."""
    if PAIR_KEY not in st.session_state:
        pair, problems = pairs.pair_from_query(st.query_params.to_dict(), y, rng())
        for problem in problems:
            st.warning(ui.escape_markdown(problem), icon="🔗")
        st.session_state[PAIR_KEY] = pair or pairs.random_pair(y, rng())
    return st.session_state[PAIR_KEY]


def set_pair(pair: pairs.Pair) -> None:
    st.session_state[PAIR_KEY] = pair


def index_key(side: str) -> str:
    return f"{side}_index"


def on_class(side: str, y: np.ndarray) -> None:
    """A new class for one component (or the 🎲 button): a random image of that class."""
    cls = st.session_state[f"mixer_{side}_class"]
    index = int(rng().choice(pairs.class_members(y, cls)))
    set_pair(replace(st.session_state[PAIR_KEY], **{index_key(side): index}))


def on_number(side: str, y: np.ndarray) -> None:
    """Image n° k of the component's class."""
    members = pairs.class_members(y, st.session_state[f"mixer_{side}_class"])
    number = min(max(int(st.session_state[f"mixer_{side}_number"]), 1), len(members))
    set_pair(replace(st.session_state[PAIR_KEY], **{index_key(side): int(members[number - 1])}))


def on_alpha() -> None:
    set_pair(replace(st.session_state[PAIR_KEY], alpha=round(float(st.session_state["mixer_alpha"]), 4)))


def on_new_pair(y: np.ndarray) -> None:
    set_pair(pairs.random_pair(y, rng(), alpha=st.session_state[PAIR_KEY].alpha))


def sync_widgets(pair: pairs.Pair, y: np.ndarray) -> None:
    """Point the widgets at the pair (before they are drawn), whatever changed it: a widget, a button, the URL."""
    for side, index in (("a", pair.a_index), ("b", pair.b_index)):
        cls = int(y[index])
        st.session_state[f"mixer_{side}_class"] = cls
        st.session_state[f"mixer_{side}_number"] = int(np.searchsorted(pairs.class_members(y, cls), index)) + 1
    st.session_state["mixer_alpha"] = pair.alpha


# --------------------------------------------------------------------------------------------- sections


def header() -> None:
    ui.page_header("🎨 Mixer", "Two CIFAR-10 photos — one airplane/automobile/bird/cat/deer, one dog/frog/horse/"
                   "ship/truck — averaged pixel by pixel. Can you, and the model, still tell what is in the mix?")


def pair_view(pair: pairs.Pair, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each component with its pickers above it, then the mix with the weight; returns the mix."""
    sync_widgets(pair, y)
    top = st.columns([2, 5], vertical_alignment="center")
    top[0].button("New random pair", icon="🎲", on_click=on_new_pair, args=(y,), type="primary", width="stretch")
    top[1].caption("…or choose each photo below: its class, which photo of that class (or 🎲 for a random "
                   "one), and how much of each goes into the mix.")
    columns = st.columns(3, gap="large")
    for column, side, index in zip(columns, SIDES, (pair.a_index, pair.b_index)):
        with column:
            with st.container(height=CONTROLS_HEIGHT, border=False):
                component_picker(side, y)
            ui.show_image(x[index], f"{SIDES[side][0]}: {ui.class_label(y[index])} (test image {index})")
    with columns[2]:
        with st.container(height=CONTROLS_HEIGHT, border=False):
            st.slider("Weight of A in the mix", mixing.ALPHA_MIN, mixing.ALPHA_MAX, step=mixing.ALPHA_STEP,
                      key="mixer_alpha", on_change=on_alpha,
                      help="0.5 is a plain average (the task's setting); move it to let one photo dominate.")
        mixed = pair.image(x)
        ui.show_image(mixed, f"The mix: {pair.alpha:.0%} A + {1 - pair.alpha:.0%} B")
    return mixed


def component_picker(side: str, y: np.ndarray) -> None:
    label, classes = SIDES[side]
    st.selectbox(f"{label}", list(classes), format_func=ui.class_label, key=f"mixer_{side}_class",
                 on_change=on_class, args=(side, y))
    count = len(pairs.class_members(y, st.session_state[f"mixer_{side}_class"]))
    inner = st.columns([4, 1], vertical_alignment="bottom")
    inner[0].number_input(f"Photo n° (of {count:,})", min_value=1, max_value=count, step=1,
                          key=f"mixer_{side}_number", on_change=on_number, args=(side, y))
    inner[1].button("", icon="🎲", key=f"mixer_{side}_another", on_click=on_class, args=(side, y),
                    help="Another random photo of this class", width="stretch")


def active_model() -> ui.SharedModel | None:
    """The sidebar's model, loaded (None, with a box saying why, when there is none or it cannot load)."""
    entry = ui.active_model()
    if entry is None:
        ui.show_no_model("the model's answers")
        return None
    return ui.get_model(entry.reference)


def model_answers(pair: pairs.Pair, mixed: np.ndarray, y: np.ndarray, model: ui.SharedModel | None) -> None:
    if model is None:
        return
    probs = model.predict(mixed[None])
    answer = game.model_answer(probs)
    truth = (int(y[pair.a_index]), int(y[pair.b_index]))
    said = []
    for guess, right, confidence in zip(answer.classes(), truth, answer.confidence):
        mark = "✅" if guess == right else f"❌ (the answer is {ui.class_label(right)})"
        said.append(f"**{ui.class_label(guess)}** ({confidence:.0%}) {mark}")
    st.markdown(f"{ui.escape_markdown(model.title)} says: " + " and ".join(said))
    columns = st.columns(2, gap="medium")
    for column, head, classes, right in zip(columns, ("first", "second"), (SIDES["a"][1], SIDES["b"][1]), truth):
        column.plotly_chart(figures.probabilities(probs[head][0], list(classes), right,
                                                  f"{'First' if head == 'first' else 'Second'} head"),
                            key=f"mixer_probs_{head}", config={"displayModeBar": False})


def gallery(x: np.ndarray, y: np.ndarray, alpha: float, model: ui.SharedModel | None) -> None:
    st.subheader("Can you guess the classes?")
    st.session_state.setdefault(GALLERY_SEED_KEY, secrets.randbits(32))
    columns = st.columns([1.8, 3.4, 2], vertical_alignment="bottom")
    count = columns[0].segmented_control("Mixes", GALLERY_SIZES, default=GALLERY_SIZES[0], required=True,
                                         key="mixer_gallery_count")
    show = columns[1].segmented_control(
        "Show", pairs.GALLERY_SHOWS, default="nothing", required=True, key="mixer_gallery_show",
        format_func={"nothing": "Nothing", "model": "🤖 Model", "answers": "Answers"}.get,
        help="Nothing: guess first. Model: the model's guesses, without the answers. Answers: the right classes, "
             "and whether the model got them.")
    columns[2].button("🔀 New gallery", on_click=lambda: st.session_state.update(
        {GALLERY_SEED_KEY: secrets.randbits(32)}))
    shown = pairs.gallery_pairs(y, st.session_state[GALLERY_SEED_KEY], count or GALLERY_SIZES[0], alpha)
    mixes = pairs.pair_images(x, shown)
    answers = model.predict(mixes) if model is not None and len(mixes) else None
    weight = "" if alpha == pairs.DEFAULT_ALPHA else f" Mixed like the pair above: {alpha:.0%} A + {1 - alpha:.0%} B."
    if model is None:
        st.caption("No trained model yet: only the answers can be shown." + weight)
    else:
        st.caption(f"🤖 = the guesses of {ui.escape_markdown(model.title)}." + weight)
    for start in range(0, len(shown), GALLERY_COLUMNS):
        row = st.columns(GALLERY_COLUMNS)
        for offset, column in enumerate(row):
            if start + offset >= len(shown):
                break
            i = start + offset
            truth = (int(y[shown[i].a_index]), int(y[shown[i].b_index]))
            guess = None if answers is None else game.model_answer(answers, i).classes()
            with column:
                ui.show_image(mixes[i], pairs.gallery_caption(truth, guess, show or "nothing"), factor=4)


# ----------------------------------------------------------------------------------------------------- page

header()
splits = ui.require_data()
pair = current_pair(splits.y_test)
st.query_params.from_dict(pair.to_query())
mix = pair_view(pair, splits.x_test, splits.y_test)
st.subheader("What the model says")
model = active_model()
model_answers(pair, mix, splits.y_test, model)
st.divider()
gallery(splits.x_test, splits.y_test, pair.alpha, model)
