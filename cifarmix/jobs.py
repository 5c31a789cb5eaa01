"""Start, watch and stop training runs as separate ``python -m cifarmix train`` processes.

A server runs at most ``CIFARMIX_MAX_TRAININGS`` (default 1) trainings at once; the check and the start
happen under a file lock, so two people pressing Start together cannot both slip past the limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading

from cifarmix import paths, processes
from cifarmix.store import ACTIVE_STATUSES, RunStore
from cifarmix.config import TrainConfig

MAX_ENV = "CIFARMIX_MAX_TRAININGS"
ACTIVE = ACTIVE_STATUSES
LOG_FILE = "train.log"


class JobLimitReached(RuntimeError):
    """Starting another training would exceed the server's limit."""


def max_trainings() -> int:
    """The server's limit on simultaneous trainings (``CIFARMIX_MAX_TRAININGS``, default 1)."""
    try:
        return max(1, int(os.environ.get(MAX_ENV, "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def _start_lock():
    with open(paths.home() / "jobs.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_is_alive(run: dict | None) -> bool:
    """True if the run's recorded training process is alive (by its pid and start time)."""
    return bool(run) and processes.is_alive(run.get("pid"), run.get("process_started"))


def reap(store: RunStore) -> list[int]:
    """Mark active runs whose process has died as ``killed`` (resumable). Returns their ids.

    The list is a snapshot: a run may end on its own, or be resumed in a new process, between reading it and
    finding its old process dead. ``RunStore.mark_killed`` checks again in the same transaction as it writes.
    """
    dead = []
    for run in store.list_runs():
        if run["status"] in ACTIVE and run.get("pid") and not run_is_alive(run):
            if store.mark_killed(run["id"], run["pid"], run.get("process_started"),
                                 "the training process ended unexpectedly after {epochs_done} epochs; "
                                 f"resume with: python -m cifarmix train --resume {run['id']}"):
                dead.append(run["id"])
    return dead


def active_runs(store: RunStore) -> list[dict]:
    """Runs that are queued or running with a live process."""
    reap(store)
    return [run for run in store.list_runs() if run["status"] in ACTIVE]


def start(config: TrainConfig, store: RunStore | None = None, name: str | None = None,
          data_source: str | None = None) -> int:
    """Validate ``config``, create its run and start the training process. Returns the run id.

    Raises:
        ValueError: the configuration is invalid.
        JobLimitReached: the server already runs its maximum number of trainings.
    """
    store = store or RunStore()
    config.validate()
    with _start_lock():
        running = active_runs(store)
        if len(running) >= max_trainings():
            ids = ", ".join(f"#{run['id']}" for run in running)
            raise JobLimitReached(
                f"This server already runs {len(running)} training(s) ({ids}) and allows {max_trainings()} at once "
                f"(setting {MAX_ENV}). Wait for it to finish or stop it first."
            )
        run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed, name=name)
        _spawn(store, run_id, ["--run-id", str(run_id)], data_source)
    return run_id


def resume(run_id: int, store: RunStore | None = None, data_source: str | None = None) -> int:
    """Continue a stopped or killed run in a new process from its last checkpoint."""
    store = store or RunStore()
    with _start_lock():
        if len(active_runs(store)) >= max_trainings():
            raise JobLimitReached(f"This server already runs {max_trainings()} training(s); stop one first.")
        run = store.get_run(run_id)
        if run is None or run["status"] in ACTIVE or run["status"] == "finished":
            raise ValueError(f"run {run_id} cannot be resumed (status: {run and run['status']})")
        store.update_run(run_id, pid=None, process_started=None)  # dead: reap() must not call the new start killed
        store.set_status(run_id, "queued", "resuming")  # re-queueing clears an old stop request
        _spawn(store, run_id, ["--resume", str(run_id)], data_source)
    return run_id


def _spawn(store: RunStore, run_id: int, arguments: list[str], data_source: str | None) -> None:
    environment = dict(os.environ)
    if data_source:
        environment[paths.DATA_ENV] = str(data_source)
    try:
        with open(paths.run_dir(run_id) / LOG_FILE, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cifarmix", "train", *arguments], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=environment, cwd=str(paths.project_root()), start_new_session=True,
            )
    except OSError as error:  # no process: the run must not stay queued and hold a training slot
        store.set_status(run_id, "failed", f"the training process could not be started: {error}")
        raise
    threading.Thread(target=process.wait, daemon=True).start()  # reap the child when it exits: no zombies
    store.update_run(run_id, pid=process.pid, process_started=processes.start_time(process.pid))


def stop(run_id: int, store: RunStore | None = None) -> None:
    """Ask a run to stop cleanly: it finishes its current step, keeps its best checkpoint, ends ``stopped``."""
    store = store or RunStore()
    with _start_lock():  # not between a start's queueing and its process's pid being recorded
        store.request_stop(run_id)
        run = store.get_run(run_id)
        if run and run["status"] == "queued" and not run_is_alive(run):
            store.set_status(run_id, "stopped", "stopped before it started")


def kill(run_id: int, store: RunStore | None = None) -> None:
    """End a run's process at once (SIGTERM to the process group a started run leads, else to the process alone);
    it can be resumed from its last epoch."""
    store = store or RunStore()
    run = store.get_run(run_id)
    if run_is_alive(run):  # never a later process that was given the same pid
        processes.terminate(run["pid"])


def log_tail(run_id: int, lines: int = 30) -> str:
    """The last lines of a run's process log (errors of a failed run end up here)."""
    path = paths.run_dir(run_id) / LOG_FILE
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
