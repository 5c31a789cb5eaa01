"""Starting, resuming and stopping training processes (cifarmix.jobs) without training anything."""

from __future__ import annotations

import subprocess

import pytest

from cifarmix import jobs, processes, training
from cifarmix.config import TrainConfig
from cifarmix.store import RunStore


@pytest.fixture
def store():
    return RunStore()


def killed_run(store: RunStore) -> int:
    config = TrainConfig(arch="allconv", epochs=2).validate()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    store.update_run(run_id, pid=2**22 + 7)  # a pid no process has
    store.set_status(run_id, "killed", "the process died")
    return run_id


def test_a_resume_being_launched_is_not_taken_for_a_dead_process(store, monkeypatch):
    run_id = killed_run(store)
    seen = []

    def launch(store_, run_id_, arguments, data_source):  # another viewer's page refreshes before the pid is known
        jobs.reap(store_)
        seen.append(store_.get_run(run_id_)["status"])

    monkeypatch.setattr(jobs, "_spawn", launch)
    jobs.resume(run_id, store)
    assert seen == ["queued"] and store.get_run(run_id)["pid"] is None


def test_a_process_that_cannot_be_started_fails_its_run_and_frees_the_slot(store, monkeypatch):
    def no_process(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    config = TrainConfig(arch="allconv", epochs=1).validate()
    with pytest.raises(OSError):
        jobs.start(config, store)
    [run] = store.list_runs()
    assert run["status"] == "failed" and "could not be started" in run["message"] and "Too many" in run["message"]
    assert jobs.active_runs(store) == []


def test_stopping_a_queued_run_without_a_process_ends_it(store):
    config = TrainConfig(arch="allconv", epochs=1).validate()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    jobs.stop(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and run["stop_requested"]


def running_run(store: RunStore, pid: int = 2**22 + 7) -> int:
    run_id = killed_run(store)
    store.update_run(run_id, pid=pid)
    store.set_status(run_id, "running", "training")
    return run_id


def test_reap_marks_a_run_whose_process_died_killed_with_its_epochs(store):
    run_id = running_run(store)
    store.update_run(run_id, epochs_done=1)
    assert jobs.reap(store) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "killed" and "after 1 epochs" in run["message"] and f"--resume {run_id}" in run["message"]


@pytest.mark.parametrize("meanwhile", ["ends on its own", "is resumed in another process",
                                       "is resumed in a process given the same pid"])
def test_reap_keeps_a_run_that_changed_between_its_snapshot_and_the_liveness_check(store, monkeypatch, meanwhile):
    run_id = running_run(store)
    found_dead = []

    def slow_check(pid, started=None):  # the trainer writes its last status and exits while the reaper looks
        found_dead.append(pid)
        if meanwhile == "ends on its own":
            store.update_run(run_id, epochs_done=2)
            store.set_status(run_id, "finished", "finished after 2 epochs")
        elif meanwhile == "is resumed in another process":
            store.update_run(run_id, pid=2**22 + 9)
            store.set_status(run_id, "running", "resuming")
        else:
            store.update_run(run_id, process_started=12345)
            store.set_status(run_id, "running", "resuming")
        return False

    monkeypatch.setattr(processes, "is_alive", slow_check)
    assert jobs.reap(store) == [] and found_dead == [2**22 + 7]
    run = store.get_run(run_id)
    assert run["status"] == ("finished" if meanwhile == "ends on its own" else "running")


def test_a_later_process_with_the_runs_pid_is_not_taken_for_its_training(store):
    other = subprocess.Popen(["sleep", "60"])  # alive, with a pid; not the process that trained the run
    try:
        started = processes.start_time(other.pid)
        assert started is not None and processes.is_alive(other.pid, started)
        run_id = running_run(store, pid=other.pid)
        store.update_run(run_id, process_started=started - 1)  # the run's own process started earlier
        assert not jobs.run_is_alive(store.get_run(run_id))
        jobs.kill(run_id, store)  # must not signal the stranger
        assert other.poll() is None
        assert jobs.reap(store) == [run_id] and store.get_run(run_id)["status"] == "killed"
    finally:
        other.kill()
        other.wait()


def test_a_training_process_records_its_pid_and_start_time(tiny_data, store):
    import os

    config = TrainConfig(arch="allconv", epochs=1, batch_size=8, steps_per_epoch=1, val_pairs=10)
    run = training.train(config.validate(), store)
    assert (run["pid"], run["process_started"]) == (os.getpid(), processes.start_time(os.getpid()))
    assert jobs.run_is_alive(run)  # this process, though "cifarmix" is not in its command line


def test_kill_ends_a_training_started_from_python_without_signalling_its_process_group(store):
    import sys

    # Not started by jobs, so not the leader of its own process group (it shares this test's group).
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_id = running_run(store, pid=trainer.pid)
        store.update_run(run_id, process_started=processes.start_time(trainer.pid))
        jobs.kill(run_id, store)  # a killpg here would also end this test process
        assert trainer.wait(timeout=10) == -15
        jobs.kill(run_id, store)  # already gone: nothing to do, no error
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()


def test_a_config_is_validated_once_on_its_way_to_the_training_process(store, monkeypatch):
    checked = []
    validate = TrainConfig.validate
    monkeypatch.setattr(TrainConfig, "validate", lambda self: checked.append(self.arch) or validate(self))
    monkeypatch.setattr(jobs, "_spawn", lambda *args: None)  # no process: only the way there
    run_id = jobs.start(TrainConfig(arch="allconv", epochs=1), store)
    training.Trainer(store, run_id)  # what the training process builds from the stored run
    assert checked == ["allconv"]
