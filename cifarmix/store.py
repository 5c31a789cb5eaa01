"""The run store: one SQLite file holding runs, their metrics and confusion matrices, evaluations and game scores.

Writers are training processes and the game; readers are the app's pages. Several processes and threads use the
same file at once, so:

- the database is in WAL mode (readers never block the writer, the writer never blocks readers);
- every operation opens its own short-lived connection (no connection is shared between threads or processes);
- every write is one ``BEGIN IMMEDIATE`` transaction, so it takes the write lock up front instead of failing on a
  lock upgrade, waits up to ``BUSY_TIMEOUT_S`` for it, and is retried a few times if SQLite still says
  "database is locked";
- the schema is created and changed only by the numbered steps in ``MIGRATIONS``, applied in order, with the
  applied count kept in ``PRAGMA user_version``.

Timestamps are UTC ISO-8601 strings such as ``2025-01-31T12:00:00.123+00:00`` (they sort as text).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from cifarmix import paths
from cifarmix.heads import HEADS

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0
LOCK_RETRIES = 5
LOCK_RETRY_SLEEP_S = 0.2

STATUSES = ("queued", "running", "finished", "stopped", "failed", "killed")
TERMINAL_STATUSES = ("finished", "stopped", "failed", "killed")
ACTIVE_STATUSES = ("queued", "running")
PLAYER_NAME_MAX = 24
RUN_NAME_MAX = 40
RUN_ID_MAX_DIGITS = 18  # SQLite integers are 64-bit: longer numbers cannot be run ids

RUN_COLUMNS = (
    "id", "name", "arch", "options", "config", "seed", "status", "device",
    "created_at", "started_at", "finished_at", "pid",
    "best_val_mean", "best_epoch", "epochs_done", "total_epochs", "steps_done", "total_steps",
    "message", "model_path", "stop_requested", "train_seconds", "process_started",
)
UPDATABLE_RUN_COLUMNS = frozenset(RUN_COLUMNS) - {"id"}
JSON_RUN_COLUMNS = ("options", "config")
STEP_COLUMNS = ("step", "epoch", "loss", "loss_first", "loss_second")

_V1_INITIAL_SCHEMA = (
    f"""CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT,
        arch TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{{}}',
        config TEXT NOT NULL DEFAULT '{{}}',
        seed INTEGER,
        status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
        device TEXT NOT NULL DEFAULT 'cpu',
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        pid INTEGER,
        best_val_mean REAL,
        best_epoch INTEGER,
        epochs_done INTEGER NOT NULL DEFAULT 0,
        total_epochs INTEGER,
        steps_done INTEGER NOT NULL DEFAULT 0,
        total_steps INTEGER,
        message TEXT,
        model_path TEXT,
        stop_requested INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX runs_by_status ON runs (status)",
    """CREATE TABLE step_metrics (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        loss REAL,
        loss_first REAL,
        loss_second REAL,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID""",
    """CREATE TABLE epoch_metrics (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        key TEXT NOT NULL,
        value REAL,
        PRIMARY KEY (run_id, epoch, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE confusion_matrices (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        split TEXT NOT NULL,
        head TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        matrix TEXT NOT NULL,
        PRIMARY KEY (run_id, split, head, epoch)
    ) WITHOUT ROWID""",
    """CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER REFERENCES runs (id) ON DELETE CASCADE,
        model_ref TEXT NOT NULL,
        result TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX evaluations_by_run ON evaluations (run_id)",
    """CREATE TABLE scores (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        player TEXT NOT NULL,
        score INTEGER NOT NULL,
        rounds INTEGER NOT NULL,
        opponent TEXT NOT NULL,
        model_score INTEGER NOT NULL,
        details TEXT,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX scores_by_rank ON scores (score DESC, created_at, id)",
    """CREATE TABLE guesses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        head TEXT NOT NULL,
        true_class INTEGER NOT NULL,
        human_class INTEGER NOT NULL,
        model_class INTEGER NOT NULL,
        opponent TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
)

# Schema steps, applied in order; step i (0-based) takes the database from user_version i to i + 1.
# Never edit a released step: append a new one.
# v2: the seconds a run has spent training, over all its sessions (a resumed run's downtime does not count).
_V2_TRAIN_SECONDS = ("ALTER TABLE runs ADD COLUMN train_seconds REAL",)
# v3: when the run's process started (clock ticks since boot, from /proc): with the pid, it tells the run's own
# process from a later one that got the same pid.
_V3_PROCESS_STARTED = ("ALTER TABLE runs ADD COLUMN process_started INTEGER",)

MIGRATIONS: list[Sequence[str]] = [
    _V1_INITIAL_SCHEMA,
    _V2_TRAIN_SECONDS,
    _V3_PROCESS_STARTED,
]


class UnknownRunError(LookupError):
    """Raised when an operation names a run id that is not in the store."""


class SchemaTooNewError(RuntimeError):
    """Raised when the database was written by a newer cifarmix than this one."""


def utc_now() -> str:
    """The current time as a UTC ISO-8601 string with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _printable(text: str) -> str:
    """``text`` without control and other non-printable characters (Unicode category C)."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))


def clean_player_name(name: str) -> str:
    """A player name fit for the leaderboard.

    Control and other non-printable characters are removed, surrounding whitespace is stripped and the result
    is cut to ``PLAYER_NAME_MAX`` characters.

    Raises:
        ValueError: if nothing printable is left.
    """
    if not isinstance(name, str):
        raise ValueError(f"Expected the player name as text, found {type(name).__name__}; type a name.")
    cleaned = _printable(name).strip()[:PLAYER_NAME_MAX].rstrip()
    if not cleaned:
        raise ValueError(f"Expected a player name with at least one visible character, found {name!r}; type a name.")
    return cleaned


def clean_run_name(name: str | None) -> str | None:
    """A run's name fit for tables and legends: printable, stripped, None when empty.

    Raises:
        ValueError: if it is longer than ``RUN_NAME_MAX`` characters.
    """
    if name is None:
        return None
    cleaned = _printable(str(name)).strip()
    if len(cleaned) > RUN_NAME_MAX:
        raise ValueError(f"the run name is {len(cleaned)} characters long; give one of at most {RUN_NAME_MAX}")
    return cleaned or None


def parse_run_id(text: Any) -> int | None:
    """A run id typed by a user or read from a link (``"12"``), or None when the text is not one.

    Only ASCII digits count (``"²"`` and ``"١٢"`` are digits to Python, not run ids), at most
    ``RUN_ID_MAX_DIGITS`` of them, so the number always fits in a SQLite integer.
    """
    text = str(text).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= RUN_ID_MAX_DIGITS):
        return None
    return int(text)


def _is_lock_error(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message


def _retry_when_locked(operation: Callable[[], T]) -> T:
    """Run ``operation``, retrying with growing pauses while SQLite reports the database as locked."""
    for attempt in range(LOCK_RETRIES):
        try:
            return operation()
        except sqlite3.OperationalError as error:
            if not _is_lock_error(error) or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(LOCK_RETRY_SLEEP_S * (attempt + 1))
    raise AssertionError("unreachable")


def _unknown_run(run_id: int) -> UnknownRunError:
    return UnknownRunError(f"Expected an existing run id; found no run {run_id}. See list_runs() for ids.")


def _validate_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"Expected a run status among {', '.join(STATUSES)}; found {status!r}.")


def _validate_head(head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"Expected head 'first' or 'second'; found {head!r}.")


def _validate_class(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 9:
        raise ValueError(f"Expected {field} to be a CIFAR-10 class index 0-9; found {value!r}.")
    return int(value)


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


class RunStore:
    """The SQLite run store. Safe to share between threads; every process may open its own.

    Args:
        path: the database file; default ``paths.db_path()`` (under ``$CIFARMIX_HOME``). Its folder is
            created, the file is switched to WAL mode and migrated to the current schema.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else paths.db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _retry_when_locked(self._enable_wal)
        _retry_when_locked(self._migrate)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: connections live only for one operation. Kept for symmetry and ``with``."""

    # ----------------------------------------------------------------------------------------------- plumbing

    def _connect(self) -> sqlite3.Connection:
        """A new autocommit connection with the busy timeout and foreign keys on."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextmanager
    def _connection(self):
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation(conn)`` in one ``BEGIN IMMEDIATE`` transaction, retried while the file is locked."""

        def attempt() -> T:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = operation(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

        return _retry_when_locked(attempt)

    def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation(conn)`` in one read transaction (one consistent snapshot)."""

        def attempt() -> T:
            with self._connection() as conn:
                conn.execute("BEGIN")
                try:
                    return operation(conn)
                finally:
                    conn.execute("ROLLBACK")

        return _retry_when_locked(attempt)

    def _enable_wal(self) -> None:
        with self._connection() as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(
                f"Expected SQLite to switch {self.path} to WAL mode; it stayed in {mode!r}. "
                "Put CIFARMIX_HOME on a local disk (WAL does not work on network file systems)."
            )

    def _migrate(self) -> None:
        """Apply the pending steps of ``MIGRATIONS``, all in one transaction, so concurrent openers agree."""

        def apply_pending(conn: sqlite3.Connection) -> None:
            version = self._schema_version(conn)
            if version > len(MIGRATIONS):
                raise SchemaTooNewError(
                    f"Expected a run store at schema version {len(MIGRATIONS)} or older; {self.path} is at "
                    f"version {version}. Upgrade cifarmix or point CIFARMIX_HOME at another folder."
                )
            for step in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")

        self._write(apply_pending)

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int:
        return conn.execute("PRAGMA user_version").fetchone()[0]

    def schema_version(self) -> int:
        """The number of migration steps applied to this database."""
        return self._read(self._schema_version)

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
        _validate_status(status)
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
            _validate_status(status)
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
            _validate_status(fields["status"])
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
        _validate_status(status)
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
        _validate_head(head)
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
        _validate_head(head)
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
            guesses: the game's guess rows, as ``log_guesses`` takes them.

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

    def log_guesses(self, rows: Iterable[dict]) -> None:
        """Record game rounds, one row per head guessed.

        Args:
            rows: dicts with head ("first"/"second"), true_class, human_class, model_class (CIFAR-10 indices
                0-9) and opponent (the model's name).
        """
        now = utc_now()
        records = [self._guess_record(row, now) for row in rows]
        if records:
            self._write(lambda conn: self._insert_guesses(conn, records))

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
        _validate_head(row["head"])
        classes = [_validate_class(field, row[field]) for field in ("true_class", "human_class", "model_class")]
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
