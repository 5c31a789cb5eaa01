"""Integration on the real CIFAR-10 tarball: loading, mixing statistics, training, evaluation, kill + resume.

These tests use real processes (`python -m cifarmix ...`) and the data file an offline user configures
through CIFARMIX_DATA. In CI they must run: the `real_data` fixture fails instead of skipping there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cifarmix import data, jobs, mixing
from cifarmix.store import RunStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*argv, timeout=600):
    return subprocess.run([sys.executable, "-m", "cifarmix", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def splits_real():
    path = os.environ.get("CIFARMIX_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data",
                                                          "cifar-10-python.tar.gz")
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-data tests: set CIFARMIX_DATA")
        pytest.skip("real CIFAR-10 not available")
    return data.load_splits(path)


def test_real_data_has_the_official_counts(real_data):
    (x_train, y_train), (x_test, y_test) = data.load_cifar10()
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_real_split_is_45000_5000_and_balanced(splits_real):
    assert len(splits_real.y_train) == 45000 and len(splits_real.y_val) == 5000
    assert np.bincount(splits_real.y_val).tolist() == [500] * 10


def test_mixed_batches_have_the_expected_statistics(splits_real):
    groups = mixing.split_groups(splits_real.x_train, splits_real.y_train)
    pairs = mixing.MixedPairs(groups, batch_size=4000, steps_per_epoch=1, seed=0)
    x, y = pairs[0]
    expected = (groups.a_x.mean() + groups.b_x.mean()) / 2
    assert abs(x.mean() - expected) < 2.0
    assert 0 <= x.min() and x.max() <= 255
    for head in ("first", "second"):
        shares = y[head].mean(axis=0)
        assert np.all(np.abs(shares - 0.2) < 0.03), shares
    # a mix is less contrasted than its components: averaging two independent images shrinks the spread
    assert x.std() < groups.a_x[:4000].std()


def test_cli_trains_a_small_real_run_and_evaluates_it(real_data):
    done = cli("train", "--arch", "allconv", "--epochs", "2", "--batch-size", "32", "--steps-per-epoch", "15",
               "--train-size", "2000", "--val-pairs", "200", "--name", "real-small")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stdout
    run = RunStore().list_runs()[0]
    assert run["epochs_done"] == 2 and run["device"].startswith(("CPU", "GPU"))
    scored = cli("evaluate", str(run["id"]), "--repeats", "2", "--pairs", "1000", "--json")
    assert scored.returncode == 0, scored.stderr[-2000:]
    result = json.loads(scored.stdout)
    assert result["repeats"] == 2 and 0.0 <= result["mean_accuracy"] <= 1.0
    assert np.array(result["confusion_first"]).sum() == 2000


def test_a_killed_training_process_resumes_from_its_last_checkpoint(real_data):
    from cifarmix.config import TrainConfig

    store = RunStore()
    config = TrainConfig(arch="allconv", epochs=3, batch_size=32, steps_per_epoch=10, train_size=1000,
                                  val_pairs=100)
    run_id = jobs.start(config, store, name="to-be-killed")
    deadline = time.time() + 300
    while (store.get_run(run_id)["epochs_done"] or 0) < 1:
        assert time.time() < deadline, jobs.log_tail(run_id)
        assert jobs.run_is_alive(store.get_run(run_id)), jobs.log_tail(run_id)
        time.sleep(0.5)
    os.kill(store.get_run(run_id)["pid"], signal.SIGKILL)
    time.sleep(1)
    assert run_id in jobs.reap(store)
    killed = store.get_run(run_id)
    assert killed["status"] == "killed" and "--resume" in killed["message"]
    epochs_before = killed["epochs_done"]
    assert 1 <= epochs_before < 3

    resumed = cli("train", "--resume", str(run_id))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = store.get_run(run_id)
    assert final["status"] == "finished" and final["epochs_done"] == 3
    assert store.epoch_metrics(run_id)["epoch"].tolist() == [1, 2, 3]
    steps = store.step_metrics(run_id)["step"]
    assert steps.is_unique and steps.max() == 30
