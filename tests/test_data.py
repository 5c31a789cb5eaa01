"""Loading CIFAR-10 from a tarball, a folder, CIFARMIX_DATA or Keras, and every way that can fail."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cifarmix import data, paths


def test_tarball_loads_as_uint8_nhwc_with_int_labels(tiny_tarball):
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(tiny_tarball)
    assert x_train.shape == (1000, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (400, 32, 32, 3)
    assert y_train.dtype == np.int64 and set(np.unique(y_train)) == set(range(10))


def test_channel_major_rows_become_nhwc(tmp_path):
    from tests.conftest import write_tiny_tarball

    tarball = write_tiny_tarball(tmp_path / "c.tar.gz", per_batch=10, test_size=10)
    (x_train, _), _ = data.load_cifar10(tarball)
    # class 0 images have mean colour (0, 40, 80): the red channel is darkest, blue brightest
    means = x_train[0].reshape(-1, 3).mean(axis=0)
    assert means[0] < means[1] < means[2]


def test_tarball_is_extracted_once_into_the_home(tiny_tarball, cifarmix_home):
    data.load_cifar10(tiny_tarball)
    extracted = list(paths.data_cache_dir().glob("cifar-10-*/cifar-10-batches-py/test_batch"))
    assert len(extracted) == 1
    stamp = extracted[0].stat().st_mtime_ns
    data._load_from_path_cached.cache_clear()
    data.load_cifar10(tiny_tarball)
    assert extracted[0].stat().st_mtime_ns == stamp
    assert len(list(paths.data_cache_dir().iterdir())) == 1  # no leftover staging folders


def test_extracted_folder_and_its_parent_both_load(tiny_tarball, tmp_path):
    with tarfile.open(tiny_tarball) as archive:
        archive.extractall(tmp_path / "x", filter="data")
    for folder in (tmp_path / "x", tmp_path / "x" / "cifar-10-batches-py"):
        (x_train, _), _ = data.load_cifar10(folder)
        assert len(x_train) == 1000


def test_environment_variable_is_used_when_no_path_is_given(tiny_tarball, monkeypatch):
    monkeypatch.setenv("CIFARMIX_DATA", str(tiny_tarball))
    (x_train, _), _ = data.load_cifar10()
    assert len(x_train) == 1000
    assert "CIFARMIX_DATA" in data.describe_source()


def test_missing_path_says_what_to_do(tmp_path):
    with pytest.raises(data.DataError, match="not found.*CIFARMIX_DATA"):
        data.load_cifar10(tmp_path / "nope.tar.gz")


def test_truncated_tarball_is_reported_as_corrupt(tiny_tarball, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(tiny_tarball.read_bytes()[: 5000])
    with pytest.raises(data.DataError, match="truncated, corrupt"):
        data.load_cifar10(broken)
    assert not any(paths.data_cache_dir().glob("cifar-10-*")), "a failed extraction must leave nothing behind"


def test_wrong_file_is_refused(tmp_path):
    text = tmp_path / "notes.tar.gz"
    text.write_text("this is not an archive")
    with pytest.raises(data.DataError, match="CIFARMIX_DATA"):
        data.load_cifar10(text)


def test_archive_without_batches_is_refused(tmp_path):
    other = tmp_path / "other.tar.gz"
    payload = tmp_path / "readme.txt"
    payload.write_text("hello")
    with tarfile.open(other, "w:gz") as archive:
        archive.add(payload, arcname="something/readme.txt")
    with pytest.raises(data.DataError, match="holds no cifar-10-batches-py"):
        data.load_cifar10(other)


def test_corrupt_batch_is_reported(tiny_tarball, tmp_path):
    with tarfile.open(tiny_tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(gzip.compress(b"garbage"))
    with pytest.raises(data.DataError, match="data_batch_3 is corrupt"):
        data.load_cifar10(tmp_path)


def test_pickled_code_is_never_executed(tiny_tarball, tmp_path):
    import os
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    with tarfile.open(tiny_tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(data.DataError, match="forbidden"):
        data.load_cifar10(tmp_path)


def test_no_network_and_no_path_gives_one_clear_sentence(monkeypatch):
    import keras

    monkeypatch.delenv("CIFARMIX_DATA", raising=False)

    def offline():
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(data.DataError, match="could not download it.*CIFARMIX_DATA"):
        data.load_cifar10()


def test_online_users_get_keras_download(monkeypatch):
    import keras

    monkeypatch.delenv("CIFARMIX_DATA", raising=False)
    fake = np.zeros((20, 32, 32, 3), np.uint8), np.arange(20).reshape(-1, 1) % 10
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: (fake, fake))
    (x_train, y_train), _ = data.load_cifar10()
    assert x_train.shape == (20, 32, 32, 3) and y_train.shape == (20,)


def test_validation_split_is_seeded_stratified_and_disjoint():
    x = np.arange(1000).reshape(-1, 1)
    y = np.arange(1000) % 10
    (x_tr, y_tr), (x_val, y_val) = data.train_val_split(x, y, 0.1, seed=0)
    (_, _), (x_val2, _) = data.train_val_split(x, y, 0.1, seed=0)
    assert len(x_val) == 100 and np.array_equal(x_val, x_val2)
    assert np.bincount(y_val).tolist() == [10] * 10
    assert not set(x_tr.ravel()) & set(x_val.ravel())


def test_cli_data_check_prints_counts(tiny_data, capsys):
    from cifarmix.cli import main

    assert main(["data", "check"]) == 0
    out = capsys.readouterr().out
    assert "validation" in out and "airplane" in out and "1000" in out


def test_cli_data_check_with_bad_path_exits_2_without_traceback(tmp_path, capsys):
    from cifarmix.cli import main

    assert main(["data", "check", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 was not found") and "Traceback" not in err


@pytest.mark.parametrize("home", ["/proc/no-such-folder/cifarmix", "/sys/kernel/cifarmix-test"])
def test_a_home_that_cannot_be_created_or_written_is_named_with_how_to_choose_another(home, monkeypatch, capsys):
    from cifarmix import cli, paths

    monkeypatch.setenv("CIFARMIX_HOME", home)
    with pytest.raises(paths.HomeError, match=f"cannot keep its files in {home}.*CIFARMIX_HOME=/path/to/folder"):
        paths.home()
    assert cli.main(["runs"]) == 2
    assert f"error: cifarmix cannot keep its files in {home}" in capsys.readouterr().err


def _cached_batches() -> Path:
    (folder,) = paths.data_cache_dir().glob("cifar-10-*/cifar-10-batches-py")
    return folder


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_data_cache_is_extracted_again(tiny_tarball, damage):
    expected = data.load_cifar10(tiny_tarball)[0][0]
    batch = _cached_batches() / "data_batch_3"
    if damage == "truncate":
        batch.write_bytes(batch.read_bytes()[:1000])
    else:
        batch.unlink()
    data._load_from_path_cached.cache_clear()
    (x_train, _), _ = data.load_cifar10(tiny_tarball)
    assert np.array_equal(x_train, expected)
    assert len(list(paths.data_cache_dir().iterdir())) == 1


def test_a_tarball_with_garbage_batches_is_refused_before_anything_is_cached(tmp_path):
    bad = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(bad, "w:gz") as archive:
        for name in (*data.TRAIN_BATCHES, data.TEST_BATCH):
            payload = b"not a pickle at all" * 10
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    with pytest.raises(data.DataError, match="corrupt or not in the official format"):
        data.load_cifar10(bad)
    assert list(paths.data_cache_dir().iterdir()) == []


def test_a_half_finished_extraction_of_a_killed_process_is_removed_by_the_next_load(tiny_tarball):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = paths.data_cache_dir() / f"extract-{dead.pid}-abcd"
    (leftover / "cifar-10-batches-py").mkdir(parents=True)
    data.load_cifar10(tiny_tarball)
    assert not leftover.exists()


def test_an_unreadable_tarball_is_called_unreadable_not_corrupt(tiny_tarball, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tarfile, "open", refuse)
    with pytest.raises(data.DataError, match="is not readable by this user"):
        data.load_cifar10(tiny_tarball)
