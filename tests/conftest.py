"""Shared fixtures: an isolated cifarmix home, a tiny CIFAR-10 tarball in the official format, the real data."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "cifar-10-python.tar.gz"


def real_data_path() -> Path | None:
    """The real CIFAR-10 tarball: $CIFARMIX_DATA, else ../shared/data; None if neither exists."""
    for candidate in (os.environ.get("CIFARMIX_DATA"), SHARED_DATA):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def pytest_configure(config):
    """A throw-away cifarmix home for the whole session, set before any fixture or import reads it: module- and
    session-scoped fixtures run before the per-test home below, and must not fill the user's ``~/.cifarmix``."""
    import tempfile

    os.environ["CIFARMIX_HOME"] = tempfile.mkdtemp(prefix="cifarmix-tests-")


@pytest.fixture(autouse=True)
def cifarmix_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own cifarmix home (run store, run folders, data cache)."""
    home = tmp_path / "home"
    monkeypatch.setenv("CIFARMIX_HOME", str(home))
    return home


@pytest.fixture
def real_data(monkeypatch) -> Path:
    """The real tarball; in CI its absence fails the test instead of skipping it."""
    path = real_data_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-data tests: set CIFARMIX_DATA to cifar-10-python.tar.gz")
        pytest.skip("real CIFAR-10 not available (set CIFARMIX_DATA)")
    monkeypatch.setenv("CIFARMIX_DATA", str(path))
    return path


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable fake images: each class has its own mean colour and stripe pattern, plus noise."""
    images = np.empty((len(labels), 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        colour = np.array([(label * 53) % 256, (label * 97 + 40) % 256, (label * 151 + 80) % 256], dtype=float)
        stripes = (np.arange(32)[:, None] % (label + 2) == 0) * 60.0
        image = colour + stripes[:, :, None] + rng.normal(0, 20, (32, 32, 3))
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
    return images


def batch_bytes(images: np.ndarray, labels: np.ndarray, name: str) -> bytes:
    """One batch pickled exactly like the official python-version files."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels], b"data": rows,
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    return pickle.dumps(batch, protocol=2)


def write_tiny_tarball(path: Path, per_batch: int = 200, test_size: int = 400, seed: int = 0) -> Path:
    """A CIFAR-10 tarball in the official layout with ``5 * per_batch`` training and ``test_size`` test images."""
    rng = np.random.default_rng(seed)
    files = {}
    for i in range(1, 6):
        labels = np.arange(per_batch) % 10
        files[f"data_batch_{i}"] = batch_bytes(make_images(labels, rng), labels, f"training batch {i} of 5")
    labels = np.arange(test_size) % 10
    files["test_batch"] = batch_bytes(make_images(labels, rng), labels, "testing batch 1 of 1")
    files["batches.meta"] = pickle.dumps({b"label_names": [b"x"] * 10}, protocol=2)
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture(scope="session")
def tiny_tarball(tmp_path_factory) -> Path:
    """A tiny official-format tarball (1,000 training and 400 test images), written once per session."""
    return write_tiny_tarball(tmp_path_factory.mktemp("tiny") / "cifar-10-python.tar.gz")


@pytest.fixture
def tiny_data(tiny_tarball, monkeypatch) -> Path:
    """The tiny tarball configured through CIFARMIX_DATA, as an offline user would."""
    monkeypatch.setenv("CIFARMIX_DATA", str(tiny_tarball))
    return tiny_tarball


@pytest.fixture(scope="session")
def untrained_model_file(tmp_path_factory) -> Path:
    """A real two-head model file (the untrained ``random`` baseline), for tests that only need answers."""
    from cifarmix import architectures, models

    path = tmp_path_factory.mktemp("models") / "random.keras"
    models.save_atomically(architectures.build("random"), path)
    return path


@pytest.fixture
def fresh_caches():
    """Empty Streamlit server caches (data, models, store) around a test, as on a freshly started server."""
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def shipped_model(untrained_model_file, tmp_path, monkeypatch) -> str:
    """One "shipped" model (an untrained net) in a models folder named by ``CIFARMIX_MODELS_DIR``; its name."""
    import json
    import shutil

    folder = tmp_path / "models" / "demo"
    folder.mkdir(parents=True)
    shutil.copy(untrained_model_file, folder / "model.keras")
    (folder / "card.json").write_text(json.dumps({"title": "Demo model", "description": "untrained, for tests"}))
    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(tmp_path / "models"))
    return "demo"


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """No shipped models at all (an empty ``CIFARMIX_MODELS_DIR``)."""
    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(tmp_path / "no-models"))


def pytest_terminal_summary(terminalreporter):
    """Say loudly at the end when the browser test did not run (its skip is easy to miss in the summary)."""
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if "test_browser" in report.nodeid]
    if skipped:
        reason = skipped[0].longrepr[2] if isinstance(skipped[0].longrepr, tuple) else str(skipped[0].longrepr)
        terminalreporter.write_sep("!", "THE BROWSER TEST DID NOT RUN", red=True, bold=True)
        terminalreporter.write_line(f"  {reason.removeprefix('Skipped: ')}")
        terminalreporter.write_line("  Install Debian's Chromium and emoji font to run it: "
                                    "sudo apt-get install chromium fonts-noto-color-emoji")
