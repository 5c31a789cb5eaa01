"""What defines a training run: :class:`TrainConfig` (every setting, checked by ``validate``) and the named presets.

A run's config is stored with the run, so it can be resumed or repeated. The Train page and the command line
build one from a preset plus what their user changed (:func:`preset`); ``jobs.start`` and ``training.train``,
the two ways a run is created, validate it once, before the run exists.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from cifarmix import architectures, mixing

OPTIMIZERS = ("adam", "rmsprop", "sgd", "adamw")
SCHEDULES = ("plateau", "cosine", "constant", "budget-cosine", "budget-linear")  # budget-*: cifarmix.schedules
BUDGET_SCHEDULES = ("budget-cosine", "budget-linear")  # anneal over the time budget rather than a step count
# "auto": chosen by the device when the training process starts (cifarmix.devices.choose_precision)
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
BATCH_SCALINGS = ("none", "auto")  # auto: a larger batch on a GPU with the memory for it (devices.scaled_batch)


@dataclass(frozen=True)
class Range:
    """The numbers a setting accepts: ``low..high`` (ends included); whole numbers only when ``integer``.

    One place for every bound a person can type: ``TrainConfig.validate`` checks a config with them, and the
    command line's argument types (``cifarmix.cli``) refuse a number outside them before anything runs.
    """

    what: str  # the setting, as messages name it: "epochs", "batch size"
    low: float
    high: float
    integer: bool = True

    def text(self) -> str:
        """The range for people: ``1..10,000``."""
        return f"{self.low:,}..{self.high:,}" if self.integer else f"{self.low:g}..{self.high:g}"

    def problem(self, value) -> str | None:
        """Why ``value`` is refused (one sentence), or None when it is accepted."""
        kind = ("positive integer" if self.low == 1 else "whole number") if self.integer else "number"
        number = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not number or not (
                self.integer or math.isfinite(value)) or not self.low <= value <= self.high:
            shown = f"{value:g}" if isinstance(value, float) else repr(value)
            return f"{self.what} must be a {kind} in {self.text()}; got {shown}"
        return None

    def check(self, value):
        """``value`` if accepted; ValueError naming the setting, the accepted range and what was found."""
        problem = self.problem(value)
        if problem:
            raise ValueError(problem)
        return value


# Every bound a person can type (the form, the CLI). Generous for real use, small enough that no value is absurd:
# nothing here can overflow a SQLite integer or a NumPy seed, or ask for more memory than a machine has.
EPOCHS = Range("epochs", 1, 10_000)
BATCH_SIZE = Range("batch size", 1, 2048)
STEPS_PER_EPOCH = Range("steps per epoch", 1, 1_000_000)
TRAIN_SIZE = Range("training subset size (images)", 20, 50_000)
VAL_PAIRS = Range("validation pairs", 10, 100_000)
SEED = Range("seed", 0, 2**31 - 1)  # NumPy and Keras seeds; a run adds its epoch to it
TIME_BUDGET = Range("time budget (minutes)", 0.001, 100_000, integer=False)
TRANSLATE = Range("translation (pixels)", 0, 8)
PATIENCE = Range("patience (epochs)", 0, 10_000)
RUN_ID = Range("run id", 1, 10**18 - 1)  # the store reads at most 18 digits as a run id (values.RUN_ID_MAX_DIGITS)
EVAL_REPEATS = Range("test-protocol repeats", 1, 100)
EVAL_PAIRS = Range("pairs per repeat", 1, 100_000)  # at most 10,000,000 pairs in all: a few hundred MB
TEST_INDEX = Range("test-set index", 0, 9_999)  # CIFAR-10 has 10,000 test images


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored with the run, so it can be resumed or repeated)."""

    arch: str = "allconv"  # a name of architectures.names()
    options: dict = field(default_factory=dict)  # the architecture's options over its defaults
    epochs: int = 10
    batch_size: int = 64  # mixed pairs per step
    batch_scaling: str = "none"  # one of BATCH_SCALINGS; "auto" may multiply batch_size on a GPU
    steps_per_epoch: int | None = None  # None: one pass worth of pairs over the training components
    train_size: int | None = None  # None: every training image (45,000); else a class-balanced subset
    val_pairs: int = 5000  # fixed validation mixes scored after every epoch
    lr: float = 1e-3  # the learning rate (the peak after a warm-up)
    optimizer: str = "rmsprop"  # one of OPTIMIZERS
    schedule: str = "plateau"  # one of SCHEDULES: plateau divides by 5 when the validation loss stalls
    warmup_epochs: float = 0.0  # epochs of warm-up from lr / 10 (cosine schedule)
    weight_decay: float = 0.0  # 0: none
    label_smoothing: float = 0.1  # Keras' label smoothing of each head's targets
    # An exponential moving average of the weights with this momentum (0: none), kept by the optimizer at every
    # step; validation, checkpoints and the best model hold the average (the fast CIFAR-10 recipes' trick).
    ema: float = 0.0
    alpha: float = 0.5  # the weight of component A in every mix; 0.5 is the seeds' plain average
    augment: bool = False  # flip and shift each component before mixing
    translate: int = 2  # pixels, at most, of an augmentation's shift
    early_stop_patience: int = 10  # epochs without a better mean validation accuracy before stopping
    plateau_patience: int = 5  # epochs without a lower validation loss before a plateau cut
    precision: str = "float32"  # one of PRECISIONS
    seed: int = 0  # the subset, the pairs, the augmentations and the initial weights
    time_budget_minutes: float | None = None  # stop cleanly once this much training time is spent
    # A warm restart: start from this model's weights (a shipped model's name, a run id or a .keras file) with a
    # fresh optimizer and schedule; the file's network must have this run's architecture and options.
    init_from: str | None = None
    lineage: str | None = None  # the cycled preset (cifarmix.cycles) this run is a cycle of
    cycle: int | None = None  # which cycle of it, from 1

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the first bad field, what was expected and what was found.

        Numbers must lie in their ``Range`` (the module's constants), the architecture's options must be of their
        types and ranges, and the network must fit the machine's parameter and memory budget
        (``architectures.check_budget``, from its shapes: nothing is built).
        """
        architectures.get(self.arch)
        for value, bounds in ((self.epochs, EPOCHS), (self.batch_size, BATCH_SIZE), (self.val_pairs, VAL_PAIRS),
                              (self.seed, SEED), (self.translate, TRANSLATE),
                              (self.early_stop_patience, PATIENCE), (self.plateau_patience, PATIENCE)):
            bounds.check(value)
        for value, bounds in ((self.steps_per_epoch, STEPS_PER_EPOCH), (self.train_size, TRAIN_SIZE),
                              (self.time_budget_minutes, TIME_BUDGET)):
            if value is not None:
                bounds.check(value)
        numbers = {"learning rate": self.lr, "label smoothing": self.label_smoothing,
                   "weight decay": self.weight_decay, "warm-up epochs": self.warmup_epochs, "alpha": self.alpha,
                   "weight average momentum": self.ema}
        for what, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{what} must be a finite number; got {value!r}")
        checks = [
            (0 < self.lr < 10, f"learning rate must lie in (0, 10); got {self.lr}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}; got {self.schedule!r}"),
            (0 <= self.label_smoothing < 1, f"label smoothing must lie in [0, 1); got {self.label_smoothing}"),
            (0 <= self.ema < 1, f"weight average momentum must lie in [0, 1) (0: no average); got {self.ema}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}; got {self.precision!r}"),
            (self.batch_scaling in BATCH_SCALINGS,
             f"batch scaling must be one of {BATCH_SCALINGS}; got {self.batch_scaling!r}"),
            (0 <= self.weight_decay <= 1, f"weight decay must lie in 0..1; got {self.weight_decay}"),
            (0 <= self.warmup_epochs <= self.epochs,
             f"warm-up epochs must lie in 0..{self.epochs} (the run's epochs); got {self.warmup_epochs}"),
            (isinstance(self.augment, bool), f"augment must be true or false; got {self.augment!r}"),
            (self.init_from is None or isinstance(self.init_from, str),
             f"the model to start from must be a name, a run id or a path; got {self.init_from!r}"),
            (self.schedule not in BUDGET_SCHEDULES or self.time_budget_minutes is not None,
             f"the {self.schedule} schedule anneals over the time budget: give a time budget in minutes"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        mixing.check_alpha_range(self.alpha)
        architectures.check_options(self.arch, self.options)  # each option's type and range
        architectures.check_budget(self.arch, self.options, self.batch_size)  # counted, not built
        return self

    def to_dict(self) -> dict:
        """The config as the run store keeps it (JSON values)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """A config from stored or typed values; keys it does not know (a form's extras) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


PRESETS: dict[str, dict] = {
    # The seed notebook's recipe for ACCNRR: RMSprop, label smoothing 0.1, plateau LR, batch 64.
    "allconv": dict(arch="allconv", epochs=60, batch_size=64, lr=1e-3, optimizer="rmsprop", schedule="plateau",
                    label_smoothing=0.1, precision="mixed_bfloat16", val_pairs=5000, time_budget_minutes=90),
    # Our champion: a CPU-efficient residual net, fresh augmented pairs, warm-up + cosine. Precision and batch
    # "auto" (cifarmix.devices): bf16 and batch 256 on a bf16 CPU (the machines it was measured on), float16 and a
    # larger batch on a GPU with the memory for it.
    "champion": dict(arch="resnet-cpu", epochs=40, batch_size=256, steps_per_epoch=176, lr=2e-3,
                     optimizer="adamw", weight_decay=0.05, schedule="cosine", warmup_epochs=2,
                     label_smoothing=0.1, augment=True, translate=2, precision="auto", batch_scaling="auto",
                     early_stop_patience=1000, val_pairs=5000, time_budget_minutes=180),
    # A classroom demo: a slim residual net on 10,000 images whose accuracy climbs visibly within minutes
    # (precision and batch "auto", as the champion's). ReLU and the frozen whitening stem (the champion
    # proxies' winner) in place of GELU and the 3x3 stem: bench/demo_speed.py times both to 50% validation.
    "demo": dict(arch="resnet-cpu", options={"widths": [32, 64, 128], "head_width": 64, "activation": "relu",
                                             "whiten": True}, epochs=8,
                 batch_size=128, steps_per_epoch=40, train_size=10000, lr=3e-3, optimizer="adamw",
                 weight_decay=0.05, schedule="cosine", warmup_epochs=1, label_smoothing=0.1, augment=True,
                 translate=2, precision="auto", batch_scaling="auto", early_stop_patience=1000, val_pairs=1000),
    # A tiny run for tests: a few hundred images, two short epochs (seconds; learns next to nothing).
    "smoke": dict(arch="allconv", epochs=2, batch_size=32, steps_per_epoch=4, train_size=400, val_pairs=64),
}


# What each preset is for, in the order the app offers them: the quick check first, then the classroom demo.
PRESET_DESCRIPTIONS: dict[str, str] = {
    "smoke": "a quick check that training runs (seconds, learns little)",
    "demo": "watch a small net learn (about a minute on 2 CPU cores)",
    "allconv": "the seed notebook's recipe",
    "champion": "our best recipe (hours on a CPU)",
}


def preset(name: str, **overrides) -> TrainConfig:
    """A TrainConfig from a named preset, with explicit overrides (None values ignored)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[name]) | {key: value for key, value in overrides.items() if value is not None}
    return TrainConfig.from_dict(values)


def parse_options(text: str | None, what: str = "architecture options") -> dict:
    """Architecture options typed as JSON (the Train page's field, the CLI's ``--options``); empty text is ``{}``.

    Raises ValueError naming ``what`` when the text is not JSON or not an object.
    """
    try:
        parsed = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} must be a JSON object ({error})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{what} must be a JSON object like {{}}; got {text}")
    return parsed
