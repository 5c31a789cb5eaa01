"""Mixer: pick two test images (or let chance pick), or your own photos, mix them, and see what the model makes of
the mix, and where each of its heads looks.

The pair on screen lives in the URL (``?a=<test index>&b=<test index>&w=<weight of A>``), so a copied link
shows the same mix; a bad link value gives a warning and a random (or default) value instead. Your own photos
(an upload or the camera) never go into the link, and stay in memory for this session only: an upload is
decoded by ``cifarmix.photos`` and kept, decoded, in the session state; nothing is written to disk.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

import numpy as np
import streamlit as st

from cifarmix import breakdowns, figures, game, mixing, models, pairs, photos
from pages import ui, use_app_navigation

use_app_navigation()  # first: a legacy run of this page runs app.py instead

PAIR_KEY = "mixer_pair"
GALLERY_SEED_KEY = "mixer_gallery_seed"
GALLERY_ALPHA_KEY = "mixer_gallery_alpha"  # the weight the gallery mixes at: the pair's, when it was last drawn
GALLERY_SIZES = (6, 12, 18)
GALLERY_COLUMNS = 3  # large enough to read on a projector at 1280 px (6, 12 and 18 mixes: whole rows)
GALLERY_ZOOM = 6  # 32 -> 192 pixels
CONTROLS_HEIGHT = 250  # px: the same for the three columns, so the three images line up
SIDES = {"a": ("Component A", range(5)), "b": ("Component B", range(5, 10))}
SOURCES = {"cifar": "🖼️ A CIFAR-10 test photo", "upload": "📁 Your photo: upload",
           "camera": "📷 Your photo: camera"}
UPLOAD_TYPES = ["jpg", "jpeg", "png", "gif", "webp", "avif", "bmp", "tif", "tiff"]
MAPS_KEY = "mixer_maps"
SWEEP_HINT_ALPHAS = "0.1,0.3,0.5,0.7,0.9"


@dataclass(frozen=True)
class Component:
    """One side of the mix as shown: its 32 x 32 pixels, and either a test image (``index``, ``cls``) or a photo
    of the user's (``photo``); ``pixels`` is None while a photo is still to be chosen."""

    side: str
    pixels: np.ndarray | None
    index: int | None = None
    cls: int | None = None
    photo: photos.Photo | None = None

    @property
    def is_photo(self) -> bool:
        return self.index is None


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


def pair_view(pair: pairs.Pair, x: np.ndarray, y: np.ndarray,
              entry=None) -> tuple[np.ndarray | None, tuple[Component, Component]]:
    """Each component with its pickers (or its photo) above it, then the mix with the weight and, for the active
    model ``entry``, how often it is right at this weight. Returns the mix (None while a photo is missing) and
    the two components."""
    sync_widgets(pair, y)
    top = st.columns([2, 5], vertical_alignment="center")
    top[0].button("New random pair", icon="🎲", on_click=on_new_pair, args=(y,), type="primary", width="stretch")
    top[1].caption("…or choose each photo below: a CIFAR-10 photo (its class, which one, or 🎲), or your own "
                   "(upload one, or take one with the camera), and how much of each goes into the mix.")
    columns = st.columns(3, gap="large")
    shown = []
    for column, side, index in zip(columns, SIDES, (pair.a_index, pair.b_index)):
        with column:
            shown.append(component_view(side, index, x, y))
    components = (shown[0], shown[1])
    with columns[2]:
        with st.container(height=CONTROLS_HEIGHT, border=False):
            st.slider("Weight of A in the mix", mixing.ALPHA_MIN, mixing.ALPHA_MAX, step=mixing.ALPHA_STEP,
                      key="mixer_alpha", on_change=on_alpha,
                      help="0.5 is a plain average (the task's setting); move it to let one photo dominate.")
            if entry is not None:
                weight_caption(entry, pair.alpha)
        if any(component.pixels is None for component in components):
            st.info("Choose a photo for each side to see the mix.", icon="🖼️")
            return None, components
        mixed = mixing.mix(components[0].pixels, components[1].pixels, pair.alpha)
        ui.show_image(mixed, f"The mix: {pair.alpha:.0%} A + {1 - pair.alpha:.0%} B")
        if any(component.is_photo for component in components):
            st.caption("Your photos stay in this browser session: they are not in the page's link, and nothing is "
                       "saved.")
    return mixed, components


def component_view(side: str, index: int, x: np.ndarray, y: np.ndarray) -> Component:
    """One side: where its photo comes from, then the CIFAR-10 pickers and test image, or the user's photo."""
    label = SIDES[side][0]
    with st.container(height=CONTROLS_HEIGHT, border=False):
        source = st.selectbox(label, list(SOURCES), format_func=SOURCES.get, key=f"mixer_{side}_source",
                              help="A CIFAR-10 test photo, or one of your own: uploaded, or taken with this "
                                   "device's camera (it is cropped to its centre square and shrunk to 32 x 32, "
                                   "as the model sees it).")
        if source == "cifar":
            component_picker(side, y)
        elif source == "upload":
            photo = own_photo(side, source)
    if source == "cifar":
        ui.show_image(x[index], f"{label}: {ui.class_label(y[index])} (test image {index})")
        return Component(side, x[index], index=index, cls=int(y[index]))
    if source == "camera":  # too tall for the controls' box
        photo = own_photo(side, source)
    if isinstance(photo, str):  # below the box, where the whole sentence shows
        st.error(ui.escape_markdown(photo), icon="🖼️")
        return Component(side, None)
    if photo is None:
        return Component(side, None)
    inner = st.columns([3, 2], vertical_alignment="bottom")
    inner[0].image(photos.framed(photo), caption="Your photo (the square goes into the mix)", width="stretch")
    with inner[1]:
        ui.show_image(photo.pixels, "What the model sees: 32 × 32", factor=4)
    if photo.notes:
        st.caption(ui.escape_markdown("; ".join(photo.notes).capitalize() + "."))
    group = "airplane, automobile, bird, cat or deer" if side == "a" else "dog, frog, horse, ship or truck"
    st.caption(f"The {'first' if side == 'a' else 'second'} head can only answer {group}.")
    return Component(side, photo.pixels, photo=photo)


def own_photo(side: str, source: str) -> photos.Photo | str | None:
    """The user's photo for one side from the uploader or the camera: None until there is one, the one sentence
    saying why when the upload cannot be used. The decoded photo (or the sentence) is kept in the session state
    with the upload's id, so an upload is decoded once."""
    if source == "upload":
        upload = st.file_uploader("Your photo", type=UPLOAD_TYPES, key=f"mixer_{side}_upload",
                                  help="JPEG, PNG, GIF, WebP, AVIF, BMP or TIFF, up to 20 MB; read in memory, "
                                       "never saved.")
    else:
        upload = st.camera_input("Take a photo", key=f"mixer_{side}_camera",
                                 help="The picture stays in this browser session; nothing is saved.")
    kept_key = f"mixer_{side}_photo"
    if upload is None:
        st.session_state.pop(kept_key, None)
        return None
    file_id = getattr(upload, "file_id", None) or id(upload)
    kept = st.session_state.get(kept_key)
    if kept is None or kept[0] != (source, file_id):
        try:
            kept = ((source, file_id), photos.load_photo(upload))
        except photos.PhotoError as error:
            kept = ((source, file_id), str(error))
        st.session_state[kept_key] = kept
    return kept[1]


def weight_caption(entry, alpha: float) -> None:
    """Beside the slider: how often the active model is right at this weight, read from a stored weight sweep
    of its current file (interpolated between the measured weights), or how to measure it."""
    try:
        found = breakdowns.latest_sweep(entry, ui.run_store())
    except (OSError, ValueError):
        return
    if found is None:
        how = (f"the Runs page (run #{entry.run_id}), or " if entry.run_id is not None else "")
        st.caption(f"How often is the model right at each weight? Measure it on {how}the command line: "
                   f"`python -m cifarmix evaluate {entry.reference} --alphas {SWEEP_HINT_ALPHAS}` (about a minute).")
        return
    at = breakdowns.accuracy_at(found["points"], alpha)
    margin = f" ± {at['margin']:.0%}" if at["margin"] is not None else ""
    where = (f" (measured at {at['measured_at']:g}, the nearest weight swept)" if at["measured_at"] is not None
             else "")
    settings = found["settings"]
    st.caption(f"At this weight the model is right **{at['mean_accuracy']:.0%}**{margin} of the time{where}: "
               f"first head {at['head_first']:.0%}, second {at['head_second']:.0%} "
               f"({settings['repeats'] * settings['pairs']:,} test pairs per weight; ± is the 95% margin).")


def component_picker(side: str, y: np.ndarray) -> None:
    _, classes = SIDES[side]
    st.selectbox("Class", list(classes), format_func=ui.class_label, key=f"mixer_{side}_class",
                 on_change=on_class, args=(side, y))
    count = len(pairs.class_members(y, st.session_state[f"mixer_{side}_class"]))
    inner = st.columns([4, 1], vertical_alignment="bottom")
    inner[0].number_input(f"Photo n° (of {count:,})", min_value=1, max_value=count, step=1,
                          key=f"mixer_{side}_number", on_change=on_number, args=(side, y))
    inner[1].button("", icon="🎲", key=f"mixer_{side}_another", on_click=on_class, args=(side, y),
                    help="Another random photo of this class", width="stretch")


def active_model(entry) -> ui.SharedModel | None:
    """The sidebar's model (``entry``), loaded (None, with a box saying why, when there is none or it cannot
    load)."""
    if entry is None:
        ui.show_no_model("the model's answers")
        return None
    return ui.get_model(entry.reference)


def model_answers(components: tuple[Component, Component], mixed: np.ndarray, model: ui.SharedModel | None,
                  pair: pairs.Pair, x: np.ndarray) -> None:
    if model is None:
        return
    if any(component.is_photo for component in components):
        probs = model.predict(mixed[None])  # the user's photos: never in a server-wide cache
    else:
        probs = model.predict_pairs([pair], x)  # the mix of ``pair``: answered once per server
    answer = game.model_answer(probs)
    truth = tuple(component.cls for component in components)
    said = []
    for guess, right, confidence in zip(answer.classes(), truth, answer.confidence):
        mark = ("" if right is None else "✅" if guess == right else
                f"❌ (the answer is {ui.class_label(right)})")
        said.append(f"**{ui.class_label(guess)}** ({confidence:.0%}) {mark}".rstrip())
    st.markdown(f"{ui.escape_markdown(model.title)} says: " + " and ".join(said))
    columns = st.columns(2, gap="medium")
    for column, head, classes, right in zip(columns, ("first", "second"), (SIDES["a"][1], SIDES["b"][1]), truth):
        column.plotly_chart(figures.probabilities(probs[head][0], list(classes), right,
                                                  f"{'First' if head == 'first' else 'Second'} head"),
                            key=f"mixer_probs_{head}", config={"displayModeBar": False})


def where_heads_look(pair: pairs.Pair, components: tuple[Component, Component], mixed: np.ndarray, x: np.ndarray,
                     model: ui.SharedModel | None) -> None:
    """Behind a toggle (off by default, so a plain Mixer click never waits for it): each head's saliency map over
    the mix and over its own component. Test-image mixes are cached per server, photo mixes per session."""
    if model is None:
        return
    if not st.toggle("Where does each head look?", key=MAPS_KEY,
                     help="Integrated gradients through the whole model (its test-time views included): the "
                          "brighter a pixel, the more it raised the head's probability for its answer."):
        return
    if any(component.is_photo for component in components):
        found = ui.private_maps(model, mixed)
    else:
        found = ui.pair_maps(model, pair, x)
    ui.show_maps(mixed, found, components=(components[0].pixels, components[1].pixels))
    st.caption("Bright yellow: the pixels that most raised the head's probability for its answer; unmarked "
               "pixels did not help it (or spoke against it). The same map is drawn over the mix and over the "
               "component that head names.")


def loaded_model(entry) -> ui.SharedModel | None:
    """The sidebar's model for the gallery, or None, quietly (the section above already said why it is None)."""
    try:
        return None if entry is None else ui.shared_model(entry.reference)
    except (models.ModelError, ValueError):
        return None


@st.fragment
def pair_section(x: np.ndarray, y: np.ndarray, entry) -> None:
    """The pair, its controls, the mix and what the model says. A fragment: a new pair or another photo reruns
    only this section; a new weight reruns the whole page (the gallery mixes at the pair's weight)."""
    pair = current_pair(y)
    if st.session_state.setdefault(GALLERY_ALPHA_KEY, pair.alpha) != pair.alpha:
        st.session_state[GALLERY_ALPHA_KEY] = pair.alpha
        st.rerun()
    st.query_params.from_dict(pair.to_query())
    mix, sides = pair_view(pair, x, y, entry)
    st.subheader("What the model says")
    model = active_model(entry)
    if mix is not None:
        model_answers(sides, mix, model, pair, x)
        where_heads_look(pair, sides, mix, x, model)


@st.fragment
def gallery(x: np.ndarray, y: np.ndarray, model: ui.SharedModel | None) -> None:
    """A fragment: its own controls rerun only the gallery."""
    alpha = st.session_state.setdefault(GALLERY_ALPHA_KEY, current_pair(y).alpha)
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
    answers = model.predict_pairs(shown, x) if model is not None and shown else None  # one batch, kept
    weight = "" if alpha == pairs.DEFAULT_ALPHA else f" Mixed like the pair above: {alpha:.0%} A + {1 - alpha:.0%} B."
    if model is None:
        st.caption("No trained model yet: only the answers can be shown." + weight)
    else:
        st.caption(f"🤖 = the guesses of {ui.escape_markdown(model.title)}." + weight)
    if show == "answers" and model is not None:
        st.caption("Key: ✅ cat — the model named it right · ❌ bird → cat — the model said bird, it is a cat; "
                   "the first name is component A's (airplane … deer), the second component B's (dog … truck).")
    for start in range(0, len(shown), GALLERY_COLUMNS):
        row = st.columns(GALLERY_COLUMNS)
        for offset, column in enumerate(row):
            if start + offset >= len(shown):
                break
            i = start + offset
            truth = (int(y[shown[i].a_index]), int(y[shown[i].b_index]))
            guess = None if answers is None else game.model_answer(answers, i).classes()
            with column:
                ui.show_image(mixes[i], pairs.gallery_caption(truth, guess, show or "nothing"), factor=GALLERY_ZOOM)


# ----------------------------------------------------------------------------------------------------- page

header()
splits = ui.require_data()
active = ui.active_model()
pair_section(splits.x_test, splits.y_test, active)
st.divider()
gallery(splits.x_test, splits.y_test, loaded_model(active))
