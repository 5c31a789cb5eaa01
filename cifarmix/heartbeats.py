"""Heartbeats of training workers: how often a worker beats, and how a silent worker is found and its run freed.

A worker writes a heartbeat (a UTC timestamp) on the run it trains every ``interval()`` seconds, and records that
interval with the run. A run whose worker has not beaten for ``LOST_AFTER_BEATS`` of its intervals is taken for
lost (the machine died, the worker was killed, the network is cut): :func:`reap_lost` marks it ``killed``, with
a message naming the worker and when it was last seen, and any worker may claim it and resume it from its last
checkpoint. Every worker calls it on each poll; the app's pages call it with their own reaping (``slots.reap``),
so a lost worker is noticed even when no other worker runs.

Timestamps are compared across machines: keep their clocks in step (NTP); the threshold must exceed their skew.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from cifarmix.store import ACTIVE_STATUSES, WORKER, RunStore

INTERVAL_ENV = "CIFARMIX_HEARTBEAT_SECONDS"
LOST_AFTER_ENV = "CIFARMIX_LOST_AFTER_BEATS"
DEFAULT_INTERVAL_S = 5.0
DEFAULT_LOST_AFTER_BEATS = 6  # 30 s of silence at the default interval


def _positive_setting(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ValueError(f"Expected {name} to be a positive number of seconds or beats; found {text!r}.")
    return value


def interval() -> float:
    """Seconds between a worker's heartbeats (``CIFARMIX_HEARTBEAT_SECONDS``, default 5)."""
    return _positive_setting(INTERVAL_ENV, DEFAULT_INTERVAL_S)


def lost_after_beats() -> float:
    """How many missed heartbeats make a worker lost (``CIFARMIX_LOST_AFTER_BEATS``, default 6)."""
    return _positive_setting(LOST_AFTER_ENV, DEFAULT_LOST_AFTER_BEATS)


def silence_seconds(run: dict, now: datetime | None = None) -> float | None:
    """Seconds since the run's worker last beat (None: no heartbeat recorded)."""
    if not run.get("heartbeat_at"):
        return None
    now = now or datetime.now(timezone.utc)
    return (now - datetime.fromisoformat(run["heartbeat_at"])).total_seconds()


def is_lost(run: dict, now: datetime | None = None) -> bool:
    """True if ``run`` is active, held by a worker, and that worker has missed ``lost_after_beats()`` heartbeats."""
    if run.get("placement") != WORKER or run.get("status") not in ACTIVE_STATUSES or not run.get("worker"):
        return False
    silent = silence_seconds(run, now)
    return silent is not None and silent > lost_after_beats() * (run.get("heartbeat_seconds") or interval())


def lost_message(run: dict, now: datetime | None = None) -> str:
    """The killed run's message: which worker, where, when it was last seen, and what happens next."""
    every = run.get("heartbeat_seconds") or interval()
    seen = run["heartbeat_at"][:19].replace("T", " ")
    return (f"worker {run['worker']} on {run.get('worker_host') or 'an unknown host'} was lost: its last heartbeat "
            f"was at {seen} UTC, {silence_seconds(run, now):.0f} s ago (more than {lost_after_beats():g} x its "
            f"{every:g} s interval), after {{epochs_done}} epochs; the next free worker resumes it from its last "
            "checkpoint")


def reap_lost(store: RunStore, runs: list[dict] | None = None) -> list[int]:
    """Mark the runs of lost workers ``killed`` (resumable by any worker). Returns their ids.

    Args:
        store: the run store.
        runs: the runs to look at (default: the workers' active runs, read now).
    """
    now = datetime.now(timezone.utc)
    lost = []
    for run in store.worker_runs() if runs is None else runs:
        if is_lost(run, now) and store.mark_lost(run["id"], run["worker"], run["heartbeat_at"],
                                                 lost_message(run, now)):
            lost.append(run["id"])
    return lost
