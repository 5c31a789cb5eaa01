"""A recipe as a sequence of training cycles: warm restarts that each fit in one sitting.

A long CPU training is what users lose (a laptop closed, a classroom server rebooted, a notebook's time limit;
here a process lives at most ~3 hours and a run folder may be gone afterwards). So the champion recipe is a
sequence of *cycles* of at most ~150 minutes. Each cycle is an ordinary run that starts from the previous cycle's
weights (weights only: a fresh optimizer and schedule — a warm restart), so the only thing that must survive
between two cycles is a model file: a run's ``best.keras`` or a shipped model.

``python -m cifarmix train --preset champion`` runs every cycle in one command (a user with time or a GPU runs it
at once); ``--init-from MODEL`` starts the cycles after the first from a shipped model or a run; a cycle
interrupted is resumed with ``train --resume RUN_ID`` and the remaining cycles follow it.
"""

from __future__ import annotations

from cifarmix.config import PRESETS, TrainConfig

PREVIOUS = "previous cycle"  # the init_from of a cycle that starts from the cycle before it

# Each cycle: the preset's settings with these changes. Cycle 1 is the first champion's run (GELU, 40 epochs of a
# step cosine: 88 min on the Intel machine); later cycles use ReLU (the same weights' shapes, 1.3-1.5x the
# training speed on these CPUs: bench/step_speed.py), batch 512, and the budget-cosine schedule, which anneals
# over the cycle's 110-minute budget however fast the machine turns out to be.
CYCLES: dict[str, list[dict]] = {
    "champion": [
        {},
        *[dict(options={"activation": "relu"}, batch_size=512, steps_per_epoch=88, epochs=200,
               schedule="budget-cosine", time_budget_minutes=110, init_from=PREVIOUS) for _ in range(5)],
    ],
}


def has_cycles(preset_name: str | None) -> bool:
    return preset_name in CYCLES


def cycle_config(preset_name: str, cycle: int, init_from: str | None = None, **overrides) -> TrainConfig:
    """The configuration of ``cycle`` (1-based) of a cycled preset, starting from ``init_from`` when it is a
    warm restart (a model reference: ``run:12``, a shipped name, a file). Overrides apply to every cycle."""
    cycles = CYCLES[preset_name]
    if not 1 <= cycle <= len(cycles):
        raise ValueError(f"preset {preset_name!r} has cycles 1-{len(cycles)}; got cycle {cycle}")
    values = dict(PRESETS[preset_name]) | cycles[cycle - 1] | {k: v for k, v in overrides.items() if v is not None}
    if values.get("init_from") == PREVIOUS:
        if init_from is None:
            raise ValueError(f"cycle {cycle} of {preset_name!r} starts from the previous cycle's model; "
                             f"give it with --init-from MODEL")
        values["init_from"] = init_from
    values.update(lineage=preset_name, cycle=cycle)
    return TrainConfig.from_dict(values)


def first_cycle(preset_name: str, init_from: str | None) -> int:
    """Where a cycled preset starts: cycle 1, or cycle 2 when the user gives the model to start from."""
    return 2 if init_from else 1


def next_cycle(config: TrainConfig) -> int | None:
    """The cycle that follows a run of a cycled preset, or None after its last cycle (or for any other run)."""
    if not config.lineage or config.lineage not in CYCLES or not config.cycle:
        return None
    return config.cycle + 1 if config.cycle < len(CYCLES[config.lineage]) else None


def run_cycles(preset_name: str, start: int, init_from: str | None, train_one, **overrides) -> dict:
    """Train the cycles of ``preset_name`` from ``start`` on, each from the one before's best model.

    Args:
        train_one: trains one TrainConfig and returns the finished run's record (``training.train``'s job).

    Returns:
        the last cycle's run. Stops early, returning that run, when a cycle does not finish (stopped, killed,
        failed): its resume (``train --resume ID``) continues the sequence.
    """
    for later in range(start, len(CYCLES[preset_name]) + 1):  # refuse a bad setting before the first cycle runs
        cycle_config(preset_name, later, init_from or PREVIOUS, **overrides).validate()
    run, cycle = None, start
    while cycle is not None:
        config = cycle_config(preset_name, cycle, init_from, **overrides)
        run = train_one(config)
        if run["status"] != "finished" or not run.get("model_path"):
            return run
        init_from, cycle = f"run:{run['id']}", next_cycle(config)
    return run
