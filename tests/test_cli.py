"""The command line: every command's output and its refusal of bad arguments (message, exit 2, no traceback)."""

from __future__ import annotations

import json

import pytest

from cifarmix.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_architectures_lists_names_counts_and_descriptions(capsys):
    code, out, _ = run(capsys, "architectures")
    assert code == 0
    for name in ("random", "allconv", "fmp", "googlenet", "resnet-cpu"):
        assert name in out
    assert "1,374,730" in out and "474,410" in out


def test_unknown_architecture_is_refused(tiny_data, capsys):
    code, _, err = run(capsys, "train", "--arch", "nonet", "--epochs", "1")
    assert code == 2 and "nonet" in err and "allconv" in err and "Traceback" not in err


def test_negative_epochs_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--arch", "allconv", "--epochs", "-3"])
    assert stop.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_a_file_that_is_not_a_model_is_refused(tiny_data, tmp_path, capsys):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a model")
    code, _, err = run(capsys, "evaluate", str(fake))
    assert code == 2 and "not a Keras model file" in err


def test_an_unknown_run_is_refused(tiny_data, capsys):
    code, _, err = run(capsys, "evaluate", "999")
    assert code == 2 and "no run 999" in err


def test_train_then_runs_then_evaluate_json(tiny_data, capsys):
    code, out, _ = run(capsys, "train", "--arch", "allconv", "--epochs", "1", "--batch-size", "16",
                       "--steps-per-epoch", "2", "--val-pairs", "20", "--name", "cli-test")
    assert code == 0 and "finished" in out
    code, out, _ = run(capsys, "runs")
    assert code == 0 and "cli-test" in out and "finished" in out
    code, out, _ = run(capsys, "evaluate", "1", "--repeats", "2", "--pairs", "50", "--json")
    result = json.loads(out)
    for key in ("mean_accuracy", "std", "head_first", "head_second", "f1_first", "f1_second"):
        assert key in result
    from cifarmix.store import RunStore

    assert RunStore().evaluations(run_id=1)[0]["result"]["pairs"] == 50


def test_untrained_random_baseline_evaluates_near_chance(tiny_data, capsys):
    code, out, _ = run(capsys, "evaluate", "--arch", "random", "--repeats", "2", "--pairs", "1000", "--json")
    assert code == 0 and 0.15 < json.loads(out)["mean_accuracy"] < 0.25


def test_mix_writes_a_png(tiny_data, tmp_path, capsys):
    target = tmp_path / "m.png"
    code, out, _ = run(capsys, "mix", "--out", str(target), "--alpha", "0.6")
    assert code == 0 and target.stat().st_size > 0 and "alpha 0.6" in out


def test_set_views_rewraps_a_shipped_model_and_keeps_it_intact_when_evaluation_fails(
        tiny_data, tmp_path, monkeypatch, capsys):
    import numpy as np

    from cifarmix import evaluation, models

    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(tmp_path / "shipped"))
    assert run(capsys, "train", "--arch", "allconv", "--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "1",
               "--val-pairs", "20")[0] == 0
    assert run(capsys, "export", "1", "--name", "tiny", "--views", "none", "--repeats", "2", "--pairs", "100")[0] == 0
    folder = tmp_path / "shipped" / "tiny"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    def broken(*args, **kwargs):
        raise ValueError("evaluation broke")

    evaluate = evaluation.evaluate
    monkeypatch.setattr(evaluation, "evaluate", broken)
    code, _, err = run(capsys, "set-views", "tiny", "flip-diagonal", "--repeats", "2", "--pairs", "100")
    assert code == 2 and "evaluation broke" in err
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before, "model and card untouched"
    monkeypatch.setattr(evaluation, "evaluate", evaluate)  # (undo() would also drop tiny_data's CIFARMIX_DATA)

    code, out, err = run(capsys, "set-views", "tiny", "flip-diagonal", "--repeats", "2", "--pairs", "100")
    assert code == 0, err
    assert "test-time views none -> flip-diagonal" in out
    card = json.loads((folder / "card.json").read_text())
    assert card["test_time_views"]["count"] == 6 and card["flip_averaging"] is True
    assert card["history"][-1]["mean_accuracy_after"] == card["evaluation"]["mean_accuracy"]
    assert card["epochs"] == 1 and card["training_command"].startswith("python -m cifarmix train")
    assert sorted(path.name for path in folder.iterdir()) == ["card.json", "model.keras"]
    assert "| flip-diagonal (6) |" in (tmp_path / "shipped" / "README.md").read_text()
    model = models.load_model(folder / "model.keras")
    assert {"shift_1_1", "shift_m1_m1", "mirror", "mirror_1_1"} <= {layer.name for layer in model.layers}
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    assert models.predict(model, image)["first"].shape == (1, 5)
    code, _, err = run(capsys, "set-views", "nosuch", "flip")
    assert code == 2 and "no shipped model 'nosuch'" in err


def test_export_refuses_an_unknown_view_set(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["export", "1", "--name", "x", "--views", "sideways"])
    assert stop.value.code == 2 and "flip-diagonal" in capsys.readouterr().err


def test_mix_refuses_a_component_from_the_wrong_group(tiny_data, tmp_path, capsys):
    code, _, err = run(capsys, "mix", "--first", "5", "--out", str(tmp_path / "m.png"))
    assert code == 2 and "test image 5 is a dog, not of group A (airplane … deer)" in err
    code, _, err = run(capsys, "mix", "--second", "400", "--out", str(tmp_path / "m.png"))
    assert code == 2 and "test image 400 is outside the test set (0–399)" in err


def test_export_ships_a_flip_averaged_model_with_a_card(tiny_data, tmp_path, monkeypatch, capsys):
    import numpy as np

    from cifarmix import catalog, models
    from cifarmix.store import RunStore

    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(tmp_path / "shipped"))
    assert run(capsys, "train", "--arch", "allconv", "--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2",
               "--val-pairs", "20", "--precision", "mixed_bfloat16")[0] == 0
    code, out, err = run(capsys, "export", "1", "--name", "tiny-champ", "--data-copy", "tiny test tarball",
                         "--repeats", "2", "--pairs", "200")
    assert code == 0, err
    card = json.loads((tmp_path / "shipped" / "tiny-champ" / "card.json").read_text())
    for key in ("architecture", "parameters", "training_command", "epochs", "pairs_seen", "train_wall_minutes",
                "machine", "data_copy", "evaluation"):
        assert key in card, key
    assert card["evaluation"]["repeats"] == 2 and card["flip_averaging"] is True
    assert sum(map(sum, card["evaluation"]["pair_breakdown"]["count"])) == 400  # which pairs are hardest, kept
    assert card["pairs_seen"] == 2 * 16  # one epoch of 2 batches of 16 pairs
    assert card["test_time_views"] == {"name": "flip", "count": 2, "shifts": [[0, 0]]}
    assert set(card["milestones"]) == {"0.7", "0.772"}
    assert card["machine"].startswith(RunStore().get_run(1)["device"])
    table = (tmp_path / "shipped" / "README.md").read_text()
    assert "| `tiny-champ` | allconv | 1,374,730 |" in table and card["training_command"] in table
    assert "| flip (2) |" in table
    times = table.split("## Accuracy against training time")[1]
    [row] = [line for line in times.splitlines() if line.startswith("| `tiny-champ` |")]
    assert row.count("|") == 6 and f"| {card['train_wall_minutes']} |" in row
    entry = catalog.resolve("tiny-champ", RunStore())
    model = entry.load()
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    plain, mirrored = models.predict(model, image), models.predict(model, image[:, :, ::-1])
    assert np.allclose(plain["first"], mirrored["first"], atol=1e-5), "flip averaging makes answers mirror-invariant"
    assert model.layers[-1].dtype_policy.name == "float32"


def test_export_refuses_a_bad_name(tiny_data, capsys):
    code, _, err = run(capsys, "export", "1", "--name", "../evil")
    assert code == 2 and "model names" in err


def test_model_card_command_and_milestones_come_from_the_run():
    import pandas as pd

    from cifarmix import export
    from cifarmix.config import preset

    config = preset("allconv", time_budget_minutes=60)
    assert export.training_command(config, "allconv") == "python -m cifarmix train --preset allconv --time-budget 60"
    assert export.training_command(preset("champion"), "champion") == "python -m cifarmix train --preset champion"
    epochs = pd.DataFrame({"epoch": [1, 2, 3], "val_mean_accuracy": [0.5, 0.71, 0.8],
                           "train_seconds": [60.0, 120.0, 180.0]})
    assert export.milestones(epochs) == {"0.7": {"epoch": 2, "minutes": 2.0}, "0.772": {"epoch": 3, "minutes": 3.0}}
    assert export.milestones(epochs, (0.9,)) == {"0.9": None}
    assert export.milestones(pd.DataFrame({"epoch": []})) == {"0.7": None, "0.772": None}


def test_train_refuses_a_name_too_long_without_creating_a_run(tiny_data, capsys):
    code, _, err = run(capsys, "train", "--preset", "smoke", "--name", "n" * 41)
    assert code == 2 and "at most 40" in err and "Traceback" not in err
    from cifarmix.store import RunStore

    assert RunStore().list_runs() == []


@pytest.mark.parametrize("command", [["train", "--preset", "smoke"], ["evaluate", "--arch", "random"], ["mix"]])
def test_a_mixing_weight_outside_the_apps_range_is_refused(capsys, command):
    with pytest.raises(SystemExit) as stop:
        main([*command, "--alpha", "0.99"])
    assert stop.value.code == 2 and "mixing weight alpha must lie in 0.05..0.95" in capsys.readouterr().err


@pytest.mark.parametrize("options, reason", [("{widths", "--options must be a JSON object ("),
                                             ("[64, 128]", "--options must be a JSON object like {}")])
def test_train_refuses_options_that_are_not_a_json_object(capsys, options, reason):
    code, _, err = run(capsys, "train", "--preset", "smoke", "--options", options)
    assert code == 2 and reason in err and "Traceback" not in err


def test_evaluate_alphas_prints_each_heads_accuracy_per_weight_and_stores_it(tiny_data, untrained_model_file,
                                                                             capsys):
    from cifarmix import breakdowns, cli
    from cifarmix.store import RunStore

    assert cli.SWEEP_DEFAULTS == {"repeats": breakdowns.SWEEP_REPEATS, "pairs": breakdowns.SWEEP_PAIRS}
    model = str(untrained_model_file)
    code, out, err = run(capsys, "evaluate", model, "--alphas", "0.1,0.5,0.9", "--pairs", "60", "--json")
    assert code == 0, err
    points = json.loads(out)
    assert [point["alpha"] for point in points] == [0.1, 0.5, 0.9]
    assert all(set(point) == {"alpha", "head_first", "head_second", "mean_accuracy"} for point in points)
    assert all(point["mean_accuracy"] == pytest.approx((point["head_first"] + point["head_second"]) / 2)
               for point in points)
    assert "margin of error" in err and "stored in the run store" in err
    [stored] = RunStore().sweeps(model_ref=model)
    assert stored["settings"] == {"alphas": [0.1, 0.5, 0.9], "repeats": 1, "pairs": 60, "seed": 2024}

    code, again, err = run(capsys, "evaluate", model, "--alphas", "0.1,0.5,0.9", "--pairs", "60", "--json")
    assert code == 0 and json.loads(again) == points and "read from the run store" in err  # not measured again
    code, out, _ = run(capsys, "evaluate", model, "--alphas", "0.3,0.7", "--pairs", "60")
    assert code == 0 and "weight of A" in out and "first head" in out and "± 95%" in out
    assert len(RunStore().sweeps(model_ref=model)) == 2


@pytest.mark.parametrize("argv, message", [
    (["--alphas", "0.5,1.5"], "must lie in 0.05..0.95"),
    (["--alphas", ","], "separated by commas"),
    (["--alphas", "0.5", "--alpha", "0.3"], "not both"),
])
def test_evaluate_alphas_refuses_bad_weights(tiny_data, untrained_model_file, capsys, argv, message):
    try:
        code = main(["evaluate", str(untrained_model_file), *argv])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
