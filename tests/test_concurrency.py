"""The run store under real concurrency: game scores written by several processes while a real training process
(``python -m cifarmix train``) writes its metrics. Nothing may be lost and nothing may fail."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from cifarmix.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
WRITERS = 3
PAUSE_S = 0.02  # between games: steady contention without starving the trainer of the 2 CPU cores
TRAIN_COMMAND = [sys.executable, "-m", "cifarmix", "train", "--arch", "allconv", "--epochs", "2", "--batch-size", "16",
                 "--steps-per-epoch", "4", "--train-size", "200", "--val-pairs", "40"]
START_TIMEOUT_S = 60
TRAIN_TIMEOUT_S = 120


def write_scores(player: str, stop_file: str, results) -> None:
    """A game server process: record games (and read the leaderboard) until told to stop; report the count."""
    try:
        store = RunStore()
        written = 0
        while not os.path.exists(stop_file) or written < 5:
            store.add_score(player, score=written, rounds=10, opponent="run:1", model_score=3,
                            details={"writer": player, "game": written})
            store.leaderboard(limit=5)
            written += 1
            time.sleep(PAUSE_S)
        results.put((player, written, None))
    except Exception as error:  # reported to the test, which fails with it
        results.put((player, None, f"{type(error).__name__}: {error}"))


def wait_for_running(store: RunStore, trainer: subprocess.Popen) -> int:
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        runs = store.list_runs()
        if runs and runs[0]["status"] == "running":
            return runs[0]["id"]
        assert trainer.poll() is None, trainer.communicate()[0]
        time.sleep(0.2)
    raise AssertionError("the training process did not start running in time")


def test_game_scores_and_a_real_training_run_write_the_store_at_once_without_loss(tiny_data, tmp_path):
    store = RunStore()
    trainer = subprocess.Popen(TRAIN_COMMAND, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    stop_file = tmp_path / "stop"
    context = multiprocessing.get_context("spawn")  # not fork: this test process may hold TensorFlow's threads and locks
    results = context.Queue()
    writers = []
    try:
        run_id = wait_for_running(store, trainer)
        writers = [context.Process(target=write_scores, args=(f"player {i}", str(stop_file), results))
                   for i in range(WRITERS)]
        for writer in writers:
            writer.start()
        output, _ = trainer.communicate(timeout=TRAIN_TIMEOUT_S)
    finally:
        stop_file.touch()
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    reports = [results.get(timeout=60) for _ in writers]
    for writer in writers:
        writer.join(timeout=30)

    assert trainer.returncode == 0, output
    assert "Traceback" not in output and "locked" not in output, output
    assert all(writer.exitcode == 0 for writer in writers)
    assert [error for _, _, error in reports if error] == []

    # Every game of every writer is there, exactly once.
    games = store.leaderboard(limit=100_000)
    for player, written, _ in reports:
        mine = sorted(game["details"]["game"] for game in games if game["player"] == player)
        assert mine == list(range(written)), player
    assert len(games) == sum(written for _, written, _ in reports)
    print(f"games written during the training: {[written for _, written, _ in reports]}")

    # Every step, epoch and confusion matrix of the training is there too.
    run = store.get_run(run_id)
    assert (run["status"], run["epochs_done"], run["steps_done"]) == ("finished", 2, 8)
    assert store.step_metrics(run_id)["step"].tolist() == list(range(1, 9))
    epochs = store.epoch_metrics(run_id)
    assert epochs["epoch"].tolist() == [1, 2] and epochs["val_mean_accuracy"].notna().all()
    assert store.confusion_epochs(run_id) == [1, 2]
    for head in ("first", "second"):
        assert store.confusion(run_id, epoch=2, head=head).sum() == 40
