"""Which models exist: shipped models in ``artifacts/models/`` and finished runs in the run store.

A model reference is a shipped model's name (``champion``), a run id (``12``) or a ``.keras`` path.
"""

from __future__ import annotations

import json
import math
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
    problem: str | None = None  # why its card could not be read (the model stays usable without it)

    def load(self):
        if self.untrained_arch is not None:
            from cifarmix import architectures

            return architectures.build(self.untrained_arch)
        from cifarmix import models

        return models.load_model(self.path)


_versions: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> content digest


def model_version(entry: ModelEntry) -> str:
    """Which model file an entry is, by content: ``"sha256:<first 16 hex digits>"`` of the file (``"untrained"``
    for a freshly built network). Stored results (weight sweeps) carry it, so a file that changed (a resumed
    run's new best checkpoint, a shipped model given other test-time views) is measured afresh, while a copy of
    the same file is not. Hashed once per file path, modification time and size.

    Raises:
        OSError: the file cannot be read.
    """
    import hashlib

    if entry.untrained_arch is not None:
        return f"untrained:{entry.untrained_arch}"
    path = Path(entry.path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _versions:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        _versions[key] = f"sha256:{digest.hexdigest()[:16]}"
    return _versions[key]


def untrained(arch: str) -> ModelEntry:
    """A freshly built, untrained model of ``arch``: what a network scores before it learns (``random`` ~20%)."""
    return ModelEntry(f"untrained:{arch}", f"untrained {arch}", Path(), untrained_arch=arch)


def shipped(root: Path | None = None) -> list[ModelEntry]:
    """Shipped models: ``artifacts/models/<name>/model.keras`` with a ``card.json`` beside it.

    A missing or malformed card costs only that model's extra facts: it is listed under its folder's name, with
    the card's problem in ``problem``.
    """
    root = root or paths.shipped_models_dir()
    entries = []
    for folder in sorted(p for p in root.glob("*") if (p / MODEL_FILE).is_file()):
        card, problem = read_card(folder / CARD_FILE)
        accuracy = card_accuracy(card)
        suffix = f" — {accuracy:.1%} on the test protocol" if accuracy is not None else ""
        title = bounded_text(card.get("title"), TITLE_LIMIT) or folder.name
        entries.append(ModelEntry(folder.name, f"{title}{suffix}", folder / MODEL_FILE, card=card, problem=problem))
    return entries


TITLE_LIMIT = 60  # characters of a card's title shown in lists
DESCRIPTION_LIMIT = 400


def read_card(path: Path) -> tuple[dict, str | None]:
    """A model card as a dict, and None; or ``{}`` and one sentence saying what is wrong with the file."""
    if not path.exists():
        return {}, f"it has no {path.name}"
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return {}, f"its {path.name} could not be read ({type(error).__name__})"
    if not isinstance(card, dict):
        return {}, f"its {path.name} holds a {type(card).__name__}, not an object"
    if "evaluation" in card and not isinstance(card["evaluation"], dict):
        return {key: value for key, value in card.items() if key != "evaluation"}, \
            f"the evaluation in its {path.name} is not an object"
    return card, None


def card_accuracy(card: dict) -> float | None:
    """The card's test-protocol mean accuracy, or None when it has none or it is not a number in [0, 1]."""
    evaluation = card.get("evaluation")
    value = evaluation.get("mean_accuracy") if isinstance(evaluation, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if 0 <= value <= 1 else None


def bounded_text(value, limit: int) -> str:
    """``value`` as one line of plain text of at most ``limit`` characters ('' for anything but a string)."""
    if not isinstance(value, str):
        return ""
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def card_description(card: dict) -> str:
    """The card's description as bounded plain text (shown in the sidebar; never rendered as markdown)."""
    return bounded_text(card.get("description"), DESCRIPTION_LIMIT)


def from_runs(store: RunStore) -> list[ModelEntry]:
    """Runs with a best checkpoint on disk, newest first (finished, stopped and killed runs alike)."""
    entries = []
    for run in store.list_runs():
        path = Path(run["model_path"]) if run.get("model_path") else None
        if path is None or not path.is_file() or run["status"] in ("queued", "running"):
            continue
        best = run.get("best_val_mean")
        score = f" — {best:.1%} val" if isinstance(best, (int, float)) and math.isfinite(best) else ""
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
