"""The app's navigation and shared sidebar through Streamlit's AppTest: a page run the legacy way (a fresh server's
first runs, every AppTest run) still comes through app.py, and the sidebar names the active model so it fits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cifarmix.store import RunStore

APP = Path(__file__).resolve().parent.parent / "app.py"

pytestmark = pytest.mark.usefixtures("fresh_caches")


def texts(elements) -> str:
    return " ".join(str(element.value) for element in elements).replace("\\", "")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.switch_page(page)
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", ["pages/train.py", "pages/runs.py"])
def test_a_page_that_streamlit_runs_the_legacy_way_still_gets_the_apps_sidebar(tiny_data, no_models, page):
    # AppTest runs every run the way a fresh server runs its first ones (the legacy pages-folder mode): the page
    # must come through app.py's navigation, with the sidebar.
    at = open_page(page)
    assert "Active model" in texts(at.sidebar.markdown) and "Data" in texts(at.sidebar.markdown)


def test_a_click_in_a_legacy_run_is_not_lost(tiny_data, no_models):
    at = open_page("pages/train.py")
    next(w for w in at.number_input if w.label == "Epochs").set_value(0)
    at = next(w for w in at.button if w.label.startswith("Start training")).click().run()
    assert not at.exception
    assert "epochs must be a positive integer" in texts(at.error), "the click of a legacy run was lost"
    assert "Data" in texts(at.sidebar.markdown) and RunStore().list_runs() == []


def test_a_legacy_run_is_recognised_even_after_another_session_switched_the_legacy_mode_off(monkeypatch):
    # A second session's first run can begin in legacy mode while the first session's run switches the flag off:
    # the page must still know it runs without app.py (from _mpa_v1 on the call stack).
    import pages
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import script_runner

    def _mpa_v1(main_script_path):  # stands in for Streamlit's legacy runner, which runs the page from here
        return pages.in_legacy_run()

    monkeypatch.setattr(script_runner, "_mpa_v1", _mpa_v1)
    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)
    assert _mpa_v1("app.py") is True
    assert pages.in_legacy_run() is False  # an ordinary run: app.py's navigation


@pytest.fixture
def long_titled_model(untrained_model_file, tmp_path, monkeypatch) -> str:
    """A shipped model with a long title and a test-protocol result on its card."""
    import shutil

    folder = tmp_path / "models" / "champion"
    folder.mkdir(parents=True)
    shutil.copy(untrained_model_file, folder / "model.keras")
    (folder / "card.json").write_text(json.dumps({"title": "Residual net for CPUs (ours)",
                                                  "description": "our best net", "evaluation": {"mean_accuracy": 0.8012}}))
    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(tmp_path / "models"))
    return "champion"


def test_the_sidebar_names_the_active_model_short_and_says_its_accuracy_below(tiny_data, long_titled_model):
    store = RunStore()
    run_id = store.create_run("allconv", {}, {}, 0, name="smoke", status="finished")
    model = Path(store.run_folder(run_id)) / "best.keras"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"a stand-in: the sidebar lists the file, it does not load it")
    store.update_run(run_id, model_path=str(model), best_val_mean=0.523)
    at = open_page("pages/train.py")
    picker = at.sidebar.selectbox(key="sidebar_model")
    assert picker.value == long_titled_model
    # no "— 80.1% on the test protocol" after the name, which the narrow sidebar cut
    assert picker.options == ["Residual net for CPUs (ours)", f"run #{run_id} smoke"]
    captions = texts(at.sidebar.caption)
    assert "**80.1%** mean accuracy on the test protocol" in captions and "our best net" in captions
    picker.set_value(f"run:{run_id}")
    at = at.run()
    assert "**52.3%** best mean accuracy on the validation mixes" in texts(at.sidebar.caption)
