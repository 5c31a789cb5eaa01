"""The run store: one database holding runs, their metrics and confusion matrices, evaluations, weight sweeps,
game scores and lessons: a SQLite file under ``$CIFARMIX_HOME`` by default, or a PostgreSQL server named by
``CIFARMIX_STORE=postgresql://...`` (shared by several machines).

One module per concept, each a ``Database`` subclass with its tables' operations; ``RunStore`` is all of them
over one database, and this package re-exports every public name, so callers import from ``cifarmix.store``:

- ``db``: which database, its engine and connections (SQLite: WAL, busy timeout; one transaction per operation),
  the schema and its migrations, the errors;
- ``runs``: the runs: create, read, update, statuses, stop flags, kill bookkeeping, delete;
- ``queue``: runs queued for training workers: the atomic claim, heartbeats, kill requests, lost workers;
- ``metrics``: step and epoch metrics, confusion matrices;
- ``evaluations``: test-protocol results;
- ``sweeps``: weight sweeps (each head's accuracy against the mixing weight), one per model and settings;
- ``scores``: game scores and guesses: leaderboard, rank, per-class accuracy (each in a lesson or outside any);
- ``lessons``: lessons (a teacher's class, joined by a code): open, find, close, list;
- ``values``: the statuses, heads, class indices, names and run ids it accepts.
"""

from __future__ import annotations

from cifarmix.store.db import (
    BUSY_TIMEOUT_S,
    DATABASE_ERRORS,
    LOCK_RETRIES,
    LOCK_RETRY_SLEEP_S,
    MIGRATIONS,
    Database,
    SchemaTooNewError,
    StoreError,
    utc_now,
)
from cifarmix.store.evaluations import Evaluations
from cifarmix.store.lessons import (
    LESSON_COLUMNS,
    LessonClosedError,
    LessonError,
    Lessons,
    UnknownLessonError,
)
from cifarmix.store.metrics import STEP_COLUMNS, Metrics
from cifarmix.store.queue import WorkQueue
from cifarmix.store.runs import JSON_RUN_COLUMNS, RUN_COLUMNS, UPDATABLE_RUN_COLUMNS, WORKER, Runs, UnknownRunError
from cifarmix.store.scores import Scores
from cifarmix.store.sweeps import Sweeps, settings_key
from cifarmix.store.values import (
    ACTIVE_STATUSES,
    DEFAULT_GAME_MODE,
    GAME_MODES,
    HEADS,
    LESSON_NAME_MAX,
    PLAYER_NAME_MAX,
    RUN_ID_MAX_DIGITS,
    RUN_NAME_MAX,
    STATUSES,
    TERMINAL_STATUSES,
    clean_lesson_name,
    clean_player_name,
    clean_run_name,
    parse_run_id,
)

__all__ = [
    "ACTIVE_STATUSES", "BUSY_TIMEOUT_S", "DATABASE_ERRORS", "DEFAULT_GAME_MODE", "GAME_MODES", "HEADS",
    "JSON_RUN_COLUMNS",
    "LESSON_COLUMNS", "LESSON_NAME_MAX", "LOCK_RETRIES", "LOCK_RETRY_SLEEP_S", "MIGRATIONS", "PLAYER_NAME_MAX",
    "RUN_COLUMNS", "RUN_ID_MAX_DIGITS", "RUN_NAME_MAX", "STATUSES", "STEP_COLUMNS", "TERMINAL_STATUSES",
    "UPDATABLE_RUN_COLUMNS", "WORKER", "Database", "Evaluations", "LessonClosedError", "LessonError", "Lessons",
    "Metrics", "RunStore", "Runs", "SchemaTooNewError", "Scores", "StoreError", "Sweeps", "UnknownLessonError",
    "UnknownRunError", "WorkQueue", "clean_lesson_name", "clean_player_name", "clean_run_name", "parse_run_id",
    "settings_key", "utc_now",
]


class RunStore(Runs, WorkQueue, Metrics, Evaluations, Sweeps, Scores, Lessons):
    """The run store: runs (and their queue for training workers), metrics, evaluations, sweeps, scores and
    lessons in one database. Safe to share between threads; every process may open its own.

    Args:
        target: a SQLite file path, a database URL (``postgresql://user:password@host:5432/database``,
            ``sqlite:////path/to/file.sqlite3``), or None for ``paths.store_url()`` (``$CIFARMIX_STORE``, default
            the file ``paths.db_path()`` under ``$CIFARMIX_HOME``). See ``db.Database``.

    Raises:
        StoreError: if the database cannot be reached, opened or written (which one, what is wrong, how to fix it).
    """
