"""The run store: schema migrations, runs, metrics, confusion matrices, evaluations, game scores, concurrency.

The tests that take the ``db`` (or ``store_url``) fixture run on both databases: the SQLite file and a fresh
PostgreSQL schema (skipped, and said loudly, without ``CIFARMIX_TEST_PG_URL``). Those about old SQLite files run on
SQLite alone; tests/test_store_urls.py has the URLs and their error messages.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import threading
import time

import numpy as np
import pytest
from sqlalchemy import text

from cifarmix import paths, processes, store
from cifarmix.store import RunStore, UnknownRunError
from cifarmix.store import db as store_db

EPOCH_METRICS = {"loss": 1.2, "first_loss": 0.6, "second_loss": 0.6, "first_accuracy": 0.5,
                 "second_accuracy": 0.4, "val_loss": 1.3, "val_first_accuracy": 0.45,
                 "val_second_accuracy": 0.35, "val_mean_accuracy": 0.4, "lr": 1e-3, "seconds": 12.5}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def db(home, store_url):
    """A new store on each database in turn (``RunStore()``, through ``CIFARMIX_STORE``)."""
    with RunStore() as opened:
        yield opened


def execute(db: RunStore, sql: str) -> None:
    """Run one statement in its own transaction (the tests' stand-in for an older cifarmix or a failing disk)."""
    db._write(lambda conn: conn.exec_driver_sql(sql))


def query(db: RunStore, sql: str, **params) -> list[tuple]:
    return db._read(lambda conn: [tuple(row) for row in conn.execute(text(sql), params)])


@pytest.fixture
def run_id(db):
    return db.create_run("seed_cnn", {"epochs": 3}, {"width": 32}, seed=7, name="baseline")


def tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def save_guesses(db: RunStore, rows: list[dict]) -> int:
    """Save a one-round game with these guess rows (guesses are saved only with their game)."""
    return db.add_score("ann", 0, 1, "m", 0, guesses=rows)


def row_count(db: RunStore, table: str, run_id: int) -> int:
    column = "id" if table == "runs" else "run_id"
    return query(db, f"SELECT COUNT(*) FROM {table} WHERE {column} = :run_id", run_id=run_id)[0][0]


# ------------------------------------------------------------------------------------------- schema migrations

def test_default_store_is_the_sqlite_file_under_cifarmix_home(home):
    db = RunStore()
    assert db.path == home / "cifarmix.sqlite3" and db.dialect == "sqlite"
    assert db.path.exists()


def test_each_database_says_which_it_is(db, store_url):
    assert db.dialect == store_url.split(":")[0] and (db.path is None) == (db.dialect == "postgresql")
    assert db.schema_version() == len(store_db.MIGRATIONS)


def test_migrations_create_every_table_in_an_empty_file_in_wal_mode(tmp_path):
    path = tmp_path / "new.sqlite3"
    path.touch()
    db = RunStore(path)
    assert db.schema_version() == len(store_db.MIGRATIONS)
    assert {"runs", "step_metrics", "epoch_metrics", "confusion_matrices", "evaluations", "sweeps", "scores",
            "guesses"} <= tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_a_migrated_store_is_idempotent_and_keeps_data(tmp_path):
    path = tmp_path / "db.sqlite3"
    run = RunStore(path).create_run("a", {}, {}, seed=1)
    again = RunStore(path)
    assert again.schema_version() == len(store_db.MIGRATIONS)
    assert again.get_run(run)["arch"] == "a"


def test_new_migration_step_is_applied_once_to_an_existing_store(db, monkeypatch):
    db.add_score("ann", 3, 5, "m", 2)
    extra_step = ({"sqlite": "ALTER TABLE scores ADD COLUMN country TEXT",  # a statement per database
                   "postgresql": "ALTER TABLE scores ADD COLUMN country VARCHAR(2)"},
                  "UPDATE scores SET country = 'NZ'")  # one for both
    monkeypatch.setattr(store_db, "MIGRATIONS", [*store_db.MIGRATIONS, extra_step])
    upgraded = RunStore()
    RunStore()  # a second open must not re-run the ALTER (it would fail on the duplicate column)
    assert upgraded.schema_version() == len(store_db.MIGRATIONS)
    assert query(db, "SELECT country FROM scores") == [("NZ",)]


def test_a_migration_statement_names_both_databases_or_is_refused(db, monkeypatch):
    monkeypatch.setattr(store_db, "MIGRATIONS", [*store_db.MIGRATIONS, ({"sqlite": "SELECT 1"},)])
    with pytest.raises(ValueError, match="keys 'sqlite' and 'postgresql'"):
        RunStore()
    assert db.schema_version() == len(store_db.MIGRATIONS) - 1  # nothing of the step was applied


def test_store_from_a_newer_cifarmix_is_refused(db):
    db._write(lambda conn: db._set_schema_version(conn, len(store_db.MIGRATIONS) + 1))
    with pytest.raises(store.SchemaTooNewError, match="Upgrade cifarmix"):
        RunStore()


def run_together(workers: list[multiprocessing.Process], timeout_s: float) -> list[int | None]:
    """Start the processes, wait for each (up to ``timeout_s``), end any still running; their exit codes."""
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(timeout_s)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
    return [worker.exitcode for worker in workers]


def quick_processes() -> multiprocessing.context.BaseContext:
    """Processes forked from a fresh server process that has imported what this module imports (the store,
    pytest) once: quick to start, unlike spawned ones, and free of this process's threads and locks
    (TensorFlow's, when earlier tests loaded it), unlike ones forked from here. (The server cannot import this
    module itself: Python 3.11's forkserver does not take the tests' sys.path; each child then imports it fast.)"""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pytest", "cifarmix.store"])
    return context


def test_processes_opening_a_new_store_at_once_migrate_it_once(store_url):
    context = quick_processes()
    start = context.Barrier(4)
    openers = [context.Process(target=_open_in_a_process, args=(store_url, start)) for _ in range(4)]
    assert run_together(openers, 120) == [0] * 4
    db = RunStore(store_url)
    assert db.schema_version() == len(store_db.MIGRATIONS) and len(db.leaderboard()) == 4


def _open_in_a_process(url: str, start: multiprocessing.Barrier) -> None:
    start.wait(120)
    RunStore(url).add_score("opener", 1, 1, "m", 0)


def _report_session_in_a_process(url: str, sessions: multiprocessing.Queue) -> None:
    db = RunStore(url)
    db.add_score("child", 1, 1, "m", 0)
    sessions.put(query(db, "SELECT pg_backend_pid()"))


def test_a_forked_child_neither_shares_nor_closes_the_parents_pooled_connection(postgres_url):
    db = RunStore(postgres_url)
    session = query(db, "SELECT pg_backend_pid()")  # the server process of the connection now in the pool
    context = multiprocessing.get_context("fork")  # a child of this very process, inheriting its pool
    sessions = context.Queue()
    child = context.Process(target=_report_session_in_a_process, args=(postgres_url, sessions))
    assert run_together([child], 120) == [0]
    assert sessions.get(timeout=10) != session  # the child wrote through a connection of its own
    assert query(db, "SELECT pg_backend_pid()") == session  # and left the parent's open and unused
    assert len(db.leaderboard()) == 1


def test_postgresql_columns_hold_what_sqlites_do(postgres_url):
    db = RunStore(postgres_url)
    types = dict(((table, column), kind) for table, column, kind in query(
        db, "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema()"))
    assert {kind for kind in types.values()} == {"bigint", "double precision", "text"}  # no 32-bit or 4-byte kinds
    assert types["runs", "id"] == types["runs", "process_started"] == types["runs", "seed"] == "bigint"
    assert types["runs", "best_val_mean"] == types["epoch_metrics", "value"] == "double precision"
    identities = {table for table, in query(db, "SELECT table_name FROM information_schema.columns WHERE"
                                                " table_schema = current_schema() AND is_identity = 'YES'")}
    assert identities == {"runs", "evaluations", "scores", "guesses", "sweeps", "lessons"}
    assert query(db, "SELECT version FROM schema_version") == [(len(store_db.MIGRATIONS),)]
    big = 2**40  # a seed, a clock tick count and an id beyond 32 bits
    run_id = db.create_run("a", {}, {}, seed=big)
    db.update_run(run_id, process_started=big + 1, best_val_mean=0.1234567890123)
    run = db.get_run(run_id)
    assert (run["seed"], run["process_started"], run["best_val_mean"]) == (big, big + 1, 0.1234567890123)


# The file an older cifarmix wrote, step by step as it released them: written out here, not taken from
# the store's MIGRATIONS, so an edit to a released step (which old files never got) fails the upgrade test below.
OLD_SCHEMA_STEPS = {
    1: """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT,
            arch TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            config TEXT NOT NULL DEFAULT '{}',
            seed INTEGER,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'stopped', 'failed', 'killed')),
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
        );
        CREATE INDEX runs_by_status ON runs (status);
        CREATE TABLE step_metrics (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            loss REAL,
            loss_first REAL,
            loss_second REAL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID;
        CREATE TABLE epoch_metrics (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL,
            key TEXT NOT NULL,
            value REAL,
            PRIMARY KEY (run_id, epoch, key)
        ) WITHOUT ROWID;
        CREATE TABLE confusion_matrices (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            split TEXT NOT NULL,
            head TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            matrix TEXT NOT NULL,
            PRIMARY KEY (run_id, split, head, epoch)
        ) WITHOUT ROWID;
        CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs (id) ON DELETE CASCADE,
            model_ref TEXT NOT NULL,
            result TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX evaluations_by_run ON evaluations (run_id);
        CREATE TABLE scores (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            player TEXT NOT NULL,
            score INTEGER NOT NULL,
            rounds INTEGER NOT NULL,
            opponent TEXT NOT NULL,
            model_score INTEGER NOT NULL,
            details TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX scores_by_rank ON scores (score DESC, created_at, id);
        CREATE TABLE guesses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            head TEXT NOT NULL,
            true_class INTEGER NOT NULL,
            human_class INTEGER NOT NULL,
            model_class INTEGER NOT NULL,
            opponent TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        PRAGMA user_version = 1;
    """,
    2: "ALTER TABLE runs ADD COLUMN train_seconds REAL; PRAGMA user_version = 2;",
    3: "ALTER TABLE runs ADD COLUMN process_started INTEGER; PRAGMA user_version = 3;",
    4: """
        CREATE TABLE sweeps (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs (id) ON DELETE CASCADE,
            model_ref TEXT NOT NULL,
            model_version TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL,
            points TEXT NOT NULL,
            seconds REAL,
            created_at TEXT NOT NULL,
            UNIQUE (model_ref, settings)
        );
        CREATE INDEX sweeps_by_run ON sweeps (run_id);
        PRAGMA user_version = 4;
    """,
}
OLD_ROWS = """
    INSERT INTO runs (id, name, arch, options, config, seed, status, device, created_at, started_at, finished_at,
                      pid, best_val_mean, best_epoch, epochs_done, total_epochs, steps_done, total_steps, message,
                      model_path, stop_requested)
    VALUES (4, 'night run', 'allconv', '{"epochs": 2}', '{"width": 32}', 7, 'finished', 'cpu',
            '2025-01-31T12:00:00.000+00:00', '2025-01-31T12:00:01.000+00:00', '2025-01-31T13:00:00.000+00:00',
            321, 0.61, 1, 2, 2, 20, 20, NULL, '/home/runs/run-4/best.keras', 0),
           (5, NULL, 'seed_cnn', '{}', '{}', 8, 'killed', 'cpu', '2025-02-01T09:00:00.000+00:00',
            '2025-02-01T09:00:01.000+00:00', '2025-02-01T09:30:00.000+00:00', 322, NULL, NULL, 0, 5, 3, 50,
            'killed after 0 epochs', NULL, 1);
    INSERT INTO step_metrics VALUES (4, 1, 0, 1.0, 0.5, 0.5), (4, 2, 0, 0.8, 0.45, 0.35), (5, 1, 0, 2.0, 1.0, 1.0);
    INSERT INTO epoch_metrics VALUES (4, 0, 'loss', 1.2), (4, 0, 'val_mean_accuracy', 0.4), (4, 1, 'loss', 1.0),
                                     (4, 1, 'val_mean_accuracy', 0.61);
    INSERT INTO confusion_matrices VALUES
        (4, 'val', 'first', 1, '[[3, 1, 0, 0, 0], [0, 4, 0, 0, 0], [0, 0, 4, 0, 0], [0, 0, 0, 4, 0], [0, 0, 0, 0, 4]]');
    INSERT INTO evaluations (run_id, model_ref, result, created_at)
    VALUES (4, 'run-4/best.keras', '{"mean_accuracy": 0.6}', '2025-01-31T13:05:00.000+00:00'),
           (NULL, 'shipped/champion', '{"mean_accuracy": 0.79}', '2025-01-31T13:06:00.000+00:00');
    INSERT INTO scores (player, score, rounds, opponent, model_score, details, created_at)
    VALUES ('ann', 7, 10, 'run:4', 5, '{"streak": 3}', '2025-01-31T14:00:00.000+00:00'),
           ('bob', 9, 10, 'shipped/champion', 8, NULL, '2025-01-31T14:10:00.000+00:00');
    INSERT INTO guesses (head, true_class, human_class, model_class, opponent, created_at)
    VALUES ('first', 3, 3, 2, 'run:4', '2025-01-31T14:00:00.000+00:00'),
           ('second', 7, 1, 7, 'run:4', '2025-01-31T14:00:00.000+00:00');
"""


def old_store(path, version: int) -> None:
    """Write a store file as the cifarmix of schema ``version`` left it, with rows in every table."""
    with sqlite3.connect(path) as conn:
        for step in range(1, version + 1):
            conn.executescript(OLD_SCHEMA_STEPS[step])
        conn.executescript(OLD_ROWS)
        if version >= 2:
            conn.execute("UPDATE runs SET train_seconds = 3540.5 WHERE id = 4")
        if version >= 4:
            conn.execute("INSERT INTO sweeps (run_id, model_ref, model_version, settings, points, seconds, created_at)"
                         " VALUES (4, 'run:4', 'sha256:0123', '{\"alphas\":[0.5]}', '[{\"alpha\": 0.5}]', 3.5,"
                         " '2025-02-01T10:00:00.000+00:00')")
    conn.close()


def every_row(path) -> dict[str, list[dict]]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        rows = {name: [dict(row) for row in conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2")] for name in names}
    conn.close()
    return rows


def schema(path) -> dict[str, str]:
    """Every table's and index's CREATE statement, whitespace made uniform."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    conn.close()
    return {name: " ".join(sql.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split())
            for name, sql in rows}


@pytest.mark.parametrize("version", sorted(OLD_SCHEMA_STEPS))
def test_an_old_store_file_opens_upgraded_to_the_current_schema_with_its_rows_intact(tmp_path, version):
    path = tmp_path / "old.sqlite3"
    old_store(path, version)
    before = every_row(path)

    db = RunStore(path)
    assert db.schema_version() == len(store_db.MIGRATIONS) > version
    assert schema(path) == schema(RunStore(tmp_path / "new.sqlite3").path)  # the same as a new file's
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    after = every_row(path)
    assert after.keys() >= before.keys()
    assert all(after[table] == [] for table in after.keys() - before.keys())  # tables added since: empty
    for table, rows in before.items():  # every row kept, every value as it was; the added columns empty
        assert len(after[table]) == len(rows) > 0, table
        assert [{key: row[key] for key in old} for row, old in zip(after[table], rows)] == rows, table
        added = {key for row in after[table] for key in row} - {key for row in rows for key in row}
        assert all(row[key] is None for row in after[table] for key in added), table
    assert {key for row in after["runs"] for key in row} == set(store.RUN_COLUMNS)

    run = db.get_run(4)  # and the store reads them as it reads its own
    assert (run["name"], run["options"], run["status"], run["best_val_mean"], run["stop_requested"]) == (
        "night run", {"epochs": 2}, "finished", 0.61, False)
    assert run["train_seconds"] == (3540.5 if version >= 2 else None) and run["process_started"] is None
    assert db.stop_requested(5) is True and [r["id"] for r in db.list_runs(status="killed")] == [5]
    assert db.step_metrics(4)["loss_second"].tolist() == [0.5, 0.35]
    assert db.epoch_metrics(4)["val_mean_accuracy"].tolist() == [0.4, 0.61]
    assert db.confusion(4)[0].tolist() == [3, 1, 0, 0, 0] and db.confusion_epochs(4) == [1]
    assert [e["model_ref"] for e in db.evaluations()] == ["shipped/champion", "run-4/best.keras"]
    assert [(g["player"], g["details"]) for g in db.leaderboard()] == [("bob", None), ("ann", {"streak": 3})]
    assert db.class_accuracy()["human_accuracy"].tolist() == [1.0, 0.0]

    db.update_run(4, process_started=123456, train_seconds=3600.0)  # and it writes on in the new columns
    assert db.get_run(4)["process_started"] == 123456
    assert db.create_run("allconv", {}, {}, seed=1) == 6
    db.add_score("cy", 1, 1, "m", 0, guesses=[{"head": "first", "true_class": 0, "human_class": 0,
                                                "model_class": 0, "opponent": "m"}])
    assert len(db.leaderboard()) == 3 and db.class_accuracy()["rounds"].sum() == 3


# -------------------------------------------------------------------------------------------------------- runs

def test_create_and_get_run_round_trips_every_field(db, run_id):
    run = db.get_run(run_id)
    assert {"id", "name", "arch", "options", "config", "seed", "status", "device", "created_at", "started_at",
            "finished_at", "pid", "best_val_mean", "best_epoch", "epochs_done", "total_epochs", "steps_done",
            "total_steps", "message", "model_path"} <= set(run)
    assert (run["id"], run["name"], run["arch"], run["seed"]) == (run_id, "baseline", "seed_cnn", 7)
    assert (run["options"], run["config"]) == ({"epochs": 3}, {"width": 32})
    assert (run["status"], run["device"], run["started_at"], run["best_val_mean"]) == ("queued", "cpu", None, None)
    assert run["created_at"].endswith("+00:00")


def test_get_run_of_unknown_id_is_none(db):
    assert db.get_run(999) is None


def test_list_runs_is_newest_first_and_filters_by_status(db):
    first = db.create_run("a", {}, {}, seed=1)
    second = db.create_run("b", {}, {}, seed=2, status="running")
    assert [run["id"] for run in db.list_runs()] == [second, first]
    assert [run["id"] for run in db.list_runs(status="running")] == [second]


def test_update_run_sets_known_columns_and_encodes_dicts(db, run_id):
    db.update_run(run_id, epochs_done=2, best_val_mean=0.61, best_epoch=1, pid=1234,
                  config={"width": 64}, model_path=paths.run_dir(run_id) / "best.keras")
    run = db.get_run(run_id)
    assert (run["epochs_done"], run["best_val_mean"], run["best_epoch"], run["pid"]) == (2, 0.61, 1, 1234)
    assert run["config"] == {"width": 64}
    assert run["model_path"].endswith("best.keras")


def test_update_run_rejects_unknown_columns_and_unknown_runs(db, run_id):
    with pytest.raises(ValueError, match="Expected run columns.*found colour"):
        db.update_run(run_id, colour="red")
    with pytest.raises(UnknownRunError, match="no run 999"):
        db.update_run(999, epochs_done=1)


def test_set_status_rejects_unknown_statuses(db, run_id):
    with pytest.raises(ValueError, match="Expected a run status.*found 'done'"):
        db.set_status(run_id, "done")
    with pytest.raises(ValueError, match="found 'paused'"):
        db.create_run("a", {}, {}, seed=1, status="paused")
    with pytest.raises(ValueError, match="found 'paused'"):
        db.update_run(run_id, status="paused")


def test_set_status_keeps_start_and_finish_times_right(db, run_id):
    db.set_status(run_id, "running")
    started = db.get_run(run_id)["started_at"]
    assert started and db.get_run(run_id)["finished_at"] is None
    db.set_status(run_id, "killed", "process vanished mid-epoch")
    killed = db.get_run(run_id)
    assert killed["finished_at"] and killed["message"] == "process vanished mid-epoch"
    db.set_status(run_id, "running")
    resumed = db.get_run(run_id)
    assert (resumed["started_at"], resumed["finished_at"], resumed["message"]) == (started, None, None)


def test_stop_request_is_seen_by_the_trainer_and_cleared_on_resume(db, run_id):
    assert db.stop_requested(run_id) is False
    db.set_status(run_id, "running")
    db.request_stop(run_id)
    assert db.stop_requested(run_id) is True
    db.set_status(run_id, "running")  # still the same attempt: the request stands
    assert db.stop_requested(run_id) is True
    db.set_status(run_id, "stopped")
    db.set_status(run_id, "running")  # a resumed run starts without the old request
    assert db.stop_requested(run_id) is False


def test_stop_requested_is_true_for_a_deleted_run(db):
    assert db.stop_requested(12345) is True


def test_delete_run_removes_rows_in_every_table_and_its_folder(db, run_id):
    other = db.create_run("b", {}, {}, seed=2)
    for run in (run_id, other):
        db.log_steps(run, [(1, 0, 1.0, 0.5, 0.5)])
        db.log_epoch(run, 0, {"loss": 1.0})
        db.log_confusion(run, 0, "first", np.eye(5, dtype=int))
        db.add_evaluation(run, "best.keras", {"mean_accuracy": 0.5})
        db.add_sweep(f"run:{run}", {"alphas": [0.5]}, [{"alpha": 0.5, "mean_accuracy": 0.5}], run_id=run)
    folder = paths.run_dir(run_id)
    (folder / "best.keras").write_bytes(b"model")
    db.delete_run(run_id)
    assert db.get_run(run_id) is None and not folder.exists()
    for table in ("runs", "step_metrics", "epoch_metrics", "confusion_matrices", "evaluations", "sweeps"):
        assert row_count(db, table, run_id) == 0
        assert row_count(db, table, other) == 1
    assert paths.runs_dir().exists()


def test_delete_run_refuses_a_folder_outside_runs_dir(db, run_id, tmp_path, monkeypatch):
    outside = tmp_path / "precious"
    outside.mkdir()
    monkeypatch.setattr(paths, "run_dir", lambda _run_id: outside)
    with pytest.raises(ValueError, match="Refusing to touch it"):
        db.delete_run(run_id)
    assert outside.exists() and db.get_run(run_id) is not None


def test_delete_run_refuses_the_runs_dir_itself(db, run_id, monkeypatch):
    monkeypatch.setattr(paths, "run_dir", lambda _run_id: paths.runs_dir() / "run-1" / "..")
    with pytest.raises(ValueError, match="Refusing"):
        db.delete_run(run_id)
    assert paths.runs_dir().exists()


def test_delete_unknown_run_raises(db):
    with pytest.raises(UnknownRunError):
        db.delete_run(999)


# ----------------------------------------------------------------------------------------------------- metrics

def test_step_metrics_come_back_in_step_order(db, run_id):
    db.log_steps(run_id, [(2, 0, 0.8, 0.4, 0.4), (1, 0, 1.0, 0.6, 0.4)])
    db.log_steps(run_id, [(3, 1, 0.7, 0.3, 0.4)])
    frame = db.step_metrics(run_id)
    assert list(frame.columns) == ["step", "epoch", "loss", "loss_first", "loss_second"]
    assert frame["step"].tolist() == [1, 2, 3]
    assert frame.loc[2, "loss_first"] == pytest.approx(0.3)


def test_step_metrics_of_a_run_without_steps_is_empty_with_columns(db, run_id):
    frame = db.step_metrics(run_id)
    assert frame.empty and list(frame.columns) == ["step", "epoch", "loss", "loss_first", "loss_second"]


def test_relogged_step_replaces_the_old_row(db, run_id):
    db.log_steps(run_id, [(1, 0, 1.0, 0.5, 0.5)])
    db.log_steps(run_id, [(1, 0, 0.9, 0.45, 0.45)])
    assert db.step_metrics(run_id)["loss"].tolist() == [0.9]


def test_steps_after_a_point_can_be_dropped_for_a_resume(db, run_id):
    db.log_steps(run_id, [(step, step // 4, 1.0, 0.5, 0.5) for step in range(1, 11)])
    assert db.drop_steps_after(run_id, 8) == 2
    assert db.step_metrics(run_id)["step"].tolist() == list(range(1, 9))
    with pytest.raises(UnknownRunError):
        db.drop_steps_after(999, 0)


def test_logging_metrics_for_an_unknown_run_raises(db):
    with pytest.raises(UnknownRunError):
        db.log_steps(999, [(1, 0, 1.0, 0.5, 0.5)])
    with pytest.raises(UnknownRunError):
        db.log_epoch(999, 0, {"loss": 1.0})


def test_epoch_metrics_has_one_row_per_epoch_and_one_column_per_metric(db, run_id):
    db.log_epoch(run_id, 1, {**EPOCH_METRICS, "loss": 1.0})
    db.log_epoch(run_id, 0, EPOCH_METRICS)
    frame = db.epoch_metrics(run_id)
    assert frame["epoch"].tolist() == [0, 1]
    assert set(frame.columns) == {"epoch", *EPOCH_METRICS}
    assert frame["loss"].tolist() == [1.2, 1.0]
    assert frame.loc[0, "val_mean_accuracy"] == pytest.approx(0.4)


def test_resumed_epoch_overwrites_instead_of_duplicating(db, run_id):
    db.log_epoch(run_id, 0, EPOCH_METRICS)
    db.log_epoch(run_id, 1, {"loss": 9.9, "lr": 1e-3})
    db.log_epoch(run_id, 1, {"loss": 1.0, "lr": 5e-4})
    frame = db.epoch_metrics(run_id)
    assert len(frame) == 2
    assert frame.loc[1, "loss"] == 1.0 and frame.loc[1, "lr"] == 5e-4


def test_epoch_metrics_of_a_run_without_epochs_is_empty(db, run_id):
    frame = db.epoch_metrics(run_id)
    assert frame.empty and "epoch" in frame.columns


# ------------------------------------------------------------------------------------------ confusion matrices

def test_confusion_round_trips_by_epoch_head_and_split(db, run_id):
    first, second = np.arange(25).reshape(5, 5), np.eye(5, dtype=np.int32) * 7
    db.log_confusion(run_id, 0, "first", first)
    db.log_confusion(run_id, 0, "second", second)
    db.log_confusion(run_id, 0, "first", second, split="test")
    np.testing.assert_array_equal(db.confusion(run_id, 0, "first"), first)
    np.testing.assert_array_equal(db.confusion(run_id, 0, "second"), second)
    np.testing.assert_array_equal(db.confusion(run_id, 0, "first", split="test"), second)
    assert db.confusion(run_id, 0, "first").dtype == np.int64


def test_confusion_without_epoch_is_the_latest_and_none_when_absent(db, run_id):
    assert db.confusion(run_id) is None
    for epoch in (0, 2, 1):
        db.log_confusion(run_id, epoch, "first", np.full((5, 5), epoch))
    np.testing.assert_array_equal(db.confusion(run_id), np.full((5, 5), 2))
    assert db.confusion(run_id, 5) is None


def test_relogged_confusion_replaces_the_old_matrix(db, run_id):
    db.log_confusion(run_id, 0, "first", np.zeros((5, 5), dtype=int))
    db.log_confusion(run_id, 0, "first", np.ones((5, 5), dtype=int))
    np.testing.assert_array_equal(db.confusion(run_id, 0), np.ones((5, 5)))
    assert db.confusion_epochs(run_id) == [0]


def test_confusion_epochs_lists_epochs_of_a_split_in_order(db, run_id):
    for epoch in (3, 1):
        db.log_confusion(run_id, epoch, "first", np.eye(5, dtype=int))
    db.log_confusion(run_id, 2, "second", np.eye(5, dtype=int))
    db.log_confusion(run_id, 9, "first", np.eye(5, dtype=int), split="test")
    assert db.confusion_epochs(run_id) == [1, 2, 3]
    assert db.confusion_epochs(run_id, split="test") == [9]


def test_log_confusion_rejects_bad_heads_and_shapes(db, run_id):
    with pytest.raises(ValueError, match="head 'first' or 'second'"):
        db.log_confusion(run_id, 0, "third", np.eye(5, dtype=int))
    with pytest.raises(ValueError, match="square integer"):
        db.log_confusion(run_id, 0, "first", np.ones((5, 4), dtype=int))
    with pytest.raises(ValueError, match="square integer"):
        db.log_confusion(run_id, 0, "first", np.eye(5) * 0.5)


# ------------------------------------------------------------------------------------------------- evaluations

def test_evaluations_are_newest_first_decoded_and_filterable(db, run_id):
    shipped = db.add_evaluation(None, "shipped/seed_cnn", {"mean_accuracy": 0.55, "repeats": 10})
    own = db.add_evaluation(run_id, "run-1/best.keras", {"mean_accuracy": 0.61})
    assert [e["id"] for e in db.evaluations()] == [own, shipped]
    assert db.evaluations(run_id=run_id)[0]["result"] == {"mean_accuracy": 0.61}
    assert [e["id"] for e in db.evaluations(model_ref="shipped/seed_cnn")] == [shipped]
    assert db.evaluations(model_ref="shipped/seed_cnn")[0]["run_id"] is None


# ------------------------------------------------------------------------------------------------------ sweeps

SWEEP_SETTINGS = {"alphas": [0.1, 0.5, 0.9], "repeats": 1, "pairs": 500, "seed": 2024}
SWEEP_POINTS = [{"alpha": a, "head_first": a, "head_second": 1 - a, "mean_accuracy": 0.5} for a in (0.1, 0.5, 0.9)]


def test_a_sweep_is_found_by_its_model_and_exact_settings(db, run_id):
    sweep_id = db.add_sweep(f"run:{run_id}", SWEEP_SETTINGS, SWEEP_POINTS, run_id=run_id, model_version="v1",
                            seconds=12.5)
    found = db.sweep(f"run:{run_id}", dict(reversed(list(SWEEP_SETTINGS.items()))))  # key order does not matter
    assert found["id"] == sweep_id and found["points"] == SWEEP_POINTS and found["settings"] == SWEEP_SETTINGS
    assert (found["run_id"], found["model_version"], found["seconds"]) == (run_id, "v1", 12.5)
    assert db.sweep(f"run:{run_id}", SWEEP_SETTINGS | {"pairs": 1000}) is None  # other settings: not this one
    assert db.sweep("champion", SWEEP_SETTINGS) is None
    assert db.sweep(f"run:{run_id}", SWEEP_SETTINGS, model_version="v1")["id"] == sweep_id
    assert db.sweep(f"run:{run_id}", SWEEP_SETTINGS, model_version="v2") is None  # measured on another file


def test_a_new_sweep_with_the_same_settings_replaces_the_old_one(db):
    db.add_sweep("champion", SWEEP_SETTINGS, SWEEP_POINTS, model_version="v1")
    newer = [dict(point, mean_accuracy=0.6) for point in SWEEP_POINTS]
    db.add_sweep("champion", SWEEP_SETTINGS, newer, model_version="v2")
    other = db.add_sweep("champion", SWEEP_SETTINGS | {"pairs": 200}, SWEEP_POINTS, model_version="v2")
    assert [s["points"] for s in db.sweeps(model_ref="champion") if s["id"] != other] == [newer]
    assert [s["id"] for s in db.sweeps(model_ref="champion", model_version="v2")][0] == other  # newest first
    assert db.sweeps(model_ref="allconv") == [] and db.sweeps(run_id=1) == []


def test_a_sweep_for_an_unknown_run_is_refused(db):
    with pytest.raises(UnknownRunError):
        db.add_sweep("run:99", SWEEP_SETTINGS, SWEEP_POINTS, run_id=99)
    assert db.sweeps() == []


# -------------------------------------------------------------------------------------------------------- game

def test_player_names_are_stripped_cleaned_and_cut_to_24_characters(db):
    db.add_score("  Ada\x00\x1b[31m Lovelace\n ", 5, 5, "m", 3)
    db.add_score("x" * 40, 1, 5, "m", 3)
    names = [row["player"] for row in db.leaderboard()]
    assert names == ["Ada[31m Lovelace", "x" * 24]


@pytest.mark.parametrize("name", ["", "   ", "\t\n\x07", "\u200b"])
def test_empty_player_names_are_refused(db, name):
    with pytest.raises(ValueError, match="at least one visible character"):
        db.add_score(name, 1, 1, "m", 0)


def test_games_saved_before_modes_count_as_equal_mixes_and_modes_are_kept_apart(db):
    old = db.add_score("old", 50, 10, "m", 40, guesses=[{"head": "first", "true_class": 1, "human_class": 1,
                                                          "model_class": 2, "opponent": "m"}])
    execute(db, "UPDATE scores SET mode = NULL")  # as a game saved before v5 left it
    execute(db, "UPDATE guesses SET mode = NULL")
    unequal = db.add_score("new", 90, 10, "m", 10, mode="unequal",
                           guesses=[{"head": "first", "true_class": 1, "human_class": 3, "model_class": 1,
                                     "opponent": "m"}])
    assert [(row["player"], row["mode"]) for row in db.leaderboard()] == [("new", "unequal"), ("old", "equal")]
    assert [row["id"] for row in db.leaderboard(mode="equal")] == [old]
    assert db.score_rank(old) == (1, 1) and db.score_rank(unequal) == (1, 1)
    assert db.class_accuracy(mode="equal")["human_accuracy"].tolist() == [1.0]
    assert db.class_accuracy(mode="unequal")["human_accuracy"].tolist() == [0.0]
    assert db.class_accuracy()["rounds"].tolist() == [2]
    with pytest.raises(ValueError, match="game mode"):
        db.add_score("x", 1, 1, "m", 1, mode="sideways")
    with pytest.raises(ValueError, match="game mode"):
        db.leaderboard(mode="sideways")


def test_leaderboard_is_best_score_first_then_earliest(db):
    early = db.add_score("early", 8, 10, "m", 5, details={"streak": 4})
    db.add_score("low", 2, 10, "m", 5)
    late = db.add_score("late", 8, 10, "m", 5)
    best = db.add_score("best", 9, 10, "other", 5)
    assert [row["id"] for row in db.leaderboard()] == [best, early, late, early + 1]
    assert db.leaderboard()[1]["details"] == {"streak": 4}
    assert [row["id"] for row in db.leaderboard(limit=2)] == [best, early]
    assert [row["id"] for row in db.leaderboard(opponent="m", limit=1)] == [early]


def test_class_accuracy_aggregates_guesses_per_true_class(db):
    save_guesses(db, [
        {"head": "first", "true_class": 3, "human_class": 3, "model_class": 2, "opponent": "m"},
        {"head": "second", "true_class": 7, "human_class": 7, "model_class": 7, "opponent": "m"},
    ])
    save_guesses(db, [{"head": "first", "true_class": 3, "human_class": 1, "model_class": 3, "opponent": "m"}])
    frame = db.class_accuracy()
    assert list(frame.columns) == ["class_index", "rounds", "human_accuracy", "model_rounds", "model_accuracy"]
    assert frame.to_dict("records") == [
        {"class_index": 3, "rounds": 2, "human_accuracy": 0.5, "model_rounds": 2, "model_accuracy": 0.5},
        {"class_index": 7, "rounds": 1, "human_accuracy": 1.0, "model_rounds": 1, "model_accuracy": 1.0},
    ]


def test_class_accuracy_leaves_the_random_guesser_out_of_the_models_but_keeps_the_peoples_answers(db):
    save_guesses(db, [
        {"head": "first", "true_class": 3, "human_class": 3, "model_class": 3, "opponent": "champion"},
        {"head": "first", "true_class": 3, "human_class": 3, "model_class": 1, "opponent": "random-baseline"},
        {"head": "first", "true_class": 4, "human_class": 0, "model_class": 2, "opponent": "random-baseline"},
    ])
    frame = db.class_accuracy(ignored_models=["random-baseline"]).set_index("class_index")
    assert frame.loc[3, "rounds"] == 2 and frame.loc[3, "human_accuracy"] == 1.0
    assert frame.loc[3, "model_rounds"] == 1 and frame.loc[3, "model_accuracy"] == 1.0
    assert frame.loc[4, "model_rounds"] == 0 and np.isnan(frame.loc[4, "model_accuracy"])


def test_class_accuracy_without_games_is_empty_with_columns(db):
    frame = db.class_accuracy()
    assert frame.empty and list(frame.columns) == ["class_index", "rounds", "human_accuracy", "model_rounds",
                                                   "model_accuracy"]


DISK_FULL = {  # a trigger that makes every score insert fail
    "sqlite": ["CREATE TRIGGER disk_full BEFORE INSERT ON scores BEGIN SELECT RAISE(ABORT, 'disk full'); END"],
    "postgresql": ["CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS"
                   " $$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
                   "CREATE TRIGGER disk_full BEFORE INSERT ON scores FOR EACH ROW EXECUTE FUNCTION disk_full()"],
}


def test_a_game_is_saved_with_its_guesses_or_not_at_all(db):
    good = {"head": "first", "true_class": 1, "human_class": 1, "model_class": 2, "opponent": "m"}
    with pytest.raises(ValueError, match="missing opponent"):
        db.add_score("ann", 5, 1, "m", 3, guesses=[good, {k: v for k, v in good.items() if k != "opponent"}])
    assert db.leaderboard() == [] and db.class_accuracy().empty
    for statement in DISK_FULL[db.dialect]:  # the guesses go in, then the score cannot: neither may stay
        execute(db, statement)
    with pytest.raises(store.DATABASE_ERRORS, match="disk full"):
        db.add_score("ann", 5, 1, "m", 3, guesses=[good])
    assert db.leaderboard() == [] and db.class_accuracy().empty
    execute(db, "DROP TRIGGER disk_full" + (" ON scores" if db.dialect == "postgresql" else ""))
    db.add_score("ann", 5, 1, "m", 3, guesses=[good, {**good, "head": "second", "true_class": 7}])
    assert len(db.leaderboard()) == 1 and db.class_accuracy()["rounds"].tolist() == [1, 1]


def test_a_game_with_a_malformed_guess_is_refused(db):
    good = {"head": "first", "true_class": 3, "human_class": 3, "model_class": 2, "opponent": "m"}
    with pytest.raises(ValueError, match="class index 0-9"):
        save_guesses(db, [{**good, "human_class": 10}])
    with pytest.raises(ValueError, match="missing opponent"):
        save_guesses(db, [{k: v for k, v in good.items() if k != "opponent"}])
    with pytest.raises(ValueError, match="head"):
        save_guesses(db, [{**good, "head": "both"}])
    assert db.class_accuracy().empty and db.leaderboard() == []


# ------------------------------------------------------------------------------------------------- concurrency

def test_context_manager_returns_the_store(tmp_path):
    with RunStore(tmp_path / "db.sqlite3") as db:
        assert db.list_runs() == []


def test_threads_sharing_one_store_all_get_their_writes_in(db):
    errors: list[BaseException] = []

    def add_scores(thread: int) -> None:
        try:
            for game in range(25):
                db.add_score(f"thread{thread}", game, 10, "m", 0)
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=add_scores, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(db.leaderboard(limit=1000)) == 100


def _add_scores_in_a_process(url: str, player: str, start: multiprocessing.Barrier) -> None:
    db = RunStore(url)
    start.wait(120)
    for game in range(50):
        db.add_score(player, game, 10, "m", 0)


def _train_in_a_process(url: str, run_id: int, start: multiprocessing.Barrier) -> None:
    db = RunStore(url)
    start.wait(120)
    for epoch in range(20):
        db.log_steps(run_id, [(epoch * 10 + i, epoch, 1.0, 0.5, 0.5) for i in range(10)])
        db.log_epoch(run_id, epoch, {"loss": 1.0 / (epoch + 1), "val_mean_accuracy": epoch / 20})
        db.log_confusion(run_id, epoch, "first", np.eye(5, dtype=int))
        db.update_run(run_id, epochs_done=epoch + 1, steps_done=(epoch + 1) * 10)


def test_several_processes_write_at_once_without_losing_rows(store_url):
    run_id = RunStore(store_url).create_run("a", {}, {}, seed=1, status="running")
    context = quick_processes()
    start = context.Barrier(5)  # every writer waits for the others, so the writes really overlap
    workers = [context.Process(target=_add_scores_in_a_process, args=(store_url, f"p{i}", start)) for i in range(4)]
    workers.append(context.Process(target=_train_in_a_process, args=(store_url, run_id, start)))
    assert run_together(workers, 180) == [0] * 5
    db = RunStore(store_url)
    assert len(db.leaderboard(limit=1000)) == 200
    assert len(db.step_metrics(run_id)) == 200
    assert len(db.epoch_metrics(run_id)) == 20
    assert db.confusion_epochs(run_id) == list(range(20))
    assert db.get_run(run_id)["epochs_done"] == 20


WRITERS, GAMES_EACH = 20, 10


def _play_games_in_a_process(url: str, player: str, start: multiprocessing.Barrier) -> None:
    db = RunStore(url)
    start.wait(120)
    for game in range(GAMES_EACH):
        db.add_score(player, game, 10, "m", 5, details={"game": game}, guesses=[
            {"head": head, "true_class": game, "human_class": game, "model_class": 0, "opponent": "m"}
            for head in store.HEADS])


def test_twenty_processes_saving_games_at_once_lose_no_score_and_no_guess(store_url):
    db = RunStore(store_url)
    db.add_score("host", 0, 10, "m", 5)  # the test's own connections are open meanwhile
    context = quick_processes()  # twenty at once: none spends seconds importing
    start = context.Barrier(WRITERS)  # every writer waits for the others, so the games really overlap
    writers = [context.Process(target=_play_games_in_a_process, args=(store_url, f"p{i}", start))
               for i in range(WRITERS)]
    assert run_together(writers, 300) == [0] * WRITERS
    games = [game for game in db.leaderboard(limit=100_000) if game["player"] != "host"]
    assert len(games) == WRITERS * GAMES_EACH
    for i in range(WRITERS):  # each game once, with its own details
        assert sorted(game["details"]["game"] for game in games if game["player"] == f"p{i}") == list(range(10))
    assert query(db, "SELECT COUNT(*) FROM guesses") == [(WRITERS * GAMES_EACH * len(store.HEADS),)]
    assert db.class_accuracy()["rounds"].tolist() == [WRITERS * len(store.HEADS)] * GAMES_EACH
    db.add_score("host", 1, 10, "m", 5)  # and the parent's own connections still work
    assert len(db.leaderboard(limit=100_000)) == WRITERS * GAMES_EACH + 2


@pytest.mark.parametrize("started", [None, 2**33])  # a run from before start times were kept; a late tick count
def test_a_dead_process_run_is_marked_killed_only_while_that_process_holds_it(db, started):
    run_id = db.create_run("a", {}, {}, seed=1, status="running")
    db.update_run(run_id, pid=4321, process_started=started, epochs_done=3)
    assert db.mark_killed(run_id, 4321, 7, "gone after {epochs_done} epochs") is False  # another process
    assert db.mark_killed(run_id, 4321, started, "gone after {epochs_done} epochs") is True
    run = db.get_run(run_id)
    assert (run["status"], run["message"]) == ("killed", "gone after 3 epochs") and run["finished_at"]
    assert db.mark_killed(run_id, 4321, started, "again") is False  # no longer active
    assert db.mark_killed(999, 4321, started, "none") is False


def test_a_sqlite_too_old_for_the_store_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    with pytest.raises(store.StoreError, match="needs SQLite 3.35 or newer"):
        RunStore(tmp_path / "db.sqlite3")


def test_of_live_processes_claiming_one_run_at_once_exactly_one_wins(db, monkeypatch):
    run_id = db.create_run("a", {}, {}, seed=1, status="running")
    db.update_run(run_id, pid=2**22 + 7)  # held by a process that is gone: anyone may take the run
    is_alive = processes.is_alive

    def slowly_is_alive(pid: int, started: int | None) -> bool:
        time.sleep(0.3)  # every claim reads the holder before any writes, unless the store holds the row for it
        return is_alive(pid, started)

    monkeypatch.setattr(processes, "is_alive", slowly_is_alive)
    sleepers = [subprocess.Popen(["sleep", "120"]) for _ in range(6)]  # live processes the claims name
    try:
        start, won = threading.Barrier(len(sleepers)), []

        def claim(pid: int) -> None:
            start.wait(30)
            if db.claim(run_id, pid, processes.start_time(pid)):
                won.append(pid)

        threads = [threading.Thread(target=claim, args=(sleeper.pid,)) for sleeper in sleepers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(won) == 1 and db.get_run(run_id)["pid"] == won[0]
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


@pytest.mark.parametrize("text, expected", [("12", 12), (" 7 ", 7), ("²", None), ("١٢", None), ("-3", None),
                                            ("1.5", None), ("", None), ("9" * 18, int("9" * 18)), ("9" * 19, None)])
def test_parse_run_id_takes_only_ascii_run_numbers_that_fit_sqlite(text, expected):
    from cifarmix.store import parse_run_id

    assert parse_run_id(text) == expected


def test_run_names_are_cleaned_and_a_name_too_long_is_refused_before_anything_is_written(db):
    run_id = db.create_run("allconv", {}, {}, 0, name="  night\x1b run \n")
    assert db.get_run(run_id)["name"] == "night run"
    assert db.get_run(db.create_run("allconv", {}, {}, 0, name="   "))["name"] is None
    with pytest.raises(ValueError, match="at most 40"):
        db.create_run("allconv", {}, {}, 0, name="n" * 41)
    assert len(db.list_runs()) == 2
    with pytest.raises(ValueError, match="at most 40"):
        db.update_run(run_id, name="n" * 41)
    db.update_run(run_id, name=" renamed\x07 ")
    assert db.get_run(run_id)["name"] == "renamed"


def test_score_rank_places_a_game_as_the_leaderboard_does_even_beyond_its_top_ten(db):
    ids = [db.add_score(f"p{i}", score, 10, "m", 50) for i, score in enumerate([90, 40, 90, 10] + [95] * 10)]
    assert db.score_rank(ids[0]) == (11, 14)  # ten 95s above it
    assert db.score_rank(ids[2]) == (12, 14)  # the same score, saved later
    assert db.score_rank(ids[3]) == (14, 14)
    assert [row["id"] for row in db.leaderboard(limit=14)].index(ids[2]) == 11
    with pytest.raises(LookupError, match="no game #999"):
        db.score_rank(999)


def test_a_v1_store_gains_train_seconds_and_an_open_v1_connection_keeps_writing(tmp_path, monkeypatch):
    from cifarmix import runinfo

    path = tmp_path / "db.sqlite3"
    monkeypatch.setattr(store_db, "MIGRATIONS", store_db.MIGRATIONS[:1])
    monkeypatch.setattr(store, "RUN_COLUMNS", tuple(c for c in store.RUN_COLUMNS if c != "train_seconds"))
    old = RunStore(path)  # a training process started before the upgrade
    run_id = old.create_run("allconv", {}, {}, 0, status="running")
    monkeypatch.undo()
    new = RunStore(path)
    assert new.schema_version() == len(store_db.MIGRATIONS)
    run = new.get_run(run_id)
    assert run["train_seconds"] is None and runinfo.elapsed_seconds(run) is not None  # wall time as a fallback
    old.update_run(run_id, steps_done=7)  # the old process goes on writing
    new.update_run(run_id, train_seconds=12.5)
    assert new.get_run(run_id)["steps_done"] == 7 and runinfo.elapsed_seconds(new.get_run(run_id)) == 12.5
