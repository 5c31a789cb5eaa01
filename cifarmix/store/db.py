"""The store's SQLite file: its connections, its schema and the migrations that build and change it.

Writers are training processes and the game; readers are the app's pages. Several processes and threads use the
same file at once, so:

- the database is in WAL mode (readers never block the writer, the writer never blocks readers);
- every operation opens its own short-lived connection (no connection is shared between threads or processes);
- every write is one ``BEGIN IMMEDIATE`` transaction, so it takes the write lock up front instead of failing on a
  lock upgrade, waits up to ``BUSY_TIMEOUT_S`` for it, and is retried a few times if SQLite still says
  "database is locked";
- the schema is created and changed only by the numbered steps in ``MIGRATIONS``, applied in order, with the
  applied count kept in ``PRAGMA user_version``.

Every connection is opened here: the table modules (runs, metrics, evaluations, sweeps, scores) only pass an
operation on a connection to ``Database._read`` or ``Database._write``.

Timestamps are UTC ISO-8601 strings such as ``2025-01-31T12:00:00.123+00:00`` (they sort as text).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Self, TypeVar

from cifarmix import paths
from cifarmix.store.values import STATUSES

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0
LOCK_RETRIES = 5
LOCK_RETRY_SLEEP_S = 0.2

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
# v4: weight sweeps (each head's accuracy against the mixing weight of A), one per model and settings: the
# settings are canonical JSON (sorted keys), the model's version says which file the points were measured on.
_V4_SWEEPS = (
    """CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER REFERENCES runs (id) ON DELETE CASCADE,
        model_ref TEXT NOT NULL,
        model_version TEXT NOT NULL DEFAULT '',
        settings TEXT NOT NULL,
        points TEXT NOT NULL,
        seconds REAL,
        created_at TEXT NOT NULL,
        UNIQUE (model_ref, settings)
    )""",
    "CREATE INDEX sweeps_by_run ON sweeps (run_id)",
)

# v5: the game's mode ("equal" mixes or "unequal" ones, with a weight of A drawn per round) on each score and
# guess, so the leaderboard and the classroom chart keep modes apart; NULL (games saved before) is "equal".
_V5_GAME_MODES = ("ALTER TABLE scores ADD COLUMN mode TEXT", "ALTER TABLE guesses ADD COLUMN mode TEXT")

# v6: training workers (``cifarmix worker``). ``placement`` 'worker' marks a run queued for (or trained by) a worker,
# NULL one started by this machine's app or command line; the worker that holds it (an id and its host), the
# worker's last heartbeat and its interval (how another process tells a lost worker); a kill request the worker
# carries out on its own training process; and ``worker_lost``: killed because its worker went silent, so any
# worker may resume it. All NULL on older rows (NULL flags are false).
_V6_WORKERS = tuple(f"ALTER TABLE runs ADD COLUMN {column}" for column in (
    "placement TEXT", "worker TEXT", "worker_host TEXT", "heartbeat_at TEXT", "heartbeat_seconds REAL",
    "kill_requested INTEGER", "worker_lost INTEGER")) + ("CREATE INDEX runs_by_placement ON runs (placement, status)",)


# v7: lessons (a teacher's class: a name and a code students join with); each score and guess says the lesson it
# was played in (NULL: outside any lesson, the server-wide board). The new table's id is the database's own
# (a statement may be a dict of dialect -> SQL: see ``_statement``). A closed lesson keeps its games.
_V7_LESSONS = (
    {"sqlite": """CREATE TABLE lessons (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        code TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        teacher_key_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        closed_at TEXT
    )""",
     "postgresql": """CREATE TABLE lessons (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        teacher_key_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        closed_at TEXT
    )"""},
    "ALTER TABLE scores ADD COLUMN lesson_id BIGINT REFERENCES lessons (id)",  # BIGINT: PostgreSQL's id type
    "ALTER TABLE guesses ADD COLUMN lesson_id BIGINT REFERENCES lessons (id)",
    "CREATE INDEX scores_by_lesson ON scores (lesson_id)",
    "CREATE INDEX guesses_by_lesson ON guesses (lesson_id)",
)

MIGRATIONS: list[Sequence[str | dict[str, str]]] = [
    _V1_INITIAL_SCHEMA,
    _V2_TRAIN_SECONDS,
    _V3_PROCESS_STARTED,
    _V4_SWEEPS,
    _V5_GAME_MODES,
    _V6_WORKERS,
    _V7_LESSONS,
]


DIALECT = "sqlite"  # which entry of a dialect-keyed migration statement this store runs


def _statement(statement: str | dict[str, str]) -> str:
    """A migration statement's SQL for this store: the text itself, or its ``DIALECT`` entry when the step gives
    one per database (``{"sqlite": ..., "postgresql": ...}``, e.g. for a new table's auto id)."""
    return statement[DIALECT] if isinstance(statement, dict) else statement


class SchemaTooNewError(RuntimeError):
    """Raised when the database was written by a newer cifarmix than this one."""


class StoreError(paths.HomeError):
    """The store's file cannot be opened, read or written (read-only, not a database, disk full...).

    A ``HomeError``: the command line and the app show its message (which file, what is wrong, how to choose
    another folder) in place of SQLite's traceback.
    """


# SQLite's words for a file it cannot use, as opposed to a lock (retried) or a programming error (raised as is).
_FILE_PROBLEMS = ("readonly", "read-only", "unable to open", "disk i/o", "disk is full", "not a database",
                  "malformed", "no such file", "permission", "access")


def _file_problem(error: sqlite3.DatabaseError) -> bool:
    message = str(error).lower()
    return type(error) in (sqlite3.OperationalError, sqlite3.DatabaseError) and any(
        word in message for word in _FILE_PROBLEMS)


def _store_error(path: Path, error: sqlite3.DatabaseError) -> StoreError:
    return StoreError(f"cifarmix cannot use its run store {path}: SQLite says {str(error)!r}. Make the file (and "
                      f"its folder) writable, move the damaged file away, or choose another folder with "
                      f"{paths.HOME_ENV}=/path/to/folder.")


def utc_now() -> str:
    """The current time as a UTC ISO-8601 string with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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


class Database:
    """One store file: short-lived connections, one transaction per operation, the schema kept current.

    Args:
        path: the database file; default ``paths.db_path()`` (under ``$CIFARMIX_HOME``). Its folder is
            created, the file is switched to WAL mode and migrated to the current schema.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else paths.db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cifarmix cannot create the folder of its run store {self.path.parent} "
                             f"({error.strerror or type(error).__name__}); choose another folder with "
                             f"{paths.HOME_ENV}=/path/to/folder.") from None
        self._guarded(lambda: _retry_when_locked(self._enable_wal))
        self._guarded(lambda: _retry_when_locked(self._migrate))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: connections live only for one operation. Kept for symmetry and ``with``."""

    # ------------------------------------------------------------------------------------------ connections

    def _guarded(self, operation: Callable[[], T]) -> T:
        """Run ``operation``; SQLite's errors about the file itself become one ``StoreError`` naming it."""
        try:
            return operation()
        except sqlite3.DatabaseError as error:
            if _file_problem(error):
                raise _store_error(self.path, error) from None
            raise

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

        return self._guarded(lambda: _retry_when_locked(attempt))

    def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation(conn)`` in one read transaction (one consistent snapshot)."""

        def attempt() -> T:
            with self._connection() as conn:
                conn.execute("BEGIN")
                try:
                    return operation(conn)
                finally:
                    conn.execute("ROLLBACK")

        return self._guarded(lambda: _retry_when_locked(attempt))

    # ------------------------------------------------------------------------------------- schema and WAL

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
                    conn.execute(_statement(statement))
                conn.execute(f"PRAGMA user_version = {step + 1}")

        self._write(apply_pending)

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int:
        return conn.execute("PRAGMA user_version").fetchone()[0]

    def schema_version(self) -> int:
        """The number of migration steps applied to this database."""
        return self._read(self._schema_version)
