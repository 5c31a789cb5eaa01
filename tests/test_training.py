"""Training on the tiny official-format data: the run record, checkpoints, stop, resume, evaluation."""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import pytest

from cifarmix import architectures, checkpoints, evaluation, models, paths, runinfo, training
from cifarmix.config import PRESET_DESCRIPTIONS, PRESETS, TrainConfig, parse_options, preset
from cifarmix.store import RunStore


def tiny_config(**overrides) -> TrainConfig:
    values = dict(arch="allconv", epochs=2, batch_size=16, steps_per_epoch=3, val_pairs=40, lr=1e-3)
    return TrainConfig.from_dict(values | overrides).validate()


@pytest.fixture
def store():
    return RunStore()


def test_a_run_records_steps_epochs_confusions_and_a_loadable_best_model(tiny_data, store):
    run = training.train(tiny_config(), store, name="tiny")
    assert run["status"] == "finished" and run["epochs_done"] == 2
    steps = store.step_metrics(run["id"])
    assert len(steps) == 6 and steps["loss"].notna().all()
    epochs = store.epoch_metrics(run["id"])
    assert epochs["epoch"].tolist() == [1, 2]
    for column in ("val_first_accuracy", "val_second_accuracy", "val_mean_accuracy", "val_loss", "lr", "loss"):
        assert epochs[column].notna().all(), column
    matrix = store.confusion(run["id"], head="first")
    assert matrix.shape == (5, 5) and matrix.sum() == 40
    model = models.load_model(run["model_path"])
    out = models.predict(model, np.zeros((3, 32, 32, 3)))
    assert out["first"].shape == (3, 5) and np.allclose(out["second"].sum(axis=1), 1, atol=1e-3)


def test_best_checkpoint_tracks_the_best_mean_validation_accuracy(tiny_data, store):
    run = training.train(tiny_config(epochs=3), store)
    epochs = store.epoch_metrics(run["id"])
    assert run["best_val_mean"] == pytest.approx(epochs["val_mean_accuracy"].max())
    state = json.loads((paths.run_dir(run["id"]) / checkpoints.STATE_FILE).read_text())
    assert state["epoch"] == 3 and state["best"] == pytest.approx(run["best_val_mean"])


def test_an_epoch_counts_as_done_only_once_its_metrics_are_stored(tiny_data, store, monkeypatch):
    # A process killed right after the store counts an epoch as done must not lose that epoch's metrics: the
    # resume starts after it and never logs it again (CI caught this window once).
    seen = []
    update_run = store.update_run

    def recording(run_id, **fields):
        if fields.get("epochs_done"):
            seen.append((fields["epochs_done"], store.epoch_metrics(run_id)["epoch"].tolist()))
        return update_run(run_id, **fields)

    monkeypatch.setattr(store, "update_run", recording)
    run = training.train(tiny_config(epochs=2), store)
    assert [done for done, _ in seen] == [1, 2] and all(done in logged for done, logged in seen)
    epochs = store.epoch_metrics(run["id"])
    assert run["train_seconds"] == pytest.approx(epochs["train_seconds"].iloc[-1], abs=2.0)  # + its checkpoint saves


def test_a_run_says_each_phase_before_its_first_step_and_then_that_it_trains(tiny_data, store, monkeypatch):
    # The Train page shows these from the first second, while the run has no step, curve or epoch to show yet.
    said = []
    update_run, set_status = store.update_run, store.set_status

    def recording_update(run_id, **fields):
        if "message" in fields:
            said.append((fields["message"], store.step_metrics(run_id)["step"].max()))
        return update_run(run_id, **fields)

    def recording_status(run_id, status, message=None):
        said.append((message, None))
        return set_status(run_id, status, message)

    monkeypatch.setattr(store, "update_run", recording_update)
    monkeypatch.setattr(store, "set_status", recording_status)
    run = training.train(tiny_config(epochs=2), store)
    messages = [message for message, _ in said]
    assert messages[:5] == ["starting", runinfo.LOADING_DATA, runinfo.BUILDING, runinfo.FIRST_STEPS,
                            runinfo.TRAINING]
    assert messages.count(runinfo.TRAINING) == 1  # once, not at every step
    assert all(np.isnan(logged) for _, logged in said[:4] if logged is not None)  # no step before "training"
    assert run["status"] == "finished" and runinfo.phase(run) is None


def test_a_run_that_cannot_train_is_marked_failed_with_the_reason(tmp_path, store):
    from cifarmix import data

    config = tiny_config()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    with pytest.raises(data.DataError):
        training.Trainer(store, run_id, data_source=str(tmp_path / "missing.tar.gz")).run()
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "DataError" in run["message"] and f"--resume {run_id}" in run["message"]


def test_a_stop_request_ends_the_run_as_stopped_with_its_checkpoint(tiny_data, store, monkeypatch):
    from cifarmix import callbacks

    monkeypatch.setattr(callbacks, "FLUSH_SECONDS", 0.0)
    config = tiny_config(epochs=5, steps_per_epoch=4)
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    store.request_stop(run_id)
    run = training.Trainer(store, run_id).run()
    assert run["status"] == "stopped"
    assert run["epochs_done"] < 5
    assert (paths.run_dir(run_id) / checkpoints.BEST_MODEL).exists()


def test_an_epoch_cut_short_by_a_stop_is_redone_in_full_on_resume(tiny_data, store, monkeypatch):
    from cifarmix import callbacks

    monkeypatch.setattr(callbacks, "FLUSH_SECONDS", 0.0)
    config = tiny_config(epochs=3, steps_per_epoch=4)
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    asked = store.stop_requested
    monkeypatch.setattr(store, "stop_requested",  # the Stop button, pressed during step 6 (epoch 2 of 3)
                        lambda rid: (store.get_run(rid)["steps_done"] or 0) >= 6 or asked(rid))
    stopped = training.Trainer(store, run_id).run()
    assert stopped["status"] == "stopped" and stopped["epochs_done"] == 1  # epoch 2 was not completed
    state = json.loads((paths.run_dir(run_id) / checkpoints.STATE_FILE).read_text())
    assert state["epoch"] == 1 and state["train_seconds"] > 0
    assert stopped["steps_done"] == 6  # the steps it did, not the whole of epoch 2
    assert "after 1 epochs and 2 of 4 steps of epoch 2" in stopped["message"]
    assert runinfo.best_epoch_text(stopped) == {1: "1", 2: "2 (cut short)"}[stopped["best_epoch"]]
    assert state["best_steps"] == {1: 4, 2: 6}[state["best_epoch"]]  # what the best weights were trained on
    monkeypatch.setattr(store, "stop_requested", asked)
    resumed = training.resume(run_id, store)
    assert resumed["status"] == "finished" and resumed["epochs_done"] == 3
    assert "after 3 epochs," in resumed["message"] and "steps of epoch" not in resumed["message"]
    steps = store.step_metrics(run_id)
    assert steps["step"].tolist() == list(range(1, 13))  # epoch 2 redone in full: 4 steps per epoch, 12 in all
    assert resumed["steps_done"] == 12
    assert store.epoch_metrics(run_id)["epoch"].tolist() == [1, 2, 3]


def test_a_stop_pressed_during_validation_starts_no_new_epoch(tiny_data, store, monkeypatch):
    from cifarmix import callbacks

    monkeypatch.setattr(callbacks, "FLUSH_SECONDS", 1e9)  # no check inside the epoch: only the epoch's end
    config = tiny_config(epochs=3, steps_per_epoch=3)
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    asked = store.stop_requested
    monkeypatch.setattr(store, "stop_requested", lambda rid: len(store.epoch_metrics(rid)) >= 1 or asked(rid))
    run = training.Trainer(store, run_id).run()
    assert (run["status"], run["epochs_done"], run["steps_done"]) == ("stopped", 1, 3)
    assert store.step_metrics(run_id)["step"].max() == 3 and store.epoch_metrics(run_id)["epoch"].tolist() == [1]


class FakeRecorder:
    """A ``callbacks.Recorder`` without a store or a trainer: it lists what it was asked to record."""

    def __init__(self, folder, stop_after_epochs: int):
        self.folder, self.stop_after_epochs, self.calls = folder, stop_after_epochs, []

    def record_steps(self, rows):
        self.calls.append(("steps", [row[0] for row in rows]))

    def record_progress(self, steps_done, train_seconds):
        self.calls.append(("progress", steps_done))

    def record_epoch(self, epoch, metrics):
        self.calls.append(("epoch", epoch))

    def record_confusion(self, epoch, head, matrix):
        self.calls.append(("confusion", epoch, head))

    def save_state(self, state):
        checkpoints.save_state(self.folder, state)
        self.calls.append(("state", state["epoch"]))

    def stop_wanted(self, extra_seconds=0.0):
        return sum(call[0] == "epoch" for call in self.calls) >= self.stop_after_epochs


def test_the_callbacks_record_a_run_through_the_recorder_alone(tmp_path, monkeypatch):
    from cifarmix import callbacks

    monkeypatch.setattr(callbacks, "FLUSH_SECONDS", 1e9)  # steps are written at the epoch's end only
    recorder = FakeRecorder(tmp_path, stop_after_epochs=2)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    state = checkpoints.fresh_state()
    hooks = [callbacks.RunRecorder(recorder, state, 2), callbacks.Checkpoints(recorder, state, 2)]
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), batch_size=2, epochs=5, callbacks=hooks, verbose=0)
    assert recorder.calls == [("steps", [1, 2]), ("progress", 2), ("epoch", 1), ("state", 1),
                              ("steps", [3, 4]), ("progress", 4), ("epoch", 2), ("state", 2)]  # then the stop
    assert checkpoints.load_state(tmp_path)["epoch"] == 2
    # no validation score: no best; the pair before the last is kept (state.previous.json names it)
    assert sorted(p.name for p in tmp_path.glob("*.keras")) == ["last-e1.keras", "last-e2.keras"]


def test_a_resume_drops_the_steps_of_a_killed_sessions_partial_epoch(tiny_data, store):
    config = tiny_config(epochs=1, steps_per_epoch=3)
    run = training.train(config, store)
    store.update_run(run["id"], config=dict(config.to_dict(), epochs=2))
    store.log_steps(run["id"], [(4, 2, 9.0, 4.5, 4.5), (5, 2, 9.0, 4.5, 4.5), (99, 2, 9.0, 4.5, 4.5)])  # killed
    store.set_status(run["id"], "killed", "test")
    resumed = training.resume(run["id"], store)
    steps = store.step_metrics(run["id"])
    assert resumed["steps_done"] == 6 and steps["step"].tolist() == list(range(1, 7)) and (steps["loss"] < 9).all()


def test_the_command_line_resume_refuses_a_run_another_process_trains(tiny_data, store):
    import subprocess
    import sys

    config = tiny_config()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "cifarmix", "train"])
    try:
        store.update_run(run_id, pid=other.pid)
        store.set_status(run_id, "running", "in another process")
        with pytest.raises(ValueError, match=f"running in process {other.pid}"):
            training.resume(run_id, store)
        assert store.get_run(run_id)["status"] == "running"
    finally:
        other.kill()
        other.wait()


def test_a_resume_keeps_the_plateau_and_early_stopping_counters(tiny_data, store):
    config = tiny_config(epochs=2, schedule="plateau", plateau_patience=8, lr=1e-3)
    run = training.train(config, store)
    state_file = paths.run_dir(run["id"]) / checkpoints.STATE_FILE
    state = json.loads(state_file.read_text())
    assert set(state["plateau"]) >= {"wait", "best", "cooldown_counter"} and "wait" in state["early_stopping"]
    assert "pending_counters" not in state
    # Seven epochs without a better validation loss so far: the eighth (the resumed session's first) must cut.
    state["plateau"].update(wait=7, best=1e-9)
    state_file.write_text(json.dumps(state))
    store.update_run(run["id"], config=dict(config.to_dict(), epochs=3))
    store.set_status(run["id"], "killed", "test")
    training.resume(run["id"], store)
    after = json.loads(state_file.read_text())
    assert after["plateau"]["wait"] == 0 and after["epoch"] == 3  # the cut happened, and reset the wait
    last = keras.saving.load_model(checkpoints.last_checkpoint(paths.run_dir(run["id"]), after), safe_mode=True)
    assert float(np.asarray(last.optimizer.learning_rate)) == pytest.approx(2e-4)  # the checkpoint holds the cut
    assert store.epoch_metrics(run["id"])["lr"].iloc[-1] == pytest.approx(1e-3)  # the rate epoch 3 trained with


def test_resume_continues_from_the_last_completed_epoch(tiny_data, store):
    config = tiny_config(epochs=2)
    run = training.train(config, store)
    # pretend the run was meant to go further and was killed after epoch 2
    store.update_run(run["id"], config=dict(config.to_dict(), epochs=4))
    store.set_status(run["id"], "killed", "test")
    # The epochs' own times (training and validation); the run's time also counts saving their checkpoints.
    in_epochs = store.epoch_metrics(run["id"])["seconds"].sum()
    assert in_epochs - 0.05 <= store.get_run(run["id"])["train_seconds"] <= in_epochs + 2.0 * 2  # (rounded to 0.1 s)
    time.sleep(2.0)  # downtime between the kill and the resume
    resumed = training.resume(run["id"], store)
    assert resumed["status"] == "finished" and resumed["epochs_done"] == 4
    epochs = store.epoch_metrics(run["id"])
    assert epochs["epoch"].tolist() == [1, 2, 3, 4]
    assert store.step_metrics(run["id"])["step"].max() == 12
    # The run's duration is its time in training: the four epochs, not the downtime in between.
    assert epochs["seconds"].sum() - 0.05 <= resumed["train_seconds"] <= epochs["seconds"].sum() + 2.0 * 4
    assert runinfo.elapsed_seconds(resumed) == resumed["train_seconds"] < runinfo.elapsed_seconds(
        dict(resumed, train_seconds=None))


def test_a_kill_between_an_epochs_checkpoint_and_its_state_resumes_from_the_previous_pair(tiny_data, store):
    config = tiny_config(epochs=1)
    run = training.train(config, store)
    folder = paths.run_dir(run["id"])
    state = json.loads((folder / checkpoints.STATE_FILE).read_text())
    assert state["last_model"] == "last-e1.keras" and sorted(p.name for p in folder.glob("last*.keras")) == [
        "last-e1.keras"]
    epoch_one = keras.saving.load_model(folder / "last-e1.keras", safe_mode=True)
    # The process wrote epoch 2's checkpoint and died before the state: the state still goes with epoch 1's.
    later = keras.saving.load_model(folder / "last-e1.keras", safe_mode=True)
    later.optimizer.iterations.assign(99)  # tells the stray checkpoint from epoch 1's
    later.save(folder / "last-e2.keras")
    store.update_run(run["id"], config=dict(config.to_dict(), epochs=2))
    store.set_status(run["id"], "killed", "test")
    trainer = training.Trainer(store, run["id"])
    assert trainer.load_state()["epoch"] == 1
    assert trainer.model(trainer.load_state(), steps=3).optimizer.iterations.numpy() == \
        epoch_one.optimizer.iterations.numpy() == 3  # epoch 1's weights and optimizer, not a later epoch's
    resumed = training.resume(run["id"], store)
    assert resumed["epochs_done"] == 2
    # the stray last-e2 was replaced by the resumed epoch 2; epoch 1's stays as the pair before the last
    assert sorted(p.name for p in folder.glob("last*.keras")) == ["last-e1.keras", "last-e2.keras"]


def test_a_run_saved_before_checkpoints_were_named_by_epoch_still_resumes(tiny_data, store):
    config = tiny_config(epochs=1)
    run = training.train(config, store)
    folder = paths.run_dir(run["id"])
    state = json.loads((folder / checkpoints.STATE_FILE).read_text())
    (folder / state.pop("last_model")).rename(folder / checkpoints.LEGACY_LAST_MODEL)  # the old layout
    (folder / checkpoints.STATE_FILE).write_text(json.dumps(state))
    store.update_run(run["id"], config=dict(config.to_dict(), epochs=2))
    store.set_status(run["id"], "killed", "test")
    resumed = training.resume(run["id"], store)
    assert resumed["epochs_done"] == 2 and store.epoch_metrics(run["id"])["epoch"].tolist() == [1, 2]
    assert sorted(p.name for p in folder.glob("last*.keras")) == ["last-e2.keras", "last.keras"]  # the one before


def test_a_finished_run_cannot_be_resumed(tiny_data, store):
    run = training.train(tiny_config(epochs=1), store)
    with pytest.raises(ValueError, match="already finished"):
        training.resume(run["id"], store)


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be a positive integer"),
    ("batch_size", -4, "batch size"),
    ("lr", float("nan"), "learning rate"),
    ("alpha", 1.0, "mixing weight"),
    ("alpha", 0.97, r"mixing weight alpha must lie in 0.05..0.95 .*got 0.97"),  # the app's range, not (0, 1)
    ("arch", "no-such-net", "no-such-net"),
    ("optimizer", "sgdx", "optimizer"),
])
def test_invalid_configurations_are_refused_with_a_reason(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({field: value}).validate()


def test_a_run_stored_with_a_weight_outside_todays_range_still_opens_to_resume(store):
    values = TrainConfig(alpha=0.97).to_dict()  # allowed before the range was the app's 0.05..0.95
    run_id = store.create_run("allconv", {}, values, 0)
    assert training.Trainer(store, run_id).config.alpha == 0.97  # validated when it was created, not again


def test_models_are_saved_atomically(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    target = models.save_atomically(model, tmp_path / "m.keras")
    assert target.exists() and [p.name for p in tmp_path.iterdir()] == ["m.keras"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_random_baseline_scores_near_chance():
    from cifarmix import architectures

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (600, 32, 32, 3), dtype=np.uint8)
    y = np.arange(600) % 10
    done = []
    result = evaluation.evaluate(architectures.build("random"), x, y, repeats=3, pairs=2000, progress=done.append)
    assert 0.17 < result["mean_accuracy"] < 0.23
    assert len(done) == 12 and done == sorted(done) and done[-1] == 1.0  # 6,000 pairs in batches of 500
    assert len(result["per_repeat"]) == 3 and np.array(result["confusion_first"]).sum() == 6000
    for key in ("std", "head_first", "head_second", "f1_first", "f1_second", "head_gap"):
        assert key in result


def test_evaluate_and_store_scores_an_entry_and_keeps_the_result(store):
    from cifarmix import catalog

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    y = np.arange(200) % 10
    result = evaluation.evaluate_and_store(catalog.untrained("random"), store, x, y, repeats=2, pairs=300, alpha=0.3)
    assert result["model"] == "untrained:random" and result["alpha"] == 0.3
    [row] = store.evaluations()
    assert row["model_ref"] == "untrained:random" and row["result"]["pairs"] == 300
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        evaluation.evaluate_and_store(catalog.untrained("random"), store, x, y, alpha=1.0)


def test_the_headline_result_is_the_newest_full_protocol_one_not_a_newer_quick_look():
    full = {"repeats": 10, "pairs": 10_000, "alpha": 0.5, "seed": evaluation.PROTOCOL_SEED, "mean_accuracy": 0.8}
    quick = {"repeats": 1, "pairs": 500, "alpha": 0.5, "seed": evaluation.PROTOCOL_SEED, "mean_accuracy": 0.7}
    other_weight = dict(full, alpha=0.3, mean_accuracy=0.9)
    assert evaluation.is_full_protocol(full) and not evaluation.is_full_protocol(other_weight)
    assert evaluation.headline([quick, other_weight, full]) is full  # newest first
    assert evaluation.headline([quick]) is quick and evaluation.headline([]) is None


def test_protocol_scores_a_perfect_and_a_half_right_predictor():
    truth = {"first": np.array([0, 1, 2, 3]), "second": np.array([4, 3, 2, 1])}
    perfect = evaluation.score(truth, truth, repeats=2, pairs=2)
    assert perfect["mean_accuracy"] == 1.0 and perfect["std"] == 0.0 and perfect["f1_first"] == 1.0
    half = evaluation.score(truth, {"first": truth["first"], "second": np.array([0, 0, 0, 0])}, 2, 2)
    assert half["mean_accuracy"] == 0.5 and half["head_gap"] == -1.0


def test_mistakes_lists_exactly_the_pairs_where_a_head_is_wrong():
    from cifarmix import architectures, mixing

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    y = np.arange(300) % 10
    pairs = mixing.validation_pairs(x, y, count=200, alpha=0.3)
    model = architectures.build("random")
    found = evaluation.mistakes(model, pairs, limit=7)
    predicted, truth = models.predict_classes(model, pairs), pairs.labels()
    wrong = np.flatnonzero((predicted["first"] != truth["first"]) | (predicted["second"] != truth["second"]))
    assert found["count"] == len(wrong) and found["total"] == 200
    assert found["images"].shape == (7, 32, 32, 3) and found["images"].dtype == np.uint8
    for head in ("first", "second"):
        assert (found["truth"][head] == truth[head][wrong[:7]]).all()
        assert (found["predicted"][head] == predicted[head][wrong[:7]]).all()
    expected = mixing.mix(pairs.groups.a_x[pairs.ia[wrong[:1]]], pairs.groups.b_x[pairs.ib[wrong[:1]]], 0.3)
    assert np.abs(found["images"][0].astype(float) - expected[0]).max() <= 0.5


def test_a_run_is_named_the_same_way_however_it_is_typed(tiny_data, store):
    from cifarmix import catalog

    run = training.train(tiny_config(epochs=1), store)
    for typed in (str(run["id"]), f"run:{run['id']}", f"run:00{run['id']}", f" {run['id']} "):
        entry = catalog.resolve(typed, store)
        assert (entry.reference, entry.run_id) == (f"run:{run['id']}", run["id"])
    with pytest.raises(ValueError, match="there is no run 999"):
        catalog.resolve("run:999", store)


def test_mistake_captions_mark_each_head():
    found = {"truth": {"first": np.array([2]), "second": np.array([4])},
             "predicted": {"first": np.array([4]), "second": np.array([4])}}
    assert evaluation.mistake_caption(found, 0) == "🐦 bird → deer ✗ · 🚚 truck ✓"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_configuration(name):
    config = preset(name).validate()
    assert config.arch in architectures.names()


def test_every_preset_has_a_description_in_the_order_the_app_offers_them():
    assert sorted(PRESET_DESCRIPTIONS) == sorted(PRESETS)
    assert list(PRESET_DESCRIPTIONS)[:2] == ["smoke", "demo"]  # the quick check first, then the classroom demo


def test_typed_options_must_be_a_json_object():
    assert parse_options("") == {} and parse_options(None) == {} and parse_options('{"a": [1]}') == {"a": [1]}
    with pytest.raises(ValueError, match=r"architecture options must be a JSON object \(Expecting"):
        parse_options("{a")
    with pytest.raises(ValueError, match="--options must be a JSON object like {}; got 3"):
        parse_options("3", what="--options")


def test_the_demo_preset_is_a_slim_net_on_a_subset():
    demo = preset("demo")
    assert architectures.param_count(demo.arch, **demo.options) < architectures.param_count("resnet-cpu") / 5
    assert demo.train_size == 10_000 and demo.epochs * demo.steps_per_epoch * demo.batch_size <= 50_000


def test_a_warm_restart_starts_from_another_runs_weights_with_a_fresh_optimizer(tiny_data, store):
    first = training.train(tiny_config(epochs=1), store)
    trained = models.load_model(first["model_path"]).get_weights()
    config = tiny_config(epochs=1, init_from=str(first["id"]))
    trainer = training.Trainer(store, store.create_run(config.arch, config.options, config.to_dict(), 0), None)
    model = trainer.model(trainer.load_state(), steps=3)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), trained))
    assert int(model.optimizer.iterations.numpy()) == 0  # weights only: the schedule starts over
    run = trainer.run()
    assert run["status"] == "finished" and run["config"]["init_from"] == str(first["id"])


def test_a_warm_restart_from_another_architecture_is_refused_naming_both(tiny_data, store):
    first = training.train(tiny_config(epochs=1), store)
    model = architectures.build("resnet-cpu", widths=[8, 8, 8], head_width=8)
    with pytest.raises(ValueError, match="is not this run's architecture"):
        training.copy_weights(str(first["id"]), model, store)


def test_resnet_cpu_takes_relu_in_place_of_gelu_with_the_same_weights():
    gelu = architectures.build("resnet-cpu", widths=[8, 8, 8], head_width=8)
    relu = architectures.build("resnet-cpu", widths=[8, 8, 8], head_width=8, activation="relu")
    assert [w.shape for w in gelu.get_weights()] == [w.shape for w in relu.get_weights()]
    kinds = {type(layer).__name__ for layer in relu.layers}
    assert "ReLU" in kinds and "Activation" not in kinds
    with pytest.raises(ValueError, match="activation must be one of"):
        architectures.build("resnet-cpu", widths=[8, 8, 8], activation="swishy")


def test_the_budget_rates_warm_up_then_anneal_over_the_time_budget():
    from cifarmix.schedules import MIN_FRACTION, budget_rate

    for shape in ("cosine", "linear"):  # the same warm-up, the same ends
        assert budget_rate(1.0, 0, 10, 0, 100, shape) == pytest.approx(0.1)
        assert budget_rate(1.0, 5, 10, 0, 100, shape) == pytest.approx(0.55)
        assert budget_rate(1.0, 10, 10, 0, 100, shape) == pytest.approx(1.0)
        assert budget_rate(1.0, 99, 10, 100, 100, shape) == pytest.approx(MIN_FRACTION)
        assert budget_rate(1.0, 99, 10, 500, 100, shape) == pytest.approx(MIN_FRACTION)  # past the budget: the floor
    low = MIN_FRACTION
    assert budget_rate(1.0, 50, 10, 50, 100) == pytest.approx(0.5 + low / 2)  # the cosine's midpoint
    assert budget_rate(1.0, 50, 10, 25, 100, "linear") == pytest.approx(low + (1 - low) * 0.75)
    assert budget_rate(1.0, 50, 10, 25, 100, "cosine") > budget_rate(1.0, 50, 10, 25, 100, "linear")
    with pytest.raises(ValueError, match="shape is one of"):
        budget_rate(1.0, 50, 10, 25, 100, "step")


def test_a_budget_cosine_run_anneals_by_the_end_of_its_budget_and_needs_one(tiny_data, store):
    with pytest.raises(ValueError, match="give a time budget"):
        tiny_config(schedule="budget-cosine").validate()
    run = training.train(tiny_config(schedule="budget-cosine", epochs=200, time_budget_minutes=0.15,
                                     early_stop_patience=1000), store)  # the budget, not early stopping, ends it
    assert run["status"] == "finished" and "time budget" in run["message"]
    rates = store.epoch_metrics(run["id"])["lr"].tolist()
    assert rates[-1] < rates[0] and rates[-1] < 0.3 * 1e-3  # well down the cosine when the budget ran out


def _trainable(model) -> list[np.ndarray]:
    return [np.asarray(weight) for weight in model.trainable_weights]


def test_a_weight_average_is_what_validation_and_the_best_model_hold(tiny_data, store):
    """Keras starts the average at the weights after the first step; with ema near 1 it stays there. So the
    epoch checkpoints (saved when validation has scored the epoch) of an averaged run of one epoch and of two
    hardly differ, while the same two runs without the average do (the second epoch's three steps move them)."""
    options = {"widths": [8, 8, 8], "head_width": 8, "activation": "relu"}
    settings = dict(arch="resnet-cpu", options=options, lr=0.05, optimizer="sgd", early_stop_patience=1000)

    def epoch_change(**extra):  # the largest change of any weight between the 1-epoch and 2-epoch checkpoints
        ends = [training.train(tiny_config(**settings, **extra, epochs=epochs), store) for epochs in (1, 2)]
        assert [run["status"] for run in ends] == ["finished"] * 2
        one, two = (_trainable(models.load_model(
            paths.run_dir(run["id"]) / checkpoints.last_checkpoint_name(run["epochs_done"]))) for run in ends)
        return max(float(np.abs(a - b).max()) for a, b in zip(one, two))

    assert epoch_change(ema=0.999) < 0.05 * epoch_change()
    with pytest.raises(ValueError, match="weight average momentum must lie in"):
        tiny_config(ema=1.0)


def test_the_whitening_stem_whitens_mixed_patches_and_stays_frozen(tiny_data, store):
    from cifarmix import data, mixing, whitening

    splits = data.load_splits(str(tiny_data), seed=0)
    images = whitening.mixed_sample(mixing.split_groups(splits.x_train, splits.y_train), count=300)
    kernel = whitening.patch_whitening_kernel(images)
    assert kernel.shape == (2, 2, 3, 24) and np.allclose(kernel[..., 12:], -kernel[..., :12])
    patches = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    out = patches.reshape(-1, 12) @ kernel[..., :12].reshape(12, 12)
    def whitened(covariance, tolerance=0.05):  # no two directions correlated, each of variance ~ lambda / (lambda + eps)
        variances = np.diag(covariance)
        return (np.abs(covariance - np.diag(variances)).max() < tolerance
                and 0.5 < variances.min() <= variances.max() < 1 + tolerance)

    assert whitened(np.cov(out.T))
    options = {"widths": [8, 8, 8], "head_width": 8, "whiten": True, "head_stages": 1}
    run = training.train(tiny_config(arch="resnet-cpu", options=options, lr=0.05), store)
    best = models.load_model(run["model_path"]).get_layer("whiten")
    assert not best.trainable and best.get_weights()[0].shape == (2, 2, 3, 24)
    # the kernel set from the run's own mixes (others than the 300 above), untouched by training
    assert whitened(np.cov((patches.reshape(-1, 12) @ best.get_weights()[0][..., :12].reshape(12, 12)).T), 0.15)
    with pytest.raises(ValueError, match="give their groups"):
        whitening.whiten_model(architectures.build("resnet-cpu", **options), None)


def test_per_head_stages_give_each_head_its_own_copy_and_are_counted():
    shared = architectures.build("resnet-cpu", widths=[8, 8, 8], head_width=8)
    own = architectures.build("resnet-cpu", widths=[8, 8, 16], head_width=8, head_stages=1)
    for options in ({"widths": [8, 8, 16], "head_width": 8, "head_stages": 1},
                    {"widths": [8, 8, 16], "head_width": 8, "head_stages": 3, "whiten": True}):
        assert architectures.estimated_params("resnet-cpu", **options) == \
            architectures.build("resnet-cpu", **options).count_params()
    convolutions = lambda model: sum(type(layer).__name__ == "Conv2D" for layer in model.layers)  # noqa: E731
    assert convolutions(own) == convolutions(shared) + 2  # the last stage's two convolutions, once more
    with pytest.raises(ValueError):
        architectures.check_options("resnet-cpu", {"head_stages": 4})
