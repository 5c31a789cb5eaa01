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
