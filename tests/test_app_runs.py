"""The Runs page through Streamlit's AppTest, on a real (tiny) finished run: the table, curves, the confusion
slider, a stored test evaluation, the mistakes gallery, CSV export, comparison, and delete with confirmation."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from cifarmix import paths, peers, training
from cifarmix.config import TrainConfig, preset
from cifarmix.store import RunStore

APP = Path(__file__).resolve().parent.parent / "app.py"
RUNS_PAGE = "pages/runs.py"


def open_runs_page(run_id: int | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if run_id is not None:
        at.query_params["run"] = str(run_id)
    at.switch_page(RUNS_PAGE)
    return no_exceptions(at.run())


def no_exceptions(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def decoded(value):
    """Plotly's JSON with its base64 typed arrays (``{"dtype", "bdata", "shape"}``) turned back into lists."""
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        if "shape" in value:
            array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
        return array.tolist()
    if isinstance(value, dict):
        return {key: decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure drawn with ``key``, as a plain dict."""
    return decoded(json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec))


def button(at: AppTest, label: str):
    return next(widget for widget in at.button if widget.label.startswith(label))


def texts(elements) -> str:
    """The elements' text as the reader sees it (markdown escapes removed)."""
    return " ".join(str(element.value) for element in elements).replace("\\", "")


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, tiny_tarball) -> tuple[Path, int]:
    """A cifarmix home holding one finished tiny run (trained once for the whole module, ~6 s)."""
    home = tmp_path_factory.mktemp("trained-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIFARMIX_HOME", str(home))
        patch.setenv("CIFARMIX_DATA", str(tiny_tarball))
        config = TrainConfig(arch="allconv", epochs=2, batch_size=16, steps_per_epoch=3, val_pairs=40)
        run = training.train(config, RunStore(), name="tiny")
    assert run["status"] == "finished"
    return home, run["id"]


@pytest.fixture
def finished_run(trained_home, tiny_data, tmp_path, monkeypatch) -> int:
    """This test's own copy of the trained home (so deleting or evaluating never leaks into another test)."""
    home = tmp_path / "home-copy"
    shutil.copytree(trained_home[0], home)
    monkeypatch.setenv("CIFARMIX_HOME", str(home))
    return trained_home[1]


def test_a_finished_run_is_listed_with_its_curves(finished_run):
    at = open_runs_page()
    table = at.dataframe[0].value
    row = table[table["run"] == finished_run].iloc[0]
    assert (row["architecture"], row["status"], row["epochs"], row["name"]) == ("allconv", "finished", "2/2", "tiny")
    assert row["best val. mean"] == pytest.approx(RunStore().get_run(finished_run)["best_val_mean"])
    steps = chart(at, "run_steps")
    assert steps["data"][0]["x"] == list(range(1, 7))
    accuracy = chart(at, "run_accuracy")
    assert "validation, mean of both" in [trace["name"] for trace in accuracy["data"]]
    assert chart(at, "run_epoch_loss")["data"]


def test_the_epoch_slider_shows_that_epochs_confusion_matrices(finished_run):
    at = open_runs_page(finished_run)
    slider = next(s for s in at.select_slider if s.label == "Epoch")
    assert list(slider.options) == ["1", "2"] and slider.value == 2
    assert "epoch 2" in chart(at, "cm_first")["layout"]["title"]["text"]
    at = no_exceptions(slider.set_value(1).run())
    store = RunStore()
    for head in ("first", "second"):
        figure = chart(at, f"cm_{head}")
        assert "epoch 1" in figure["layout"]["title"]["text"]
        shown = np.array([[int(cell.split("<br>")[0]) for cell in row] for row in figure["data"][0]["text"]])
        assert (shown == store.confusion(finished_run, epoch=1, head=head)).all()
    bars = chart(at, "per_class_val")
    assert [len(trace["x"]) for trace in bars["data"]] == [5, 5]


def test_a_model_that_cannot_be_loaded_gives_a_clear_error_and_stores_nothing(finished_run):
    broken = paths.run_dir(finished_run) / "broken.keras"  # in this test's own home, not the shared trained one
    broken.write_bytes(b"not a keras archive")
    RunStore().update_run(finished_run, model_path=broken)
    at = open_runs_page(finished_run)
    at = no_exceptions(next(b for b in at.button if b.label == "Evaluate on the test protocol").click().run())
    assert f"Could not evaluate run #{finished_run}" in texts(at.error)
    assert not at.get("progress") and RunStore().evaluations(run_id=finished_run) == []  # the bar is gone too


def test_evaluating_on_the_test_protocol_stores_the_result(finished_run):
    run = RunStore().get_run(finished_run)
    RunStore().update_run(finished_run, config=dict(run["config"], alpha=0.3))  # trained on 30/70 mixes
    at = open_runs_page(finished_run)
    assert [w.value for w in at.number_input][:2] == [10, 10_000]  # the full protocol is the default
    next(w for w in at.number_input if w.label == "Repeats").set_value(2)
    next(w for w in at.number_input if w.label == "Test pairs per repeat").set_value(100)
    at = no_exceptions(next(b for b in at.button if b.label == "Evaluate on the test protocol").click().run())
    assert "Stored: mean accuracy" in texts(at.success) and "% ± " in texts(at.success)  # percentages, as elsewhere
    [stored] = RunStore().evaluations(run_id=finished_run)
    assert (stored["result"]["repeats"], stored["result"]["pairs"]) == (2, 100)
    assert stored["result"]["alpha"] == 0.5  # the protocol's plain average, whatever the run trained on
    assert stored["model_ref"] == f"run:{finished_run}"
    assert 0 <= stored["result"]["mean_accuracy"] <= 1
    history = at.dataframe[1].value
    assert history["repeats × pairs"].tolist() == ["2 × 100"]
    assert chart(at, "per_class_test")["data"]
    # The runs table shows the newest test result too.
    again = open_runs_page(finished_run)
    assert "2×100" in again.dataframe[0].value["test protocol"].iloc[0]
    figure = next(m for m in again.metric if m.label == "Test protocol")
    assert figure.value.endswith("%") and figure.delta == "quick look: 2 × 100 pairs"  # on it, not in a tooltip


def test_a_quick_look_at_another_weight_never_hides_the_full_protocol_result(finished_run):
    from cifarmix import evaluation

    full = {"repeats": 10, "pairs": 10_000, "alpha": 0.5, "seed": evaluation.PROTOCOL_SEED, "mean_accuracy": 0.61,
            "std": 0.004, "head_first": 0.6, "head_second": 0.62, "mean_f1": 0.6,
            "per_class_first": [0.6] * 5, "per_class_second": [0.62] * 5}
    RunStore().add_evaluation(finished_run, f"run:{finished_run}", full)
    at = open_runs_page(finished_run)
    next(w for w in at.number_input if w.label == "Repeats").set_value(1)
    next(w for w in at.number_input if w.label == "Test pairs per repeat").set_value(100)
    next(w for w in at.number_input if w.label == "Mixing weight α").set_value(0.3)
    at = no_exceptions(next(b for b in at.button if b.label == "Evaluate on the test protocol").click().run())
    newest = RunStore().evaluations(run_id=finished_run)[0]["result"]
    assert (newest["pairs"], newest["alpha"]) == (100, 0.3)
    history = at.dataframe[1].value
    assert history["α"].tolist() == [0.3, 0.5] and history["full protocol"].tolist() == [False, True]
    assert "61.0% ± 0.4% · 10×10,000" == at.dataframe[0].value["test protocol"].iloc[0]


def test_the_gallery_shows_misclassified_validation_mixes(finished_run):
    at = open_runs_page(finished_run)
    at = no_exceptions(next(t for t in at.toggle if t.label.startswith("Show misclassified")).set_value(True).run())
    images = at.get("image")
    assert images, "the gallery shows images"
    captions = [image.proto.imgs[0].caption for image in images]
    assert all("✗" in caption and " · " in caption for caption in captions)
    assert "validation mixes wrong in at least one head" in texts(at.caption)


def test_the_csv_export_holds_the_epoch_metrics(finished_run, monkeypatch):
    downloads = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        downloads[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    at = open_runs_page(finished_run)
    assert any(b.label == "Download epoch metrics (CSV)" for b in at.get("download_button"))
    exported = pd.read_csv(io.BytesIO(downloads[f"cifarmix-run-{finished_run}-epochs.csv"]))
    expected = RunStore().epoch_metrics(finished_run)
    assert exported["epoch"].tolist() == [1, 2]
    assert exported["val_mean_accuracy"].tolist() == pytest.approx(expected["val_mean_accuracy"].tolist())


def test_compare_overlays_several_runs_and_lists_them_side_by_side(finished_run):
    store = RunStore()
    other = store.create_run("resnet-cpu", {}, TrainConfig(arch="resnet-cpu").to_dict(), 1,
                             name="<b>other</b> **x**")
    for epoch, accuracy in ((1, 0.3), (2, 0.4), (3, 0.5)):
        store.log_epoch(other, epoch, {"val_mean_accuracy": accuracy, "loss": 3 - epoch / 2})
    store.update_run(other, epochs_done=3, total_epochs=3, best_val_mean=0.5, best_epoch=3)
    store.set_status(other, "finished", "done")
    at = open_runs_page()
    compare = next(m for m in at.multiselect if m.label == "Runs to compare")
    assert set(compare.value) == {finished_run, other}
    overlay = chart(at, "compare_overlay")
    lines = {trace["name"]: trace["y"] for trace in overlay["data"]}
    assert len(lines) == 2 and [0.3, 0.4, 0.5] in lines.values()
    assert f"#{other} “&lt;b&gt;other&lt;/b&gt; **x**” resnet-cpu" in lines  # plotly shows it as typed, not bold
    side = at.dataframe[-1].value  # a dataframe, not st.table: the names stay plain text
    assert list(side.columns) == [f"#{other} “<b>other</b> **x**” resnet-cpu", f"#{finished_run} “tiny” allconv"]
    assert side.loc["architecture"].tolist() == ["resnet-cpu", "allconv"]
    assert side.loc["best val. mean"].tolist()[0] == "50.0%"


def test_delete_asks_for_confirmation_then_removes_the_run_and_its_files(finished_run):
    folder = paths.run_dir(finished_run)
    at = open_runs_page(finished_run)
    at = no_exceptions(button(at, f"Delete run #{finished_run}").click().run())
    assert "cannot be undone" in texts(at.warning)
    at = no_exceptions(button(at, "Cancel").click().run())
    assert not at.warning and RunStore().get_run(finished_run) is not None
    at = no_exceptions(button(at, f"Delete run #{finished_run}").click().run())
    at = no_exceptions(button(at, "Yes, delete it").click().run())
    assert RunStore().get_run(finished_run) is None and not folder.exists()
    assert f"Run #{finished_run} deleted." in texts(at.success)
    assert "No runs yet" in texts(at.info)


def test_a_running_run_cannot_be_deleted(tiny_data):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "cifarmix-dummy"])
    try:
        store = RunStore()
        run_id = store.create_run("allconv", {}, preset("smoke").to_dict(), 0, status="running")
        store.update_run(run_id, pid=process.pid)
        at = open_runs_page(run_id)
        delete = button(at, f"Delete run #{run_id}")
        assert delete.disabled
        assert "cannot be deleted while it is running" in texts(at.caption)
        assert store.get_run(run_id)["status"] == "running"
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("link", ["²", "9" * 40, "777"])
def test_a_bad_or_stale_run_link_warns_and_shows_the_newest_run(finished_run, link):
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = link
    at.switch_page(RUNS_PAGE)
    at = no_exceptions(at.run())
    warning = texts(at.warning)
    assert ("not a run number" in warning) if link != "777" else ("Run 777 from the link is not" in warning)
    assert at.selectbox(key="runs_pick").value == finished_run


def test_compare_asks_for_a_second_run_when_only_one_is_picked(finished_run):
    at = open_runs_page()
    compare = next(m for m in at.multiselect if m.label == "Runs to compare")
    assert compare.value == [finished_run]  # the only run with epochs
    assert "Pick two or more runs" in texts(at.info)


# ------------------------------------------------------------------------------ issue 14: breakdowns and maps


def test_an_evaluation_shows_which_pairs_of_classes_are_hardest(finished_run):
    at = open_runs_page(finished_run)
    next(w for w in at.number_input if w.label == "Repeats").set_value(1)
    next(w for w in at.number_input if w.label == "Test pairs per repeat").set_value(200)
    at = no_exceptions(next(b for b in at.button if b.label == "Evaluate on the test protocol").click().run())
    [stored] = RunStore().evaluations(run_id=finished_run)
    breakdown = stored["result"]["pair_breakdown"]
    assert np.sum(breakdown["count"]) == 200
    heatmap = chart(at, "pair_heatmap")["data"][0]
    assert len(heatmap["z"]) == 5 and all(len(row) == 5 for row in heatmap["z"])
    assert "first head" in heatmap["hovertemplate"]
    assert "Hardest: " in texts(at.caption) and "Hover a cell for both heads" in texts(at.caption)


def test_an_evaluation_stored_before_the_breakdown_says_to_evaluate_again(finished_run):
    RunStore().add_evaluation(finished_run, f"run:{finished_run}", {
        "repeats": 1, "pairs": 100, "alpha": 0.5, "seed": 2024, "mean_accuracy": 0.5, "std": 0.0,
        "head_first": 0.5, "head_second": 0.5, "mean_f1": 0.5, "per_class_first": [0.5] * 5,
        "per_class_second": [0.5] * 5})
    at = open_runs_page(finished_run)
    assert "evaluate again to see it" in texts(at.caption)
    assert not [c for c in at.get("plotly_chart") if c.key == "pair_heatmap"]


def test_the_weight_sweep_is_computed_once_with_a_progress_bar_then_read_from_the_store(finished_run, monkeypatch):
    from cifarmix import breakdowns

    monkeypatch.setattr(breakdowns, "SWEEP_PAIRS", 40)  # a quick sweep: 10 weights x 40 pairs
    measured = []
    real_sweep = breakdowns.weight_sweep
    monkeypatch.setattr(breakdowns, "weight_sweep", lambda *a, **k: measured.append(k) or real_sweep(*a, **k))
    at = open_runs_page(finished_run)
    assert not [c for c in at.get("plotly_chart") if c.key == f"sweep_curve_{finished_run}"]
    assert "95% margin of error is at most ±15 points" in texts(at.caption)  # 40 pairs per weight
    at = no_exceptions(at.button(key=f"sweep_{finished_run}").click().run())
    assert len(measured) == 1 and measured[0]["pairs"] == 40
    curve = chart(at, f"sweep_curve_{finished_run}")
    assert [trace["name"] for trace in curve["data"]][-1] == "mean of both"
    assert curve["data"][0]["x"] == list(breakdowns.SWEEP_ALPHAS)
    [stored] = RunStore().sweeps(run_id=finished_run)
    assert stored["settings"]["pairs"] == 40 and stored["model_ref"] == f"run:{finished_run}"
    again = open_runs_page(finished_run)
    assert len(measured) == 1
    assert not [b for b in again.button if b.key == f"sweep_{finished_run}"]  # nothing left to compute
    assert chart(again, f"sweep_curve_{finished_run}")["data"][0]["y"] == curve["data"][0]["y"]


def test_compared_runs_get_a_weight_curve_each(finished_run, monkeypatch):
    from cifarmix import breakdowns

    monkeypatch.setattr(breakdowns, "SWEEP_PAIRS", 30)
    store = RunStore()
    run = store.get_run(finished_run)
    copy = Path(run["model_path"]).with_name("copy.keras")
    shutil.copy(run["model_path"], copy)
    other = store.create_run("allconv", {}, run["config"], 1, name="twin")
    store.log_epoch(other, 1, {"val_mean_accuracy": 0.3})
    store.update_run(other, epochs_done=1, total_epochs=1, best_val_mean=0.3, best_epoch=1, model_path=copy)
    store.set_status(other, "finished", "done")
    at = open_runs_page()
    button_label = f"Compute for #{other}, #{finished_run}"
    assert "None of these runs has a weight sweep yet." in texts(at.caption)
    at = no_exceptions(button(at, button_label).click().run())
    curves = chart(at, "compare_sweeps")
    names = [trace["name"] for trace in curves["data"]]
    assert len(names) == 4 and any("twin" in name and "second head" in name for name in names)
    assert len(RunStore().sweeps()) == 2


def test_the_mistakes_show_where_each_head_looked(finished_run):
    at = open_runs_page(finished_run)
    at = no_exceptions(next(t for t in at.toggle if t.label.startswith("Show misclassified")).set_value(True).run())
    plain = len(at.get("image"))
    at = no_exceptions(at.toggle(key=f"gallery_maps_{finished_run}").set_value(True).run())
    images = at.get("image")
    assert len(images) == plain, "each mistake once, now beside its maps"
    assert all("✗" in image.proto.imgs[0].caption for image in images)
    assert "the first head's map over it, then the second head's" in texts(at.caption)
    assert not at.get("progress")  # the bar is gone once the maps are drawn


def test_the_shipped_models_are_shown_against_the_peers(finished_run, shipped_model, tmp_path):
    import json as json_module

    card = tmp_path / "models" / shipped_model / "card.json"
    card.write_text(json_module.dumps({"title": "Demo", "name": "demo", "evaluation": {"mean_accuracy": 0.81},
                                       "lineage": [{"pairs": 1_800_000, "minutes": 88, "best_val_mean_accuracy": 0.795},
                                                   {"pairs": 1_000_000, "minutes": 100,
                                                    "best_val_mean_accuracy": 0.80}]}))
    figure = chart(open_runs_page(), "peers_chart")
    ours, dropped, published = figure["data"]
    assert ours["name"] == "cifarmix" and list(ours["x"]) == [1_800_000, 2_800_000, 2_800_000]
    assert dropped["name"] == "cifarmix, not shipped" and len(dropped["x"]) == len(peers.DROPPED)
    assert max(published["y"]) == pytest.approx(84.87)
