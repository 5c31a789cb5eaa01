"""Evaluations: results of the test protocol (repeats x pairs from the test set) for a run's model or a shipped
one, kept as JSON (``evaluation.evaluate_and_store`` writes them; the Runs page reads them).
"""

from __future__ import annotations

import json
import sqlite3

from cifarmix.store.db import Database, utc_now
from cifarmix.store.runs import require_run


class Evaluations(Database):
    """The evaluations table."""

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
                require_run(conn, run_id)
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
