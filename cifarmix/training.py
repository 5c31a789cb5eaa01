"""Training runs: ``model.fit`` on fresh mixed pairs with the seeds' tools and our own.

The seeds' tools: label smoothing, early stopping, learning-rate reduction on plateau, a checkpoint of the
best *mean* validation accuracy. Ours: a warm-up + cosine schedule option, component augmentation, bf16 mixed
precision, a per-step / per-epoch record with validation confusion matrices in the run store, a stop flag
polled every few steps, and resume from the last epoch's checkpoint (``last-eN.keras``, named in ``state.json``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from cifarmix import architectures, checkpoints, data, devices, mixing, models, paths, processes, runinfo, slots
from cifarmix.config import BUDGET_SCHEDULES, TrainConfig, preset  # noqa: F401  (bench/ scripts call training.preset)
from cifarmix.heads import HEADS
from cifarmix.store import ACTIVE_STATUSES, RunStore

DATA_WORKERS = 1  # threads preparing batches while the model trains (Keras PyDataset workers)


def device_description() -> str:
    """Where training runs, e.g. ``CPU x2 (x86_64), AMD EPYC, bf16`` or ``GPU x1, NVIDIA L4, 22 GiB``."""
    return devices.detect().text()


def subset(x: np.ndarray, y: np.ndarray, size: int | None, seed: int):
    """A class-balanced subset of ``size`` images (all of them when size is None or too large)."""
    if size is None or size >= len(y):
        return x, y
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = max(1, size // len(classes))
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes])
    keep = np.sort(keep)
    return x[keep], y[keep]


def steps_per_epoch(config: TrainConfig, train_images: int) -> int:
    """Batches per epoch: the configured number, else one pair per training image."""
    return config.steps_per_epoch or max(1, train_images // config.batch_size)


class RunRecord:
    """What a run's callbacks write (``callbacks.Recorder``): its rows in the run store, its files in its folder.

    Args:
        store: the run store.
        run_id: the run.
        folder: the run's folder (checkpoints and ``state.json``).
        budget_minutes: the run's time budget (None: none).
    """

    def __init__(self, store: RunStore, run_id: int, folder: Path, budget_minutes: float | None):
        self.store, self.run_id, self.folder, self.budget_minutes = store, run_id, folder, budget_minutes

    def record_steps(self, rows: list[tuple]) -> None:
        self.store.log_steps(self.run_id, rows)

    def record_progress(self, steps_done: int, train_seconds: float) -> None:
        self.store.update_run(self.run_id, steps_done=steps_done, train_seconds=round(train_seconds, 1))

    def record_epoch(self, epoch: int, metrics: dict) -> None:
        self.store.log_epoch(self.run_id, epoch, metrics)

    def record_confusion(self, epoch: int, head: str, matrix: np.ndarray) -> None:
        self.store.log_confusion(self.run_id, epoch, head, matrix)

    def save_state(self, state: dict) -> None:
        """``state.json`` (see ``checkpoints.save_state``), then the run's best, epochs done and time in the store."""
        checkpoints.save_state(self.folder, state)
        self.store.update_run(
            self.run_id, best_val_mean=state["best"], best_epoch=state["best_epoch"], epochs_done=state["epoch"],
            model_path=str(self.folder / checkpoints.BEST_MODEL), train_seconds=round(state["train_seconds"], 1),
        )

    def over_budget(self, extra_seconds: float = 0.0) -> bool:
        """True once the run's training time (all sessions, plus ``extra_seconds``) has used up its budget."""
        if self.budget_minutes is None:
            return False
        return checkpoints.load_state(self.folder)["train_seconds"] + extra_seconds >= self.budget_minutes * 60

    def stop_wanted(self, extra_seconds: float = 0.0) -> bool:
        """A Stop was requested, or the time budget is spent (counting ``extra_seconds`` of the current epoch)."""
        return self.store.stop_requested(self.run_id) or self.over_budget(extra_seconds=extra_seconds)


class Trainer:
    """One training run, recorded in the run store under ``run_id``.

    Args:
        store: the run store.
        run_id: an existing run (created by ``train`` or ``jobs.start``, which validated its config).
        data_source: CIFAR-10 path (None: ``CIFARMIX_DATA`` / Keras download).
    """

    def __init__(self, store: RunStore, run_id: int, data_source: str | None = None):
        self.store = store
        self.run_id = run_id
        self.data_source = data_source
        run = store.get_run(run_id)
        if run is None:
            raise ValueError(f"run {run_id} does not exist")
        self.config = TrainConfig.from_dict(run["config"])
        self.folder = paths.run_dir(run_id)
        self.record = RunRecord(store, run_id, self.folder, self.config.time_budget_minutes)

    def run(self) -> dict:
        """Train (or resume) to the configured number of epochs; returns the run's final record.

        First, with nothing changed yet: the resume state is checked (:meth:`resume_state`: a damaged or missing
        one raises ``checkpoints.StateError``) and the run is claimed for this process (``slots.claim``: the
        server's training limit, and no other live process training it, else ``slots.TrainingRefused``).
        Any later error marks the run ``failed`` with the error in its message (its checkpoints stay, so a failed
        run can be resumed once the cause is fixed) and is raised again.
        """
        state, note = self.resume_state()
        slots.claim(self.store, self.run_id, "resuming" if state["epoch"] else "starting")
        try:
            return self._train(state, note)
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                self.store.set_status(self.run_id, "stopped", "interrupted from the keyboard; resume with: "
                                      f"python -m cifarmix train --resume {self.run_id}")
            else:
                self.store.set_status(self.run_id, "failed", f"{type(error).__name__}: {error}; after fixing it, "
                                      f"resume with: python -m cifarmix train --resume {self.run_id}")
            raise

    def resume_state(self) -> tuple[dict, str | None]:
        """The state this run resumes from and a note if it is an older one (``checkpoints.resume_state``).

        Raises:
            checkpoints.StateError: the state or its checkpoint is damaged with no sound older pair; or the run
                has epochs recorded that its folder does not hold (deleted or replaced): resuming would start
                over and overwrite them.
        """
        recorded = (self.store.get_run(self.run_id) or {}).get("epochs_done") or 0
        try:
            return checkpoints.resume_state(self.folder, recorded)
        except checkpoints.StateError as error:
            raise checkpoints.StateError(f"run {self.run_id} cannot resume: {error}") from None

    def _train(self, state: dict, note: str | None = None) -> dict:
        import keras

        from cifarmix import callbacks  # imports scikit-learn; only when training really starts

        device = devices.detect()
        config = self.config = devices.applied(self.config, self.settings(device, state))
        # The time in training so far is that of the completed epochs (a killed session's partial epoch is redone).
        self.store.update_run(self.run_id, device=device.text(), epochs_done=state["epoch"],
                              train_seconds=round(state["train_seconds"], 1))
        message = "resuming" if state["epoch"] else "starting"
        self.store.set_status(self.run_id, "running", f"{message}; {note}" if note else message)
        if note:  # said once in the run's log too: the phases below replace the message
            print(f"run {self.run_id}: {note}", file=sys.stderr)
        self.store.update_run(self.run_id, message=runinfo.LOADING_DATA)  # the phases the Train page shows
        splits = data.load_splits(self.data_source, seed=0)
        x_train, y_train = subset(splits.x_train, splits.y_train, config.train_size, config.seed)
        train_groups = mixing.split_groups(x_train, y_train)
        steps = steps_per_epoch(config, len(x_train))
        self.store.update_run(self.run_id, total_epochs=config.epochs, total_steps=config.epochs * steps,
                              steps_done=state["epoch"] * steps)
        self.store.drop_steps_after(self.run_id, state["epoch"] * steps)  # a killed session's partial epoch
        self.store.update_run(self.run_id, message=runinfo.BUILDING)
        with models.precision_policy(config.precision):
            model = self.model(state, steps, train_groups)
        dataset = mixing.MixedPairs(
            train_groups, config.batch_size, steps, alpha=config.alpha, seed=config.seed,
            augment_translate=config.translate if config.augment else 0, augment_flip=config.augment,
            output_names=models.output_names(model), epoch=state["epoch"], workers=DATA_WORKERS,
        )
        validation = mixing.validation_pairs(splits.x_val, splits.y_val, config.val_pairs, config.alpha)
        hooks = callbacks.standard(config, self.record, validation, state, steps)
        if config.schedule in BUDGET_SCHEDULES:
            from cifarmix.schedules import BudgetSchedule

            hooks.insert(0, BudgetSchedule(config.lr, int(config.warmup_epochs * steps),
                                           config.time_budget_minutes * 60, state["train_seconds"],
                                           shape=config.schedule.removeprefix("budget-")))
        if config.ema:  # validation and checkpoints (the callbacks after it) see the averaged weights
            hooks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        verbose = 1 if sys.stdout.isatty() else 2  # a live progress bar for people, one line per epoch in logs
        self.store.update_run(self.run_id, message=runinfo.FIRST_STEPS)

        def first_step_done(batch, logs):  # compiled and run once: from now on the run's message says training
            if not first_step_done.said:
                first_step_done.said = True
                self.store.update_run(self.run_id, message=runinfo.TRAINING)

        first_step_done.said = False
        hooks.append(keras.callbacks.LambdaCallback(on_train_batch_end=first_step_done))
        model.fit(dataset, epochs=config.epochs, initial_epoch=state["epoch"], callbacks=hooks, verbose=verbose)
        return self.finish(steps)

    def settings(self, device: devices.Device, state: dict) -> dict:
        """The precision and batch size this run trains with (``devices.resolve``: its "auto" settings made
        concrete), kept in its stored config under ``resolved`` with the device that chose them. They are chosen
        where and when the training process first starts; a resume keeps them (its checkpoint's layers hold their
        dtypes, its record counts its steps in batches), unless the run has no completed epoch yet."""
        stored = self.store.get_run(self.run_id)["config"]
        if state["epoch"] and stored.get("resolved"):
            return stored["resolved"]
        resolved = devices.resolve(self.config, device)
        self.store.update_run(self.run_id, config={**stored, "resolved": resolved})
        return resolved

    def finish(self, steps: int) -> dict:
        """Mark the run finished or stopped (a stop request keeps its best checkpoint) and say why it ended.

        Args:
            steps: the run's steps per epoch (to tell the steps of an epoch cut short).
        """
        state = self.load_state()
        if self.store.stop_requested(self.run_id):
            status, why = "stopped", "stopped on request"
        elif state["epoch"] >= self.config.epochs:
            status, why = "finished", "finished"
        elif self.record.over_budget():
            status, why = "finished", f"time budget of {self.config.time_budget_minutes:g} min reached"
        else:
            status, why = "finished", "early stopping: validation accuracy stopped improving"
        best = self.folder / checkpoints.BEST_MODEL
        self.store.update_run(self.run_id, model_path=str(best) if best.exists() else None)
        done = self.store.get_run(self.run_id).get("steps_done") or 0
        part = done - state["epoch"] * steps  # the steps of an epoch cut short, if any
        cut = f" and {part} of {steps} steps of epoch {state['epoch'] + 1}" if part > 0 else ""
        self.store.set_status(self.run_id, status, f"{why} after {state['epoch']} epochs{cut}, "
                                                   f"{runinfo.duration_text(state['train_seconds'])} of training")
        return self.store.get_run(self.run_id)

    def model(self, state: dict, steps: int, groups: mixing.Groups | None = None):
        """The model to train: rebuilt from the last checkpoint when resuming, else freshly built (a whitening
        stem set from mixed images of ``groups``, unless a warm restart brings its weights)."""
        import keras

        config = self.config
        keras.utils.set_random_seed(config.seed + state["epoch"])
        last = checkpoints.last_checkpoint(self.folder, state)
        if state["epoch"]:  # resume_state checked that its checkpoint is there and whole
            import cifarmix.layers  # noqa: F401

            try:
                return keras.saving.load_model(last, safe_mode=True, compile=True)
            except Exception as error:
                raise checkpoints.StateError(f"the checkpoint {last} could not be loaded "
                                             f"({type(error).__name__}: {error})") from None
        model = architectures.build(config.arch, **config.options)
        if config.init_from:
            copy_weights(config.init_from, model, self.store)
        else:
            from cifarmix import whitening

            whitening.whiten_model(model, groups, config.seed, config.alpha)
        self.compile(model, steps)
        return model

    def compile(self, model, steps: int) -> None:
        """Optimizer, schedule and per-head losses (auxiliary heads weighted 0.3, as GoogLeNet does)."""
        import keras

        config = self.config
        names = models.output_names(model)
        losses = {name: keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing) for name in names}
        weights = {name: (1.0 if name in HEADS else 0.3) for name in names}
        metrics = {name: ["accuracy"] for name in HEADS}
        model.compile(optimizer=self.optimizer(steps), loss=losses, loss_weights=weights, metrics=metrics)

    def optimizer(self, steps: int):
        """The configured optimizer with a constant LR, or warm-up + cosine decay over the whole run."""
        import keras

        config = self.config
        learning_rate = config.lr
        if config.schedule == "cosine":
            warmup = int(config.warmup_epochs * steps)
            learning_rate = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=config.lr / 10 if warmup else config.lr,
                decay_steps=max(1, config.epochs * steps - warmup), alpha=0.01,
                warmup_target=config.lr if warmup else None, warmup_steps=warmup,
            )
        average = dict(use_ema=True, ema_momentum=config.ema) if config.ema else {}
        if config.optimizer == "sgd":
            return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True,
                                        weight_decay=config.weight_decay or None, **average)
        if config.optimizer == "adamw":
            return keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay, **average)
        optimizer = keras.optimizers.Adam if config.optimizer == "adam" else keras.optimizers.RMSprop
        return optimizer(learning_rate, weight_decay=config.weight_decay or None, **average)

    def load_state(self) -> dict:
        """The resume state: epochs completed, the best validation mean accuracy so far (``checkpoints``)."""
        return checkpoints.load_state(self.folder)


def copy_weights(reference: str, model, store: RunStore) -> None:
    """Load the weights of the model ``reference`` names into ``model`` (weights only: no optimizer state).

    A shipped model's test-time views wrap the trained network; its weights are the network's. Raises ValueError
    naming both networks when their layers' shapes differ.
    """
    from cifarmix import catalog, views

    source = views.network_of(catalog.resolve(reference, store).load())
    ours, theirs = model.get_weights(), source.get_weights()
    if [w.shape for w in ours] != [w.shape for w in theirs]:
        raise ValueError(f"cannot start from {reference!r}: its network ({source.count_params():,} parameters in "
                         f"{len(theirs)} arrays) is not this run's architecture ({model.count_params():,} in "
                         f"{len(ours)}); give a model of the same architecture and options")
    model.set_weights(theirs)


def train(config: TrainConfig, store: RunStore | None = None, name: str | None = None,
          data_source: str | None = None) -> dict:
    """Validate ``config``, create its run and train it in this process. Returns the finished run record.

    Raises:
        ValueError: the configuration is invalid (no run is created).
        slots.JobLimitReached: the server already runs its maximum number of trainings (no run is created).
    """
    store = store or RunStore()
    config.validate()
    with slots.start_lock():  # counted and created at once: the server's limit holds for the CLI too
        slots.check_room(store)
        run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed, name=name)
        store.claim(run_id, os.getpid(), processes.start_time(os.getpid()))  # it holds its slot from now on
    return Trainer(store, run_id, data_source).run()


def resume(run_id: int, store: RunStore | None = None, data_source: str | None = None) -> dict:
    """Continue a stopped, killed or failed run from its last completed epoch."""
    store = store or RunStore()
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"run {run_id} does not exist; `python -m cifarmix runs` lists the runs")
    if run["status"] == "finished":
        raise ValueError(f"run {run_id} already finished all {run['total_epochs']} epochs; nothing to resume")
    pid = run.get("pid")
    if run["status"] in ACTIVE_STATUSES and pid not in (None, os.getpid()) and \
            processes.is_alive(pid, run.get("process_started")):
        raise ValueError(f"run {run_id} is {run['status']} in process {pid}; two processes must not train one "
                         f"run. Stop it first (the Train page, or kill {pid}), then resume.")
    return Trainer(store, run_id, data_source).run()  # restarting an ended run clears its old stop request
