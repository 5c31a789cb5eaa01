"""Evaluations: results of the test protocol (repeats x pairs from the test set) for a run's model or a shipped
one, kept as JSON (``evaluation.evaluate_and_store`` writes them; the Runs page reads them).
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cifarmix.store.db import Database, matching, utc_now
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
        record = {"run_id": None if run_id is None else int(run_id), "model_ref": str(model_ref),
                  "result": json.dumps(result), "created_at": utc_now()}

        def insert(conn: Connection) -> int:
            if run_id is not None:
                require_run(conn, run_id)
            return conn.execute(text("INSERT INTO evaluations (run_id, model_ref, result, created_at)"
                                     " VALUES (:run_id, :model_ref, :result, :created_at) RETURNING id"),
                                record).scalar_one()

        return self._write(insert)

    def evaluations(self, run_id: int | None = None, model_ref: str | None = None) -> list[dict]:
        """Evaluations, newest first, optionally filtered by run and/or model.

        Returns:
            Dicts with id, run_id, model_ref, result (decoded dict), created_at.
        """
        where, params = matching({"run_id": None if run_id is None else int(run_id),
                                  "model_ref": None if model_ref is None else str(model_ref)})
        rows = self._read(lambda conn: conn.execute(
            text(f"SELECT * FROM evaluations {where} ORDER BY id DESC"), params).mappings().all())
        return [{**dict(row), "result": json.loads(row["result"])} for row in rows]
