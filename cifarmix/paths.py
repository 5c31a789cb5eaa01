"""Where cifarmix keeps its files: the home folder, the run store (a SQLite file there, or a database named by
URL), run folders, the data cache; and how it writes small JSON files (atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

HOME_ENV = "CIFARMIX_HOME"
DATA_ENV = "CIFARMIX_DATA"
RUNS_ENV = "CIFARMIX_RUNS"  # the run-files root: one folder several machines (app server, workers) can share
STORE_ENV = "CIFARMIX_STORE"


class HomeError(OSError):
    """The cifarmix home folder cannot be created or written."""


def home() -> Path:
    """The cifarmix home folder (``$CIFARMIX_HOME``, default ``~/.cifarmix``), created on first use.

    Raises:
        HomeError: naming the folder, what was wrong and how to choose another one.
    """
    chosen = os.environ.get(HOME_ENV)
    root = Path(chosen or Path.home() / ".cifarmix").expanduser()
    if root in _WRITABLE and root.is_dir():
        return root
    step = "could not be created"
    try:
        root.mkdir(parents=True, exist_ok=True)
        step = "is not writable"
        tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-").close()  # its own name: threads check at once
    except OSError as error:
        where = f"{HOME_ENV}={chosen}" if chosen else f"the default; {HOME_ENV} is not set"
        reason = f"the folder {step} ({error.strerror or type(error).__name__})"
        raise HomeError(f"cifarmix cannot keep its files in {root} ({where}): {reason}. Choose a folder you can "
                        f"write with {HOME_ENV}=/path/to/folder.") from None
    _WRITABLE.add(root)
    return root


_WRITABLE: set[Path] = set()  # home folders this process has created or written (checked once each)


def db_path() -> Path:
    """The SQLite run store's file under the home folder (the default store)."""
    return home() / "cifarmix.sqlite3"


def store_url() -> str:
    """The run store's database URL: ``$CIFARMIX_STORE`` (e.g. ``postgresql://user:password@host:5432/cifarmix``
    for a store that several machines share), default the SQLite file ``db_path()`` (``sqlite:////...``).

    The URL is returned as it was set; ``cifarmix.store`` reads and checks it.
    """
    return os.environ.get(STORE_ENV) or f"sqlite:///{db_path()}"


def runs_dir() -> Path:
    """The run-files root: the parent folder of the per-run folders (checkpoints, best model, state, log).

    ``$CIFARMIX_RUNS`` when set (a folder mounted at the same path on the app server and every training worker,
    since the store records a run's best model by its full path), else ``$CIFARMIX_HOME/runs``.

    Raises:
        HomeError: naming the folder and the setting when it cannot be created.
    """
    chosen = os.environ.get(RUNS_ENV)
    path = Path(chosen).expanduser() if chosen else home() / "runs"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        where = f"{RUNS_ENV}={chosen}" if chosen else f"{HOME_ENV}/runs"
        raise HomeError(f"cifarmix cannot keep its run files in {path} ({where}): the folder could not be created "
                        f"({error.strerror or type(error).__name__}). Mount the shared folder, or choose one you "
                        f"can write with {RUNS_ENV}=/path/to/runs.") from None
    return path


def run_dir(run_id: int) -> Path:
    """The folder of one run, created on first use."""
    path = runs_dir() / f"run-{int(run_id):05d}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_cache_dir() -> Path:
    """Where an official tarball given by path is extracted once."""
    path = home() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def project_root() -> Path:
    """The project checkout (the folder holding ``cifarmix/``)."""
    return Path(__file__).resolve().parent.parent


def shipped_models_dir() -> Path:
    """Pretrained models shipped with the project (``$CIFARMIX_MODELS_DIR`` overrides, e.g. in tests)."""
    return Path(os.environ.get("CIFARMIX_MODELS_DIR") or project_root() / "artifacts" / "models")


def write_json_atomically(path: Path, value) -> None:
    """Write ``value`` as JSON to a hidden temporary file beside ``path`` and rename it into place, so a reader
    (or a crash) never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)
