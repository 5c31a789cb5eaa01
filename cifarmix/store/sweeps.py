"""Sweeps: each head's accuracy against the mixing weight of A (``breakdowns.weight_sweep``) for a model, kept
so a page never recomputes what it has.

A sweep is keyed by the model reference and its settings (the weights, repeats, pairs and seed, as canonical
JSON); a new sweep with the same key replaces the old one. ``model_version`` says which model file the points
were measured on (``catalog.model_version``): a lookup with a version finds only a sweep of that version, so a
resumed run's new best checkpoint, or a shipped model given other test-time views, is measured afresh.
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.engine import Connection, RowMapping

from cifarmix.store.db import Database, matching, utc_now
from cifarmix.store.runs import require_run


def settings_key(settings: dict) -> str:
    """The canonical JSON text of a sweep's settings (sorted keys, weights as given): the store's key."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def _decoded(row: RowMapping) -> dict:
    return {**dict(row), "settings": json.loads(row["settings"]), "points": json.loads(row["points"])}


class Sweeps(Database):
    """The sweeps table."""

    def add_sweep(self, model_ref: str, settings: dict, points: list[dict], run_id: int | None = None,
                  model_version: str = "", seconds: float | None = None) -> int:
        """Record a weight sweep, replacing a stored one with the same model reference and settings.

        Args:
            model_ref: the model's reference (``champion``, ``run:12``).
            settings: JSON-able settings, e.g. ``{"alphas": [0.1, 0.5], "repeats": 1, "pairs": 500, "seed": 2024}``.
            points: one JSON-able dict per weight (``alpha``, ``head_first``, ``head_second``, ``mean_accuracy``, …).
            run_id: the run whose model was swept, or None for a shipped model or a file.
            model_version: which file the points were measured on.
            seconds: how long the sweep took.

        Returns:
            The sweep id.
        """
        record = {"run_id": None if run_id is None else int(run_id), "model_ref": str(model_ref),
                  "model_version": str(model_version), "settings": settings_key(settings),
                  "points": json.dumps(points), "seconds": None if seconds is None else float(seconds),
                  "created_at": utc_now()}

        def upsert(conn: Connection) -> int:
            if run_id is not None:
                require_run(conn, run_id)
            # The old sweep goes and the new one gets a new id (the newest first). Should another writer insert
            # the same key in between (PostgreSQL, which does not lock the whole database), its row is updated.
            conn.execute(text("DELETE FROM sweeps WHERE model_ref = :model_ref AND settings = :settings"), record)
            return conn.execute(text(
                "INSERT INTO sweeps (run_id, model_ref, model_version, settings, points, seconds, created_at)"
                " VALUES (:run_id, :model_ref, :model_version, :settings, :points, :seconds, :created_at)"
                " ON CONFLICT (model_ref, settings) DO UPDATE SET run_id = excluded.run_id,"
                " model_version = excluded.model_version, points = excluded.points, seconds = excluded.seconds,"
                " created_at = excluded.created_at RETURNING id"), record).scalar_one()

        return self._write(upsert)

    def sweep(self, model_ref: str, settings: dict, model_version: str | None = None) -> dict | None:
        """The stored sweep of ``model_ref`` with exactly these settings (and, if given, this model version), or
        None. A dict with id, run_id, model_ref, model_version, settings, points (decoded), seconds, created_at."""
        where, params = matching({"model_ref": str(model_ref), "settings": settings_key(settings),
                                  "model_version": None if model_version is None else str(model_version)})
        row = self._read(lambda conn: conn.execute(text(f"SELECT * FROM sweeps {where}"), params).mappings().first())
        return None if row is None else _decoded(row)

    def sweeps(self, model_ref: str | None = None, run_id: int | None = None,
               model_version: str | None = None) -> list[dict]:
        """Stored sweeps, newest first, optionally only of one model reference, run and/or model version."""
        where, params = matching({"model_ref": None if model_ref is None else str(model_ref),
                                  "run_id": None if run_id is None else int(run_id),
                                  "model_version": None if model_version is None else str(model_version)})
        rows = self._read(lambda conn: conn.execute(
            text(f"SELECT * FROM sweeps {where} ORDER BY id DESC"), params).mappings().all())
        return [_decoded(row) for row in rows]
