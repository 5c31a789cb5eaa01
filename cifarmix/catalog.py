"""Which models exist: shipped models in ``artifacts/models/`` and finished runs in the run store.

A model reference is a shipped model's name (``champion``), a run id (``12``) or a ``.keras`` path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cifarmix import paths
from cifarmix.store import RunStore, parse_run_id

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"


@dataclass(frozen=True)
class ModelEntry:
    """One loadable model and what is known about it."""

    reference: str  # what the user typed or picked: "champion", "run:12", a path
    title: str  # for select boxes
    path: Path
    run_id: int | None = None
    card: dict = field(default_factory=dict)
    untrained_arch: str | None = None  # set for a freshly built model of this architecture (no file)

    def load(self):
        if self.untrained_arch is not None:
            from cifarmix import architectures

            return architectures.build(self.untrained_arch)
        from cifarmix import models

        return models.load_model(self.path)


def untrained(arch: str) -> ModelEntry:
    """A freshly built, untrained model of ``arch``: what a network scores before it learns (``random`` ~20%)."""
    return ModelEntry(f"untrained:{arch}", f"untrained {arch}", Path(), untrained_arch=arch)


def shipped(root: Path | None = None) -> list[ModelEntry]:
    """Shipped models: ``artifacts/models/<name>/model.keras`` with a ``card.json`` beside it."""
    root = root or paths.shipped_models_dir()
    entries = []
    for folder in sorted(p for p in root.glob("*") if (p / MODEL_FILE).is_file()):
        card = _read_card(folder / CARD_FILE)
        accuracy = card.get("evaluation", {}).get("mean_accuracy")
        suffix = f" — {accuracy:.1%} on the test protocol" if accuracy else ""
        entries.append(ModelEntry(folder.name, f"{card.get('title', folder.name)}{suffix}", folder / MODEL_FILE, card=card))
    return entries


def _read_card(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def from_runs(store: RunStore) -> list[ModelEntry]:
    """Runs with a best checkpoint on disk, newest first (finished, stopped and killed runs alike)."""
    entries = []
    for run in store.list_runs():
        path = Path(run["model_path"]) if run.get("model_path") else None
        if path is None or not path.is_file() or run["status"] in ("queued", "running"):
            continue
        best = run.get("best_val_mean")
        score = f" — {best:.1%} val" if best is not None else ""
        label = run.get("name") or run["arch"]
        entries.append(ModelEntry(f"run:{run['id']}", f"run #{run['id']} {label}{score}", path, run_id=run["id"]))
    return entries


def available(store: RunStore) -> list[ModelEntry]:
    """Every model a page can offer: shipped ones first, then finished runs."""
    return shipped() + from_runs(store)


def resolve(reference: str, store: RunStore) -> ModelEntry:
    """Turn a shipped model name, a run id (``12`` or ``run:12``) or a ``.keras`` path into a ModelEntry.

    Raises:
        ValueError: naming what was looked for and what exists.
    """
    text = str(reference).strip()
    for entry in shipped():
        if entry.reference == text:
            return entry
    run_id = parse_run_id(text.removeprefix("run:"))
    if run_id is not None:
        run = store.get_run(run_id)
        if run is None:
            raise ValueError(f"there is no run {run_id}; `python -m cifarmix runs` lists the runs")
        if not run.get("model_path") or not Path(run["model_path"]).is_file():
            raise ValueError(f"run {run_id} has no saved model yet (status: {run['status']})")
        return ModelEntry(f"run:{run_id}", f"run #{run_id}", Path(run["model_path"]), run_id=run_id)
    path = Path(text).expanduser()
    if path.exists():
        return ModelEntry(str(path), path.name, path)
    names = ", ".join(entry.reference for entry in shipped()) or "none shipped yet"
    raise ValueError(f"{text!r} is neither a model file, a run id nor a shipped model ({names})")
