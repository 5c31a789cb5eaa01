"""Faults and hostile input (issue 12): every failure path ends in one clear message and loses nothing.

Each table row is one case the fault test found; the README's "What the app promises under faults" lists them.
"""

from __future__ import annotations


import pytest

from cifarmix import architectures, jobs
from cifarmix.cli import main
from cifarmix.config import TrainConfig
from cifarmix.store import RunStore


@pytest.fixture
def store():
    return RunStore()


@pytest.fixture
def cpu_only(monkeypatch):
    """The budgets of a machine without a GPU and with 16 GB of memory, wherever the tests run."""
    monkeypatch.setattr(architectures, "has_gpu", lambda: False)
    monkeypatch.setattr(architectures, "memory_budget_bytes", lambda: 8 * 2**30)


def cli(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr of one command, argparse's own refusals (SystemExit) included."""
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


# --- 5 and 6: absurd numbers and options are refused before any work ------------------------------------------

REFUSED_COMMANDS = [
    (["train", "--preset", "smoke", "--epochs", "100000000000000000000"],
     "--epochs: expected a positive integer in 1..10,000"),
    (["train", "--preset", "smoke", "--seed", "1e23"], "--seed: expected a whole number in 0..2,147,483,647"),
    (["train", "--preset", "smoke", "--seed", "100000000000000000000000"], "in 0..2,147,483,647"),
    (["train", "--resume", "1e23"], "--resume: expected a whole number in 1..999,999,999,999,999,999"),
    (["train", "--resume", "100000000000000000000000"], "in 1..999,999,999,999,999,999"),
    (["train", "--preset", "smoke", "--batch-size", "100000"], "in 1..2,048"),
    (["train", "--preset", "smoke", "--time-budget", "inf"], "--time-budget: expected a number in 0.001..100000"),
    (["train", "--preset", "smoke", "--options", "[1,2]"], "--options must be a JSON object like {}"),
    (["train", "--preset", "smoke", "--options", '"str"'], "--options must be a JSON object like {}"),
    (["train", "--arch", "resnet-cpu", "--options", '{"widths": [1000000, 1000000, 1000000]}'],
     "widths must be a list of 3 integers in 8..1024"),
    (["train", "--arch", "resnet-cpu", "--options", '{"activation": 5}'], "activation must be one of 'relu'"),
    (["train", "--arch", "resnet-cpu", "--options", '{"dropout": 1.5}'], "dropout must be a number in 0..1"),
    (["train", "--arch", "resnet-cpu", "--options", '{"widths": [1024, 1024, 1024], "head_width": 1024}'],
     "at most 50,000,000 on a CPU"),
    (["train", "--arch", "inception-naive"], "232,465,282 parameters; cifarmix trains at most 50,000,000 on a CPU"),
    (["evaluate", "1", "--pairs", "100000000000"], "--pairs: expected a positive integer in 1..100,000"),
    (["evaluate", "--arch", "random", "--repeats", "1000000"], "in 1..100"),
    (["mix", "--first", "1" + "0" * 30], "--first: expected a whole number in 0..9,999"),
]


@pytest.mark.parametrize("argv, message", REFUSED_COMMANDS, ids=[" ".join(a)[:60] for a, _ in REFUSED_COMMANDS])
def test_an_absurd_command_is_refused_with_the_accepted_range_before_any_work(argv, message, cpu_only, capsys):
    code, err = cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert RunStore().list_runs() == []  # no run created, none left failed


REFUSED_CONFIGS = [
    ({"epochs": 10**20}, "epochs must be a positive integer in 1..10,000"),
    ({"seed": 10**23}, "seed must be a whole number in 0..2,147,483,647"),
    ({"batch_size": "64"}, "batch size must be a positive integer"),
    ({"val_pairs": 10**9}, "validation pairs"),
    ({"lr": "0.1"}, "learning rate must be a finite number"),
    ({"time_budget_minutes": float("inf")}, "time budget"),
    ({"arch": "resnet-cpu", "options": [1, 2]}, "must be an object"),
    ({"arch": "resnet-cpu", "options": {"widths": [64, 128]}}, "widths must be a list of 3 integers"),
    ({"arch": "resnet-cpu", "options": {"head_width": True}}, "head_width must be an integer in 8..1024"),
    ({"arch": "resnet-cpu", "options": {"pooling": "median"}}, "pooling must be one of 'max', 'avg'"),
    ({"arch": "fmp", "options": {"overlapping": "yes"}}, "overlapping must be true or false"),
    ({"arch": "googlenet", "options": {"hidden": 10**7}}, "hidden must be an integer in 1..4096"),
    ({"arch": "allconv", "options": {"head_l2": float("nan")}}, "head_l2 must be a number in 0..1"),
    ({"arch": "resnet-cpu", "options": {"widths": [512, 1024, 1024], "head_width": 512}, "batch_size": 2048},
     "per training step"),  # the memory budget: activations of a large batch
]


@pytest.mark.parametrize("values, message", REFUSED_CONFIGS)
def test_the_form_and_the_cli_refuse_the_same_configs_before_a_run_exists(values, message, cpu_only, store,
                                                                          monkeypatch):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig.from_dict(values).validate()
    monkeypatch.setattr(jobs, "_spawn", lambda *args: pytest.fail("a process was started"))
    with pytest.raises(ValueError):
        jobs.start(TrainConfig.from_dict(values), store)  # the Train page's way
    assert store.list_runs() == []


@pytest.mark.parametrize("name, options", [
    ("resnet-cpu", {}), ("resnet-cpu", {"widths": [8, 16, 24], "head_width": 8}),
    ("googlenet", {"three_by_three": True, "aux_heads": True, "hidden": 17}), ("allconv", {}), ("fmp", {}),
])
def test_parameters_are_counted_from_the_shapes_exactly(name, options):
    assert architectures.estimated_params(name, **options) == architectures.param_count(name, **options)
