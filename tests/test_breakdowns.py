"""Accuracy against the mixing weight, and per pair of classes: the figures behind the weight curve and the 5 x 5
heatmap."""

from __future__ import annotations

import numpy as np
import pytest

from cifarmix import breakdowns, mixing


class Oracle:
    """A stand-in model: the first head is right only when A has more than half the weight, the second always."""

    def predict(self, dataset, verbose=0, callbacks=()):
        outputs = {"first": [], "second": []}
        for index in range(len(dataset)):
            _, targets = dataset[index]
            first = targets["first"] if dataset.alpha > 0.5 else np.roll(targets["first"], 1, axis=1)
            outputs["first"].append(first)
            outputs["second"].append(targets["second"])
            for callback in callbacks:
                callback.on_predict_batch_end(index)
        return {head: np.concatenate(rows) for head, rows in outputs.items()}


@pytest.fixture(scope="module")
def test_set():
    rng = np.random.default_rng(0)
    y = np.arange(400) % 10
    return rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8), y


def test_weight_sweep_gives_one_point_per_weight_with_a_margin(test_set):
    x, y = test_set
    reports = []
    points = breakdowns.weight_sweep(Oracle(), x, y, alphas=[0.3, 0.7], repeats=2, pairs=150, batch_size=100,
                                     progress=reports.append)
    assert [point["alpha"] for point in points] == [0.3, 0.7]
    for point in points:
        assert {"alpha", "head_first", "head_second", "mean_accuracy", "margin"} <= set(point)
        assert point["head_second"] == 1.0 and point["pairs"] == 150 and point["repeats"] == 2
    assert points[0]["head_first"] == 0.0 and points[1]["head_first"] == 1.0
    assert points[0]["mean_accuracy"] == 0.5 and points[0]["margin"] == pytest.approx(0.0)
    assert reports == sorted(reports) and reports[-1] == pytest.approx(1.0) and len(reports) == 2 * 3
    assert breakdowns.SWEEP_ALPHAS[0] == 0.05 and breakdowns.SWEEP_ALPHAS[-1] == 0.95


def test_weight_sweep_refuses_bad_settings(test_set):
    x, y = test_set
    for bad in ([0.0], [1.0], []):
        with pytest.raises(ValueError):
            breakdowns.weight_sweep(Oracle(), x, y, alphas=bad)
    with pytest.raises(ValueError, match="positive"):
        breakdowns.weight_sweep(Oracle(), x, y, alphas=[0.5], pairs=0)


def test_pair_breakdown_counts_and_averages_each_cell():
    table = breakdowns.pair_breakdown(a_classes=[0, 0, 3, 3], b_classes=[5, 5, 9, 9],
                                      first_correct=[True, False, True, True], second_correct=[True, True, False, True])
    assert table["count"][0][0] == 2 and table["count"][3][4] == 2 and np.sum(table["count"]) == 4
    assert table["head_first"][0][0] == 0.5 and table["head_second"][0][0] == 1.0
    assert table["mean_accuracy"][0][0] == 0.75 and table["mean_accuracy"][3][4] == 0.75
    assert table["mean_accuracy"][1][1] is None, "a pair of classes never met has no accuracy"
    same = breakdowns.pair_breakdown([0, 0, 3, 3], [0, 0, 4, 4], [1, 0, 1, 1], [1, 1, 0, 1])
    assert same == table, "B's class may be given 0-4 or 5-9"
    with pytest.raises(ValueError):
        breakdowns.pair_breakdown([5], [5], [True], [True])
    with pytest.raises(ValueError):
        breakdowns.pair_breakdown([0, 1], [5], [True], [True])


def test_hardest_pair_is_the_worst_cell_with_enough_pairs():
    table = breakdowns.pair_breakdown([0, 0, 1, 2, 2], [5, 5, 6, 7, 7], [1, 1, 0, 0, 1], [1, 1, 0, 0, 0])
    assert breakdowns.hardest_pair(table) == {"a": 1, "b": 6, "mean_accuracy": 0.0, "head_first": 0.0,
                                              "head_second": 0.0, "count": 1}
    assert breakdowns.hardest_pair(table, min_count=2)["a"] == 2  # (bird, horse): 1 of 4 answers right
    assert breakdowns.hardest_pair(table, min_count=3) is None
    assert breakdowns.hardest_pair(breakdowns.pair_breakdown([], [], [], [])) is None


def test_model_pair_breakdown_covers_every_scored_pair(test_set):
    x, y = test_set
    table = breakdowns.model_pair_breakdown(Oracle(), x, y, repeats=1, pairs=500, alpha=0.6)
    assert np.sum(table["count"]) == 500 and all(count > 0 for row in table["count"] for count in row)
    assert all(value == 1.0 for row in table["mean_accuracy"] for value in row)
    assert (table["pairs"], table["alpha"]) == (500, 0.6)


class FileEntry:
    """A catalog entry whose model is the Oracle and whose "file" is a small file of the test's own."""

    def __init__(self, path, reference="demo", run_id=None):
        self.path, self.reference, self.run_id, self.untrained_arch, self.loads = path, reference, run_id, None, 0

    def load(self):
        self.loads += 1
        return Oracle()


def test_a_sweep_is_stored_and_read_back_instead_of_recomputed(test_set, tmp_path):
    from cifarmix.store import RunStore

    x, y = test_set
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"version one")
    entry, store = FileEntry(model_file), RunStore(tmp_path / "store.sqlite3")
    settings = {"alphas": [0.3, 0.7], "repeats": 1, "pairs": 100}
    first = breakdowns.sweep_and_store(entry, store, x, y, settings)
    assert not first["stored"] and entry.loads == 1 and [p["alpha"] for p in first["points"]] == [0.3, 0.7]
    again = breakdowns.sweep_and_store(entry, store, x, y, {**settings, "alphas": [0.30000000000000004, 0.7]})
    assert again["stored"] and entry.loads == 1 and again["points"] == first["points"]  # no model loaded
    assert breakdowns.stored_sweep(entry, store, breakdowns.sweep_settings(**settings))["points"] == first["points"]
    assert breakdowns.latest_sweep(entry, store)["settings"]["pairs"] == 100
    model_file.write_bytes(b"version two, a new best checkpoint")  # the model changed: its old sweep does not count
    assert breakdowns.latest_sweep(entry, store) is None
    assert not breakdowns.sweep_and_store(entry, store, x, y, settings)["stored"] and entry.loads == 2
    assert len(store.sweeps(model_ref="demo")) == 1  # replaced, not added
    unsaved = breakdowns.sweep_and_store(FileEntry(model_file, "other"), store, x, y, settings, save=False)
    assert not unsaved["stored"] and store.sweeps(model_ref="other") == []


def test_sweep_settings_are_checked():
    assert breakdowns.sweep_settings() == {"alphas": list(breakdowns.SWEEP_ALPHAS), "repeats": 1, "pairs": 500,
                                           "seed": 2024}
    for bad in ({"alphas": []}, {"alphas": [1.0]}, {"pairs": 0}, {"repeats": 0}):
        with pytest.raises(ValueError):
            breakdowns.sweep_settings(**bad)


def test_accuracy_at_interpolates_between_measured_weights_and_holds_the_ends():
    points = [{"alpha": 0.7, "mean_accuracy": 0.8, "head_first": 0.9, "head_second": 0.7, "margin": 0.02},
              {"alpha": 0.3, "mean_accuracy": 0.6, "head_first": 0.5, "head_second": 0.7, "margin": 0.04}]
    middle = breakdowns.accuracy_at(points, 0.5)
    assert middle["mean_accuracy"] == pytest.approx(0.7) and middle["head_first"] == pytest.approx(0.7)
    assert middle["margin"] == pytest.approx(0.03) and middle["measured_at"] is None
    low = breakdowns.accuracy_at(points, 0.1)
    assert low["mean_accuracy"] == 0.6 and low["measured_at"] == 0.3
    assert breakdowns.accuracy_at(points, 0.95)["measured_at"] == 0.7
    assert breakdowns.accuracy_at([{"alpha": 0.5, "mean_accuracy": 0.5}], 0.5)["margin"] is None


def test_the_protocol_result_holds_its_pair_breakdown(test_set):
    from cifarmix import evaluation

    x, y = test_set
    result = evaluation.evaluate(Oracle(), x, y, repeats=2, pairs=200, batch_size=100)
    table = result["pair_breakdown"]
    assert np.sum(table["count"]) == 400
    assert all(value in (0.0, None) for row in table["head_first"] for value in row)  # at 0.5 the Oracle's A is wrong
    assert all(value in (1.0, None) for row in table["head_second"] for value in row)
    assert breakdowns.hardest_pair(table)["mean_accuracy"] == 0.5


@pytest.mark.slow
def test_the_champion_needs_more_of_a_component_to_name_it(real_data):
    """On real mixes the first head gets better as A's weight grows and the second head worse (small: 3 x 120)."""
    from pathlib import Path

    from cifarmix import data, models

    path = Path(__file__).resolve().parent.parent / "artifacts" / "models" / "champion" / "model.keras"
    if not path.is_file():
        pytest.skip("no shipped champion")
    (_, _), (x_test, y_test) = data.load_cifar10()
    points = breakdowns.weight_sweep(models.load_model(path), x_test, y_test, alphas=[0.1, 0.5, 0.9], pairs=120)
    low, middle, high = points
    assert high["head_first"] > middle["head_first"] > low["head_first"] + 0.2
    assert low["head_second"] > middle["head_second"] > high["head_second"] + 0.2
    assert 0.0 < middle["margin"] < 0.08
    groups = mixing.split_groups(x_test, y_test)
    assert len(groups.a_y) == len(groups.b_y) == 5000
