"""A process's identity on Linux: its pid and start time (read from ``/proc``), whether it is alive, a signal to end it.

A pid can be reused by a later process once the first has ended; the pair (pid, start time) names one process.
The run store records both for each training, so the app never takes a stranger for a run's trainer, nor signals
one.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name: [0] is the state, [19] the start time."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is no such process."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def age_seconds(pid: int | None, started: int | None) -> float | None:
    """How long process ``pid`` has been running, in seconds, if it is alive and the one that started at
    ``started`` (see :func:`start_time`); else None."""
    if not pid or started is None or start_time(pid) != started:
        return None
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, uptime - started / os.sysconf("SC_CLK_TCK"))


def is_alive(pid: int | None, started: int | None = None) -> bool:
    """True if ``pid`` is a live process (not a zombie) and the one meant: the one that started at ``started``
    (see :func:`start_time`), or, for runs recorded without a start time, a cifarmix process."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        fields = _stat_fields(pid)
        state, started_at = fields[0], fields[19]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if started is None else b""
    except (OSError, IndexError):
        return False
    if state == "Z":
        return False
    return started_at == str(started) if started is not None else b"cifarmix" in cmdline


def terminate(pid: int) -> None:
    """SIGTERM to the process group ``pid`` leads, else to the process alone; nothing if it has already ended.

    A process started with ``start_new_session`` leads its own group (its data workers too); a process started
    otherwise (a training from a notebook) shares its parent's group, which must not be signalled.
    """
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended by itself meanwhile
