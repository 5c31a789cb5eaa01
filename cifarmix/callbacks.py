"""Keras callbacks of a training run: validation with confusion matrices, checkpoints, the run's record.

The callbacks know nothing of the trainer or the run store: they write through a :class:`Recorder`, the few
things a run's record takes (the Trainer's ``training.RunRecord`` writes them to the store and the run folder).

Order matters (see :func:`standard`): :class:`ValidationMetrics` adds ``val_*`` figures to the epoch logs first,
so the callbacks that follow all see them; :class:`Checkpoints` comes last, so an epoch counts as done only once
its metrics, its learning-rate cut and its schedule counters are all recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import keras
import numpy as np
from sklearn.metrics import confusion_matrix

from cifarmix import mixing, models
from cifarmix.checkpoints import BEST_MODEL, last_checkpoint_name
from cifarmix.config import TrainConfig
from cifarmix.heads import HEADS

FLUSH_SECONDS = 2.0


class Recorder(Protocol):
    """What the callbacks need of the run they train: where its files go, and what they record."""

    folder: Path  # the run's folder: best.keras, last-eN.keras and state.json go here

    def record_steps(self, rows: list[tuple]) -> None:
        """Per-step losses: rows of (step, epoch, loss, first head's loss, second head's loss)."""

    def record_progress(self, steps_done: int, train_seconds: float) -> None:
        """How far the run is: steps done, and seconds of training over all its sessions."""

    def record_epoch(self, epoch: int, metrics: dict) -> None:
        """An epoch's metrics (1-based ``epoch``)."""

    def record_confusion(self, epoch: int, head: str, matrix: np.ndarray) -> None:
        """A head's 5 x 5 validation confusion matrix at the end of ``epoch`` (1-based)."""

    def save_state(self, state: dict) -> None:
        """Keep the resume state (after the checkpoint it names) and the run's best, epochs done and time."""

    def stop_wanted(self, extra_seconds: float = 0.0) -> bool:
        """A Stop was requested, or the time budget is spent counting ``extra_seconds`` of the current epoch."""


class ValidationMetrics(keras.callbacks.Callback):
    """Scores the fixed validation pairs each epoch: per-head accuracy, mean, loss and confusion matrices."""

    def __init__(self, validation: mixing.FixedPairs, recorder: Recorder):
        super().__init__()
        self.validation = validation
        self.labels = validation.labels()
        self.recorder = recorder

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        outputs = self.model.predict(self.validation, verbose=0)
        losses = []
        for head in HEADS:
            probabilities = np.asarray(outputs[head], dtype=np.float64)
            truth = self.labels[head]
            predicted = probabilities.argmax(axis=1)
            logs[f"val_{head}_accuracy"] = float((predicted == truth).mean())
            losses.append(float(-np.log(np.clip(probabilities[np.arange(len(truth)), truth], 1e-7, 1)).mean()))
            logs[f"val_{head}_loss"] = losses[-1]
            matrix = confusion_matrix(truth, predicted, labels=range(5))
            self.recorder.record_confusion(epoch + 1, head, matrix)
        logs["val_loss"] = float(sum(losses))
        logs["val_mean_accuracy"] = (logs["val_first_accuracy"] + logs["val_second_accuracy"]) / 2


class Checkpoints(keras.callbacks.Callback):
    """Saves ``best.keras`` when the mean validation accuracy improves and the epoch's checkpoint + state every epoch.

    An epoch cut short (a Stop, the time budget) is not a completed epoch: its weights may still become
    ``best.keras`` (they were validated), but the last checkpoint and the epoch count stay at the last whole epoch,
    so a resume redoes the cut epoch with the pairs and learning rates it was meant to have. Its time still
    counts in ``train_seconds``: it was spent.

    A process killed after writing ``best.keras`` and before the state leaves ``best.keras`` with weights that
    scored better than the best the state records; the record errs low, never high.
    """

    def __init__(self, recorder: Recorder, state: dict, steps_per_epoch: int):
        super().__init__()
        self.recorder = recorder
        self.state = state
        self.steps_per_epoch = steps_per_epoch
        self.epoch_started = time.time()
        self.batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.time()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        folder = self.recorder.folder
        score = logs.get("val_mean_accuracy")
        if score is not None and (self.state["best"] is None or score > self.state["best"]):
            # best_steps: the batches the best weights were trained on (a cut epoch counts only its own)
            self.state.update(best=float(score), best_epoch=epoch + 1,
                              best_steps=epoch * self.steps_per_epoch + self.batches)
            models.save_atomically(self.model, folder / BEST_MODEL)
        whole = self.batches >= self.steps_per_epoch
        counters = self.state.pop(PENDING, {})
        if whole:
            self.state.update(counters, epoch=epoch + 1, last_model=last_checkpoint_name(epoch + 1))
            models.save_atomically(self.model, folder / self.state["last_model"])
        # the epoch's time, its checkpoint saves included
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + time.time() - self.epoch_started
        self.recorder.save_state(self.state)  # names the new checkpoint, then deletes the older ones


class RunRecorder(keras.callbacks.Callback):
    """Records per-step losses (batched every few seconds), per-epoch metrics and progress through its recorder,
    and stops training cleanly when a stop is wanted (requested, or the time budget spent)."""

    def __init__(self, recorder: Recorder, state: dict, steps_per_epoch: int):
        super().__init__()
        self.recorder = recorder
        self.state = state
        self.steps_per_epoch = steps_per_epoch
        self.pending: list[tuple] = []
        self.last_flush = time.time()
        self.epoch = 0
        self.step = 0
        self.epoch_started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.step = epoch * self.steps_per_epoch
        self.epoch_started = time.time()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        step = self.step = self.epoch * self.steps_per_epoch + batch + 1
        self.pending.append((step, self.epoch + 1, _float(logs.get("loss")), _float(logs.get("first_loss")),
                             _float(logs.get("second_loss"))))
        if time.time() - self.last_flush >= FLUSH_SECONDS:
            seconds = time.time() - self.epoch_started
            self.flush(step, self.state.get("train_seconds", 0.0) + seconds)
            if self.recorder.stop_wanted(extra_seconds=seconds):
                self.model.stop_training = True

    def flush(self, step: int, train_seconds: float) -> None:
        if self.pending:
            self.recorder.record_steps(self.pending)
            self.pending = []
        self.recorder.record_progress(step, train_seconds)
        self.last_flush = time.time()

    def on_epoch_end(self, epoch, logs=None):
        # Runs before Checkpoints: an epoch's metrics are stored before the store counts the epoch as done, so a
        # process killed in between loses nothing (the resume redoes that epoch and replaces its metrics).
        logs = dict(logs or {})
        seconds = time.time() - self.epoch_started
        train_seconds = self.state.get("train_seconds", 0.0) + seconds  # this epoch included (whole, or its cut part)
        self.flush(self.step, train_seconds)
        logs["seconds"] = seconds
        logs["steps"] = self.step - epoch * self.steps_per_epoch  # fewer than steps_per_epoch in a cut epoch
        logs["train_seconds"] = train_seconds
        self.recorder.record_epoch(epoch + 1, {k: _float(v) for k, v in logs.items()})
        if self.recorder.stop_wanted(extra_seconds=seconds):
            self.model.stop_training = True  # a Stop pressed during validation, or the budget spent: no new epoch


def _float(value) -> float | None:
    if value is None:
        return None
    return float(np.asarray(value))


def _current_lr(model) -> float:
    optimizer = model.optimizer
    learning_rate = optimizer.learning_rate
    return float(np.asarray(learning_rate))


class LearningRateLog(keras.callbacks.Callback):
    """Puts the learning rate the epoch ended with into its logs, before a plateau cut changes it."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = _current_lr(self.model)


PENDING = "pending_counters"  # this epoch's schedule counters, kept in the state only if the epoch was whole


class KeepsCounters:
    """Mixed into a Keras callback whose counters decide the schedule (epochs waited, best value so far): they are
    kept in the run's state each epoch and put back when a resumed run starts, so a resumed run waits and cuts
    exactly as an uninterrupted one would (Keras resets them at the start of every ``fit``)."""

    COUNTERS = ("wait", "best", "cooldown_counter", "best_epoch")

    def __init__(self, state: dict, key: str, **options):
        super().__init__(**options)
        self.run_state, self.state_key = state, key

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for name, value in self.run_state.get(self.state_key, {}).items():
            setattr(self, name, value)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)  # Checkpoints keeps them only if the epoch was whole (PENDING)
        self.run_state.setdefault(PENDING, {})[self.state_key] = {
            name: None if getattr(self, name) is None else float(np.asarray(getattr(self, name)))
            if name == "best" else int(getattr(self, name)) for name in self.COUNTERS if hasattr(self, name)}


class ResumableEarlyStopping(KeepsCounters, keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping whose patience count survives a resume."""


class ResumablePlateau(KeepsCounters, keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau whose wait and cooldown survive a resume."""


def standard(config: TrainConfig, recorder: Recorder, validation: mixing.FixedPairs, state: dict,
             steps_per_epoch: int) -> list:
    """The callbacks of every run, in the order they must run: the schedule's callbacks before Checkpoints, so
    the checkpoint and state of an epoch hold its learning-rate cut and their counters (a resume keeps both);
    RunRecorder before Checkpoints, so an epoch's metrics are stored before the epoch counts as done."""
    hooks = [
        ValidationMetrics(validation, recorder),
        LearningRateLog(),
        ResumableEarlyStopping(state, "early_stopping", monitor="val_mean_accuracy", mode="max",
                               patience=config.early_stop_patience, verbose=1),
    ]
    if config.schedule == "plateau":
        hooks.append(ResumablePlateau(state, "plateau", monitor="val_loss", factor=0.2,
                                      patience=config.plateau_patience, min_lr=1e-6, verbose=1))
    return hooks + [RunRecorder(recorder, state, steps_per_epoch), Checkpoints(recorder, state, steps_per_epoch)]
