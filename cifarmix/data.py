"""CIFAR-10 sources -> uint8 arrays; class names and groups; a seeded train/validation split.

Sources, tried in this order:
1. an explicit ``source`` path,
2. the ``CIFARMIX_DATA`` environment variable,
3. Keras' own cache / download (``keras.datasets.cifar10.load_data``).

A path may be the official ``cifar-10-python.tar.gz`` (extracted once into the cifarmix home) or an
extracted ``cifar-10-batches-py/`` folder (or a folder that holds one).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifarmix import paths

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CLASS_EMOJI = ("✈️", "🚗", "🐦", "🐱", "🦌", "🐶", "🐸", "🐴", "🚢", "🚚")


def class_label(index: int) -> str:
    """``"🐱 cat"`` for a CIFAR-10 class index 0-9: how people see a class in the app."""
    return f"{CLASS_EMOJI[int(index)]} {CLASS_NAMES[int(index)]}"


GROUP_A = CLASS_NAMES[:5]
GROUP_B = CLASS_NAMES[5:]
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
HOW_TO_FIX = (
    "Set CIFARMIX_DATA to the official cifar-10-python.tar.gz (or an extracted cifar-10-batches-py "
    "folder), e.g. `export CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz`, or connect to the "
    "internet so Keras can download CIFAR-10."
)


class DataError(Exception):
    """CIFAR-10 could not be loaded; the message says what was tried and what to do."""


@dataclass(frozen=True)
class Splits:
    """The three splits used everywhere: uint8 NHWC images and int64 labels 0-9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_cifar10(source: str | os.PathLike | None = None):
    """Load CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    Args:
        source: a tarball or folder path; None means ``CIFARMIX_DATA``, then Keras' download.

    Returns:
        uint8 arrays of shape (N, 32, 32, 3) and int64 label vectors of shape (N,).

    Raises:
        DataError: with one sentence saying what was tried and how to fix it.
    """
    chosen = source if source not in (None, "") else os.environ.get(paths.DATA_ENV) or None
    if chosen is not None:
        return _load_from_path_cached(str(Path(chosen).expanduser().resolve()), str(paths.home()))
    return _load_from_keras()


def describe_source(source: str | os.PathLike | None = None) -> str:
    """A short human description of where :func:`load_cifar10` will read from."""
    if source:
        return f"path {source}"
    if os.environ.get(paths.DATA_ENV):
        return f"{paths.DATA_ENV}={os.environ[paths.DATA_ENV]}"
    return "Keras cache / download (~/.keras/datasets)"


@functools.lru_cache(maxsize=2)
def _load_from_path_cached(path: str, home: str):
    """Arrays for ``path``, read once per process (``home`` is part of the key: it holds the extraction)."""
    return _load_from_path(Path(path))


def _load_from_path(path: Path):
    if not path.exists():
        raise DataError(f"CIFAR-10 was not found at {path}. {HOW_TO_FIX}")
    folder = _batches_folder(path) if path.is_dir() else _extract_once(path)
    return _read_batches(folder)


def _batches_folder(folder: Path) -> Path:
    for candidate in (folder, folder / BATCHES_DIR):
        if (candidate / TEST_BATCH).is_file():
            return candidate
    raise DataError(
        f"The folder {folder} holds no CIFAR-10 batches (expected {BATCHES_DIR}/data_batch_1..5 and "
        f"test_batch). {HOW_TO_FIX}"
    )


MANIFEST = "manifest.json"  # the batch files' sizes, written when an extraction is published


def _extract_once(tarball: Path) -> Path:
    """Extract the official tarball into the cifarmix home once; later calls reuse the folder.

    The batches are read and checked before the extraction is published, and published with a manifest of their
    sizes; a cache whose files no longer match it (truncated or deleted since) is removed and extracted again.
    Half-finished extractions left by a killed process are removed first.
    """
    stat = tarball.stat()
    key = hashlib.sha1(f"{tarball}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = paths.data_cache_dir() / f"cifar-10-{key}"
    _remove_abandoned_extractions()
    if _cache_is_intact(target):
        return target / BATCHES_DIR
    if target.exists():  # damaged since it was made, or made before caches had a manifest
        shutil.rmtree(target, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"extract-{os.getpid()}-", dir=paths.data_cache_dir()))
    try:
        _safe_extract(tarball, staging)
        _read_batches(_batches_folder(staging))  # refuse a tarball without sound batches before publishing it
        paths.write_json_atomically(staging / MANIFEST, _sizes(staging / BATCHES_DIR))
        try:
            staging.rename(target)
        except OSError:  # another process published the same extraction first
            if not _cache_is_intact(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / BATCHES_DIR


def _sizes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_size for name in (*TRAIN_BATCHES, TEST_BATCH)}


def _cache_is_intact(target: Path) -> bool:
    """True when every batch file of an extraction is there with the size its manifest recorded."""
    try:
        expected = json.loads((target / MANIFEST).read_text())
        return _sizes(target / BATCHES_DIR) == expected
    except (OSError, ValueError):
        return False


def _remove_abandoned_extractions() -> None:
    """Delete ``extract-PID-*`` folders whose process is gone (a first run killed while extracting)."""
    for folder in paths.data_cache_dir().glob("extract-*"):
        pid = folder.name.split("-")[1]
        if not pid.isdigit() or not _process_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _safe_extract(tarball: Path, destination: Path) -> None:
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(BATCHES_DIR + "/") and m.isfile()]
            if not members:
                raise DataError(
                    f"{tarball} is a tar archive but holds no {BATCHES_DIR}/ folder; it is not the official "
                    f"cifar-10-python.tar.gz. {HOW_TO_FIX}"
                )
            archive.extractall(destination, members=members, filter="data")
    except PermissionError:
        raise DataError(f"{tarball} is not readable by this user; give it read permission (chmod a+r) or point "
                        f"{paths.DATA_ENV} at a copy you can read.") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise DataError(
            f"{tarball} could not be read as a tar.gz archive ({type(error).__name__}: {error}); the file is "
            f"truncated, corrupt or not CIFAR-10. Download it again. {HOW_TO_FIX}"
        ) from None


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batch files, allowing only the numpy pieces they can contain (never arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden object {module}.{name} in a CIFAR batch")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one official batch file into (N, 32, 32, 3) uint8 images and (N,) int64 labels."""
    try:
        with open(path, "rb") as handle:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
        rows = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise DataError(f"The CIFAR-10 batch {path.name} is missing from {path.parent}. {HOW_TO_FIX}") from None
    except PermissionError:
        raise DataError(f"The CIFAR-10 batch {path} is not readable by this user; give it read permission "
                        f"(chmod a+r) or use a copy you can read.") from None
    except Exception as error:  # corrupt pickle, wrong keys, wrong types
        raise DataError(
            f"The CIFAR-10 batch {path} is corrupt or not in the official format "
            f"({type(error).__name__}: {error}). {HOW_TO_FIX}"
        ) from None
    if rows.ndim != 2 or rows.shape[1] != 3072 or len(labels) != len(rows):
        raise DataError(
            f"The CIFAR-10 batch {path} has data of shape {rows.shape} and {len(labels)} labels; expected "
            f"(N, 3072) rows and N labels. {HOW_TO_FIX}"
        )
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _read_batches(folder: Path):
    train = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    x_test, y_test = _read_batch(folder / TEST_BATCH)
    return _checked((x_train, y_train), (x_test, y_test), str(folder))


def _load_from_keras():
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # no network, a broken cache, a proxy page instead of the tarball
        raise DataError(
            f"CIFAR-10 is not configured (no path given, {paths.DATA_ENV} unset) and Keras could not "
            f"download it ({type(error).__name__}). {HOW_TO_FIX}"
        ) from None
    return _checked((x_train, y_train.reshape(-1)), (x_test, y_test.reshape(-1)), "Keras' download")


def _checked(train, test, origin: str):
    """Check shapes, dtypes and label ranges; return the arrays with int64 labels."""
    checked = []
    for split, (x, y) in (("train", train), ("test", test)):
        y = np.asarray(y).reshape(-1).astype(np.int64)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or len(x) != len(y) or len(x) == 0:
            raise DataError(
                f"CIFAR-10 {split} data from {origin} has images {x.shape} {x.dtype} and {len(y)} labels; "
                f"expected uint8 (N, 32, 32, 3) with N labels. {HOW_TO_FIX}"
            )
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"CIFAR-10 {split} labels from {origin} lie outside 0-9. {HOW_TO_FIX}")
        checked.append((x, y))
    return tuple(checked)


def train_val_split(x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int = 0):
    """Split training images into train / validation with a fixed seed, stratified by class.

    Returns:
        ``(x_train, y_train), (x_val, y_val)``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1); got {val_fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        take = max(1, int(round(len(members) * val_fraction)))
        val_idx.append(rng.choice(members, size=take, replace=False))
    val_idx = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(y), dtype=bool)
    mask[val_idx] = False
    return (x[mask], y[mask]), (x[val_idx], y[val_idx])


def load_splits(source: str | os.PathLike | None = None, val_fraction: float = 0.1, seed: int = 0) -> Splits:
    """Load CIFAR-10 and split off the validation set (the same split for every run with this seed)."""
    (x_train, y_train), (x_test, y_test) = load_cifar10(source)
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x_train, y_train, val_fraction, seed)
    return Splits(x_tr, y_tr, x_val, y_val, x_test, y_test)


def class_counts(y: np.ndarray) -> dict[str, int]:
    """Images per class name."""
    counts = np.bincount(np.asarray(y).reshape(-1), minlength=10)
    return {name: int(count) for name, count in zip(CLASS_NAMES, counts)}
