"""The Train page through Streamlit's AppTest: the form refuses bad values, Start runs a real training process
whose id goes into the URL, the job limit refuses a second start, and a killed run offers its log and Resume."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cifarmix import jobs, mixing, paths, processes, runinfo
from cifarmix.config import PRESETS, TrainConfig, preset
from cifarmix.store import RunStore

APP = Path(__file__).resolve().parent.parent / "app.py"
TRAIN_PAGE = "pages/train.py"


def open_train_page(run_id: int | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if run_id is not None:
        at.query_params["run"] = str(run_id)
    at.switch_page(TRAIN_PAGE)
    return at.run()


def no_exceptions(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def number(at: AppTest, label: str):
    return next(widget for widget in at.number_input if widget.label == label)


def button(at: AppTest, label: str):
    return next(widget for widget in at.button if widget.label.startswith(label))


def texts(elements) -> str:
    """The elements' text as the reader sees it (markdown escapes removed)."""
    return " ".join(str(element.value) for element in elements).replace("\\", "")


def wait_until_ended(store: RunStore, run_id: int, timeout: float = 90) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs.reap(store)
        run = store.get_run(run_id)
        if run["status"] not in jobs.ACTIVE:
            return run
        time.sleep(0.5)
    jobs.kill(run_id, store)
    raise AssertionError(f"run {run_id} did not end within {timeout} s:\n{jobs.log_tail(run_id)}")


@pytest.fixture
def dummy_trainer():
    """A live process whose command line says cifarmix, standing in for a running training (killed at the end)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "cifarmix-dummy"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize(("label", "value", "reason"), [
    ("Epochs", 0, "epochs must be a positive integer in 1..10,000; got 0"),
    ("Learning rate", 0.0, "learning rate must lie in (0, 10)"),
])
def test_the_form_refuses_an_invalid_value_with_the_reason_and_creates_no_run(tiny_data, label, value, reason):
    at = no_exceptions(open_train_page())
    number(at, label).set_value(value)
    at = no_exceptions(button(at, "Start training").click().run())
    assert reason in texts(at.error)
    assert RunStore().list_runs() == []
    assert "run" not in at.query_params


def test_the_mixing_weight_offers_the_range_of_the_mixer_and_runs_pages(tiny_data):
    weight = number(no_exceptions(open_train_page()), "Mixing weight α")
    assert (weight.min, weight.max, weight.step) == (mixing.ALPHA_MIN, mixing.ALPHA_MAX, mixing.ALPHA_STEP)


def test_bad_architecture_options_are_refused_like_any_other_value(tiny_data):
    at = open_train_page()
    next(w for w in at.text_input if w.label.startswith("Architecture options")).set_value('{"depth": 3}')
    at = no_exceptions(button(at, "Start training").click().run())
    assert "Unknown option(s) depth" in texts(at.error)
    assert RunStore().list_runs() == []


def test_start_runs_a_real_training_process_and_puts_its_id_in_the_url(tiny_data):
    at = no_exceptions(open_train_page())
    assert "smoke" in at.selectbox[0].value  # the quick demo preset is the default
    at = no_exceptions(button(at, "Start training").click().run())
    store = RunStore()
    [run] = store.list_runs()
    assert at.query_params["run"] == str(run["id"])
    assert run["config"]["train_size"] == PRESETS["smoke"]["train_size"]
    assert run["name"] == "smoke"  # no name typed: the preset's
    assert f"Run #{run['id']}" in texts(at.subheader)
    assert any(button.label == "Stop training" for button in at.button)

    run = wait_until_ended(store, run["id"])
    assert run["status"] == "finished", jobs.log_tail(run["id"])
    assert run["device"].startswith(("CPU", "GPU"))
    # A refresh, or a second viewer with the link, finds the finished run with its curves and matrices.
    again = no_exceptions(open_train_page(run["id"]))
    assert "finished" in texts(again.subheader) and "finished" in texts(again.success)
    charts = [json.loads(chart.proto.spec) for chart in again.get("plotly_chart")]
    assert len(charts) == 5  # loss per step, loss per epoch, accuracy, two confusion matrices
    assert all(chart["data"] for chart in charts), "every chart has data (no placeholder)"
    assert "Epoch 2 of 2 done" in again.get("progress")[0].proto.text


def busy_run(store: RunStore, process, **fields) -> int:
    """A run that an alive stand-in process trains (so the page does not reap it), with ``fields`` set."""
    config = preset("demo").to_dict() | {"epochs": 8, "steps_per_epoch": 40}
    run_id = store.create_run("resnet-cpu", {}, config, 0, status=fields.pop("status", "running"))
    store.update_run(run_id, pid=process.pid, process_started=processes.start_time(process.pid), **fields)
    return run_id


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_from_the_first_second_the_page_says_which_phase_a_new_run_is_in_not_empty_charts(tiny_data,
                                                                                          dummy_trainer):
    store = RunStore()
    run_id = busy_run(store, dummy_trainer, status="queued")
    at = no_exceptions(open_train_page(run_id))
    shown = texts(at.markdown)
    assert "Step 1 of 4 before training: starting the process" in shown and "since the process started" in shown
    assert "The curves start with the first training step" in shown
    assert not at.get("plotly_chart") and not at.metric  # no empty charts, no 0 s "Time training"

    store.set_status(run_id, "running", runinfo.FIRST_STEPS)
    store.update_run(run_id, total_epochs=8, total_steps=320, steps_done=0)
    at = no_exceptions(open_train_page(run_id))
    assert "Step 4 of 4 before training: compiling: first steps" in texts(at.markdown)
    assert "✅ loading data" in texts(at.markdown) and "▶ compiling: first steps" in texts(at.markdown)
    assert at.get("progress")[0].proto.text == "Epoch 0 of 8 done · step 0 of 320"  # the step count, live
    assert not at.get("plotly_chart")


def test_once_it_trains_the_step_curve_comes_first_and_the_epoch_charts_say_what_they_wait_for(tiny_data,
                                                                                              dummy_trainer):
    store = RunStore()
    run_id = busy_run(store, dummy_trainer, total_epochs=8, total_steps=320, steps_done=12, train_seconds=9.0)
    store.set_status(run_id, "running", runinfo.TRAINING)
    store.log_steps(run_id, [(step, 1, 2.0, 1.0, 1.0) for step in range(1, 13)])
    at = no_exceptions(open_train_page(run_id))
    [steps] = charts(at)
    assert steps["layout"]["title"]["text"] == "Training loss per step"
    shown = texts(at.markdown) + texts(at.caption)
    assert "They appear when epoch 1 ends and its validation pairs are scored: 12 of its 40 steps done." in shown
    assert "appear when the first epoch ends" in shown  # the confusion matrices
    assert "step 12 of 320" in at.get("progress")[0].proto.text
    assert next(m for m in at.metric if m.label == "Time training").value == "9 s"


def test_a_start_beyond_the_servers_limit_is_refused_with_the_limit_message(tiny_data, dummy_trainer):
    store = RunStore()
    busy = store.create_run("allconv", {}, preset("smoke").to_dict(), 0, status="running")
    store.update_run(busy, pid=dummy_trainer.pid)
    at = no_exceptions(open_train_page())
    assert "1 of 1 allowed" in texts(at.markdown)
    at = no_exceptions(button(at, "Start training").click().run())
    assert "already runs 1 training(s) (#1)" in texts(at.error)
    assert [run["id"] for run in store.list_runs()] == [busy]


def test_a_viewer_without_the_link_follows_the_active_run_and_keeps_it_once_it_ends(tiny_data, dummy_trainer):
    store = RunStore()
    busy = store.create_run("allconv", {}, preset("smoke").to_dict(), 0, status="running", name="theirs")
    store.update_run(busy, pid=dummy_trainer.pid)
    at = no_exceptions(open_train_page())
    assert at.query_params["run"] == str(busy) and f"Run #{busy}" in texts(at.subheader)
    dummy_trainer.kill()
    dummy_trainer.wait()
    at = no_exceptions(at.run())
    assert f"Run #{busy}" in texts(at.subheader) and "killed" in texts(at.error)


def test_a_stop_that_takes_too_long_can_be_forced_and_the_run_resumed_later(tiny_data):
    store = RunStore()
    busy = store.create_run("allconv", {}, preset("smoke").to_dict(), 0, status="running")
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "cifarmix-stuck"],
                             start_new_session=True)  # its own process group, as jobs starts them
    try:
        store.update_run(busy, pid=stuck.pid, process_started=processes.start_time(stuck.pid))  # as jobs records
        at = no_exceptions(open_train_page(busy))
        at = no_exceptions(button(at, "Stop training").click().run())
        assert store.get_run(busy)["stop_requested"] and store.get_run(busy)["status"] == "running"
        button(at, "Kill the process now").click().run()
        assert stuck.wait(timeout=10) != 0
        at = no_exceptions(at.run())
        assert store.get_run(busy)["status"] == "killed" and button(at, f"Resume run #{busy}")
    finally:
        stuck.kill()
        stuck.wait()


def test_a_killed_run_shows_its_status_and_log_and_can_be_resumed_and_stopped(tiny_data):
    store = RunStore()
    config = TrainConfig(arch="allconv", epochs=3, batch_size=16, steps_per_epoch=40, train_size=200,
                                  val_pairs=40)
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed, status="running")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    store.update_run(run_id, pid=ended.pid)  # a process that has exited: the training died
    (paths.run_dir(run_id) / jobs.LOG_FILE).write_text("Epoch 1/3\nKilled by the operating system\n")

    at = no_exceptions(open_train_page(run_id))
    assert store.get_run(run_id)["status"] == "killed"
    assert "killed" in texts(at.error)
    assert "Killed by the operating system" in texts(at.code)
    assert "loading data" not in texts(at.info)  # it is dead, not starting
    assert "This run ended (killed) before its first training step." in texts(at.caption)

    at = no_exceptions(button(at, f"Resume run #{run_id}").click().run())
    assert store.get_run(run_id)["status"] in jobs.ACTIVE
    at = no_exceptions(button(at, "Stop training").click().run())
    assert store.get_run(run_id)["stop_requested"]
    run = wait_until_ended(store, run_id)
    assert run["status"] == "stopped", jobs.log_tail(run_id)
    assert run["epochs_done"] < 3


def test_without_data_the_page_explains_how_to_get_it_instead_of_the_form(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARMIX_DATA", str(tmp_path / "missing.tar.gz"))
    at = no_exceptions(open_train_page())
    assert "CIFAR-10 is not available" in texts(at.error)
    assert not any(b.label == "Start training" for b in at.button)


@pytest.mark.parametrize("link", ["²", "12abc", "9" * 40])
def test_a_link_to_a_run_that_is_not_a_run_number_warns_and_shows_the_form(tiny_data, link):
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = link
    at.switch_page(TRAIN_PAGE)
    at = no_exceptions(at.run())
    assert "in the link is not a run number" in texts(at.warning)
    assert button(at, "Start training")
    assert "run" not in at.query_params  # dropped once warned, so the warning does not come back


def test_a_link_to_a_deleted_run_says_so(tiny_data):
    at = no_exceptions(open_train_page(run_id=424242))
    assert "There is no run #424242" in texts(at.warning)


def test_a_presets_architecture_options_apply_to_its_own_network_only(tiny_data):
    at = no_exceptions(open_train_page())
    at.selectbox(key="train_preset").set_value("demo")
    at = no_exceptions(at.run())
    options = next(w for w in at.text_input if w.label.startswith("Architecture options"))
    assert json.loads(options.value) == PRESETS["demo"]["options"]
    next(w for w in at.selectbox if w.label == "Architecture").set_value("allconv")
    at = no_exceptions(at.run())
    options = next(w for w in at.text_input if w.label.startswith("Architecture options"))
    assert options.value == "{}", "the demo's resnet widths would be refused by allconv"


def test_in_queue_mode_start_queues_the_run_for_a_worker_and_the_page_says_it_waits_for_one(tiny_data, monkeypatch):
    monkeypatch.setenv(jobs.TRAINING_ENV, "queue")
    at = no_exceptions(open_train_page())
    assert "queued for training workers" in texts(at.markdown)
    at = no_exceptions(button(at, "Start training").click().run())
    store = RunStore()
    [run] = store.list_runs()
    assert (run["status"], run["placement"], run["pid"]) == ("queued", "worker", None)  # no process here
    assert runinfo.WAITING_FOR_WORKER.replace("`", "") in texts(at.info).replace("`", "")

    store.claim_next("gpu-box:41:beef", "gpu-box", 5.0, runinfo.STARTING)  # a worker takes it
    at = no_exceptions(open_train_page(run["id"]))
    assert "trained by worker gpu-box:41:beef on gpu-box · last heartbeat" in texts(at.caption)
    at = no_exceptions(button(at, "Stop training").click().run())
    at = no_exceptions(button(at, "Kill the process now").click().run())
    assert store.get_run(run["id"])["kill_requested"] and store.get_run(run["id"])["status"] == "running"
    assert "Kill requested: the run's training worker ends its process" in texts(at.info)
