"""Shared fixtures: an isolated cifarmix home, a tiny CIFAR-10 tarball in the official format, the real data, and
the run store on each of its databases (SQLite, and PostgreSQL when ``CIFARMIX_TEST_PG_URL`` names a server)."""

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
PG_URL_ENV = "CIFARMIX_TEST_PG_URL"  # a PostgreSQL server the store tests may fill (.ci/start-postgres starts one)
PG_SKIP_REASON = f"no PostgreSQL server for the store tests: set {PG_URL_ENV}"


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
    os.environ.pop("CIFARMIX_STORE", None)  # a developer's own store is never a test's


@pytest.fixture(autouse=True)
def cifarmix_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own cifarmix home (run store, run folders, data cache); the store is the SQLite file
    there unless the test asks for another (``store_url``)."""
    home = tmp_path / "home"
    monkeypatch.setenv("CIFARMIX_HOME", str(home))
    monkeypatch.delenv("CIFARMIX_STORE", raising=False)
    return home


@pytest.fixture(scope="session")
def postgres_server():
    """An engine on the PostgreSQL server of ``$CIFARMIX_TEST_PG_URL`` (for creating and dropping schemas). Without
    it the test is skipped, said loudly at the end; in CI it fails."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the store tests on PostgreSQL: {PG_SKIP_REASON} (.ci/run starts a server)")
        pytest.skip(PG_SKIP_REASON)
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from cifarmix.store import db

    engine = create_engine(db.store_url(url), poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a fresh, empty schema on the test server (its own search_path), dropped after the test."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from cifarmix.store import db

    schema = f"test_{uuid.uuid4().hex[:16]}"
    with postgres_server.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(os.environ[PG_URL_ENV]).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)  # postgresql://user:password@host:port/database?options=...
    db.dispose_engine(db.store_url(url.render_as_string(hide_password=False)))
    with postgres_server.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, cifarmix_home, monkeypatch) -> str:
    """The run store on each database in turn, set as ``CIFARMIX_STORE`` (so ``RunStore()`` and any process the
    test starts use it): the SQLite file under the test's home, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{cifarmix_home / 'cifarmix.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("CIFARMIX_STORE", url)
    return url


@pytest.fixture
def store(request, cifarmix_home):
    """The test's run store (``RunStore()``): the SQLite file of its home, or, for a test that also takes
    ``store_url``, each database in turn (set as ``CIFARMIX_STORE`` before the store opens, so every process the
    test starts uses the same one). A test module may define its own."""
    if "store_url" in request.fixturenames:
        request.getfixturevalue("store_url")
    from cifarmix.store import RunStore

    return RunStore()


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


def _skip_reason(report) -> str:
    return report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def pytest_terminal_summary(terminalreporter):
    """Say loudly at the end when the browser test or the PostgreSQL store tests did not run (their skips are easy
    to miss in the summary)."""
    on_postgres = [report for report in terminalreporter.stats.get("skipped", [])
                   if PG_SKIP_REASON in _skip_reason(report)]
    if on_postgres:
        terminalreporter.write_sep("!", f"{len(on_postgres)} STORE TESTS DID NOT RUN ON POSTGRESQL", red=True,
                                   bold=True)
        terminalreporter.write_line(f"  {PG_SKIP_REASON}, e.g. to the URL that .ci/start-postgres DIR prints "
                                    "(apt-get install postgresql first)")
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if "test_browser" in report.nodeid]
    if skipped:
        terminalreporter.write_sep("!", "THE BROWSER TEST DID NOT RUN", red=True, bold=True)
        terminalreporter.write_line(f"  {_skip_reason(skipped[0]).removeprefix('Skipped: ')}")
        terminalreporter.write_line("  Install Debian's Chromium and emoji font to run it: "
                                    "sudo apt-get install chromium fonts-noto-color-emoji")
