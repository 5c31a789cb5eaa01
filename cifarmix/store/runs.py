"""Runs: one row per training run, from queued to finished (or stopped, failed, killed), with its progress,
its best result, the process that trains it (pid and start time) and the flag that asks it to stop.

A run's other rows (its metrics, confusion matrices and evaluations) name it by id: ``require_run`` is how their
modules check that it exists, inside their own transaction.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, RowMapping

from cifarmix import paths, processes
from cifarmix.store.db import Database, for_update, same_as, utc_now
from cifarmix.store.values import ACTIVE_STATUSES, TERMINAL_STATUSES, clean_run_name, validate_status

RUN_COLUMNS = (
    "id", "name", "arch", "options", "config", "seed", "status", "device",
    "created_at", "started_at", "finished_at", "pid",
    "best_val_mean", "best_epoch", "epochs_done", "total_epochs", "steps_done", "total_steps",
    "message", "model_path", "stop_requested", "train_seconds", "process_started",
    "placement", "worker", "worker_host", "heartbeat_at", "heartbeat_seconds", "kill_requested", "worker_lost",
)
UPDATABLE_RUN_COLUMNS = frozenset(RUN_COLUMNS) - {"id"}
JSON_RUN_COLUMNS = ("options", "config")
FLAG_RUN_COLUMNS = ("stop_requested", "kill_requested", "worker_lost")  # read as bools (NULL: False)
WORKER = "worker"  # the placement of a run queued for, or trained by, a training worker (``cifarmix.workers``)


class UnknownRunError(LookupError):
    """Raised when an operation names a run id that is not in the store."""


def _unknown_run(run_id: int) -> UnknownRunError:
    return UnknownRunError(f"Expected an existing run id; found no run {run_id}. See list_runs() for ids.")


def _status_assignments(status: str) -> str:
    """The SET clause of ``set_status``: status, message, timestamps and the stop flag for ``status``. A terminal
    status leaves the stop flag alone, so a caller may set it in the same UPDATE (PostgreSQL refuses a column
    assigned twice; SQLite would silently keep only the last assignment)."""
    terminal = ", ".join(repr(s) for s in TERMINAL_STATUSES)
    if status == "running":
        timestamps = "started_at = COALESCE(started_at, :now), finished_at = NULL"
        stop_flag = f"stop_requested = CASE WHEN status IN ({terminal}) THEN 0 ELSE stop_requested END, "
    elif status == "queued":
        timestamps, stop_flag = "finished_at = NULL", "stop_requested = 0, "
    else:
        timestamps, stop_flag = "finished_at = :now", ""
    return f"{stop_flag}status = :status, message = :message, {timestamps}"


def require_run(conn: Connection, run_id: int) -> None:
    """Raise ``UnknownRunError`` unless run ``run_id`` exists (call it inside the transaction that writes). On
    PostgreSQL the run's row stays locked until that transaction ends, so the run's writes come one at a time and
    a run deleted meanwhile is unknown, as under SQLite's file lock."""
    found = conn.execute(text(f"SELECT 1 FROM runs WHERE id = :id{for_update(conn)}"), {"id": int(run_id)}).first()
    if found is None:
        raise _unknown_run(run_id)


def end_run(conn: Connection, run_id: int, sql: str, message: str, **params: Any) -> bool:
    """Run ``sql``, an UPDATE of run ``run_id`` (``:id``) to a terminal status (``:status``), with ``:message``
    (``{epochs_done}`` replaced by the epochs the run has completed) and ``:now``; whether it changed the run.
    The run's row is locked first on PostgreSQL (``for_update``)."""
    row = conn.execute(text(f"SELECT epochs_done FROM runs WHERE id = :id{for_update(conn)}"),
                       {"id": int(run_id)}).mappings().first()
    if row is None:
        return False
    said = message.replace("{epochs_done}", str(row["epochs_done"] or 0))
    return conn.execute(text(sql), {**params, "message": said, "now": utc_now(), "id": int(run_id)}).rowcount == 1


def _run_from_row(row: RowMapping) -> dict:
    run = dict(row)
    for column in JSON_RUN_COLUMNS:
        run[column] = json.loads(run[column])
    for column in FLAG_RUN_COLUMNS:
        run[column] = bool(run[column])
    return run


def _column_value(column: str, value: Any) -> Any:
    """A run column's value as the store keeps it: options and config as JSON text, the model path as text, a
    flag as 0 or 1 (an integer column on both databases)."""
    if column in JSON_RUN_COLUMNS:
        return json.dumps(value)
    if column == "model_path" and value is not None:
        return str(value)
    return int(value) if isinstance(value, bool) else value


class Runs(Database):
    """The runs table: create, read, update a run, move it through its statuses, stop it, delete it."""

    def create_run(
        self,
        arch: str,
        options: dict,
        config: dict,
        seed: int,
        name: str | None = None,
        device: str = "cpu",
        status: str = "queued",
        placement: str | None = None,
    ) -> int:
        """Record a new run.

        Args:
            arch: architecture name from the registry.
            options: how the run was launched (JSON-able).
            config: the architecture / training configuration (JSON-able).
            seed: the run's random seed.
            name: a label for people; optional.
            device: ``"cpu"``, ``"gpu"``...
            status: the initial status, one of ``STATUSES``.
            placement: ``WORKER`` for a run a training worker is to claim (queued); None for a run this machine
                trains.

        Returns:
            The new run id.
        """
        validate_status(status)
        if placement not in (None, WORKER):
            raise ValueError(f"Expected a run placement of None (this machine) or {WORKER!r}; found {placement!r}.")
        name = clean_run_name(name)  # ValueError for a name longer than RUN_NAME_MAX: nothing is written
        now = utc_now()
        row = {"name": name, "arch": arch, "options": json.dumps(options), "config": json.dumps(config),
               "seed": int(seed), "status": status, "device": device, "created_at": now,
               "started_at": now if status == "running" else None,
               "finished_at": now if status in TERMINAL_STATUSES else None}
        if placement:  # a local run's row is written as before (the column's NULL is "this machine")
            row["placement"] = placement
        sql = (f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join(f':{column}' for column in row)})"
               " RETURNING id")
        return self._write(lambda conn: conn.execute(text(sql), row).scalar_one())

    def get_run(self, run_id: int) -> dict | None:
        """One run as a dict (keys ``RUN_COLUMNS``; options and config decoded), or None if there is none."""
        row = self._read(lambda conn: conn.execute(
            text("SELECT * FROM runs WHERE id = :id"), {"id": int(run_id)}).mappings().first())
        return None if row is None else _run_from_row(row)

    def list_runs(self, status: str | None = None) -> list[dict]:
        """All runs, newest first, optionally only those with ``status``; each as ``get_run`` returns it."""
        if status is None:
            query, params = "SELECT * FROM runs ORDER BY id DESC", {}
        else:
            validate_status(status)
            query, params = "SELECT * FROM runs WHERE status = :status ORDER BY id DESC", {"status": status}
        rows = self._read(lambda conn: conn.execute(text(query), params).mappings().all())
        return [_run_from_row(row) for row in rows]

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set some columns of a run, e.g. ``update_run(7, epochs_done=3, best_val_mean=0.61)``.

        Args:
            run_id: the run.
            **fields: column -> value, columns from ``RUN_COLUMNS`` except ``id``; ``options`` and ``config``
                take dicts, ``status`` must be one of ``STATUSES`` (prefer ``set_status``, which also keeps the
                timestamps right).

        Raises:
            ValueError: for an unknown column or status, or a name longer than ``RUN_NAME_MAX``.
                UnknownRunError: for an unknown run.
        """
        unknown = sorted(set(fields) - UPDATABLE_RUN_COLUMNS)
        if unknown:
            raise ValueError(
                f"Expected run columns among {', '.join(sorted(UPDATABLE_RUN_COLUMNS))}; found {', '.join(unknown)}."
            )
        if not fields:
            return
        if "status" in fields:
            validate_status(fields["status"])
        if "name" in fields:
            fields = {**fields, "name": clean_run_name(fields["name"])}
        values = {key: _column_value(key, value) for key, value in fields.items()}
        assignments = ", ".join(f"{column} = :{column}" for column in values)

        def update(conn: Connection) -> None:
            require_run(conn, run_id)
            conn.execute(text(f"UPDATE runs SET {assignments} WHERE id = :id"), {**values, "id": int(run_id)})

        self._write(update)

    def set_status(self, run_id: int, status: str, message: str | None = None) -> None:
        """Move a run to ``status`` and set its message (None clears it).

        ``running`` sets ``started_at`` on the first start and clears ``finished_at``; the terminal statuses
        (finished, stopped, failed, killed) set ``finished_at``; ``queued`` clears ``finished_at``. Queuing a run
        again, or starting one that had ended, clears an old stop request so a resumed run does not stop at once.
        """
        validate_status(status)
        sql = f"UPDATE runs SET {_status_assignments(status)} WHERE id = :id"
        params = {"status": status, "message": message, "now": utc_now(), "id": int(run_id)}

        def update(conn: Connection) -> None:
            require_run(conn, run_id)
            conn.execute(text(sql), params)

        self._write(update)

    def mark_killed(self, run_id: int, pid: int, started: int | None, message: str) -> bool:
        """Mark a queued or running run whose process (``pid``, started at ``started``) has died as ``killed``, in
        one transaction that first checks it still is: a run that ended on its own meanwhile (finished, stopped,
        failed), or that a resume has handed to another process (even one given the same pid), keeps its
        status. Call it only after finding that process dead (a dead process writes nothing more, so nothing can
        change between the check and the update).

        Args:
            run_id: the run.
            pid: the process found dead.
            started: its start time as the run records it (``process_started``; None for older runs).
            message: the run's new message; ``{epochs_done}`` is replaced by the epochs it had completed.

        Returns:
            Whether the run was marked.
        """
        active = ", ".join(repr(status) for status in ACTIVE_STATUSES)

        def update(conn: Connection) -> bool:
            sql = (f"UPDATE runs SET {_status_assignments('killed')} WHERE id = :id AND pid = :pid"
                   f" AND process_started {same_as(conn)} :started AND status IN ({active})")
            return end_run(conn, run_id, sql, message, status="killed", pid=int(pid), started=started)

        return self._write(update)

    def claim(self, run_id: int, pid: int, started: int | None, message: str = "starting",
              worker: str | None = None) -> bool:
        """Hand run ``run_id`` to the process ``pid`` (started at ``started``, see ``processes.start_time``) in one
        transaction that holds the run (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's ``FOR UPDATE`` on its row): of two
        processes claiming one run at the same moment, exactly one wins.

        The claim wins when the run is not active, or is active with no process yet (queued by ``jobs``), or with
        this very process, or with a process that is no longer alive; it then records the process and moves the
        run to ``running`` with ``message``. It loses, and changes nothing, while another live process holds it.
        (Checking that process's life inside the transaction is safe: no other claim can write meanwhile.)

        A run a training worker holds (``worker`` set, active) is claimed only by that worker's training process
        (``worker`` = its id): its process runs on the worker's machine, where no pid here can be checked. A
        process claiming without a worker id makes the run this machine's (placement and worker cleared), so no
        worker claims it meanwhile.

        Returns:
            Whether this process now holds the run.

        Raises:
            UnknownRunError: for an unknown run.
        """
        active = ", ".join(repr(status) for status in ACTIVE_STATUSES)
        local = "" if worker else (", placement = NULL, worker = NULL, worker_host = NULL, heartbeat_at = NULL,"
                                   " kill_requested = 0, worker_lost = 0")
        sql = (f"UPDATE runs SET pid = :pid, process_started = :started{local}, {_status_assignments('running')}"
               " WHERE id = :id")

        def take(conn: Connection) -> bool:
            row = conn.execute(text(f"SELECT status IN ({active}) AS active, pid, process_started, worker FROM runs"
                                    f" WHERE id = :id{for_update(conn)}"), {"id": int(run_id)}).mappings().first()
            if row is None:
                raise _unknown_run(run_id)
            if row["active"] and row["worker"] and row["worker"] != worker:
                return False  # a worker trains it, or has claimed it and is starting its process
            holder, holder_started = row["pid"], row["process_started"]
            own = holder == int(pid) and holder_started in (None, started)
            if row["active"] and holder and not own and processes.is_alive(holder, holder_started):
                return False
            conn.execute(text(sql), {"pid": int(pid), "started": started, "status": "running", "message": message,
                                     "now": utc_now(), "id": int(run_id)})
            return True

        return self._write(take)

    def request_stop(self, run_id: int) -> None:
        """Ask the run's training process to stop (it polls ``stop_requested``)."""

        def flag(conn: Connection) -> None:
            require_run(conn, run_id)
            conn.execute(text("UPDATE runs SET stop_requested = 1 WHERE id = :id"), {"id": int(run_id)})

        self._write(flag)

    def stop_requested(self, run_id: int) -> bool:
        """Whether someone asked this run to stop. An unknown (e.g. deleted) run counts as asked to stop."""
        row = self._read(lambda conn: conn.execute(
            text("SELECT stop_requested FROM runs WHERE id = :id"), {"id": int(run_id)}).mappings().first())
        return True if row is None else bool(row["stop_requested"])

    def run_folder(self, run_id: int) -> Path:
        """The run's folder (``paths.run_dir``), checked to lie strictly inside ``paths.runs_dir()``.

        Raises:
            ValueError: if the folder resolves outside the runs folder (refusing to touch it).
        """
        root = paths.runs_dir().resolve()
        folder = Path(paths.run_dir(int(run_id))).resolve()
        if folder == root or not folder.is_relative_to(root):
            raise ValueError(
                f"Expected run {run_id}'s folder inside {root}; found {folder}. Refusing to touch it: "
                "check CIFARMIX_HOME and cifarmix.paths.run_dir."
            )
        return folder

    def delete_run(self, run_id: int) -> None:
        """Delete a run: its rows in every table (metrics, confusion matrices, evaluations, sweeps) and its folder.

        Stop the run's process first; a training process whose run was deleted gets UnknownRunError on its
        next write and True from ``stop_requested``.

        Raises:
            ValueError: if the run folder lies outside the runs folder (nothing is deleted then).
            UnknownRunError: if there is no such run.
        """
        if self.get_run(run_id) is None:
            raise _unknown_run(run_id)
        folder = self.run_folder(run_id)

        def delete(conn: Connection) -> None:
            require_run(conn, run_id)
            for table in ("step_metrics", "epoch_metrics", "confusion_matrices", "evaluations", "sweeps"):
                conn.execute(text(f"DELETE FROM {table} WHERE run_id = :id"), {"id": int(run_id)})
            conn.execute(text("DELETE FROM runs WHERE id = :id"), {"id": int(run_id)})

        self._write(delete)
        shutil.rmtree(folder, ignore_errors=True)
