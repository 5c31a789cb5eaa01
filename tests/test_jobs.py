"""Starting, resuming and stopping training processes (cifarmix.jobs) without training anything."""

from __future__ import annotations

import subprocess

import pytest

from cifarmix import jobs, training
from cifarmix.store import RunStore


@pytest.fixture
def store():
    return RunStore()


def killed_run(store: RunStore) -> int:
    config = training.TrainConfig(arch="allconv", epochs=2).validate()
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
    config = training.TrainConfig(arch="allconv", epochs=1).validate()
    with pytest.raises(OSError):
        jobs.start(config, store)
    [run] = store.list_runs()
    assert run["status"] == "failed" and "could not be started" in run["message"] and "Too many" in run["message"]
    assert jobs.active_runs(store) == []


def test_stopping_a_queued_run_without_a_process_ends_it(store):
    config = training.TrainConfig(arch="allconv", epochs=1).validate()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    jobs.stop(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and run["stop_requested"]
