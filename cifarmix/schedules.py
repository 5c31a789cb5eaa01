"""Learning-rate schedules measured in training time rather than steps.

A run with a time budget and the ``budget-cosine`` schedule warms up over its first steps, then follows a cosine
from the configured rate down to ``MIN_FRACTION`` of it over the *time budget* (``budget-linear``: a straight line
instead, the decay of the fast SGD recipes): it anneals fully by the end of the
budget however fast this machine turns out to be, or however busy it gets (a step schedule fixed in advance on a
busy or slower machine is cut by the budget while the rate is still high). Training time is counted as the budget
counts it (the run's ``train_seconds`` over every resume, validation included), so a resumed run goes on where
its rate left off.
"""

from __future__ import annotations

import math
import time

import keras

MIN_FRACTION = 0.01  # the rate at the end of the budget, as a fraction of the peak (the step cosine's alpha)


SHAPES = ("cosine", "linear")  # how the rate falls from its peak to the floor over the budget


def check_shape(shape: str) -> str:
    if shape not in SHAPES:
        raise ValueError(f"a budget schedule's shape is one of {SHAPES}; got {shape!r}")
    return shape


def budget_rate(peak: float, step: int, warmup_steps: int, spent: float, budget: float,
                shape: str = "cosine") -> float:
    """The rate after ``step`` optimizer steps and ``spent`` of ``budget`` seconds: a linear warm-up from a tenth
    of ``peak`` over ``warmup_steps``, then a cosine (or a straight line) over the budget's remaining fraction,
    floored at ``MIN_FRACTION * peak``."""
    check_shape(shape)
    if warmup_steps and step < warmup_steps:
        return peak * (0.1 + 0.9 * step / warmup_steps)
    fraction = min(1.0, max(0.0, spent / budget))
    low = MIN_FRACTION * peak
    left = 0.5 * (1 + math.cos(math.pi * fraction)) if shape == "cosine" else 1.0 - fraction
    return low + (peak - low) * left


class BudgetSchedule(keras.callbacks.Callback):
    """Sets the optimizer's rate before every batch from the training time spent (see the module docstring).

    Args:
        peak: the configured learning rate.
        warmup_steps: optimizer steps of linear warm-up (counted over the whole run).
        budget_seconds: the run's time budget.
        spent_seconds: training time already spent when this ``fit`` starts (earlier sessions of the run).
        shape: ``cosine`` or ``linear`` decay after the warm-up.
    """

    def __init__(self, peak: float, warmup_steps: int, budget_seconds: float, spent_seconds: float = 0.0,
                 shape: str = "cosine"):
        super().__init__()
        self.peak, self.warmup_steps, self.shape = float(peak), int(warmup_steps), check_shape(shape)
        self.budget, self.spent_before = float(budget_seconds), float(spent_seconds)
        self.started = time.time()

    def on_train_begin(self, logs=None):
        self.started = time.time()

    def rate_now(self) -> float:
        step = int(self.model.optimizer.iterations.numpy())
        spent = self.spent_before + time.time() - self.started
        return budget_rate(self.peak, step, self.warmup_steps, spent, self.budget, self.shape)

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rate_now())
