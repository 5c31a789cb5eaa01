"""The app through Streamlit's AppTest: navigation, the sidebar, the Mixer page, and the no-data / no-model boxes."""

from __future__ import annotations


import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cifarmix import data

APP = "../app.py"
TIMEOUT = 60


pytestmark = pytest.mark.usefixtures("fresh_caches")


def start(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    return at.run()


def labels_of_test_set():
    return data.load_cifar10()[1][1]


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def ui_label(cls: int) -> str:
    from pages import ui

    return ui.class_label(cls)


def shown_pair(at: AppTest):
    return at.session_state["mixer_pair"]


def test_the_mixer_shows_a_pair_its_mix_and_a_link_that_reproduces_it(tiny_data, no_models):
    at = start()
    assert not at.exception
    assert at.title[0].value.endswith("Mixer")
    pair = shown_pair(at)
    y = labels_of_test_set()
    assert y[pair.a_index] < 5 <= y[pair.b_index] and pair.alpha == 0.5
    assert at.query_params == {"a": str(pair.a_index), "b": str(pair.b_index), "w": "0.5"}
    assert len(at.image) == 3 + 6  # component A, component B, the mix, and the gallery
    assert captions(at)[:3] == [f"Component A: {ui_label(y[pair.a_index])} (test image {pair.a_index})",
                                f"Component B: {ui_label(y[pair.b_index])} (test image {pair.b_index})",
                                "The mix: 50% A + 50% B"]

    again = start(dict(at.query_params))  # the link, opened in a new browser session
    assert not again.exception and shown_pair(again) == pair and not again.warning


def test_the_weight_slider_changes_the_mix_and_the_link(tiny_data, no_models):
    at = start()
    pair = shown_pair(at)
    at.slider(key="mixer_alpha").set_value(0.3).run()
    assert not at.exception
    assert shown_pair(at) == type(pair)(pair.a_index, pair.b_index, 0.3)
    assert at.query_params["w"] == "0.3"
    assert captions(at)[2] == "The mix: 30% A + 70% B"


def test_picking_a_class_a_photo_and_a_new_pair(tiny_data, no_models):
    at = start()
    y = labels_of_test_set()
    at.selectbox(key="mixer_a_class").set_value(3).run()  # cat
    assert y[shown_pair(at).a_index] == 3
    at.number_input(key="mixer_a_number").set_value(5).run()
    assert shown_pair(at).a_index == int(np.flatnonzero(y == 3)[4])
    assert at.number_input(key="mixer_a_number").value == 5
    before = shown_pair(at)
    at.button(key="mixer_b_another").click().run()
    assert shown_pair(at).a_index == before.a_index and y[shown_pair(at).b_index] == y[before.b_index]
    pairs = set()
    for _ in range(3):
        at.button[0].click().run()  # "New random pair"
        pairs.add(shown_pair(at))
    assert len(pairs) > 1 and not at.exception


def test_bad_link_values_warn_and_fall_back(tiny_data, no_models):
    at = start({"a": "abc", "b": "4", "w": "2"})  # 4 is a deer: not of group B
    assert not at.exception
    warnings = texts(at.warning).replace("\\", "")  # the warnings are markdown-escaped
    assert "'a=abc'" in warnings and "'b=4'" in warnings and "'w=2'" in warnings
    pair = shown_pair(at)
    y = labels_of_test_set()
    assert y[pair.a_index] < 5 <= y[pair.b_index] and pair.alpha == 0.5


@pytest.mark.parametrize("weight, used", [("0.01", 0.05), ("0.999", 0.95)])
def test_a_link_weight_outside_the_slider_is_moved_into_its_range(tiny_data, no_models, weight, used):
    at = start({"a": "3", "b": "8", "w": weight})
    assert not at.exception
    assert f"'w={weight}'" in texts(at.warning).replace("\\", "")
    assert shown_pair(at).alpha == used and at.slider(key="mixer_alpha").value == used


def test_a_link_cannot_inject_markdown_into_the_warnings(tiny_data, no_models):
    at = start({"a": "**[click](http://evil.example)**", "b": "8"})
    assert not at.exception
    warning = texts(at.warning)
    assert "\\*\\*\\[click\\]" in warning  # escaped: shown literally, not as a bold link


def test_without_a_model_the_mixer_says_so_and_still_mixes(tiny_data, no_models):
    at = start()
    assert "No trained model yet" in texts(at.info)
    assert "No trained model yet" in texts(at.sidebar.caption)
    assert len(at.image) == 9 and not at.get("plotly_chart")
    assert set(captions(at)[3:]) == {"?"}  # the gallery: nothing to show before the answers are revealed


def test_with_a_model_the_mixer_shows_both_answers_as_bars(tiny_data, shipped_model):
    at = start()
    assert not at.exception
    assert at.sidebar.selectbox(key="sidebar_model").value == shipped_model
    assert "Demo model says:" in texts(at.markdown)
    assert len(at.get("plotly_chart")) == 2
    assert set(captions(at)[3:]) == {"?"}  # the gallery gives nothing away until asked
    at.button_group(key="mixer_gallery_show").set_value("model").run()
    assert all(caption.startswith("🤖 ") for caption in captions(at)[3:])  # the model's guesses, no answers
    at = start()  # afresh: after a widget change, AppTest no longer lists the sidebar (Chromium keeps it: looked at)
    at.button_group(key="mixer_gallery_show").set_value("answers").run()
    assert all("✅" in caption or "❌" in caption for caption in captions(at)[3:])  # the answers, and the model's


def test_without_data_every_page_shows_the_help_box_not_a_traceback(tiny_data, no_models, monkeypatch, tmp_path):
    monkeypatch.setenv("CIFARMIX_DATA", str(tmp_path / "missing.tar.gz"))
    at = start()
    assert "not loaded" in texts(at.sidebar.caption)
    for page in ("pages/mixer.py", "pages/game.py"):
        if page != "pages/mixer.py":
            at.switch_page(page).run()
        assert not at.exception
        boxes = [error.value for error in at.error]
        assert len(boxes) == 1 and "CIFAR-10 is not available" in boxes[0] and "CIFARMIX_DATA" in boxes[0]
        assert at.button(key="data_retry")


def test_a_broken_model_file_gives_a_clear_box_not_a_traceback(tiny_data, shipped_model, tmp_path):
    (tmp_path / "models" / "demo" / "model.keras").write_bytes(b"not a keras archive")
    at = start()
    assert not at.exception
    boxes = [error.value for error in at.error]
    assert len(boxes) == 1 and "could not be loaded" in boxes[0]
    assert len(at.image) == 9  # the photos and the mix are still shown


def test_escape_markdown_leaves_user_text_inert():
    from pages import ui

    text = "**Bo** <b>x</b> [y](z) `c` _i_ # h"
    escaped = ui.escape_markdown(text)
    assert "**" not in escaped.replace("\\*", "") and "<" not in escaped.replace("\\<", "")
    assert escaped.replace("\\", "") == text


def test_one_model_per_server_shared_by_sessions_and_called_one_at_a_time(tiny_data, shipped_model):
    import threading
    import time

    from pages import ui

    assert ui.shared_model(shipped_model) is ui.shared_model(shipped_model)  # every session gets this one

    inside, most = [0], [0]

    class SlowModel:
        def __call__(self, images, training=False):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.01)
            inside[0] -= 1
            return {"first": np.full((len(images), 5), 0.2), "second": np.full((len(images), 5), 0.2)}

    shared = ui.SharedModel(SlowModel(), "slow", "slow")
    threads = [threading.Thread(target=shared.predict, args=(np.zeros((1, 32, 32, 3)),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1




def kept(at: AppTest, reference: str = "demo") -> AppTest:
    """The sidebar's pick (the ``shipped_model`` fixture's "demo") kept for the next run: after a widget change
    AppTest reruns the page without app.py's sidebar, which would forget the active model (Chromium keeps the
    sidebar: looked at)."""
    at.session_state["sidebar_model"] = reference
    return at


# ------------------------------------------------------------------------------------------------ your own photos


def png_bytes(colour=(200, 40, 40), size=(64, 48)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(colour=(40, 40, 200), size=(80, 60)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def images_shown(monkeypatch) -> dict[str, bytes]:
    """Every picture a page hands to Streamlit from here on: file id (in the image's URL) -> its bytes."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    shown, original = {}, MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        shown[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return shown


def pixels_of(at: AppTest, shown: dict[str, bytes], caption: str) -> np.ndarray:
    """The pixels of the picture shown with ``caption``."""
    import io

    from PIL import Image

    image = next(image for image in at.image if caption in image.captions)
    url = image.proto.imgs[0].url
    file_id = next(key for key in shown if key in url)
    return np.asarray(Image.open(io.BytesIO(shown[file_id])).convert("RGB"))


def writes_during(monkeypatch) -> list[str]:
    """Every file opened for writing from here on (by path), through Python's open and os.open."""
    import builtins
    import os

    written, real_open, real_os_open = [], builtins.open, os.open

    def watched_open(file, mode="r", *args, **kwargs):
        if any(flag in str(mode) for flag in "wax+"):
            written.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def watched_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            written.append(str(path))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watched_open)
    monkeypatch.setattr(os, "open", watched_os_open)
    return written


def test_an_uploaded_photo_is_shown_as_the_model_sees_it_mixed_and_named_and_never_saved(
        tiny_data, shipped_model, monkeypatch):
    at = start()
    link = dict(at.query_params)
    kept(at).selectbox(key="mixer_a_source").set_value("upload").run()
    assert not at.exception and "Choose a photo for each side" in texts(at.info)
    written = writes_during(monkeypatch)
    kept(at).file_uploader(key="mixer_a_upload").set_value(("me.png", png_bytes(), "image/png")).run()
    assert not at.exception and not at.error
    photo = at.session_state["mixer_a_photo"][1]
    assert photo.pixels.shape == (32, 32, 3) and tuple(photo.pixels[16, 16]) == (200, 40, 40)
    shown = captions(at)
    assert "Your photo (the square goes into the mix)" in shown and "What the model sees: 32 × 32" in shown
    assert "The mix: 50% A + 50% B" in shown
    said = next(m.value for m in at.markdown if "says:" in m.value)
    first, second = said.split(" and ")
    assert "✅" not in first and "❌" not in first  # nobody knows what is in your photo
    assert ("✅" in second) or ("❌" in second)  # component B is still a test image
    assert len(at.get("plotly_chart")) == 2
    assert "not in the page's link" in texts(at.caption) and dict(at.query_params) == link
    assert written == [], f"the upload reached the disk: {written}"


def test_a_bad_upload_is_one_sentence_not_a_traceback(tiny_data, shipped_model):
    at = start()
    kept(at).selectbox(key="mixer_b_source").set_value("upload").run()
    kept(at).file_uploader(key="mixer_b_upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not at.exception
    [error] = at.error
    assert "not an image" in error.value and error.value.count(". ") == 0
    assert "Choose a photo for each side" in texts(at.info) and not at.get("plotly_chart")


def test_two_photos_from_the_camera_and_an_upload_are_mixed_with_the_chosen_weight(tiny_data, shipped_model,
                                                                                   monkeypatch):
    shown = images_shown(monkeypatch)
    at = start()
    kept(at).slider(key="mixer_alpha").set_value(0.7).run()
    kept(at).selectbox(key="mixer_a_source").set_value("camera").run()
    kept(at).camera_input(key="mixer_a_camera").set_value(("shot.jpg", jpeg_bytes(), "image/jpeg")).run()
    kept(at).selectbox(key="mixer_b_source").set_value("upload").run()
    kept(at).file_uploader(key="mixer_b_upload").set_value(("you.png", png_bytes((10, 200, 10)), "image/png"))
    at.run()
    assert not at.exception and not at.error
    a, b = at.session_state["mixer_a_photo"][1], at.session_state["mixer_b_photo"][1]
    assert "The mix: 70% A + 30% B" in captions(at)
    said = next(m.value for m in at.markdown if "says:" in m.value)
    assert "✅" not in said and "❌" not in said
    mix = pixels_of(at, shown, "The mix: 70% A + 30% B")[::8, ::8]  # shown 8 times enlarged
    expected = 0.7 * a.pixels.astype(float) + 0.3 * b.pixels
    assert mix.shape == (32, 32, 3) and np.abs(mix - expected).max() <= 1
    kept(at).selectbox(key="mixer_a_source").set_value("cifar").run()  # back to a test image
    assert not at.exception and "mixer_a_photo" in at.session_state  # B's photo is still used
    assert "Component A: " in " ".join(captions(at))


# ---------------------------------------------------------------------------------------- where each head looks


def test_the_maps_are_behind_a_toggle_and_computed_once_per_model_pair_and_weight(tiny_data, shipped_model,
                                                                                 monkeypatch):
    import streamlit as st

    from pages import ui

    st.cache_data.clear()
    calls = []
    real_explain = ui.SharedModel.explain

    def counted(self, image):
        calls.append(self.reference)
        return real_explain(self, image)

    monkeypatch.setattr(ui.SharedModel, "explain", counted)
    at = start()
    toggle = at.toggle(key="mixer_maps")
    assert toggle.value is False and calls == []  # off by default: a plain click computes no map
    before = len(at.image)
    at = kept(at).toggle(key="mixer_maps").set_value(True).run()
    assert not at.exception and calls == [shipped_model]
    maps = [c for c in captions(at) if "head says" in c or "same map over" in c]
    assert len(at.image) == before + 4 and len(maps) == 4
    assert maps[0].startswith("First head says") and maps[2].startswith("Second head says")
    pair = shown_pair(at)
    fresh = start(dict(at.query_params))  # another session, the same mix: the server's cache answers
    kept(fresh).toggle(key="mixer_maps").set_value(True).run()
    assert not fresh.exception and calls == [shipped_model]
    assert shown_pair(fresh) == pair
    kept(at).slider(key="mixer_alpha").set_value(0.4).run()  # a new weight is a new mix
    assert calls == [shipped_model] * 2


def test_maps_of_your_own_photos_stay_in_the_session(tiny_data, shipped_model):
    import streamlit as st

    from pages import ui

    st.cache_data.clear()
    at = start()
    kept(at).selectbox(key="mixer_a_source").set_value("upload").run()
    kept(at).file_uploader(key="mixer_a_upload").set_value(("me.png", png_bytes(), "image/png")).run()
    kept(at).toggle(key="mixer_maps").set_value(True).run()
    assert not at.exception
    assert len(at.session_state[ui.PRIVATE_MAPS_KEY]) == 1
    assert len([c for c in captions(at) if "head says" in c]) == 2


# --------------------------------------------------------------------------------- how much of an image it needs


def test_the_weight_caption_reads_a_stored_sweep_of_the_active_model_or_says_how_to_measure_it(
        tiny_data, shipped_model):
    from cifarmix import catalog
    from cifarmix.store import RunStore

    at = start()
    hint = texts(at.caption)
    assert "How often is the model right at each weight?" in hint
    assert f"python -m cifarmix evaluate {shipped_model} --alphas" in hint
    entry = catalog.resolve(shipped_model, RunStore())
    points = [{"alpha": a, "head_first": a, "head_second": 1 - a, "mean_accuracy": m, "margin": 0.04}
              for a, m in ((0.1, 0.6), (0.5, 0.7), (0.9, 0.8))]
    RunStore().add_sweep(shipped_model, {"alphas": [0.1, 0.5, 0.9], "repeats": 1, "pairs": 500, "seed": 2024},
                         points, model_version=catalog.model_version(entry))
    at = start()
    kept(at).slider(key="mixer_alpha").set_value(0.3).run()
    caption = texts(at.caption)
    assert "At this weight the model is right **65%** ± 4% of the time" in caption
    assert "first head 30%, second 70%" in caption and "500 test pairs per weight" in caption
    kept(at).slider(key="mixer_alpha").set_value(0.05).run()
    assert "measured at 0.1, the nearest weight swept" in texts(at.caption)


def test_streamlits_keras_reset_after_each_run_keeps_the_compiled_kernels(tiny_data, no_models):
    import keras

    from pages import ui

    start()
    assert getattr(keras.backend.clear_session, "_cifarmix_kept", False)
    ui.keep_keras_kernels()  # idempotent
    assert keras.backend.clear_session() is None
