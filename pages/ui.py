"""Streamlit helpers shared by every page: data, run store and model loading, the sidebar, and display bits.

Import it from a page as ``from pages import ui``. Everything here is stable API for the pages; the core
(``cifarmix``) never imports it.

The sidebar is rendered by ``app.py`` (``ui.sidebar()`` before ``page.run()``); pages must not call
``sidebar()`` again (its widgets would be duplicated). In tests, start ``AppTest.from_file("app.py")`` and
``switch_page``: AppTest runs every run as a legacy pages-folder app, and ``pages.use_app_navigation`` (each page
calls it first) runs ``app.py`` in the page's place, so a switched-to page has the sidebar and the active model,
as in a browser.

Data
    ``require_data()``           the CIFAR-10 splits, or the one help box and ``st.stop()`` (use at the top of a page)
    ``data_available()``         True when CIFAR-10 loaded (for pages that still offer something without it)
    ``no_data_box()``            the help box for the current failure (pair it with ``data_available()``)
    ``data_status()``            a ``DataStatus`` (splits or the error) without stopping; cached per server
    ``show_data_help(message)``  the help box for a given message: what went wrong and how to get CIFAR-10

Run store and models
    ``require_home()``           the home folder and run store, or one error box and ``st.stop()`` (app.py calls it)
    ``run_store()``              the server's ``RunStore`` (one per database file)
    ``model_entries()``          ``catalog.available(...)``: shipped models, then finished runs
    ``active_model()``           the ``ModelEntry`` picked in the sidebar, or None
    ``shared_model(reference)``  a loaded ``SharedModel`` (cached once per server, lock-guarded); raises ModelError
                                 or ValueError. ``SharedModel.predict(images)`` -> ``{"first", "second"}`` probs;
                                 ``SharedModel.predict_pairs(pairs, x)`` the same for test-image mixes, cached;
                                 ``SharedModel.explain(image)`` -> each head's saliency map (under the same lock)
    ``get_model(reference)``     the same, or None after showing a clear error box
    ``BASELINE``                 the reference of the untrained ``random`` baseline (always available)
    ``model_title(reference)``   a readable name for a model reference (``model_titles()``: all of them at once)
    ``run_id_from_link()``       the ``?run=`` of the URL as a run id, or None (warning once about a bad one)
    ``show_no_model(what)``      the "no trained model yet" box, with links to what still works

Where each head looks (saliency maps; the first map of a model compiles for a few seconds, then ~0.2 s)
    ``pair_maps(model, pair, x)``  maps of a test-image mix, cached per server by (model file, pair, weight)
    ``image_maps(model, image)``  maps of a data-set image (a validation mistake), cached per server by content
    ``private_maps(model, image)`` maps of a mix of the user's own photos, cached in the session only
    ``show_maps(mix, found, components, component_names)``  each head's map over the mix and its component

Layout and display
    ``sidebar()``                the shared sidebar: the active-model picker and the data status (app.py calls it)
    ``page_header(title, intro)``
    ``class_label(index)``       "🐱 cat" for a CIFAR-10 class index 0-9 (``cifarmix.data.class_label``)
    ``upscale(image, factor)``   nearest-neighbour enlargement of a (32, 32, 3) image, as uint8
    ``show_image(image, caption, factor)``
    ``escape_markdown(text)``    user text made safe for any element that renders markdown
    ``format_time(iso)``         "2025-01-31 12:00 UTC" from a run-store timestamp
    ``PAGE_MIXER`` / ``PAGE_GAME`` / ``PAGE_TRAIN`` / ``PAGE_RUNS`` / ``PAGE_LESSON``  page paths for ``st.page_link``

Performance
    ``keep_keras_kernels()``     Streamlit's ``keras.backend.clear_session()`` after each run, made a no-op (it
                                 cleared TensorFlow's kernel cache: every compiled call paid again). Called here.
    ``freeze_long_lived()``      ``gc.freeze()``: Streamlit runs ``keras.backend.clear_session()`` (a full
                                 ``gc.collect()``) after every script run; see the function. Already called here.
"""

from __future__ import annotations

import gc
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from cifarmix import answers, catalog, data, game, models, pairs, paths, saliency
from cifarmix.store import RunStore, parse_run_id

BASELINE = game.BASELINE_OPPONENT
ACTIVE_MODEL_KEY = "sidebar_model"
MODEL_CACHE_ENTRIES = 4  # models kept loaded per server (each is shared by every session)


PAGE_MIXER = "pages/mixer.py"
PAGE_GAME = "pages/game.py"
PAGE_TRAIN = "pages/train.py"
PAGE_RUNS = "pages/runs.py"
PAGE_LESSON = "pages/lesson.py"




def freeze_long_lived() -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``).

    Streamlit calls ``keras.backend.clear_session()`` after every script run, and that runs a full
    ``gc.collect()``: with TensorFlow's ~400,000 objects it costs 0.1-1 s per click. Freezing the long-lived
    objects (imports, loaded data and models) once they exist keeps every rerun fast. Called at import and after
    each cached load; cheap to call again.
    """
    gc.freeze()


def keep_keras_kernels() -> None:
    """Stop Streamlit's reset of Keras after every script run (``keras.backend.clear_session()``).

    Streamlit makes that call for apps that build models inside the script. Here models are loaded once per
    server and shared by every session (``shared_model``); the call builds nothing back, but it clears
    TensorFlow's kernel cache, so after every click the next call of each compiled function instantiates it
    again: a saliency map of the champion took ~2 s instead of ~0.3 s, and every prediction paid too. Streamlit
    looks the function up on ``keras.backend`` at each run: it now finds one that keeps the kernels (and the full
    ``gc.collect()`` that ``freeze_long_lived`` works around). The server process never trains (training runs
    are processes of their own), so nothing here needs Keras' global state reset. Called at import; idempotent.
    """
    import keras

    if getattr(keras.backend.clear_session, "_cifarmix_kept", False):
        return

    def clear_session(free_memory: bool = True) -> None:
        """Kept by cifarmix's app (see ``pages.ui.keep_keras_kernels``): nothing to reset per script run."""

    clear_session._cifarmix_kept = True
    keras.backend.clear_session = clear_session


# ------------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataStatus:
    """The outcome of loading CIFAR-10 once: the splits, or the error message; and where it came from."""

    splits: data.Splits | None
    error: str | None
    source: str

    @property
    def ok(self) -> bool:
        return self.splits is not None


@st.cache_resource(show_spinner="Loading CIFAR-10 (the first time takes a few seconds)…")
def _load_data(source: str, home: str) -> DataStatus:
    """Load the splits once per server for this data source and home (both are the cache key)."""
    try:
        status = DataStatus(data.load_splits(), None, source)
    except data.DataError as error:
        return DataStatus(None, str(error), source)
    freeze_long_lived()
    return status


def data_status() -> DataStatus:
    """CIFAR-10 as this server is configured (``CIFARMIX_DATA`` or Keras' download), loaded once and cached.

    A failure is cached too (so an offline server does not retry a download on every click); the help box's
    "Try again" button clears it.
    """
    return _load_data(data.describe_source(), os.environ.get(paths.HOME_ENV, ""))


def show_data_help(message: str) -> None:
    """The one box a page shows instead of its content when CIFAR-10 cannot be loaded."""
    with st.container(border=True):
        st.error(
            "**CIFAR-10 is not available, so this page cannot show images yet.**\n\n"
            f"What happened: {escape_markdown(message.replace(data.HOW_TO_FIX, '').strip())}\n\n"
            "**How to get it** (then press *Try again*, or restart the app):\n"
            "- *Online:* nothing to do — Keras downloads CIFAR-10 (about 170 MB) on first use.\n"
            "- *Offline:* start the app with `CIFARMIX_DATA` pointing at the official "
            "`cifar-10-python.tar.gz` (or an extracted `cifar-10-batches-py` folder), e.g.\n\n"
            "  `CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz streamlit run app.py`",
            icon="📦",
        )
        if st.button("Try again", icon="🔄", key="data_retry"):
            _load_data.clear()
            st.rerun()


def data_available() -> bool:
    """True when CIFAR-10 is loaded (or loads now); pages that work without data use it with ``no_data_box``."""
    return data_status().ok


def no_data_box() -> None:
    """The help box for the current data failure (nothing when the data is fine)."""
    status = data_status()
    if not status.ok:
        show_data_help(status.error or "unknown error")


def require_data() -> data.Splits:
    """The CIFAR-10 splits; if they cannot be loaded, show the help box and stop the page there."""
    status = data_status()
    if not status.ok:
        show_data_help(status.error or "unknown error")
        st.stop()
    return status.splits


# ------------------------------------------------------------------------------------------- store and models


def require_home() -> None:
    """The cifarmix home folder and its run store, or one error box saying which folder or file and what is wrong
    (``paths.HomeError``, ``store.StoreError``) and ``st.stop()``: no page can work without them."""
    try:
        paths.home()
        run_store()
    except paths.HomeError as error:
        st.error(f"**cifarmix cannot keep its files, so no page can open.** {escape_markdown(error)}", icon="🗄️")
        st.stop()


@st.cache_resource
def _run_store(url: str) -> RunStore:
    return RunStore(url)


def run_store() -> RunStore:
    """The run store of this server (``$CIFARMIX_STORE``, default the file under ``$CIFARMIX_HOME``), opened once
    per database."""
    return _run_store(paths.store_url())


def model_entries() -> list[catalog.ModelEntry]:
    """Every trained model a page can offer: shipped ones (``artifacts/models``) first, then finished runs."""
    return catalog.available(run_store())


class SharedModel:
    """One loaded model shared by every session of the server; ``predict`` holds a lock (Keras is not
    re-entrant across threads, and two sessions may ask at once).

    Attributes:
        reference: what it was loaded from (``BASELINE``, a shipped name, ``run:12``).
        title: a readable name.
        model: the ``keras.Model`` (use ``predict`` rather than calling it directly).
        key: the reference with the file's modification time (what caches of its answers are keyed by).
        explained: True once a saliency map was computed (its function compiled: the next maps take ~0.2 s).
        answers: its answers to test-image mixes, each pair computed once (``predict_pairs``).
    """

    def __init__(self, model, reference: str, title: str, key: str | None = None):
        self.model = model
        self.reference = reference
        self.title = title
        self.key = key or reference
        self.explained = False
        self._lock = threading.Lock()
        self.answers = answers.AnswerCache(self.predict)

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``models.predict`` under the lock: ``{"first": (N, 5), "second": (N, 5)}`` probabilities."""
        with self._lock:
            return models.predict(self.model, images)

    def predict_pairs(self, asked: list[pairs.Pair], x_test: np.ndarray) -> dict[str, np.ndarray]:
        """``predict`` of the mixes of test-image ``pairs``, one batch for those not answered before (the answers
        are kept per server: ``cifarmix.answers``). Not for the user's own photos: use ``predict``."""
        return self.answers.predict_pairs(asked, x_test)

    def explain(self, image: np.ndarray) -> dict:
        """``saliency.explain_with_answers`` under the lock: each head's map (``first``, ``second``: 32 x 32 in
        [0, 1]), the explained ``classes`` and ``probabilities``. The first call compiles (a few seconds)."""
        with self._lock:
            found = saliency.explain_with_answers(self.model, image)
        self.explained = True
        return found


@st.cache_resource(max_entries=MODEL_CACHE_ENTRIES, show_spinner="Loading the model…")
def _shared_model(reference: str, path: str, stamp: int, title: str) -> SharedModel:
    """Load once per (reference, file, modification time): a retrained run's new file is picked up."""
    shared = SharedModel(models.load_model(path), reference, title, key=f"{reference}@{stamp}")
    shared.predict(np.zeros((1, 32, 32, 3), dtype=np.float32))  # warm up: the first call traces the model
    freeze_long_lived()
    return shared


BASELINE_TITLE = "🎲 Random guesser (names one class per group at random)"


def model_titles() -> dict[str, str]:
    """Model reference -> readable title, for every model the catalog knows (one catalog scan)."""
    return {BASELINE: BASELINE_TITLE} | {entry.reference: entry.title for entry in model_entries()}


def model_title(reference: str, titles: dict[str, str] | None = None) -> str:
    """A readable name for a model reference (the catalog's title when it knows the model). Pass ``titles``
    (from ``model_titles``) when naming many models, so the catalog is scanned once."""
    if reference == BASELINE:
        return BASELINE_TITLE
    return (titles if titles is not None else model_titles()).get(reference, reference)


def shared_model(reference: str) -> SharedModel:
    """The model behind ``reference`` (a shipped name, ``run:12``), loaded once per server. (The Game's random
    guesser, ``BASELINE``, is no model: see ``game.random_guesser``.)

    Raises:
        models.ModelError: the file is missing, corrupt or not a two-head model.
        ValueError: the reference names no known model.
    """
    entry = catalog.resolve(reference, run_store())
    try:
        stamp = Path(entry.path).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _shared_model(entry.reference, str(entry.path), stamp, model_title(entry.reference))


def get_model(reference: str | None) -> SharedModel | None:
    """Like ``shared_model`` but shows a clear error box (never a traceback) and returns None on failure."""
    if reference is None:
        return None
    try:
        return shared_model(reference)
    except (models.ModelError, ValueError) as error:
        st.error(f"The model **{escape_markdown(reference)}** could not be loaded: {escape_markdown(str(error))}",
                 icon="🧩")
        return None


def active_model() -> catalog.ModelEntry | None:
    """The model picked in the sidebar (``sidebar()`` must have run in this script run), or None."""
    reference = st.session_state.get(ACTIVE_MODEL_KEY)
    for entry in model_entries():
        if entry.reference == reference:
            return entry
    return None


def show_no_model(what: str = "the model's answers") -> None:
    """The box shown where a trained model is needed but none exists yet; links to what still works."""
    with st.container(border=True):
        st.info(
            f"**No trained model yet**, so {what} cannot be shown. Mixing images and the game against the "
            "random guesser still work. Train a model on the *Train* page (or ship one in `artifacts/models/`), "
            "and it appears in the sidebar.",
            icon="🤖",
        )
        links = st.columns(3)
        links[0].page_link(PAGE_TRAIN, label="Train a model", icon="🏋️")
        links[1].page_link(PAGE_MIXER, label="Mix images", icon="🎨")
        links[2].page_link(PAGE_GAME, label="Play the game", icon="🎮")


# ------------------------------------------------------------------------------------ where each head looks

MAPS_SPINNER = "Working out where each head looks (the first time for a model takes a few seconds)…"
PRIVATE_MAPS_KEY = "ui_private_maps"
PRIVATE_MAPS_ENTRIES = 8


@st.cache_data(max_entries=512, show_spinner=MAPS_SPINNER)
def _pair_maps(model_key: str, a_index: int, b_index: int, alpha: float, _model: SharedModel,
               _image: np.ndarray) -> dict:
    """Maps of one test-image mix, cached per server by (model file, pair, weight): the mix is fixed by them."""
    return _model.explain(_image)


def pair_maps(model: SharedModel, pair: pairs.Pair, x_test: np.ndarray) -> dict:
    """Each head's saliency map of a test-image mix (``SharedModel.explain``), computed once per server for a
    model file, pair and weight (a class looking at the same mix pays once)."""
    return _pair_maps(model.key, pair.a_index, pair.b_index, pair.alpha, model, pair.image(x_test))


@st.cache_data(max_entries=512, show_spinner=False)
def _image_maps(model_key: str, digest: str, _model: SharedModel, _image: np.ndarray) -> dict:
    return _model.explain(_image)


def image_maps(model: SharedModel, image: np.ndarray) -> dict:
    """Each head's saliency map of a data-set image (a validation mistake), cached per server by model file and
    the image's content. Not for the user's own photos: see ``private_maps``."""
    import hashlib

    image = np.asarray(image, dtype=np.float32)
    return _image_maps(model.key, hashlib.sha256(image.tobytes()).hexdigest(), model, image)


def private_maps(model: SharedModel, image: np.ndarray) -> dict:
    """Each head's saliency map of a mix made from the user's own photos: cached in this session only (never in
    a server-wide cache, so nothing derived from an upload outlives the session)."""
    import hashlib

    image = np.asarray(image, dtype=np.float32)
    key = (model.key, hashlib.sha256(image.tobytes()).hexdigest())
    cache = st.session_state.setdefault(PRIVATE_MAPS_KEY, {})
    if key not in cache:
        with st.spinner(MAPS_SPINNER):
            cache[key] = model.explain(image)
        while len(cache) > PRIVATE_MAPS_ENTRIES:
            cache.pop(next(iter(cache)))
    return cache[key]


def show_maps(mix: np.ndarray, found: dict, components: tuple[np.ndarray, np.ndarray] | None = None,
              component_names: tuple[str, str] = ("A", "B"), factor: int = 4) -> None:
    """Each head's map drawn over the mix and (given ``components``) over its own component, side by side
    (columns stack on a phone). Under each: the head's answer and how sure it is."""
    tiles = []
    for head, offset, name in (("first", 0, component_names[0]), ("second", 5, component_names[1])):
        cls = found["classes"][head]
        answer = f"{class_label(cls + offset)} ({found['probabilities'][head][cls]:.0%})"
        tiles.append((saliency.overlay(mix, found[head], scale=factor),
                      f"{'First' if head == 'first' else 'Second'} head says {answer}: where it looks in the mix"))
        if components is not None:
            tiles.append((saliency.overlay(components[0 if head == "first" else 1], found[head], scale=factor),
                          f"…and the same map over {name}"))
    for column, (picture, caption) in zip(st.columns(len(tiles)), tiles):
        column.image(picture, caption=caption, width="stretch", output_format="PNG")


# ------------------------------------------------------------------------------------------------- sidebar


def sidebar() -> None:
    """The sidebar every page shares: which model answers (shipped models and finished runs), and the data."""
    with st.sidebar:
        _model_picker()
        st.divider()
        _data_badge()


def _model_picker() -> None:
    """The active model by a short name (the sidebar is narrow), its accuracy and description in captions."""
    entries = model_entries()
    if not entries:
        st.markdown("**Active model**")
        st.caption("No trained model yet — train one on the Train page.")
        st.session_state.pop(ACTIVE_MODEL_KEY, None)
        return
    references = [entry.reference for entry in entries]
    runs = {run["id"]: run for run in run_store().list_runs()} if any(e.run_id for e in entries) else {}
    names = {entry.reference: short_model_name(entry, runs.get(entry.run_id)) for entry in entries}
    if st.session_state.get(ACTIVE_MODEL_KEY) not in references:
        st.session_state[ACTIVE_MODEL_KEY] = "champion" if "champion" in references else references[0]
    st.selectbox("Active model", references, format_func=names.get, key=ACTIVE_MODEL_KEY,
                 help="The model that answers on the Mixer page (shipped models first, then your finished runs).")
    entry = next(entry for entry in entries if entry.reference == st.session_state[ACTIVE_MODEL_KEY])
    standing = model_standing(entry, runs.get(entry.run_id))
    if standing:
        st.caption(standing)
    if catalog.card_description(entry.card):
        st.caption(escape_markdown(catalog.card_description(entry.card)))  # plain, bounded text: never markdown
    if entry.problem:
        st.caption(escape_markdown(f"Its model card is not used: {entry.problem}."))


def short_model_name(entry: catalog.ModelEntry, run: dict | None = None) -> str:
    """A model's name short enough for the sidebar: a shipped model's card title, ``run #3 smoke`` for a run."""
    if entry.run_id is not None:
        label = (run or {}).get("name") or (run or {}).get("arch") or ""
        return f"run #{entry.run_id} {label}".strip()
    return catalog.bounded_text(entry.card.get("title"), catalog.TITLE_LIMIT) or entry.reference


def model_standing(entry: catalog.ModelEntry, run: dict | None = None) -> str | None:
    """What the model scores, for the caption under its name: on the test protocol (a shipped model's card), or
    its best mean validation accuracy (a run); None when nothing is known."""
    if entry.run_id is not None:
        best = (run or {}).get("best_val_mean")
        return None if best is None else f"**{best:.1%}** best mean accuracy on the validation mixes"
    accuracy = catalog.card_accuracy(entry.card)
    return None if accuracy is None else f"**{accuracy:.1%}** mean accuracy on the test protocol"


def _data_badge() -> None:
    status = data_status()
    st.markdown("**Data**")
    if status.ok:
        splits = status.splits
        st.caption(f"✅ CIFAR-10: {len(splits.x_train):,} train · {len(splits.x_val):,} validation · "
                   f"{len(splits.x_test):,} test images")
    else:
        st.caption("❌ CIFAR-10 is not loaded — see the box on the page.")
    st.caption(f"Source: {escape_markdown(status.source)}")


# ------------------------------------------------------------------------------------------ layout and display


def page_header(title: str, intro: str | None = None) -> None:
    """The page title and a one-line introduction."""
    st.title(title)
    if intro:
        st.caption(intro)


class_label = data.class_label  # "🐱 cat"


def upscale(image: np.ndarray, factor: int = 8) -> np.ndarray:
    """Enlarge an (H, W, 3) image by repeating pixels (nearest neighbour), so 32x32 stays crisp; uint8 out."""
    pixels = np.clip(np.asarray(image, dtype=np.float32).round(), 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def show_image(image: np.ndarray, caption: str | None = None, factor: int = 8) -> None:
    """Show a small image enlarged without blur (never passes user text to markdown: captions are plain)."""
    st.image(upscale(image, factor), caption=caption)  # natural size, shrunk only if the column is narrower


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:=])")


def run_id_from_link() -> int | None:
    """The ``?run=`` of the URL as a run id; None when absent, or (with a warning) when it is not a run number."""
    text = st.query_params.get("run")
    if not text:
        return None
    run_id = parse_run_id(text)
    if run_id is None:
        quoted = escape_markdown(pairs.shown_link_value(text))
        st.warning(f"'run={quoted}' in the link is not a run number; it is ignored.", icon="🔗")
        del st.query_params["run"]  # warned once: the next rerun does not repeat it
    return run_id


def escape_markdown(text: str) -> str:
    """Backslash-escape every character markdown (and Streamlit's extensions) could interpret."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def format_time(iso: str) -> str:
    """``"2025-01-31 12:00 UTC"`` from a run-store timestamp (``2025-01-31T12:00:00.123+00:00``)."""
    return f"{iso[:10]} {iso[11:16]} UTC" if iso and len(iso) >= 16 else str(iso)


keep_keras_kernels()  # before the first script run ends
freeze_long_lived()  # the imports above (TensorFlow, Keras, plotly) live as long as the server
