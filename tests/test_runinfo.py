"""cifarmix.runinfo: a run's timing and the texts every page and the CLI show about it."""

from __future__ import annotations

import pytest

from cifarmix import runinfo
from cifarmix.store import RunStore

RUN = {"id": 3, "name": "tiny", "arch": "allconv", "status": "finished", "epochs_done": 2, "total_epochs": 8,
       "steps_done": 90, "total_steps": 320, "best_val_mean": 0.52345, "best_epoch": 2, "device": "CPU (2 cores)",
       "config": {"epochs": 8, "batch_size": 64, "lr": 0.002, "optimizer": "adamw", "schedule": "cosine",
                  "alpha": 0.5, "label_smoothing": 0.1, "augment": True, "train_size": None, "seed": 0}}
RESULT = {"mean_accuracy": 0.5261, "std": 0.0034, "repeats": 10, "pairs": 10_000, "alpha": 0.5}


def test_progress_estimates_for_the_train_page():
    running = {"status": "running", "total_steps": 100, "steps_done": 40, "total_epochs": 10,
               "started_at": "2026-01-01T00:00:00+00:00"}
    assert runinfo.seconds_left(running, [30.0, 20.0, 20.0, 20.0]) == pytest.approx(60 * 2.0)  # 2 s/step, 60 left
    assert runinfo.seconds_left(running | {"status": "finished"}, [20.0]) is None
    # an epoch cut short by a stop (2 s for 1 step) does not pass for a fast one: still 2 s per step
    assert runinfo.seconds_left(running, [20.0, 2.0, 20.0], [10, 1, 10]) == pytest.approx(60 * 2.0)
    assert runinfo.seconds_left(running | {"steps_done": 0}) is None
    budgeted = running | {"config": {"time_budget_minutes": 1.5}, "train_seconds": 40.0}
    assert runinfo.seconds_left(budgeted, [20.0] * 3) == pytest.approx(50.0)  # the budget ends it first
    finished = {"started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T01:05:00+00:00"}
    assert runinfo.elapsed_seconds(finished) == 3900.0 and runinfo.elapsed_seconds({}) is None
    assert runinfo.elapsed_seconds(finished | {"train_seconds": 1200.0}) == 1200.0  # time training, not wall time


def test_one_form_for_every_duration():
    assert [runinfo.duration_text(s) for s in (3900, 187, 100, 60, 42, 0.4, None)] == [
        "1 h 05 min", "3 min 07 s", "1 min 40 s", "1 min 00 s", "42 s", "0 s", "-"]
    assert runinfo.duration_text(59.6) == "1 min 00 s"  # rounded to the second first: never "60 s"
    assert runinfo.training_time_text({"train_seconds": 100.0}) == "1 min 40 s"
    assert runinfo.training_time_text({}) == "-"


def test_epochs_done_and_planned():
    assert runinfo.epochs_text(RUN) == "2/8" and runinfo.epochs_text(RUN, " of ") == "2 of 8"
    assert runinfo.epochs_text({"config": {"epochs": 5}}) == "0/5"  # before the training counted its epochs
    assert runinfo.epochs_text({}) == "0/?"


def test_the_best_epoch_says_when_it_was_cut_short():
    assert runinfo.best_epoch_text({"best_epoch": None, "epochs_done": 0}) == "-"
    assert runinfo.best_epoch_text({"best_epoch": 2, "epochs_done": 2}) == "2"
    assert runinfo.best_epoch_text({"best_epoch": 3, "epochs_done": 2}) == "3 (cut short)"  # validated after a Stop


def test_accuracies_read_as_percentages():
    assert runinfo.best_val_text(RUN) == "52.3%" and runinfo.best_val_text({}) == "-"
    assert runinfo.percent_text(0.5) == "50.0%" and runinfo.percent_text(None) == "-"


def test_the_progress_bar_text():
    running = RUN | {"status": "running"}
    assert runinfo.progress_text(running) == "Epoch 2 of 8 done · step 90 of 320"
    assert runinfo.progress_text(running, 100.0) == "Epoch 2 of 8 done · step 90 of 320 · about 1 min 40 s left"


def test_labels_name_a_run_in_plain_text():
    assert runinfo.short_label(RUN) == "#3 “tiny” allconv"
    assert runinfo.run_label(RUN) == "#3 “tiny” allconv (finished) — 52.3% val"
    assert runinfo.run_label({"id": 4, "arch": "resnet-cpu", "status": "queued"}) == "#4 resnet-cpu (queued)"


def test_options_and_the_recipe_in_one_line():
    assert runinfo.options_text({"widths": [32, 64, 128], "head_width": 64}) == "widths 32/64/128 · head_width 64"
    assert runinfo.options_text({}) == runinfo.options_text(None) == "defaults"
    assert runinfo.config_text(RUN) == ("batch 64 · lr 0.002 (adamw, cosine) · α 0.5 · label smoothing 0.1 · "
                                        "augmented · training images all · seed 0 · device CPU (2 cores)")
    assert "no augmentation" in runinfo.config_text({"config": {"augment": False}})
    assert runinfo.config_text({}).endswith("device -")


def test_a_test_result_in_one_line():
    assert runinfo.evaluation_text(RESULT) == "52.6% ± 0.3% · 10×10,000"
    assert runinfo.evaluation_text(RESULT | {"alpha": 0.3}) == "52.6% ± 0.3% · 10×10,000 · α 0.3 · quick look"
    assert runinfo.evaluation_text(RESULT | {"repeats": 2}) == "52.6% ± 0.3% · 2×10,000 · quick look"
    assert runinfo.evaluation_text(None) == "-"


def test_a_quick_look_says_what_makes_it_one():
    quick = RESULT | {"repeats": 2, "pairs": 1000, "mean_accuracy": 0.462}
    assert runinfo.quick_look_text(quick) == "quick look: 2 × 1,000 pairs"
    assert runinfo.quick_look_text(RESULT | {"alpha": 0.3}) == "quick look: 10 × 10,000 pairs, α 0.3"
    assert runinfo.quick_look_text(RESULT) is None and runinfo.quick_look_text(None) is None


def test_the_phases_before_the_first_step_are_told_from_the_runs_status_and_message():
    assert runinfo.phase({"status": "queued", "message": "resuming"}) == runinfo.STARTING
    for message in runinfo.PHASES:
        assert runinfo.phase({"status": "running", "message": message, "total_steps": 320}) == message
    assert runinfo.phase({"status": "running", "message": "training", "total_steps": 320}) is None
    assert runinfo.phase({"status": "finished", "message": "loading data"}) is None
    # a run of an older version says "starting" all along: starting only until its step total is known
    assert runinfo.phase({"status": "running", "message": "starting"}) == runinfo.STARTING
    assert runinfo.phase({"status": "running", "message": "starting", "total_steps": 320}) is None
    building = {"status": "running", "message": runinfo.BUILDING}
    assert runinfo.phase_text(building, 12.4) == ("Step 3 of 4 before training: building the model · 12 s since "
                                                  "the process started")
    assert runinfo.phase_text(building | {"epochs_done": 3}) == ("Step 3 of 4 before training: building the model "
                                                                 "(resuming after epoch 3)")


def test_a_runs_standing_result_is_its_newest_full_protocol_one():
    store = RunStore()
    run_id = store.create_run("allconv", {}, {}, 0)
    full = RESULT | {"head_first": 0.5, "head_second": 0.55}
    quick = full | {"repeats": 2, "pairs": 1000, "mean_accuracy": 0.6}
    store.add_evaluation(run_id, "best.keras", full)
    store.add_evaluation(run_id, "best.keras", quick)  # newer, but a quick look
    store.add_evaluation(None, "allconv-untrained", quick)  # no run: not in the map
    assert runinfo.latest_evaluations(store) == {run_id: full}
