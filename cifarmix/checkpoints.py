"""A run folder's files: the best and last checkpoints and the resume state that names the last one.

Every epoch writes ``best.keras`` (when the mean validation accuracy improved), its own checkpoint
``last-eN.keras`` and then ``state.json``, which names that checkpoint. A process killed between the checkpoint
and the state leaves the previous pair intact, so a resume always loads the weights that go with its epoch count.
Runs saved before checkpoints were named by their epoch have one ``last.keras`` and a state that names none.

The pair before the last is kept too (``state.previous.json`` and the checkpoint it names): when the last state or
its checkpoint is damaged (a disk error, a file cut short, an edit by hand), :func:`resume_state` says which file
and what is wrong, and resumes from the older pair, one epoch back, instead of failing or starting over.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import zipfile
from pathlib import Path

from cifarmix import paths

BEST_MODEL = "best.keras"
LEGACY_LAST_MODEL = "last.keras"  # the one last checkpoint of runs saved before checkpoints were named by epoch
STATE_FILE = "state.json"
PREVIOUS_STATE_FILE = "state.previous.json"  # the state before the last, kept with its checkpoint
_CHECKPOINT_NAME = re.compile(r"last-e[1-9][0-9]{0,6}\.keras|last\.keras")  # a plain file name in the run folder


class StateError(ValueError):
    """A run's resume state or checkpoint is missing or damaged; the message names the file and the problem."""


def fresh_state() -> dict:
    """The state of a run that has completed no epoch yet."""
    return {"epoch": 0, "best": None, "best_epoch": None, "train_seconds": 0.0, "steps": 0}


def last_checkpoint_name(epoch: int) -> str:
    """The file name of the checkpoint taken at the end of ``epoch``."""
    return f"last-e{epoch}.keras"


def last_checkpoint(folder: str | os.PathLike, state: dict) -> Path:
    """The checkpoint a run's state goes with (``last.keras`` for runs saved before checkpoints had epochs)."""
    return Path(folder) / state.get("last_model", LEGACY_LAST_MODEL)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def state_problem(state) -> str | None:
    """What is wrong with a decoded resume state (one phrase), or None when it is sound."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not an object"
    if "epoch" not in state:
        return "has no epoch count ('epoch')"
    checks = [
        ("epoch", _is_count, "a whole number of epochs >= 0"),
        ("steps", _is_count, "a whole number of steps >= 0"),
        ("train_seconds", lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0"),
        ("best", lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)), "a number or null"),
        ("best_epoch", lambda v: v is None or (_is_count(v) and v >= 1), "an epoch number or null"),
        ("last_model", lambda v: isinstance(v, str) and _CHECKPOINT_NAME.fullmatch(v), "a checkpoint file name"),
        ("plateau", lambda v: isinstance(v, dict), "an object"),
        ("early_stopping", lambda v: isinstance(v, dict), "an object"),
    ]
    for key, fits, expected in checks:
        if key in state and not fits(state[key]):
            shown = repr(state[key]) if len(repr(state[key])) <= 60 else repr(state[key])[:57] + "..."
            return f"has {key} = {shown}, not {expected}"
    return None


def read_state(path: str | os.PathLike) -> dict:
    """The resume state in the file ``path``, checked (missing fields of older runs filled in).

    Raises:
        StateError: naming the file and what is wrong (unreadable, not JSON, wrong fields).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise StateError(f"{path} cannot be read ({error.strerror or type(error).__name__})") from None
    except UnicodeDecodeError:
        raise StateError(f"{path} is not text (it is damaged)") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as error:
        where = "it is empty" if not text.strip() else f"{error.msg} at line {error.lineno} column {error.colno}"
        raise StateError(f"{path} is not valid JSON ({where})") from None
    problem = state_problem(state)
    if problem:
        raise StateError(f"{path} {problem}")
    return {**fresh_state(), **state}


def load_state(folder: str | os.PathLike) -> dict:
    """The resume state in ``folder``: epochs completed, the best validation mean accuracy so far, time spent.

    Epochs count only with the checkpoint the state names (written first); a run stopped within its first epoch
    has a state (its time, its best) and no checkpoint yet. A folder without ``state.json``: :func:`fresh_state`.

    Raises:
        StateError: the state is damaged, or names a checkpoint that is not there.
    """
    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.exists():
        return fresh_state()
    state = read_state(path)
    if state["epoch"] and not last_checkpoint(folder, state).is_file():
        raise StateError(f"{path} names the checkpoint {last_checkpoint(folder, state).name} of epoch "
                         f"{state['epoch']}, which is missing from {folder}")
    return state


def check_checkpoint(path: str | os.PathLike) -> None:
    """Raise StateError unless ``path`` is a whole ``.keras`` archive (present, complete, every member intact)."""
    path = Path(path)
    if not path.is_file():
        raise StateError(f"the checkpoint {path} is missing")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise StateError(f"the checkpoint {path} is damaged: not a complete .keras archive ({error}); it may have "
                         "been cut short") from None
    if broken is not None:
        raise StateError(f"the checkpoint {path} is damaged: its member {broken} fails its checksum")
    if "config.json" not in names:
        raise StateError(f"the checkpoint {path} is damaged: it holds no model configuration")


def resume_state(folder: str | os.PathLike, recorded_epochs: int = 0) -> tuple[dict, str | None]:
    """The state to resume from, with its checkpoint checked, and a note when it is not the last one.

    When the last state (or its checkpoint) is damaged and the pair before it is sound, that pair is returned
    with a note naming the damaged file, the problem and the epoch resumed from.

    Args:
        folder: the run's folder.
        recorded_epochs: the epochs the run store records as done: a folder holding fewer (deleted, moved or
            replaced) is refused, since resuming from it would train those epochs again over their records.

    Raises:
        StateError: the last state is damaged and no sound older pair exists, or the folder holds fewer epochs
            than recorded (naming the file and the problem).
    """
    folder = Path(folder)
    try:
        state = load_state(folder)
        if state["epoch"]:
            check_checkpoint(last_checkpoint(folder, state))
    except StateError as damage:
        older = sound_previous_state(folder)
        if older is not None:
            return older, (f"{damage}; resuming from epoch {older['epoch']} "
                           f"({last_checkpoint(folder, older).name}), the checkpoint before it")
        raise StateError(f"{damage}. There is no older checkpoint to resume from: restore the file, or start a new "
                         "run with the same settings") from None
    if state["epoch"] < recorded_epochs:
        if not (folder / STATE_FILE).exists():
            found = f"its folder {folder} has no {STATE_FILE} (was it deleted or moved?)"
        else:
            found = f"{folder / STATE_FILE} holds only {state['epoch']} of them"
        raise StateError(f"the run has {recorded_epochs} epochs recorded, but {found}. Resuming would start again "
                         f"from epoch {state['epoch'] + 1} and overwrite the recorded epochs, so it is refused: put "
                         "the run's folder back, or start a new run with the same settings")
    return state, None


def sound_previous_state(folder: Path) -> dict | None:
    """The pair kept before the last state (``state.previous.json`` and its checkpoint), or None when there is
    none or it is damaged too."""
    previous = folder / PREVIOUS_STATE_FILE
    if not previous.exists():
        return None
    try:
        older = read_state(previous)
        if older["epoch"]:
            check_checkpoint(last_checkpoint(folder, older))
    except StateError:
        return None
    return older


def save_state(folder: str | os.PathLike, state: dict) -> None:
    """Write ``state.json`` atomically, after the checkpoint it names; keep the pair it replaces as the previous
    one (``state.previous.json`` and its checkpoint), and delete the checkpoints older than that."""
    folder = Path(folder)
    path = folder / STATE_FILE
    current = last_checkpoint(folder, state).name
    try:
        replaced = read_state(path) if path.exists() else None
    except StateError:
        replaced = None  # a damaged state is not worth keeping
    replaced_checkpoint = last_checkpoint(folder, replaced) if replaced and replaced["epoch"] else None
    if replaced_checkpoint is not None and replaced_checkpoint.name != current and replaced_checkpoint.is_file():
        paths.write_json_atomically(folder / PREVIOUS_STATE_FILE, replaced)
    paths.write_json_atomically(path, state)
    keep = {current}
    with contextlib.suppress(StateError):  # a damaged previous state keeps no checkpoint of its own
        if (folder / PREVIOUS_STATE_FILE).exists():
            keep.add(last_checkpoint(folder, read_state(folder / PREVIOUS_STATE_FILE)).name)
    for old in [*folder.glob("last-e*.keras"), folder / LEGACY_LAST_MODEL]:
        if old.name not in keep:
            old.unlink(missing_ok=True)
