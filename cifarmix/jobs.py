"""Start, watch and stop training runs as separate ``python -m cifarmix train`` processes, or queue them for training
workers.

A server runs at most ``CIFARMIX_MAX_TRAININGS`` (default 1) trainings at once, the command line's included: the
check and the start happen under one file lock (``cifarmix.slots``), so two people pressing Start together cannot
both slip past the limit.

With ``CIFARMIX_TRAINING=queue`` (a deployment whose trainings run on other machines) the app starts no process:
Start and Resume queue the run in the store, and a training worker (``python -m cifarmix worker``, see
``cifarmix.workers``) claims it. A run a worker holds is stopped and killed through the store (flags its training
process and its worker poll), never by a signal from here. Without the setting nothing changes: runs start here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from cifarmix import checkpoints, paths, processes, slots
from cifarmix.store import ACTIVE_STATUSES, WORKER, RunStore
from cifarmix.config import TrainConfig
from cifarmix.slots import MAX_ENV, JobLimitReached, active_runs, max_trainings, reap, run_is_alive  # noqa: F401

ACTIVE = ACTIVE_STATUSES
LOG_FILE = "train.log"
TRAINING_ENV = "CIFARMIX_TRAINING"
TRAINING_MODES = ("local", "queue")  # start trainings here (the default), or only queue them for workers
_start_lock = slots.start_lock


def training_mode() -> str:
    """``"local"`` (trainings start on this machine; the default) or ``"queue"`` (``CIFARMIX_TRAINING=queue``:
    they wait in the store for a training worker).

    Raises:
        ValueError: for another value of the setting.
    """
    mode = (os.environ.get(TRAINING_ENV) or "local").strip().lower()
    if mode not in TRAINING_MODES:
        raise ValueError(f"Expected {TRAINING_ENV} to be one of {', '.join(TRAINING_MODES)}; found "
                         f"{os.environ[TRAINING_ENV]!r}.")
    return mode


def is_worker_run(run: dict | None) -> bool:
    """True for a run queued for, or trained by, a training worker."""
    return bool(run) and run.get("placement") == WORKER


def queue(config: TrainConfig, store: RunStore | None = None, name: str | None = None) -> int:
    """Validate ``config`` and record its run as queued for a training worker; no process starts. Returns its id.

    Raises:
        ValueError: the configuration is invalid (nothing is recorded).
    """
    store = store or RunStore()
    config.validate()
    return store.create_run(config.arch, config.options, config.to_dict(), config.seed, name=name, placement=WORKER)


def start(config: TrainConfig, store: RunStore | None = None, name: str | None = None,
          data_source: str | None = None) -> int:
    """Validate ``config``, create its run and start the training process (with ``CIFARMIX_TRAINING=queue``: queue
    it for a worker). Returns the run id.

    Raises:
        ValueError: the configuration is invalid.
        JobLimitReached: the server already runs its maximum number of trainings.
    """
    store = store or RunStore()
    if training_mode() == "queue":
        return queue(config, store, name)
    config.validate()
    with _start_lock():
        slots.check_room(store)
        run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed, name=name)
        _spawn(store, run_id, ["--run-id", str(run_id)], data_source)
    return run_id


def _check_resumable(store: RunStore, run_id: int) -> dict:
    """The run, if it can be resumed; else ValueError saying why (active, finished, state damaged or missing)."""
    run = store.get_run(run_id)
    if run is None or run["status"] in ACTIVE or run["status"] == "finished":
        raise ValueError(f"run {run_id} cannot be resumed (status: {run and run['status']})")
    try:  # a damaged or missing state is said here, not only in the new process's log
        checkpoints.resume_state(paths.run_dir(run_id), run.get("epochs_done") or 0)
    except checkpoints.StateError as error:
        raise ValueError(f"run {run_id} cannot resume: {error}") from None
    return run


def requeue(run_id: int, store: RunStore | None = None) -> int:
    """Queue a stopped, killed or failed run again for the training workers: one resumes it from its last checkpoint.

    Raises:
        ValueError: the run cannot be resumed (active, finished, or its state damaged or missing: the reason).
    """
    store = store or RunStore()
    _check_resumable(store, run_id)
    if not store.queue_again(run_id):
        raise ValueError(f"run {run_id} cannot be resumed: it started or ended meanwhile")
    return run_id


def resume(run_id: int, store: RunStore | None = None, data_source: str | None = None) -> int:
    """Continue a stopped or killed run in a new process from its last checkpoint; a worker's run (or any run, with
    ``CIFARMIX_TRAINING=queue``) is queued again for the workers instead.

    Raises:
        ValueError: the run cannot be resumed (active, finished, or its state damaged or missing: the reason).
        JobLimitReached: the server already runs its maximum number of trainings.
    """
    store = store or RunStore()
    if training_mode() == "queue" or is_worker_run(store.get_run(run_id)):
        return requeue(run_id, store)
    with _start_lock():
        slots.check_room(store, run_id)
        _check_resumable(store, run_id)
        store.update_run(run_id, pid=None, process_started=None)  # dead: reap() must not call the new start killed
        store.set_status(run_id, "queued", "resuming")  # re-queueing clears an old stop request
        _spawn(store, run_id, ["--resume", str(run_id)], data_source)
    return run_id


def launch(run_id: int, arguments: list[str], data_source: str | None, environment: dict | None = None,
           **options) -> subprocess.Popen:
    """Start ``python -m cifarmix train ARGUMENTS`` for run ``run_id``: in the project folder, leading its own
    process group, its output appended to the run's log. ``environment``: variables added to this process's;
    ``options``: more ``subprocess.Popen`` arguments.

    Raises:
        OSError: the process could not be started.
    """
    variables = dict(os.environ, **(environment or {}))
    if data_source:
        variables[paths.DATA_ENV] = str(data_source)
    with open(paths.run_dir(run_id) / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cifarmix", "train", *arguments], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=variables, cwd=str(paths.project_root()), start_new_session=True, **options,
        )


def _spawn(store: RunStore, run_id: int, arguments: list[str], data_source: str | None) -> None:
    try:
        process = launch(run_id, arguments, data_source)
    except OSError as error:  # no process: the run must not stay queued and hold a training slot
        store.set_status(run_id, "failed", f"the training process could not be started: {error}")
        raise
    threading.Thread(target=process.wait, daemon=True).start()  # reap the child when it exits: no zombies
    store.update_run(run_id, pid=process.pid, process_started=processes.start_time(process.pid))


def stop(run_id: int, store: RunStore | None = None) -> None:
    """Ask a run to stop cleanly: it finishes its current step, keeps its best checkpoint, ends ``stopped``. A
    worker's run still waiting in the queue ends at once."""
    store = store or RunStore()
    if is_worker_run(store.get_run(run_id)):
        if not store.stop_waiting(run_id):
            store.request_stop(run_id)  # its training process polls the flag, wherever it runs
        return
    with _start_lock():  # not between a start's queueing and its process's pid being recorded
        store.request_stop(run_id)
        run = store.get_run(run_id)
        if run and run["status"] == "queued" and not run_is_alive(run):
            store.set_status(run_id, "stopped", "stopped before it started")


def kill(run_id: int, store: RunStore | None = None) -> bool:
    """End a run's process at once (SIGTERM to the process group a started run leads, else to the process alone);
    it can be resumed from its last epoch. Returns whether a signal was sent (False: the process had ended).

    A worker's run is killed through the store: its worker polls the request and ends its own training process
    (a run still waiting in the queue ends ``killed`` at once). Returns whether the request reached an active run.

    Only the process the store names by pid *and* start time, as the training recorded it when it claimed its run,
    is signalled: never a later process given the same pid, nor one that merely looks like a cifarmix process.

    Raises:
        ValueError: the run records no start time for its process (runs recorded before cifarmix kept one), so its
            process cannot be told from a stranger: nothing is signalled.
    """
    store = store or RunStore()
    run = store.get_run(run_id)
    if is_worker_run(run):
        return store.request_kill(run_id) != "not active"
    if not run or not run.get("pid"):
        return False
    if run.get("process_started") is None:
        if processes.start_time(run["pid"]) is None:
            return False  # no process has that pid any more: nothing to end
        raise ValueError(f"run {run_id} records process {run['pid']} without its start time (it was recorded by an "
                         "older cifarmix), so cifarmix cannot tell it from another process with that pid and will "
                         "not signal it. Use Stop, or end the process yourself if it is this run's training.")
    if not processes.is_alive(run["pid"], run["process_started"]):
        return False  # it has ended (or its pid now names another process): nothing of this run's to end
    processes.terminate(run["pid"])
    return True


def log_tail(run_id: int, lines: int = 30) -> str:
    """The last lines of a run's process log (errors of a failed run end up here)."""
    path = paths.run_dir(run_id) / LOG_FILE
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
