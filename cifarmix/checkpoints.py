"""A run folder's files: the best and last checkpoints and the resume state that names the last one.

Every epoch writes ``best.keras`` (when the mean validation accuracy improved), its own checkpoint
``last-eN.keras`` and then ``state.json``, which names that checkpoint. A process killed between the checkpoint
and the state leaves the previous pair intact, so a resume always loads the weights that go with its epoch count.
Runs saved before checkpoints were named by their epoch have one ``last.keras`` and a state that names none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cifarmix import paths

BEST_MODEL = "best.keras"
LEGACY_LAST_MODEL = "last.keras"  # the one last checkpoint of runs saved before checkpoints were named by epoch
STATE_FILE = "state.json"


def fresh_state() -> dict:
    """The state of a run that has completed no epoch yet."""
    return {"epoch": 0, "best": None, "best_epoch": None, "train_seconds": 0.0, "steps": 0}


def last_checkpoint_name(epoch: int) -> str:
    """The file name of the checkpoint taken at the end of ``epoch``."""
    return f"last-e{epoch}.keras"


def last_checkpoint(folder: str | os.PathLike, state: dict) -> Path:
    """The checkpoint a run's state goes with (``last.keras`` for runs saved before checkpoints had epochs)."""
    return Path(folder) / state.get("last_model", LEGACY_LAST_MODEL)


def load_state(folder: str | os.PathLike) -> dict:
    """The resume state in ``folder``: epochs completed, the best validation mean accuracy so far, time spent.

    Epochs count only with the checkpoint the state names (written first); a run stopped within its first epoch
    has a state (its time, its best) and no checkpoint yet. Without a usable state: :func:`fresh_state`.
    """
    path = Path(folder) / STATE_FILE
    if path.exists():
        state = json.loads(path.read_text())
        if state["epoch"] == 0 or last_checkpoint(folder, state).exists():
            return state
    return fresh_state()


def save_state(folder: str | os.PathLike, state: dict) -> None:
    """Write ``state.json`` atomically, after the checkpoint it names, then delete the older checkpoints."""
    folder = Path(folder)
    paths.write_json_atomically(folder / STATE_FILE, state)
    current = last_checkpoint(folder, state).name
    for old in [*folder.glob("last-e*.keras"), folder / LEGACY_LAST_MODEL]:
        if old.name != current:
            old.unlink(missing_ok=True)
