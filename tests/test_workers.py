"""Training workers (``python -m cifarmix worker``) and the store's queue: claims, heartbeats, Stop and Kill through the
store, a lost worker's run resumed by another; real worker and training processes on tiny data.

The tests that take ``store_url`` run on both databases (the SQLite file, then a fresh PostgreSQL schema, which
the worker and training processes reach through ``CIFARMIX_STORE``, its search_path in the URL): those of the
claim, the heartbeat, a lost worker and Stop and Kill through the store, where the two databases lock differently
(the real-process Stop/Kill/SIGTERM test runs on SQLite only: its store requests are the ones tested on both).
The rest run on SQLite alone.

Every process a test starts is ended by the test (by its own ``Popen``), and so is any training process its
workers left in the test's own store; nothing else is ever signalled.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cifarmix import architectures, cli, heartbeats, jobs, paths, processes, slots, workers
from cifarmix.config import TrainConfig
from cifarmix.store import WORKER, RunStore

ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_S = 0.5
LOST_AFTER_BEATS = 10  # a worker silent for 5 s is lost (short, yet longer than a busy machine's hiccups)
START_TIMEOUT_S = 120  # a worker and its training process import TensorFlow on 2 shared cores
RUN_TIMEOUT_S = 240


def smoke(**overrides) -> TrainConfig:
    """A run of seconds: 1 epoch of 2 steps on 200 training images (a few more epochs with ``epochs``)."""
    values = dict(arch="allconv", epochs=1, batch_size=16, steps_per_epoch=2, train_size=200, val_pairs=20, lr=1e-3,
                  early_stop_patience=1000, plateau_patience=1000)
    return TrainConfig.from_dict(values | overrides).validate()


@pytest.fixture
def lost_quickly(monkeypatch):
    monkeypatch.setenv(heartbeats.LOST_AFTER_ENV, str(LOST_AFTER_BEATS))


class Workers:
    """The worker processes of one test: started with a short heartbeat, ended (if still running) at its end."""

    def __init__(self, store: RunStore):
        self.store, self.started = store, []

    def start(self, *arguments: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "cifarmix", "worker", "--heartbeat", str(HEARTBEAT_S), *arguments],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started.append(process)
        return process

    def finish(self, process: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> str:
        """Wait for a worker to exit by itself; its output. Fails the test if it runs past ``timeout``."""
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError(f"the worker did not exit within {timeout} s:\n{output}") from None
        assert process.returncode == 0, output
        return output

    def end_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout:
                process.stdout.close()
        for run in self.store.list_runs():  # a training process of this test's own store, left running
            if processes.is_alive(run.get("pid"), run.get("process_started")):
                os.killpg(run["pid"], signal.SIGKILL)


@pytest.fixture
def worker_processes(store, lost_quickly):
    started = Workers(store)
    yield started
    started.end_all()


def wait_for(predicate, what: str, timeout: float = START_TIMEOUT_S, process: subprocess.Popen | None = None):
    """Poll ``predicate`` until it returns something true (returned); fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the worker exited while waiting for {what}:\n{process.communicate()[0]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def past_an_epoch(store: RunStore, run_id: int) -> dict | None:
    """The run, once its training process has recorded itself and completed an epoch (else None)."""
    run = store.get_run(run_id)
    return run if run["status"] == "running" and run["epochs_done"] >= 1 and run["pid"] else None


def claimed(output: str) -> list[int]:
    return [int(run_id) for run_id in re.findall(r"claimed run (\d+)", output)]


def epoch_lines(run_id: int) -> int:
    """Epochs Keras trained for the run, over all its sessions (one summary line per epoch in its log)."""
    log = (paths.run_dir(run_id) / jobs.LOG_FILE).read_text()
    return len(re.findall(r"^\d+/\d+ - .*val_mean_accuracy", log, flags=re.MULTILINE))


# --------------------------------------------------------------------------------------- the queue (no TF)


def test_concurrent_claims_hand_each_queued_run_to_exactly_one_worker(store_url, store):
    queued = [store.create_run("allconv", {}, {}, seed=i, placement=WORKER) for i in range(40)]
    local = store.create_run("allconv", {}, {}, seed=99)  # queued by this machine's app: never a worker's
    taken: dict[str, list[int]] = {f"w{i}": [] for i in range(8)}
    go = threading.Event()

    def claim_all(worker: str) -> None:
        go.wait()
        while (run := RunStore(store_url).claim_next(worker, "host", 1.0)) is not None:
            taken[worker].append(run["id"])

    threads = [threading.Thread(target=claim_all, args=(worker,)) for worker in taken]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(run_id for ids in taken.values() for run_id in ids) == queued
    for worker, ids in taken.items():
        assert all(store.get_run(run_id)["worker"] == worker for run_id in ids)
    assert store.get_run(local)["status"] == "queued" and store.get_run(local)["worker"] is None


def test_a_worker_without_a_gpu_leaves_the_networks_meant_for_one_to_the_others(store_url, store, monkeypatch):
    monkeypatch.setattr(workers.devices, "nvidia_smi_gpus", lambda: [])
    big = [name for name in architectures.names() if architectures.get(name).needs_gpu]
    assert big and workers.left_to_gpu_workers("auto") == tuple(big) == workers.left_to_gpu_workers("cpu")
    gpu_run = store.create_run(big[0], {}, {}, seed=0, placement=WORKER)
    cpu_run = store.create_run("allconv", {}, {}, seed=0, placement=WORKER)
    assert store.claim_next("cpu-box", "cpu-box", 1.0, skip_archs=tuple(big))["id"] == cpu_run
    assert store.claim_next("cpu-box", "cpu-box", 1.0, skip_archs=tuple(big)) is None
    monkeypatch.setattr(workers.devices, "nvidia_smi_gpus", lambda: [{"name": "NVIDIA L4", "memory_gib": 22.0}])
    assert workers.left_to_gpu_workers("auto") == ()
    assert store.claim_next("gpu-box", "gpu-box", 1.0, skip_archs=workers.left_to_gpu_workers("gpu"))["id"] == gpu_run


def test_queue_mode_records_the_run_for_a_worker_and_starts_no_process(store, monkeypatch):
    def no_process(*args, **kwargs):
        raise AssertionError("queue mode must not start a process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setenv(jobs.TRAINING_ENV, "queue")
    run_id = jobs.start(smoke(), store, name="for a worker")
    run = store.get_run(run_id)
    assert (run["status"], run["placement"], run["pid"], run["worker"]) == ("queued", WORKER, None, None)
    jobs.start(smoke(), store)  # the server's training limit (1) is not this server's to apply to workers' runs
    slots.check_room(store)
    monkeypatch.setenv(jobs.TRAINING_ENV, "cloud")
    with pytest.raises(ValueError, match="CIFARMIX_TRAINING to be one of local, queue; found 'cloud'"):
        jobs.start(smoke(), store)


def test_stop_and_kill_of_a_run_no_worker_holds_yet_end_it_at_once(store_url, store):
    stopped, killed = jobs.queue(smoke(), store), jobs.queue(smoke(), store)
    jobs.stop(stopped, store)
    assert jobs.kill(killed, store) is True
    ended = store.get_run(stopped)
    assert (ended["status"], ended["message"], ended["stop_requested"]) == (
        "stopped", "stopped before a worker took it", True)
    assert store.get_run(killed)["status"] == "killed" and "before a worker took it" in store.get_run(killed)["message"]
    assert store.claim_next("w", "host", 1.0) is None  # neither is claimable now
    assert jobs.resume(killed, store) == killed and store.get_run(killed)["status"] == "queued"  # back to the workers
    assert store.claim_next("w", "host", 1.0)["id"] == killed


def test_a_worker_silent_past_its_threshold_is_lost_its_run_killed_and_claimable_again(store_url, store,
                                                                                         lost_quickly):
    run_id = jobs.queue(smoke(), store)
    store.claim_next("vm:1:aaaa", "vm", HEARTBEAT_S)
    assert jobs.reap(store) == []  # it has just beaten
    silent_since = (datetime.now(timezone.utc) - timedelta(seconds=10)).isoformat(timespec="milliseconds")
    store.update_run(run_id, heartbeat_at=silent_since, epochs_done=2)
    other = store.create_run("allconv", {}, {}, seed=1, status="running")  # a local run: its pid tells, not a heartbeat
    assert jobs.reap(store) == [run_id]  # what the app's pages do on every refresh
    run = store.get_run(run_id)
    assert run["status"] == "killed" and run["worker_lost"]
    assert run["message"].startswith(f"worker vm:1:aaaa on vm was lost: its last heartbeat was at "
                                     f"{silent_since[:19].replace('T', ' ')} UTC, 10 s ago (more than 10 x its 0.5 s "
                                     "interval), after 2 epochs")
    assert store.get_run(other)["status"] == "running"
    resumed = store.claim_next("vm:2:bbbb", "vm", HEARTBEAT_S)
    assert (resumed["id"], resumed["status"], resumed["worker"], resumed["worker_lost"]) == (
        run_id, "running", "vm:2:bbbb", False)
    assert store.beat(run_id, "vm:1:aaaa") == {"ours": False, "active": True, "kill_requested": False}


def test_a_worker_held_run_is_not_claimed_by_another_process(store_url, store):
    run_id = jobs.queue(smoke(), store)
    store.claim_next("vm:1:aaaa", "vm", 1.0)
    assert not store.claim(run_id, os.getpid(), processes.start_time(os.getpid()))  # `train --resume` here: refused
    assert not store.claim(run_id, os.getpid(), processes.start_time(os.getpid()), worker="vm:2:bbbb")
    assert store.claim(run_id, os.getpid(), processes.start_time(os.getpid()), worker="vm:1:aaaa")
    assert store.get_run(run_id)["pid"] == os.getpid()
    assert store.request_kill(run_id) == "requested"
    assert store.end_worker_run(run_id, "vm:1:aaaa", "killed", "killed on request after {epochs_done} epochs")
    assert store.get_run(run_id)["message"] == "killed on request after 0 epochs"
    assert store.claim(run_id, os.getpid(), processes.start_time(os.getpid()))  # `train --resume` here, now it is free
    run = store.get_run(run_id)
    assert (run["placement"], run["worker"], run["kill_requested"], run["status"]) == (None, None, False, "running")


@pytest.mark.parametrize("arguments, message", [
    (["--max-runs", "0"], "--max-runs: expected a whole number of at least 1, got 0"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--heartbeat", "0"], "--heartbeat: expected a positive number, got 0.0"),
])
def test_the_worker_refuses_bad_arguments_with_one_clear_line(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["worker", *arguments])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_worker_says_plainly_when_it_has_no_gpu_or_no_store(monkeypatch, capsys):
    monkeypatch.setattr(workers.devices, "nvidia_smi_gpus", lambda: [])
    assert cli.main(["worker", "--device", "gpu"]) == 2
    assert "error: --device gpu: this machine shows no NVIDIA GPU" in capsys.readouterr().err
    monkeypatch.setenv(paths.HOME_ENV, "/proc/no-such-folder")
    assert cli.main(["worker", "--exit-when-idle"]) == 2
    assert "cannot keep its files in /proc/no-such-folder" in capsys.readouterr().err


def test_an_unusable_run_files_root_is_named_with_its_setting(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(paths.RUNS_ENV, str(blocker / "runs"))
    with pytest.raises(paths.HomeError, match=r"cannot keep its run files in .*not-a-folder/runs \(CIFARMIX_RUNS="):
        paths.run_dir(1)


def test_train_queue_records_a_queued_run_and_refuses_what_it_cannot_queue(store, capsys):
    assert cli.main(["train", "--arch", "allconv", "--epochs", "1", "--queue", "--name", "later"]) == 0
    [run] = store.list_runs()
    assert (run["status"], run["placement"], run["name"], run["pid"]) == ("queued", WORKER, "later", None)
    assert f"run {run['id']} queued" in capsys.readouterr().out
    assert cli.main(["train", "--preset", "champion", "--queue"]) == 2
    assert "--queue takes one run" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run["id"]), "--queue"]) == 2  # still queued: nothing to resume
    assert "cannot be resumed (status: queued)" in capsys.readouterr().err


# --------------------------------------------------------------------------- real workers, real trainings


def test_two_workers_train_five_queued_runs_each_exactly_once(tiny_data, store_url, store, worker_processes,
                                                              tmp_path, monkeypatch):
    shared = tmp_path / "shared-runs"  # the run-files root the machines would mount
    monkeypatch.setenv(paths.RUNS_ENV, str(shared))
    queued = [jobs.queue(smoke(seed=i), store, name=f"queued {i}") for i in range(5)]
    first, second = worker_processes.start("--exit-when-idle"), worker_processes.start("--exit-when-idle")
    outputs = [worker_processes.finish(first), worker_processes.finish(second)]

    claims = [claimed(output) for output in outputs]
    assert sorted(claims[0] + claims[1]) == queued, outputs  # every run claimed, none twice
    assert claims[0] and claims[1], outputs  # both workers took a share
    ids = [re.search(r"worker (\S+): on ", output).group(1) for output in outputs]
    assert all(repr(store) in output for output in outputs), outputs  # the test's own store (PostgreSQL: its schema)
    for run_id in queued:
        run = store.get_run(run_id)
        assert (run["status"], run["epochs_done"], run["steps_done"]) == ("finished", 1, 2), run["message"]
        assert run["worker"] == ids[0 if run_id in claims[0] else 1]
        assert store.step_metrics(run_id)["step"].tolist() == [1, 2]
        assert store.epoch_metrics(run_id)["epoch"].tolist() == [1]
        assert epoch_lines(run_id) == 1  # trained once: one session's one epoch in its log
        assert Path(run["model_path"]).is_file() and Path(run["model_path"]).parent == shared / f"run-{run_id:05d}"


def test_a_worker_killed_mid_run_is_found_by_its_missed_heartbeat_and_the_other_worker_finishes_its_run(
        tiny_data, store_url, store, worker_processes):
    run_id = jobs.queue(smoke(epochs=4, steps_per_epoch=3), store)
    doomed = worker_processes.start()
    wait_for(lambda: store.get_run(run_id)["worker"], "the first worker's claim", process=doomed)
    rescuer = worker_processes.start("--max-runs", "1")  # idle meanwhile: nothing else is queued
    held = wait_for(lambda: past_an_epoch(store, run_id), "the first epoch", timeout=RUN_TIMEOUT_S, process=doomed)
    doomed_id, trainer = held["worker"], (held["pid"], held["process_started"])

    doomed.kill()  # SIGKILL: no goodbye, no last write
    doomed.communicate()
    wait_for(lambda: not processes.is_alive(*trainer), "its training process to die with it", timeout=10)
    output = worker_processes.finish(rescuer)

    assert f"run {run_id}: its worker missed its heartbeats; marked killed" in output, output
    resumed_after = re.search(rf"claimed run {run_id} \(allconv, resuming after epoch (\d)\)", output)
    assert resumed_after and 1 <= int(resumed_after.group(1)) < 4, output
    run = store.get_run(run_id)
    assert (run["status"], run["epochs_done"], run["steps_done"]) == ("finished", 4, 12), run["message"]
    assert run["worker"] != doomed_id and run["worker"] in output
    assert store.step_metrics(run_id)["step"].tolist() == list(range(1, 13))  # the cut epoch's steps redone once
    assert store.epoch_metrics(run_id)["epoch"].tolist() == [1, 2, 3, 4]
    assert epoch_lines(run_id) == 4  # each epoch trained once: by the lost worker's process, or by the rescuer's


def test_stop_and_kill_through_the_store_end_a_workers_runs_and_sigterm_hands_its_run_back(
        tiny_data, store, worker_processes):  # SQLite only (35 s a database): the requests' SQL runs on both above
    to_stop, to_kill, handed_back = (jobs.queue(smoke(epochs=500), store) for _ in range(3))
    worker = worker_processes.start("--max-runs", "3")
    wait_for(lambda: past_an_epoch(store, to_stop), "the first run to train", process=worker)
    jobs.stop(to_stop, store)  # a flag in the store: its training process ends cleanly
    held = wait_for(lambda: past_an_epoch(store, to_kill), "the second run to train", timeout=RUN_TIMEOUT_S,
                    process=worker)
    assert jobs.kill(to_kill, store) is True  # a request in the store: the worker ends its own process
    last = wait_for(lambda: past_an_epoch(store, handed_back), "the third run to train", timeout=RUN_TIMEOUT_S,
                    process=worker)
    worker.terminate()  # SIGTERM: the worker ends its training and hands the run back
    output = worker_processes.finish(worker)

    stopped = store.get_run(to_stop)
    assert stopped["status"] == "stopped" and stopped["message"].startswith("stopped on request after ")
    killed = store.get_run(to_kill)
    assert killed["status"] == "killed" and killed["kill_requested"] and not killed["worker_lost"]
    assert killed["message"].startswith(f"killed on request: worker {held['worker']} ended its training process")
    assert not processes.is_alive(held["pid"], held["process_started"])
    back = store.get_run(handed_back)
    assert back["status"] == "killed" and back["worker_lost"] and not processes.is_alive(last["pid"],
                                                                                          last["process_started"])
    assert back["message"].startswith(f"worker {last['worker']} shut down after ")
    assert "asked to exit" in output and "trained 2 run(s); exiting" in output
    assert store.claim_next("another", "host", 1.0)["id"] == handed_back  # the killed-on-request run waits for Resume
