"""Metrics: what a training run measures as it goes, each row under its run's id.

- step metrics: the training loss (and each head's) after every optimizer step;
- epoch metrics: one value per epoch and metric name (loss, val_mean_accuracy, lr, seconds...), read back as a
  wide table with one column per name;
- confusion matrices: one head's counts (true x predicted class) per epoch and split, stored as JSON.

A resumed run may log an epoch or a step again: the new rows replace the old.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from cifarmix.store.db import Database
from cifarmix.store.runs import require_run
from cifarmix.store.values import validate_head

STEP_COLUMNS = ("step", "epoch", "loss", "loss_first", "loss_second")


class Metrics(Database):
    """The step_metrics, epoch_metrics and confusion_matrices tables."""

    def log_steps(self, run_id: int, rows: Iterable[Sequence[float]]) -> None:
        """Store per-step training losses in one transaction; a step logged again replaces the old row.

        Args:
            run_id: the run.
            rows: ``(step, epoch, loss, loss_first, loss_second)`` tuples.
        """
        records = [{"run_id": int(run_id), "step": int(step), "epoch": int(epoch), "loss": float(loss),
                    "loss_first": float(first), "loss_second": float(second)}
                   for step, epoch, loss, first, second in rows]
        if not records:
            return

        def insert(conn: Connection) -> None:
            require_run(conn, run_id)
            conn.execute(text(
                "INSERT INTO step_metrics (run_id, step, epoch, loss, loss_first, loss_second)"
                " VALUES (:run_id, :step, :epoch, :loss, :loss_first, :loss_second)"
                " ON CONFLICT (run_id, step) DO UPDATE SET epoch = excluded.epoch, loss = excluded.loss,"
                " loss_first = excluded.loss_first, loss_second = excluded.loss_second"), records)

        self._write(insert)

    def drop_steps_after(self, run_id: int, step: int) -> int:
        """Delete the step losses logged after ``step`` (a killed session's steps that a resume will redo, so
        a resume that ends sooner leaves no stale tail on the curve). Returns how many rows went."""

        def delete(conn: Connection) -> int:
            require_run(conn, run_id)
            return conn.execute(text("DELETE FROM step_metrics WHERE run_id = :run_id AND step > :step"),
                                {"run_id": int(run_id), "step": int(step)}).rowcount

        return self._write(delete)

    def log_epoch(self, run_id: int, epoch: int, metrics: dict[str, float]) -> None:
        """Store one epoch's metrics, replacing whatever that epoch had (a resumed run may redo an epoch).

        Args:
            run_id: the run.
            epoch: the epoch number.
            metrics: name -> number, e.g. loss, val_mean_accuracy, lr, seconds.
        """
        where = {"run_id": int(run_id), "epoch": int(epoch)}
        records = [{**where, "key": str(key), "value": None if value is None else float(value)}
                   for key, value in metrics.items()]

        def replace(conn: Connection) -> None:
            require_run(conn, run_id)
            conn.execute(text("DELETE FROM epoch_metrics WHERE run_id = :run_id AND epoch = :epoch"), where)
            if records:
                conn.execute(text("INSERT INTO epoch_metrics (run_id, epoch, key, value)"
                                  " VALUES (:run_id, :epoch, :key, :value)"), records)

        self._write(replace)

    def step_metrics(self, run_id: int) -> pd.DataFrame:
        """Per-step losses sorted by step: columns step, epoch, loss, loss_first, loss_second."""
        rows = self._read(lambda conn: conn.execute(text(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM step_metrics WHERE run_id = :run_id ORDER BY step"),
            {"run_id": int(run_id)}).mappings().all())
        frame = pd.DataFrame([dict(row) for row in rows], columns=list(STEP_COLUMNS))
        return frame.astype({"step": "int64", "epoch": "int64", "loss": "float64",
                             "loss_first": "float64", "loss_second": "float64"})

    def epoch_metrics(self, run_id: int) -> pd.DataFrame:
        """Per-epoch metrics sorted by epoch: column ``epoch`` then one float column per metric name."""
        rows = self._read(lambda conn: conn.execute(
            text("SELECT epoch, key, value FROM epoch_metrics WHERE run_id = :run_id"),
            {"run_id": int(run_id)}).mappings().all())
        if not rows:
            return pd.DataFrame({"epoch": pd.Series(dtype="int64")})
        long = pd.DataFrame([dict(row) for row in rows], columns=["epoch", "key", "value"])
        long["value"] = long["value"].astype("float64")
        wide = long.pivot(index="epoch", columns="key", values="value").sort_index()
        wide.columns.name = None
        return wide.reset_index()

    # ------------------------------------------------------------------------- confusion matrices

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
        record = {"run_id": int(run_id), "split": split, "head": head, "epoch": int(epoch),
                  "matrix": json.dumps(counts.tolist())}

        def upsert(conn: Connection) -> None:
            require_run(conn, run_id)
            conn.execute(text("INSERT INTO confusion_matrices (run_id, split, head, epoch, matrix)"
                              " VALUES (:run_id, :split, :head, :epoch, :matrix)"
                              " ON CONFLICT (run_id, split, head, epoch) DO UPDATE SET matrix = excluded.matrix"),
                         record)

        self._write(upsert)

    def confusion(self, run_id: int, epoch: int | None = None, head: str = "first",
                  split: str = "val") -> np.ndarray | None:
        """One head's confusion matrix (int64), for ``epoch`` or the latest epoch if None; None if absent."""
        validate_head(head)
        query = "SELECT matrix FROM confusion_matrices WHERE run_id = :run_id AND split = :split AND head = :head"
        params = {"run_id": int(run_id), "split": split, "head": head}
        if epoch is None:
            query += " ORDER BY epoch DESC LIMIT 1"
        else:
            query += " AND epoch = :epoch"
            params["epoch"] = int(epoch)
        row = self._read(lambda conn: conn.execute(text(query), params).mappings().first())
        return None if row is None else np.array(json.loads(row["matrix"]), dtype=np.int64)

    def confusion_epochs(self, run_id: int, split: str = "val") -> list[int]:
        """The epochs that have a confusion matrix (either head) for ``split``, ascending."""
        rows = self._read(lambda conn: conn.execute(text(
            "SELECT DISTINCT epoch FROM confusion_matrices WHERE run_id = :run_id AND split = :split ORDER BY epoch"),
            {"run_id": int(run_id), "split": split}).mappings().all())
        return [row["epoch"] for row in rows]
