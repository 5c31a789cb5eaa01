"""Faults and hostile input (issue 12): every failure path ends in one clear message and loses nothing.

Each table row is one case the fault test found; the README's "What the app promises under faults" lists them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cifarmix import architectures, catalog, checkpoints, jobs, paths, processes, runinfo, slots, training
from cifarmix.cli import main
from cifarmix.config import TrainConfig
from cifarmix.store import RunStore, StoreError, clean_player_name, clean_run_name


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


@pytest.fixture
def stranger():
    """A live process that is no training of ours: (pid, start time)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "cifarmix", "train"])
    try:
        yield process.pid, processes.start_time(process.pid)
    finally:
        process.kill()
        process.wait()


def held_run(store: RunStore, pid: int, started: int | None, status: str = "running") -> int:
    """A run that the process ``pid`` trains (as the store records it)."""
    config = TrainConfig(arch="allconv", epochs=2).validate()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    store.update_run(run_id, pid=pid, process_started=started)
    store.set_status(run_id, status, "training")
    return run_id


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


# --- 3: two resumes of one run at the same moment -----------------------------------------------------------

CLAIMER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from cifarmix import processes
    from cifarmix.store import RunStore
    store = RunStore(sys.argv[1])
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    won = store.claim(int(sys.argv[3]), os.getpid(), processes.start_time(os.getpid()))
    print("won" if won else "lost", flush=True)
    time.sleep(3)  # the winner stays alive while the other decides
""")


def test_two_processes_claiming_one_run_at_the_same_moment_one_wins(store, tmp_path):
    for attempt in range(1):  # once here: test_store's six live claimers race on both databases
        run_id = held_run(store, 2**22 + 7, None, status="killed")  # a killed run: resumable by anyone
        go = tmp_path / f"go-{attempt}"
        claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(store.path), str(go), str(run_id)],
                                     stdout=subprocess.PIPE, text=True, cwd=paths.project_root())
                    for _ in range(2)]
        time.sleep(4)  # both have imported the store and wait for the signal
        go.touch()
        results = sorted(process.communicate(timeout=60)[0].strip() for process in claimers)
        assert results == ["lost", "won"]
        winner = store.get_run(run_id)
        assert winner["status"] == "running" and winner["pid"] in {process.pid for process in claimers}


def test_a_trainer_whose_run_another_live_process_holds_stops_without_touching_it(store, stranger, capsys):
    pid, started = stranger
    run_id = held_run(store, pid, started)
    before = store.get_run(run_id)
    with pytest.raises(slots.RunBusy, match=f"in process {pid}; two processes must not train one run"):
        training.Trainer(store, run_id).run()  # what a second `train --resume` does after the first's check
    assert store.get_run(run_id) == before


def test_a_claim_takes_a_run_from_a_dead_process_and_keeps_its_own(store):
    run_id = held_run(store, 2**22 + 7, None)
    me = os.getpid(), processes.start_time(os.getpid())
    assert store.claim(run_id, *me) and store.claim(run_id, *me)
    assert (store.get_run(run_id)["pid"], store.get_run(run_id)["process_started"]) == me


# --- 10: one training limit for the app and the command line ------------------------------------------------


def test_the_cli_keeps_the_servers_training_limit(tiny_data, store, stranger, capsys, monkeypatch):
    monkeypatch.setenv(slots.MAX_ENV, "1")
    pid, started = stranger
    busy = held_run(store, pid, started)
    killed = held_run(store, 2**22 + 7, None, status="killed")
    code, err = cli(capsys, "train", "--preset", "smoke")
    assert code == 2 and f"already runs 1 training(s) (#{busy}) and allows 1 at once" in err
    assert [run["id"] for run in store.list_runs()] == [killed, busy]  # no new run
    code, err = cli(capsys, "train", "--resume", str(killed))
    assert code == 2 and "allows 1 at once" in err and store.get_run(killed)["status"] == "killed"


# --- 4 and 9: a damaged or missing resume state -------------------------------------------------------------


def stopped_run(store: RunStore, model_file: Path, epochs_done: int = 1) -> int:
    """A stopped run after ``epochs_done`` epochs, its folder as training leaves it (without training)."""
    config = TrainConfig(arch="random", epochs=4, batch_size=8, steps_per_epoch=1, val_pairs=10).validate()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    folder = paths.run_dir(run_id)
    for epoch in range(1, epochs_done + 1):
        store.log_epoch(run_id, epoch, {"val_mean_accuracy": 0.2 + epoch / 100})
        (folder / checkpoints.last_checkpoint_name(epoch)).write_bytes(model_file.read_bytes())
        checkpoints.save_state(folder, dict(checkpoints.fresh_state(), epoch=epoch,
                                            last_model=checkpoints.last_checkpoint_name(epoch)))
    store.update_run(run_id, epochs_done=epochs_done)
    store.set_status(run_id, "stopped", "stopped on request")
    return run_id


DAMAGED_STATES = [
    ("state", "{}", "has no epoch count"),
    ("state", '{"epoch": "2", "last_model": "last-e1.keras"}', "has epoch = '2', not a whole number of epochs"),
    ("state", '{"epoch": 1, "train_seconds": [1]}', "has train_seconds = [1], not a number of seconds"),
    ("state", '{"epoch": 1, "last_model": "../../elsewhere.keras"}', "not a checkpoint file name"),
    ("state", '{"epoch": 1, "last_model": "last-e1.keras"', "is not valid JSON (Expecting"),
    ("state", "", "is not valid JSON (it is empty)"),
    ("state", '{"epoch": 1, "last_model": "last-e9.keras"}', "names the checkpoint last-e9.keras of epoch 1, "
                                                            "which is missing"),
    ("checkpoint", None, "is damaged: not a complete .keras archive"),
]


@pytest.mark.parametrize("what, text, problem", DAMAGED_STATES)
def test_a_damaged_resume_state_is_named_with_its_problem_and_the_run_is_left_as_it_was(
        what, text, problem, store, untrained_model_file, capsys):
    run_id = stopped_run(store, untrained_model_file)
    folder = paths.run_dir(run_id)
    damaged = folder / checkpoints.STATE_FILE if what == "state" else folder / "last-e1.keras"
    if text is None:
        damaged.write_bytes(damaged.read_bytes()[:5000])  # cut short
    else:
        damaged.write_text(text)
    before = store.get_run(run_id)
    code, err = cli(capsys, "train", "--resume", str(run_id))
    assert code == 2 and str(damaged) in err and problem in err and "Traceback" not in err
    assert "no older checkpoint to resume from" in err
    assert store.get_run(run_id) == before


def test_a_damaged_last_pair_resumes_from_the_one_before(store, untrained_model_file):
    run_id = stopped_run(store, untrained_model_file, epochs_done=2)
    folder = paths.run_dir(run_id)
    assert sorted(p.name for p in folder.glob("last-e*.keras")) == ["last-e1.keras", "last-e2.keras"]
    last = folder / "last-e2.keras"
    last.write_bytes(last.read_bytes()[:5000])
    state, note = training.Trainer(store, run_id).resume_state()
    assert state["epoch"] == 1 and str(last) in note and "resuming from epoch 1 (last-e1.keras)" in note


def test_a_run_whose_last_checkpoint_was_cut_short_trains_on_from_the_one_before(tiny_data, store):
    config = TrainConfig(arch="random", epochs=2, batch_size=8, steps_per_epoch=2, val_pairs=10).validate()
    run = training.train(config, store)
    last = paths.run_dir(run["id"]) / "last-e2.keras"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    store.update_run(run["id"], config=dict(config.to_dict(), epochs=3))
    store.set_status(run["id"], "killed", "test")
    resumed = training.resume(run["id"], store)
    assert resumed["status"] == "finished" and resumed["epochs_done"] == 3
    assert store.epoch_metrics(run["id"])["epoch"].tolist() == [1, 2, 3]  # epoch 2 redone, nothing lost


def test_save_state_keeps_the_previous_pair_until_a_newer_one_replaces_it(tmp_path):
    for epoch in (1, 2, 3):
        (tmp_path / f"last-e{epoch}.keras").write_bytes(b"weights")
        checkpoints.save_state(tmp_path, dict(checkpoints.fresh_state(), epoch=epoch,
                                              last_model=f"last-e{epoch}.keras"))
        assert sorted(p.name for p in tmp_path.glob("*.keras")) == [f"last-e{e}.keras" for e in (epoch - 1, epoch)
                                                                   if e]
    assert json.loads((tmp_path / checkpoints.PREVIOUS_STATE_FILE).read_text())["epoch"] == 2


def test_a_run_whose_folder_was_deleted_is_not_started_over(store, untrained_model_file, capsys, monkeypatch):
    import shutil

    run_id = stopped_run(store, untrained_model_file, epochs_done=2)
    shutil.rmtree(paths.run_dir(run_id))
    metrics = store.epoch_metrics(run_id).to_dict()
    code, err = cli(capsys, "train", "--resume", str(run_id))
    assert code == 2 and f"run {run_id} cannot resume: the run has 2 epochs recorded, but its folder" in err
    assert "no state.json" in err and "overwrite the recorded epochs, so it is refused" in err
    monkeypatch.setattr(jobs, "_spawn", lambda *args: pytest.fail("a process was started"))
    with pytest.raises(ValueError, match="overwrite the recorded epochs"):
        jobs.resume(run_id, store)  # the Train page's Resume says it too, before starting a process
    assert store.epoch_metrics(run_id).to_dict() == metrics and store.get_run(run_id)["status"] == "stopped"


# --- 7: "Kill the process now" signals only the run's own training ------------------------------------------


def test_kill_refuses_to_signal_a_process_recorded_without_its_start_time(store, stranger):
    pid, _ = stranger
    run_id = held_run(store, pid, None)  # an old record; the pid now names a "cifarmix" process
    with pytest.raises(ValueError, match="without its start time.*will not signal it"):
        jobs.kill(run_id, store)
    assert processes.is_alive(pid, processes.start_time(pid))


def test_kill_leaves_a_process_whose_start_time_is_not_the_recorded_one(store, stranger):
    pid, started = stranger
    run_id = held_run(store, pid, started + 1)
    assert jobs.kill(run_id, store) is False and processes.is_alive(pid, started)


# --- 2: an unusable home or store file ----------------------------------------------------------------------


def test_many_threads_checking_a_new_home_at_once_all_find_it_writable(tmp_path, monkeypatch):
    """A classroom's first students arrive together: every script thread of one server process checks the new
    home at once (each with a write probe of its own; one shared probe name made a thread's unlink fail and the
    page say the folder was not writable)."""
    import threading

    for attempt in range(30):
        root = tmp_path / f"home-{attempt}"
        monkeypatch.setenv(paths.HOME_ENV, str(root))
        paths._WRITABLE.discard(root)
        start, errors = threading.Barrier(12), []

        def check():
            start.wait()
            try:
                paths.home()
            except paths.HomeError as error:
                errors.append(str(error))

        threads = [threading.Thread(target=check) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and list(root.iterdir()) == []  # no probe left behind


@pytest.mark.parametrize("damage, said", [("a folder", "unable to open"), ("garbage", "not a database")])
def test_an_unusable_store_file_is_named_not_a_traceback(damage, said, cifarmix_home, capsys):
    cifarmix_home.mkdir(parents=True)
    if damage == "a folder":
        (cifarmix_home / "cifarmix.sqlite3").mkdir()
    else:
        (cifarmix_home / "cifarmix.sqlite3").write_bytes(b"this is no database " * 100)
    with pytest.raises(StoreError, match="cannot use its run store .*cifarmix.sqlite3.*CIFARMIX_HOME="):
        RunStore()
    code, err = cli(capsys, "runs")
    assert code == 2 and "cannot use its run store" in err and said in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["home", "store"])
def test_the_app_shows_one_message_for_an_unusable_home_or_store(damage, cifarmix_home, monkeypatch, no_models,
                                                                 fresh_caches):
    from streamlit.testing.v1 import AppTest

    if damage == "home":
        monkeypatch.setenv(paths.HOME_ENV, "/proc/no-such-folder/cifarmix")
    else:
        (cifarmix_home / "cifarmix.sqlite3").mkdir(parents=True)
    from pages import ui

    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception
    [error] = at.error
    assert "cannot keep its files" in error.value
    named = ui.escape_markdown("/proc/no-such-folder/cifarmix" if damage == "home" else "its run store")
    assert named in error.value


# --- 11 and 1: plain, bounded text ------------------------------------------------------------------------------

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # one emoji made of three joined by zero-width joiners
RAINBOW_FLAG = "\U0001F3F3\ufe0f\u200d\U0001F308"


@pytest.mark.parametrize("typed", ["\u3164\u3164\u3164", "\u2800", "\u200b\u200c\u200d", "\u115f\u1160",
                                   "\ufe0f\u034f", " \u0301 ", "\u2060\ufeff\u00ad", "\U000e0041\U000e0042"])
def test_a_name_of_invisible_characters_is_refused_as_empty(typed):
    with pytest.raises(ValueError, match="at least one visible character"):
        clean_player_name(typed)
    assert clean_run_name(typed) is None


@pytest.mark.parametrize("typed, kept", [(FAMILY, FAMILY), (RAINBOW_FLAG, RAINBOW_FLAG), ("Ana\u200dBel", "AnaBel"),
                                         ("\u3164Bo\u3164", "Bo"), ("Zoë", "Zoë")])
def test_names_keep_combined_emoji_and_lose_only_what_draws_nothing(typed, kept):
    assert clean_player_name(typed) == kept


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, "abc"])
def test_an_accuracy_that_is_not_a_number_reads_as_a_dash(value):
    assert runinfo.percent_text(value) == "-"
    run = {"id": 1, "status": "failed", "arch": "allconv", "best_val_mean": value}
    assert runinfo.best_val_text(run) == "-" and "%" not in runinfo.run_label(run)


def test_a_nan_epoch_accuracy_and_a_nan_test_result_read_as_a_dash(store):
    run_id = store.create_run("allconv", {}, {}, 0)
    store.log_epoch(run_id, 1, {"val_mean_accuracy": float("nan")})  # a diverged epoch (SQLite keeps NULL)
    last = store.epoch_metrics(run_id)["val_mean_accuracy"].iloc[-1]  # what the Train page shows
    assert runinfo.percent_text(last) == "-"
    result = {"mean_accuracy": float("nan"), "std": float("nan"), "repeats": 1, "pairs": 10}
    assert runinfo.evaluation_text(result).startswith("- ± - ·")


def test_a_huge_card_title_and_a_markdown_description_are_bounded_plain_text(tmp_path, untrained_model_file):
    folder = tmp_path / "models" / "loud"
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(untrained_model_file.read_bytes())
    description = "[click me](https://evil.example) ![](https://evil.example/pixel.png) " + "x" * 5000
    (folder / "card.json").write_text(json.dumps({"title": "T" * 100_000, "description": description}))
    [entry] = catalog.shipped(tmp_path / "models")
    assert len(entry.title) <= catalog.TITLE_LIMIT
    assert len(catalog.card_description(entry.card)) <= catalog.DESCRIPTION_LIMIT


def test_the_sidebar_shows_a_cards_description_as_plain_text_and_its_problem(tmp_path, untrained_model_file,
                                                                             monkeypatch, tiny_data, fresh_caches):
    from streamlit.testing.v1 import AppTest

    from pages import ui

    root = tmp_path / "models"
    for name, card in (("aaa", "[1, 2, 3]"),
                       ("bbb", json.dumps({"description": "[click me](https://evil.example) **loud**"}))):
        (root / name).mkdir(parents=True)
        (root / name / "model.keras").write_bytes(untrained_model_file.read_bytes())
        (root / name / "card.json").write_text(card)
    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(root))
    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception
    shown = [caption.value for caption in at.sidebar.caption]
    assert ui.escape_markdown("Its model card is not used: its card.json holds a list, not an object.") in shown
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.session_state["sidebar_model"] = "bbb"
    at.run()
    shown = [caption.value for caption in at.sidebar.caption]
    assert ui.escape_markdown("[click me](https://evil.example) **loud**") in shown
