"""A training run in figures and words, the same on every page and in the CLI: its time in training and the time
left, its epochs, its best validation accuracy, its settings, its options and its test result.

Everything here reads run records (the dicts of ``RunStore.get_run`` / ``list_runs``) and evaluation results;
nothing writes, and nothing draws (no Streamlit: a page passes the texts to its widgets). Durations have one
form everywhere: ``"42 s"``, ``"1 min 40 s"``, ``"1 h 05 min"`` (:func:`duration_text`).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from cifarmix import evaluation

NONE = "-"  # what a figure that is not known yet reads


# ------------------------------------------------------------------------------------------------- timing


def elapsed_seconds(run: dict) -> float | None:
    """The time a run has spent training, over all its sessions (the time between a kill and its resume does
    not count); None before it starts. Runs recorded before cifarmix kept that figure get their wall time
    from start to end (or to now while active)."""
    if run.get("train_seconds") is not None:
        return float(run["train_seconds"])
    if not run.get("started_at"):
        return None
    end = datetime.fromisoformat(run["finished_at"]) if run.get("finished_at") else datetime.now(timezone.utc)
    return max(0.0, (end - datetime.fromisoformat(run["started_at"])).total_seconds())


def seconds_left(run: dict, epoch_seconds=(), epoch_steps=None) -> float | None:
    """Estimated time to the end of a running run: recent epoch times x steps left (before the first epoch ends,
    the time per step so far). None when the run is not running or nothing is known yet.

    Args:
        run: the run record (``status``, ``total_steps``, ``steps_done``, ``total_epochs``, ``started_at``).
        epoch_seconds: the wall seconds of each finished epoch, oldest first (``epoch_metrics()["seconds"]``).
        epoch_steps: the steps each of those epochs did (``epoch_metrics()["steps"]``), so that an epoch cut short
            by a stop does not pass for a fast one; None (or unknown): every epoch did ``total_steps / total_epochs``.
    """
    total, done = run.get("total_steps"), run.get("steps_done") or 0
    if not total or run.get("status") != "running":
        return None
    recent = list(epoch_seconds)[-3:]
    steps = [] if epoch_steps is None else [s for s in list(epoch_steps)[-3:] if s == s and s]  # not NaN, not 0
    if recent and len(steps) == len(recent):
        per_step = sum(recent) / sum(steps)
    elif recent and run.get("total_epochs"):
        per_step = sum(recent) / len(recent) * run["total_epochs"] / total
    elif done:
        per_step = (elapsed_seconds(run) or 0.0) / done
    else:
        return None
    left = max(0.0, (total - done) * per_step)
    budget = (run.get("config") or {}).get("time_budget_minutes")
    if budget:  # the run ends at its time budget if that comes first
        left = min(left, max(0.0, budget * 60 - (elapsed_seconds(run) or 0.0)))
    return left


def duration_text(seconds: float | None) -> str:
    """The one form of a duration: ``"1 h 05 min"``, ``"3 min 07 s"``, ``"42 s"``; ``"-"`` for None."""
    if seconds is None:
        return NONE
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def training_time_text(run: dict) -> str:
    """The run's time in training (:func:`elapsed_seconds`) as a duration: ``"3 min 07 s"``, or ``"-"``."""
    return duration_text(elapsed_seconds(run))


# ------------------------------------------------------------------------------------------ epochs, accuracy


def total_epochs(run: dict) -> int | str:
    """The epochs the run goes to: as the training counts them, else as configured, else ``"?"``."""
    return run.get("total_epochs") or (run.get("config") or {}).get("epochs") or "?"


def epochs_text(run: dict, joiner: str = "/") -> str:
    """Epochs done and planned: ``"2/8"`` for tables, ``"2 of 8"`` with ``joiner=" of "``."""
    return f"{run.get('epochs_done') or 0}{joiner}{total_epochs(run)}"


def best_epoch_text(run: dict) -> str:
    """The epoch of a run's best weights: ``"3"``, or ``"3 (cut short)"`` when they come from an epoch a Stop or
    the time budget ended part-way (validated and kept, but not among the epochs done); ``"-"`` before any."""
    best, done = run.get("best_epoch"), run.get("epochs_done") or 0
    if not best:
        return NONE
    return f"{best} (cut short)" if best > done else str(best)


def percent_text(value: float | None) -> str:
    """An accuracy for people: ``"52.3%"``; ``"-"`` for None and for what is not a finite number (NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return NONE
    return f"{number:.1%}" if math.isfinite(number) and not isinstance(value, bool) else NONE


def best_val_text(run: dict) -> str:
    """The run's best mean validation accuracy (both heads): ``"52.3%"``, ``"-"`` before its first epoch."""
    return percent_text(run.get("best_val_mean"))


# ------------------------------------------------------------------------------- before the first step

# What a run does before its first training step, in order, as its message names it: the queued run's process
# starts (Python imports TensorFlow), then the training process (``Trainer._train``) says each phase in the run's
# message, and "training" once its first step is done.
STARTING = "starting the process"
LOADING_DATA = "loading data"
BUILDING = "building the model"
FIRST_STEPS = "compiling: first steps"
TRAINING = "training"
PHASES = (STARTING, LOADING_DATA, BUILDING, FIRST_STEPS)
PHASE_HINTS = {
    STARTING: "Python starts and imports TensorFlow.",
    LOADING_DATA: "Reading CIFAR-10 and picking this run's training images and validation pairs.",
    BUILDING: "Building the network (a resumed run loads its last checkpoint).",
    FIRST_STEPS: "TensorFlow compiles the training step; the first steps take longest, then the curves start.",
}


def phase(run: dict) -> str | None:
    """Where an active run is before its first training step (one of ``PHASES``), or None once it trains (or
    has ended). Runs of older versions say only "starting" / "resuming" until they end: they count as starting
    only until their step total is known (their data is loaded)."""
    status = run.get("status")
    if status == "queued":
        return STARTING
    if status != "running":
        return None
    message = run.get("message")
    if message in PHASES:
        return message
    if message in ("starting", "resuming") and not run.get("total_steps"):
        return STARTING
    return None


def phase_text(run: dict, seconds: float | None = None) -> str:
    """``"Step 2 of 4 before training: loading data · 7 s since the process started"`` (``seconds``: the process's
    age, None when unknown); for a resumed run ``"… (resuming after epoch 3)"``."""
    current = phase(run) or STARTING
    resuming = f" (resuming after epoch {run['epochs_done']})" if run.get("epochs_done") else ""
    since = f" · {duration_text(seconds)} since the process started" if seconds is not None else ""
    return f"Step {PHASES.index(current) + 1} of {len(PHASES)} before training: {current}{resuming}{since}"


def progress_text(run: dict, left: float | None = None) -> str:
    """A running run's progress bar text: ``"Epoch 2 of 8 done · step 90 of 320 · about 1 min 40 s left"``."""
    remaining = f" · about {duration_text(left)} left" if left is not None else ""
    return (f"Epoch {epochs_text(run, ' of ')} done · step {run.get('steps_done') or 0} of "
            f"{run.get('total_steps')}{remaining}")


# ------------------------------------------------------------------------------------------------- workers

WAITING_FOR_WORKER = ("Queued: waiting for a training worker to claim it (`python -m cifarmix worker`, on a machine "
                      "that shares this run store and the run files).")


def waiting_for_worker(run: dict) -> bool:
    """True for a run queued for a training worker that no worker holds yet."""
    return run.get("placement") == "worker" and run.get("status") == "queued"


def worker_text(run: dict, now: datetime | None = None) -> str | None:
    """``"worker vm:812:0a1f on vm · last heartbeat 3 s ago"`` for a run a worker holds (or held); else None."""
    if not run.get("worker"):
        return None
    text = f"worker {run['worker']} on {run.get('worker_host') or 'an unknown host'}"
    if run.get("status") in ("queued", "running") and run.get("heartbeat_at"):
        now = now or datetime.now(timezone.utc)
        ago = (now - datetime.fromisoformat(run["heartbeat_at"])).total_seconds()
        text += f" · last heartbeat {duration_text(max(0.0, ago))} ago"
    return text


# ------------------------------------------------------------------------------------------------ settings


def run_label(run: dict) -> str:
    """A run in a pick list: ``#3 “name” allconv (finished) — 52.3% val`` (plain text: no markdown)."""
    best = f" — {best_val_text(run)} val" if best_val_text(run) != NONE else ""
    return f"{short_label(run)} ({run['status']}){best}"


def short_label(run: dict) -> str:
    """A run in a legend or a column head: ``#3 “name” allconv``."""
    name = f" “{run['name']}”" if run.get("name") else ""
    return f"#{run['id']}{name} {run['arch']}"


def options_text(options: dict | None) -> str:
    """An architecture's options for people: ``widths 32/64/128 · head_width 64`` (or ``defaults``)."""
    def value(v) -> str:
        return "/".join(str(item) for item in v) if isinstance(v, (list, tuple)) else str(v)

    return " · ".join(f"{key} {value(v)}" for key, v in options.items()) if options else "defaults"


def config_text(run: dict) -> str:
    """A run's recipe in one line: ``batch 64 · lr 0.002 (adamw, cosine) · α 0.5 · label smoothing 0.1 ·
    augmented · training images all · seed 0 · device CPU (2 cores)``."""
    config = run.get("config") or {}
    batch, chosen = config.get("batch_size"), (config.get("resolved") or {}).get("batch_size")
    batch_text = f"{chosen} (set {batch}, scaled for the device)" if chosen not in (None, batch) else f"{batch}"
    return (f"batch {batch_text} · lr {config.get('lr')} ({config.get('optimizer')}, "
            f"{config.get('schedule')}) · α {config.get('alpha')} · "
            f"label smoothing {config.get('label_smoothing')} · "
            f"{'augmented' if config.get('augment') else 'no augmentation'} · training images "
            f"{config.get('train_size') or 'all'} · seed {config.get('seed')} · device {run.get('device') or NONE}")


# ------------------------------------------------------------------------------------------------ test results


def evaluation_text(result: dict | None) -> str:
    """A test-protocol result: ``52.6% ± 0.3% · 10×10,000`` (with ``· α 0.3`` off the protocol's weight, and
    ``· quick look`` for anything but the full protocol)."""
    if not result:
        return NONE
    alpha = result.get("alpha", evaluation.PROTOCOL_ALPHA)
    weight = "" if alpha == evaluation.PROTOCOL_ALPHA else f" · α {alpha:g}"
    quick = "" if evaluation.is_full_protocol(result) else " · quick look"
    return (f"{percent_text(result['mean_accuracy'])} ± {percent_text(result['std'])} · "
            f"{result['repeats']}×{result['pairs']:,}{weight}{quick}")


def quick_look_text(result: dict | None) -> str | None:
    """What makes a test result a quick look and not the protocol: ``"quick look: 2 × 1,000 pairs"`` (``…, α 0.3``
    off the protocol's weight); None for the full protocol (or no result)."""
    if not result or evaluation.is_full_protocol(result):
        return None
    alpha = result.get("alpha", evaluation.PROTOCOL_ALPHA)
    weight = "" if alpha == evaluation.PROTOCOL_ALPHA else f", α {alpha:g}"
    return f"quick look: {result['repeats']} × {result['pairs']:,} pairs{weight}"


def latest_evaluations(store) -> dict[int, dict]:
    """Run id -> the test result that stands for it (its newest full-protocol result, else its newest), from a
    ``RunStore``."""
    by_run: dict[int, list[dict]] = {}
    for row in store.evaluations():  # newest first
        if row["run_id"] is not None:
            by_run.setdefault(row["run_id"], []).append(row["result"])
    return {run_id: evaluation.headline(results) for run_id, results in by_run.items()}
