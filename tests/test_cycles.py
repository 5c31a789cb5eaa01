"""A recipe as training cycles: each cycle a run that starts from the previous cycle's model (a warm restart)."""

from __future__ import annotations

import numpy as np
import pytest

from cifarmix import cli, cycles, models
from cifarmix.config import TrainConfig
from cifarmix.store import RunStore

TINY_CYCLES = [dict(epochs=1), dict(epochs=1, lr=5e-4, init_from=cycles.PREVIOUS),
               dict(epochs=1, lr=2e-4, init_from=cycles.PREVIOUS)]


@pytest.fixture
def cycled_smoke(monkeypatch):
    """The smoke preset as three one-epoch cycles."""
    monkeypatch.setitem(cycles.CYCLES, "smoke", TINY_CYCLES)
    return "smoke"


def test_one_command_trains_every_cycle_each_from_the_one_before(tiny_data, cycled_smoke, capsys):
    assert cli.main(["train", "--preset", "smoke"]) == 0
    runs = sorted(RunStore().list_runs(), key=lambda run: run["id"])
    assert [run["config"]["cycle"] for run in runs] == [1, 2, 3]
    assert [run["config"]["init_from"] for run in runs] == [None, f"run:{runs[0]['id']}", f"run:{runs[1]['id']}"]
    assert [run["config"]["lr"] for run in runs] == [1e-3, 5e-4, 2e-4]
    assert all(run["status"] == "finished" for run in runs)
    assert [run["name"] for run in runs] == ["smoke · cycle 1", "smoke · cycle 2", "smoke · cycle 3"]


def test_init_from_starts_the_cycles_after_the_first_from_a_given_model(tiny_data, cycled_smoke,
                                                                         untrained_model_file, monkeypatch):
    monkeypatch.setitem(cycles.CYCLES, "smoke", [dict(epochs=1, arch="random"),
                                                 dict(epochs=1, arch="random", init_from=cycles.PREVIOUS)])
    assert cli.main(["train", "--preset", "smoke", "--init-from", str(untrained_model_file)]) == 0
    (run,) = RunStore().list_runs()
    assert run["config"]["cycle"] == 2 and run["config"]["init_from"] == str(untrained_model_file)


def test_a_resumed_cycle_is_followed_by_the_remaining_cycles(tiny_data, cycled_smoke):
    store = RunStore()
    first = cycles.cycle_config("smoke", 1).validate()
    run_id = store.create_run(first.arch, first.options, first.to_dict(), first.seed, name="interrupted")
    assert cli.main(["train", "--resume", str(run_id)]) == 0  # e.g. killed before it trained: it resumes
    runs = sorted(store.list_runs(), key=lambda run: run["id"])
    assert [run["config"]["cycle"] for run in runs] == [1, 2, 3]
    assert runs[1]["config"]["init_from"] == f"run:{run_id}"
    trained = models.load_model(runs[0]["model_path"]).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(trained, models.load_model(runs[2]["model_path"]).get_weights()))


def test_a_bad_setting_is_refused_before_the_first_cycle_runs(tiny_data, cycled_smoke, capsys):
    assert cli.main(["train", "--preset", "smoke", "--optimizer", "nope"]) == 2
    assert "optimizer" in capsys.readouterr().err and RunStore().list_runs() == []


def test_the_champion_cycles_fit_a_sitting_and_warm_restart():
    configs = [cycles.cycle_config("champion", n, init_from="champion") for n in range(1, 7)]
    assert configs[0].init_from is None and all(c.init_from == "champion" for c in configs[1:])
    assert all(c.time_budget_minutes <= 180 for c in configs) and all(c.validate() for c in configs)
    assert cycles.next_cycle(configs[-1]) is None and cycles.next_cycle(TrainConfig()) is None
    with pytest.raises(ValueError, match="give it with --init-from"):
        cycles.cycle_config("champion", 2)


def test_an_exported_cycle_carries_its_whole_lineage(tiny_data, tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(tmp_path / "shipped"))
    tiny = ["--arch", "allconv", "--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--val-pairs", "20"]
    protocol = ["--repeats", "1", "--pairs", "100"]
    assert cli.main(["train", *tiny]) == 0
    assert cli.main(["export", "1", "--name", "champ", *protocol]) == 0  # a card from before lineages: one cycle
    assert cli.main(["train", *tiny, "--init-from", "champ"]) == 0
    assert cli.main(["export", "2", "--name", "champ", *protocol]) == 0  # replaces the model it started from
    card = json.loads((tmp_path / "shipped" / "champ" / "card.json").read_text())
    first, second = card["lineage"]
    assert (first["cycle"], second["cycle"]) == (1, 2) and second["init_from"] == "champ"
    assert second["run_id"] == 2 and first["command"].startswith("python -m cifarmix train")
    assert card["lineage_pairs"] == first["pairs"] + second["pairs"] == 64
    assert card["lineage_minutes"] == pytest.approx(first["minutes"] + second["minutes"], abs=0.11)
    assert set(card["lineage_milestones"]) == {"0.7", "0.772", "0.8", "0.8275", "0.8487"}


def test_lineage_milestones_count_the_minutes_of_the_cycles_before():
    from cifarmix.export import lineage_summary

    lineage = [{"minutes": 88.3, "pairs": 10, "milestones": {"0.7": {"minutes": 24.0, "epoch": 10}}},
               {"minutes": 100.0, "pairs": 5, "milestones": {"0.7": {"minutes": 1.0, "epoch": 1},
                                                              "0.8": {"minutes": 50.0, "epoch": 20}}}]
    summary = lineage_summary(lineage)
    assert summary["lineage_milestones"]["0.7"] == {"minutes": 24.0, "cycle": 1, "epoch": 10}
    assert summary["lineage_milestones"]["0.8"] == {"minutes": 138.3, "cycle": 2, "epoch": 20}
    assert summary["lineage_milestones"]["0.8487"] is None and summary["lineage_pairs"] == 15
