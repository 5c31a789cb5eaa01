"""One limit on simultaneous trainings for every way of starting one, and the claim that hands a run to a process.

A server runs at most ``CIFARMIX_MAX_TRAININGS`` (default 1) trainings at once: the Train page (``jobs.start`` and
``jobs.resume``) and the command line (``train``, ``train --resume``) all count the active runs and take their
slot under one file lock (``start_lock``), so two starts at the same moment cannot both slip past the limit.

A training process then claims its run (:func:`claim`): one ``BEGIN IMMEDIATE`` transaction in the store
(``RunStore.claim``) that records the process only if no other live process holds the run. Of two
``train --resume 7`` started together, one trains and the other stops with :class:`RunBusy`, changing nothing.

Runs queued for training workers (``cifarmix.workers``) take none of this server's slots: each worker trains one
run at a time on its own machine. Its training process claims with the worker's id (``CIFARMIX_WORKER``, set by
the worker); their processes are not this machine's to check, so :func:`reap` finds a lost worker by its missed
heartbeats instead (``cifarmix.heartbeats``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from cifarmix import heartbeats, paths, processes
from cifarmix.store import ACTIVE_STATUSES, WORKER, RunStore

MAX_ENV = "CIFARMIX_MAX_TRAININGS"
WORKER_ENV = "CIFARMIX_WORKER"  # in a worker's training process: the worker's id


class TrainingRefused(RuntimeError):
    """A training was not started (the reason is the message); nothing was changed."""


class JobLimitReached(TrainingRefused):
    """Starting another training would exceed the server's limit."""


class RunBusy(TrainingRefused):
    """Another live process already trains this run."""


def max_trainings() -> int:
    """The server's limit on simultaneous trainings (``CIFARMIX_MAX_TRAININGS``, default 1)."""
    try:
        return max(1, int(os.environ.get(MAX_ENV, "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def start_lock():
    """The server-wide lock under which trainings are counted and started (a file lock in the cifarmix home).

    Not re-entrant: a process must not take it again while it holds it.
    """
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
    """Mark active runs whose process has died, or whose worker has gone silent, as ``killed`` (resumable).
    Returns their ids.

    The list is a snapshot: a run may end on its own, or be resumed in a new process, between reading it and
    finding its old process dead. ``RunStore.mark_killed`` checks again in the same transaction as it writes.
    """
    runs = store.list_runs()
    dead = heartbeats.reap_lost(store, runs)
    for run in runs:
        if run.get("placement") == WORKER:
            continue  # its process is on a worker's machine: its heartbeat tells (above)
        if run["status"] in ACTIVE_STATUSES and run.get("pid") and not run_is_alive(run):
            if store.mark_killed(run["id"], run["pid"], run.get("process_started"),
                                 "the training process ended unexpectedly after {epochs_done} epochs; "
                                 f"resume with: python -m cifarmix train --resume {run['id']}"):
                dead.append(run["id"])
    return dead


def active_runs(store: RunStore) -> list[dict]:
    """Runs that are queued or running with a live process."""
    reap(store)
    return [run for run in store.list_runs() if run["status"] in ACTIVE_STATUSES]


def check_room(store: RunStore, run_id: int | None = None) -> None:
    """Raise :class:`JobLimitReached` when the active runs other than ``run_id`` already fill the limit.

    Call it under :func:`start_lock`. A run queued by ``jobs`` holds its slot already: its own process passes
    its id, so it does not count itself.
    """
    others = [run for run in active_runs(store) if run["id"] != run_id and run.get("placement") != WORKER]
    if len(others) >= max_trainings():
        ids = ", ".join(f"#{run['id']}" for run in others)
        raise JobLimitReached(
            f"This server already runs {len(others)} training(s) ({ids}) and allows {max_trainings()} at once "
            f"(setting {MAX_ENV}). Wait for it to finish or stop it first."
        )


def claim(store: RunStore, run_id: int, message: str = "starting") -> None:
    """Hand run ``run_id`` to this process: within the limit, and only if no other live process trains it.

    In a worker's training process (``CIFARMIX_WORKER`` set) the worker has claimed the run already and is its
    own limit: the process claims it with the worker's id.

    Raises:
        JobLimitReached: the other active runs fill the server's limit.
        RunBusy: another live process (or a training worker) holds the run (a second ``--resume`` of the same run).
    """
    pid = os.getpid()
    worker = os.environ.get(WORKER_ENV) or None
    if worker:
        won = store.claim(run_id, pid, processes.start_time(pid), message, worker=worker)
    else:
        with start_lock():
            check_room(store, run_id)
            won = store.claim(run_id, pid, processes.start_time(pid), message)
    if not won:
        holder = store.get_run(run_id) or {}
        where = (f"held by worker {holder['worker']} on {holder.get('worker_host')}" if holder.get("worker")
                 else f"in process {holder.get('pid')}")
        raise RunBusy(f"run {run_id} is {holder.get('status')} {where}; two processes must not train one run. "
                      "Stop it first (the Train page, or the Runs list), then resume.")
