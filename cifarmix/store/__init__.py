"""The run store: one SQLite file holding runs, their metrics and confusion matrices, evaluations and game scores.

Connections, the schema and its migrations are in ``db``; the values it accepts in ``values``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cifarmix import paths
from cifarmix.store.db import (
    BUSY_TIMEOUT_S,
    LOCK_RETRIES,
    LOCK_RETRY_SLEEP_S,
    MIGRATIONS,
    Database,
    SchemaTooNewError,
    utc_now,
)
from cifarmix.store.values import (
    ACTIVE_STATUSES,
    HEADS,
    PLAYER_NAME_MAX,
    RUN_ID_MAX_DIGITS,
    RUN_NAME_MAX,
    STATUSES,
    TERMINAL_STATUSES,
    clean_player_name,
    clean_run_name,
    parse_run_id,
    validate_class,
    validate_head,
    validate_status,
)

__all__ = [
    "ACTIVE_STATUSES", "BUSY_TIMEOUT_S", "HEADS", "JSON_RUN_COLUMNS", "LOCK_RETRIES", "LOCK_RETRY_SLEEP_S",
    "MIGRATIONS", "PLAYER_NAME_MAX", "RUN_COLUMNS", "RUN_ID_MAX_DIGITS", "RUN_NAME_MAX", "STATUSES", "STEP_COLUMNS",
    "TERMINAL_STATUSES", "UPDATABLE_RUN_COLUMNS", "RunStore", "SchemaTooNewError", "UnknownRunError",
    "clean_player_name", "clean_run_name", "parse_run_id", "utc_now",
]

RUN_COLUMNS = (
    "id", "name", "arch", "options", "config", "seed", "status", "device",
    "created_at", "started_at", "finished_at", "pid",
    "best_val_mean", "best_epoch", "epochs_done", "total_epochs", "steps_done", "total_steps",
    "message", "model_path", "stop_requested", "train_seconds", "process_started",
)
UPDATABLE_RUN_COLUMNS = frozenset(RUN_COLUMNS) - {"id"}
JSON_RUN_COLUMNS = ("options", "config")
STEP_COLUMNS = ("step", "epoch", "loss", "loss_first", "loss_second")


class UnknownRunError(LookupError):
    """Raised when an operation names a run id that is not in the store."""


def _unknown_run(run_id: int) -> UnknownRunError:
    return UnknownRunError(f"Expected an existing run id; found no run {run_id}. See list_runs() for ids.")


def _status_assignments(status: str) -> str:
    """The SET clause of ``set_status``: status, message, timestamps and the stop flag for ``status``."""
    terminal = ", ".join(repr(s) for s in TERMINAL_STATUSES)
    if status == "running":
        timestamps = "started_at = COALESCE(started_at, :now), finished_at = NULL"
        stop_flag = f"stop_requested = CASE WHEN status IN ({terminal}) THEN 0 ELSE stop_requested END"
    elif status == "queued":
        timestamps, stop_flag = "finished_at = NULL", "stop_requested = 0"
    else:
        timestamps, stop_flag = "finished_at = :now", "stop_requested = stop_requested"
    return f"{stop_flag}, status = :status, message = :message, {timestamps}"


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _run_from_row(row: sqlite3.Row) -> dict:
    run = dict(row)
    for column in JSON_RUN_COLUMNS:
        run[column] = json.loads(run[column])
    run["stop_requested"] = bool(run["stop_requested"])
    return run


class RunStore(Database):
    """The SQLite run store. Safe to share between threads; every process may open its own.

    Args:
        path: the database file; default ``paths.db_path()`` (under ``$CIFARMIX_HOME``). Its folder is
            created, the file is switched to WAL mode and migrated to the current schema.
    """

    @staticmethod
    def _require_run(conn: sqlite3.Connection, run_id: int) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)).fetchone() is None:
            raise _unknown_run(run_id)

    # --------------------------------------------------------------------------------------------------- runs

    def create_run(
        self,
        arch: str,
        options: dict,
        config: dict,
        seed: int,
        name: str | None = None,
        device: str = "cpu",
        status: str = "queued",
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

        Returns:
            The new run id.
        """
        validate_status(status)
        name = clean_run_name(name)  # ValueError for a name longer than RUN_NAME_MAX: nothing is written
        now = utc_now()
        started_at = now if status == "running" else None
        finished_at = now if status in TERMINAL_STATUSES else None
        row = (name, arch, json.dumps(options), json.dumps(config), int(seed), status, device, now,
               started_at, finished_at)
        return self._write(lambda conn: conn.execute(
            "INSERT INTO runs (name, arch, options, config, seed, status, device, created_at, started_at,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row).lastrowid)

    def get_run(self, run_id: int) -> dict | None:
        """One run as a dict (keys ``RUN_COLUMNS``; options and config decoded), or None if there is none."""
        row = self._read(lambda conn: conn.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone())
        return None if row is None else _run_from_row(row)

    def list_runs(self, status: str | None = None) -> list[dict]:
        """All runs, newest first, optionally only those with ``status``; each as ``get_run`` returns it."""
        if status is None:
            query, params = "SELECT * FROM runs ORDER BY id DESC", ()
        else:
            validate_status(status)
            query, params = "SELECT * FROM runs WHERE status = ? ORDER BY id DESC", (status,)
        rows = self._read(lambda conn: conn.execute(query, params).fetchall())
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
        values = {key: json.dumps(value) if key in JSON_RUN_COLUMNS else value for key, value in fields.items()}
        if "model_path" in values and values["model_path"] is not None:
            values["model_path"] = str(values["model_path"])
        assignments = ", ".join(f"{column} = ?" for column in values)

        def update(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), int(run_id)))

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

        def update(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(sql, params)

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
        sql = (f"UPDATE runs SET {_status_assignments('killed')} WHERE id = :id AND pid = :pid"
               f" AND process_started IS :started AND status IN ({active})")

        def update(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT epochs_done FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                return False
            text = message.replace("{epochs_done}", str(row["epochs_done"] or 0))
            return conn.execute(sql, {"status": "killed", "message": text, "now": utc_now(), "id": int(run_id),
                                      "pid": int(pid), "started": started}).rowcount == 1

        return self._write(update)

    def request_stop(self, run_id: int) -> None:
        """Ask the run's training process to stop (it polls ``stop_requested``)."""

        def flag(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (int(run_id),))

        self._write(flag)

    def stop_requested(self, run_id: int) -> bool:
        """Whether someone asked this run to stop. An unknown (e.g. deleted) run counts as asked to stop."""
        row = self._read(lambda conn: conn.execute(
            "SELECT stop_requested FROM runs WHERE id = ?", (int(run_id),)).fetchone())
        return True if row is None else bool(row[0])

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
        """Delete a run: its rows in every table (metrics, confusion matrices, evaluations) and its folder.

        Stop the run's process first; a training process whose run was deleted gets UnknownRunError on its
        next write and True from ``stop_requested``.

        Raises:
            ValueError: if the run folder lies outside the runs folder (nothing is deleted then).
            UnknownRunError: if there is no such run.
        """
        if self.get_run(run_id) is None:
            raise _unknown_run(run_id)
        folder = self.run_folder(run_id)

        def delete(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            for table in ("step_metrics", "epoch_metrics", "confusion_matrices", "evaluations"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (int(run_id),))
            conn.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))

        self._write(delete)
        shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------------------------------------ metrics

    def log_steps(self, run_id: int, rows: Iterable[Sequence[float]]) -> None:
        """Store per-step training losses in one transaction; a step logged again replaces the old row.

        Args:
            run_id: the run.
            rows: ``(step, epoch, loss, loss_first, loss_second)`` tuples.
        """
        records = [(int(run_id), int(step), int(epoch), float(loss), float(first), float(second))
                   for step, epoch, loss, first, second in rows]
        if not records:
            return

        def insert(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.executemany(
                "INSERT OR REPLACE INTO step_metrics (run_id, step, epoch, loss, loss_first, loss_second)"
                " VALUES (?, ?, ?, ?, ?, ?)", records)

        self._write(insert)

    def drop_steps_after(self, run_id: int, step: int) -> int:
        """Delete the step losses logged after ``step`` (a killed session's steps that a resume will redo, so
        a resume that ends sooner leaves no stale tail on the curve). Returns how many rows went."""

        def delete(conn: sqlite3.Connection) -> int:
            self._require_run(conn, run_id)
            return conn.execute("DELETE FROM step_metrics WHERE run_id = ? AND step > ?",
                                (int(run_id), int(step))).rowcount

        return self._write(delete)

    def log_epoch(self, run_id: int, epoch: int, metrics: dict[str, float]) -> None:
        """Store one epoch's metrics, replacing whatever that epoch had (a resumed run may redo an epoch).

        Args:
            run_id: the run.
            epoch: the epoch number.
            metrics: name -> number, e.g. loss, val_mean_accuracy, lr, seconds.
        """
        records = [(int(run_id), int(epoch), str(key), None if value is None else float(value))
                   for key, value in metrics.items()]

        def replace(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute("DELETE FROM epoch_metrics WHERE run_id = ? AND epoch = ?", (int(run_id), int(epoch)))
            conn.executemany("INSERT INTO epoch_metrics (run_id, epoch, key, value) VALUES (?, ?, ?, ?)", records)

        self._write(replace)

    def step_metrics(self, run_id: int) -> pd.DataFrame:
        """Per-step losses sorted by step: columns step, epoch, loss, loss_first, loss_second."""
        rows = self._read(lambda conn: conn.execute(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM step_metrics WHERE run_id = ? ORDER BY step",
            (int(run_id),)).fetchall())
        frame = pd.DataFrame([tuple(row) for row in rows], columns=list(STEP_COLUMNS))
        return frame.astype({"step": "int64", "epoch": "int64", "loss": "float64",
                             "loss_first": "float64", "loss_second": "float64"})

    def epoch_metrics(self, run_id: int) -> pd.DataFrame:
        """Per-epoch metrics sorted by epoch: column ``epoch`` then one float column per metric name."""
        rows = self._read(lambda conn: conn.execute(
            "SELECT epoch, key, value FROM epoch_metrics WHERE run_id = ?", (int(run_id),)).fetchall())
        if not rows:
            return pd.DataFrame({"epoch": pd.Series(dtype="int64")})
        long = pd.DataFrame([tuple(row) for row in rows], columns=["epoch", "key", "value"])
        long["value"] = long["value"].astype("float64")
        wide = long.pivot(index="epoch", columns="key", values="value").sort_index()
        wide.columns.name = None
        return wide.reset_index()

    # ------------------------------------------------------------------------------------- confusion matrices

    def log_confusion(self, run_id: int, epoch: int, head: str, matrix: np.ndarray, split: str = "val") -> None:
        """Store (or replace) one head's confusion matrix for an epoch.

        Args:
            run_id: the run.
            epoch: the epoch number.
            head: ``"first"`` or ``"second"``.
            matrix: square integer counts, rows = true class, columns = predicted class (5 x 5 here).
            split: which data it was measured on, e.g. ``"val"``.
        """
        validate_head(head)
        counts = np.asarray(matrix)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(
                f"Expected a square integer count matrix (5 x 5 for one head); found shape {counts.shape} "
                f"of {counts.dtype}. Pass e.g. sklearn.metrics.confusion_matrix(...)."
            )
        record = (int(run_id), split, head, int(epoch), json.dumps(counts.tolist()))

        def upsert(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute("INSERT OR REPLACE INTO confusion_matrices (run_id, split, head, epoch, matrix)"
                         " VALUES (?, ?, ?, ?, ?)", record)

        self._write(upsert)

    def confusion(self, run_id: int, epoch: int | None = None, head: str = "first",
                  split: str = "val") -> np.ndarray | None:
        """One head's confusion matrix (int64), for ``epoch`` or the latest epoch if None; None if absent."""
        validate_head(head)
        if epoch is None:
            query = ("SELECT matrix FROM confusion_matrices WHERE run_id = ? AND split = ? AND head = ?"
                     " ORDER BY epoch DESC LIMIT 1")
            params: tuple = (int(run_id), split, head)
        else:
            query = ("SELECT matrix FROM confusion_matrices WHERE run_id = ? AND split = ? AND head = ?"
                     " AND epoch = ?")
            params = (int(run_id), split, head, int(epoch))
        row = self._read(lambda conn: conn.execute(query, params).fetchone())
        return None if row is None else np.array(json.loads(row[0]), dtype=np.int64)

    def confusion_epochs(self, run_id: int, split: str = "val") -> list[int]:
        """The epochs that have a confusion matrix (either head) for ``split``, ascending."""
        rows = self._read(lambda conn: conn.execute(
            "SELECT DISTINCT epoch FROM confusion_matrices WHERE run_id = ? AND split = ? ORDER BY epoch",
            (int(run_id), split)).fetchall())
        return [row[0] for row in rows]

    # ---------------------------------------------------------------------------------------------- evaluations

    def add_evaluation(self, run_id: int | None, model_ref: str, result: dict) -> int:
        """Record a test-protocol result.

        Args:
            run_id: the run whose model was evaluated, or None for a shipped / external model.
            model_ref: what was evaluated (a model path or a shipped model's name).
            result: JSON-able results, e.g. ``{"mean_accuracy": 0.62, ...}``.

        Returns:
            The evaluation id.
        """
        record = (None if run_id is None else int(run_id), str(model_ref), json.dumps(result), utc_now())

        def insert(conn: sqlite3.Connection) -> int:
            if run_id is not None:
                self._require_run(conn, run_id)
            return conn.execute("INSERT INTO evaluations (run_id, model_ref, result, created_at)"
                                " VALUES (?, ?, ?, ?)", record).lastrowid

        return self._write(insert)

    def evaluations(self, run_id: int | None = None, model_ref: str | None = None) -> list[dict]:
        """Evaluations, newest first, optionally filtered by run and/or model.

        Returns:
            Dicts with id, run_id, model_ref, result (decoded dict), created_at.
        """
        conditions, params = [], []
        if run_id is not None:
            conditions.append("run_id = ?")
            params.append(int(run_id))
        if model_ref is not None:
            conditions.append("model_ref = ?")
            params.append(str(model_ref))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._read(lambda conn: conn.execute(
            f"SELECT * FROM evaluations {where} ORDER BY id DESC", params).fetchall())
        return [{**dict(row), "result": json.loads(row["result"])} for row in rows]

    # ----------------------------------------------------------------------------------------------------- game

    def add_score(self, player: str, score: int, rounds: int, opponent: str, model_score: int,
                  details: dict | None = None, guesses: Iterable[dict] = ()) -> int:
        """Record a finished game, and its guesses with it: both are saved, or (on any error) neither, so a
        save that failed can be tried again without counting a game's guesses twice.

        Args:
            player: the name typed by the player; cleaned by ``clean_player_name``.
            score: the player's points.
            rounds: rounds played.
            opponent: the model played against.
            model_score: the model's points.
            details: anything else worth keeping (JSON-able).
            guesses: the game's guess rows, one per head guessed: dicts with head ("first"/"second"),
                true_class, human_class, model_class (CIFAR-10 indices 0-9) and opponent (the model's name).

        Returns:
            The score id.

        Raises:
            ValueError: if the name has no visible character, or a guess row is malformed.
        """
        now = utc_now()
        record = (clean_player_name(player), int(score), int(rounds), str(opponent), int(model_score),
                  None if details is None else json.dumps(details), now)
        guess_records = [self._guess_record(row, now) for row in guesses]

        def insert(conn: sqlite3.Connection) -> int:
            self._insert_guesses(conn, guess_records)
            return conn.execute(
                "INSERT INTO scores (player, score, rounds, opponent, model_score, details, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", record).lastrowid

        return self._write(insert)

    def leaderboard(self, limit: int = 10, opponent: str | None = None) -> list[dict]:
        """The best games, best score first, then the earliest; optionally only against ``opponent``.

        Returns:
            Dicts with id, player, score, rounds, opponent, model_score, details (decoded or None), created_at.
        """
        where, params = ("WHERE opponent = ?", [opponent]) if opponent is not None else ("", [])
        rows = self._read(lambda conn: conn.execute(
            f"SELECT * FROM scores {where} ORDER BY score DESC, created_at, id LIMIT ?",
            [*params, int(limit)]).fetchall())
        return [{**dict(row), "details": _json_or_none(row["details"])} for row in rows]

    def score_rank(self, score_id: int) -> tuple[int, int]:
        """Where a game stands on the leaderboard: ``(rank, number of games)``; rank 1 is the best.

        Ties are ordered as ``leaderboard`` orders them (the earlier game first).

        Raises:
            LookupError: if there is no such score.
        """
        def query(conn):
            row = conn.execute("SELECT score, created_at, id FROM scores WHERE id = ?", (int(score_id),)).fetchone()
            if row is None:
                raise LookupError(f"there is no game #{score_id} on the leaderboard")
            better = conn.execute(
                "SELECT COUNT(*) FROM scores WHERE score > ? OR (score = ? AND (created_at < ?"
                " OR (created_at = ? AND id < ?)))",
                (row["score"], row["score"], row["created_at"], row["created_at"], row["id"])).fetchone()[0]
            return better + 1, conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

        return self._read(query)

    @staticmethod
    def _insert_guesses(conn: sqlite3.Connection, records: list[tuple]) -> None:
        conn.executemany("INSERT INTO guesses (head, true_class, human_class, model_class, opponent, created_at)"
                         " VALUES (?, ?, ?, ?, ?, ?)", records)

    @staticmethod
    def _guess_record(row: dict, now: str) -> tuple:
        missing = sorted({"head", "true_class", "human_class", "model_class", "opponent"} - set(row))
        if missing:
            raise ValueError(f"Expected a guess row with head, true_class, human_class, model_class, opponent; "
                             f"missing {', '.join(missing)} in {row!r}.")
        validate_head(row["head"])
        classes = [validate_class(field, row[field]) for field in ("true_class", "human_class", "model_class")]
        return (row["head"], *classes, str(row["opponent"]), now)

    def class_accuracy(self, ignored_models: Iterable[str] = ()) -> pd.DataFrame:
        """Human and model accuracy per true CIFAR-10 class over all games, for classes guessed at least once.

        Args:
            ignored_models: opponents whose answers do not count for the models (the random guesser: it is
                no model, and averaging its 20% in would flatter the people). The people's answers in those
                games still count for the people.

        Returns:
            Columns class_index, rounds, human_accuracy, model_rounds, model_accuracy (fractions 0-1; NaN
            where no counted model has answered yet), sorted by class_index.
        """
        ignored = [str(name) for name in ignored_models]
        counted = f"opponent NOT IN ({', '.join('?' * len(ignored))})" if ignored else "1"
        rows = self._read(lambda conn: conn.execute(
            f"SELECT true_class, COUNT(*), AVG(human_class = true_class), SUM({counted}),"
            f" AVG(CASE WHEN {counted} THEN model_class = true_class END)"
            " FROM guesses GROUP BY true_class ORDER BY true_class", ignored * 2).fetchall())
        frame = pd.DataFrame([tuple(row) for row in rows],
                             columns=["class_index", "rounds", "human_accuracy", "model_rounds", "model_accuracy"])
        return frame.astype({"class_index": "int64", "rounds": "int64", "model_rounds": "int64",
                             "human_accuracy": "float64", "model_accuracy": "float64"})
