"""The registry of two-head architectures: the seed documents' networks plus our own CPU-friendly net.

Every model built here follows one contract:

* input: float32 pixels in [0, 255], shape (N, 32, 32, 3); scaling to [0, 1] is a layer inside the model;
* output: ``{"first": (N, 5), "second": (N, 5)}`` softmax probabilities, the first head for CIFAR-10
  classes 0-4 and the second for classes 5-9 (GoogLeNet may add ``aux1_*`` / ``aux2_*`` heads);
* the output layers are named after their head and compute in float32, so mixed precision works;
* only built-in layers and those of :mod:`cifarmix.layers`, so ``.keras`` files load with ``safe_mode=True``.

Use :func:`build` (or :func:`get` for the metadata), :func:`names`, :func:`param_count` and :func:`describe`.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras
from keras import layers, regularizers

from cifarmix.heads import HEADS
from cifarmix.layers import FractionalMaxPooling2D

INPUT_SHAPE = (32, 32, 3)
CLASSES_PER_HEAD = 5
LEAKY_SLOPE = 0.3  # keras.layers.LeakyReLU's default, which the seed notebook used
ACTIVATIONS = ("relu", "leaky_relu", "gelu")


@dataclass(frozen=True)
class Architecture:
    """One selectable network: how to build it and what to tell a user about it."""

    name: str
    title: str
    description: str
    builder: Callable[..., keras.Model]
    needs_gpu: bool
    source: str
    default_options: dict = field(default_factory=dict, hash=False)
    option_rules: dict = field(default_factory=dict, hash=False)  # option -> Option: its type and range


@dataclass(frozen=True)
class Option:
    """What one architecture option accepts: ``kind`` is ``int``, ``float``, ``bool``, ``choice`` or ``ints`` (a
    list of ``length`` integers); numbers lie in ``low..high`` (``high`` excluded when ``high_open``)."""

    kind: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple = ()
    length: int | None = None

    def accepted(self) -> str:
        """What it accepts, for people: ``an integer in 8..1024``, ``one of 'max', 'avg'``."""
        span = "" if self.low is None else f"{self.low:g}..{self.high:g}" + (" (excluded)" if self.high_open else "")
        return {
            "int": f"an integer in {span}",
            "float": f"a number in {span}",
            "bool": "true or false",
            "choice": "one of " + ", ".join(repr(choice) for choice in self.choices),
            "ints": f"a list of {self.length} integers in {span}",
        }[self.kind]

    def fits(self, value) -> bool:
        """Whether ``value`` is of this option's type and in its range."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "ints":
            return isinstance(value, (list, tuple)) and len(value) == self.length and all(
                Option("int", self.low, self.high).fits(item) for item in value)
        number = isinstance(value, int) if self.kind == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not number or not math.isfinite(value):
            return False
        return self.low <= value and (value < self.high if self.high_open else value <= self.high)


ACTIVATION = Option("choice", choices=ACTIVATIONS)
DROPOUT = Option("float", 0, 1, high_open=True)
HIDDEN = Option("int", 1, 4096)
WIDTH = Option("int", 8, 1024)


# ----------------------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------------------


def pixel_input() -> keras.KerasTensor:
    """The model input: (N, 32, 32, 3) float32 pixels in [0, 255]."""
    return keras.Input(shape=INPUT_SHAPE, dtype="float32", name="pixels")


def rescale(pixels: keras.KerasTensor) -> keras.KerasTensor:
    """Map [0, 255] pixels to [0, 1] inside the model (no parameters)."""
    return layers.Rescaling(1.0 / 255.0, name="rescale")(pixels)


def activate(x: keras.KerasTensor, kind: str) -> keras.KerasTensor:
    """Apply the activation ``kind``: ``relu``, ``leaky_relu`` (slope 0.3, as the seed) or ``gelu``."""
    if kind == "relu":
        return layers.ReLU()(x)
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=LEAKY_SLOPE)(x)
    if kind == "gelu":
        return layers.Activation("gelu")(x)
    raise ValueError(f"activation must be one of {ACTIVATIONS}; got {kind!r}.")


def conv(x, filters: int, kernel: int, kind: str = "relu", strides: int = 1, padding: str = "valid"):
    """A biased convolution followed by its activation."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding)(x)
    return activate(x, kind)


def softmax_head(x: keras.KerasTensor, name: str, l2: float = 0.0) -> keras.KerasTensor:
    """A 5-way softmax Dense layer named ``name``, in float32, optionally with an L2 kernel penalty."""
    regularizer = regularizers.l2(l2) if l2 else None
    return layers.Dense(
        CLASSES_PER_HEAD, activation="softmax", kernel_regularizer=regularizer, dtype="float32", name=name
    )(x)


def two_heads(x: keras.KerasTensor, prefix: str = "", l2: float = 0.0) -> dict[str, keras.KerasTensor]:
    """The ``first`` and ``second`` heads on one shared feature vector (names get ``prefix``)."""
    return {prefix + head: softmax_head(x, prefix + head, l2) for head in HEADS}


def count_params(model: keras.Model) -> int:
    """All parameters of a built model, trainable or not (as Keras' summary totals them)."""
    return int(model.count_params())


# ----------------------------------------------------------------------------------------------------------
# random: the seed notebook's baseline
# ----------------------------------------------------------------------------------------------------------


def build_random() -> keras.Model:
    """The seed's ``random_model``: Flatten -> two Dense(5) heads (softmax added for the contract).

    Untrained it guesses, so it scores about 20% per head: the floor every other network must beat.
    """
    pixels = pixel_input()
    features = layers.Flatten()(rescale(pixels))
    return keras.Model(pixels, two_heads(features), name="random")


# ----------------------------------------------------------------------------------------------------------
# allconv / allconv-leaky: ACCNRR, ACCN and ACCNL
# ----------------------------------------------------------------------------------------------------------

# (filters, kernel, strides) of the eight valid convolutions, each followed by BatchNorm.
ALLCONV_LAYERS = (
    (96, 3, 1), (96, 3, 1), (96, 3, 2),
    (192, 3, 1), (192, 3, 1), (192, 3, 2),
    (192, 3, 1), (192, 1, 1),
)  # fmt: skip


def build_allconv(activation: str = "relu", head_l2: float = 0.001) -> keras.Model:
    """The seed's all-convolutional net: conv -> activation -> BatchNorm x8, global average pool, two heads.

    ``relu`` with ``head_l2=0.001`` is ACCNRR (1,374,730 parameters); ``head_l2=0`` is ACCN;
    ``leaky_relu`` without L2 is ACCNL. The seed's ACCNRR code also applied ``RandomFlip`` but reassigned
    ``inputs`` to the flipped tensor, so its summary (which we follow) has no flip layer; flipping belongs
    to the data pipeline here.
    """
    pixels = pixel_input()
    x = rescale(pixels)
    for filters, kernel, strides in ALLCONV_LAYERS:
        x = conv(x, filters, kernel, activation, strides=strides)
        x = layers.BatchNormalization()(x)
    features = layers.GlobalAveragePooling2D()(x)
    return keras.Model(pixels, two_heads(features, l2=head_l2), name=f"allconv_{activation}")


# ----------------------------------------------------------------------------------------------------------
# fmp: FMP3 with fractional max pooling
# ----------------------------------------------------------------------------------------------------------

# (filters of the 2x2 convolution, ratio of the fractional max pool after it), from the seed's FMP3.
# Spatial sizes: 32 -conv-> 31 -fmp-> 22 -> 21 -> 15 -> 14 -> 10 -> 9 -> 6 -> 5 -> 4 -> 3 -> 2.
FMP_STAGES = (
    (32, 31 / 22), (64, 21 / 15), (96, 14 / 10),
    (128, 9 / 6), (160, 5 / 4), (192, 3 / 2),
)  # fmt: skip


def build_fmp(dropout: float = 0.5, overlapping: bool = True) -> keras.Model:
    """The seed's FMP3: six [2x2 conv (LeakyReLU) -> fractional max pool] stages, conv7 2x2 and conv8 1x1
    (192 each), flatten, dropout, two heads; 474,410 parameters.

    The pools are pseudo-random and overlapping (the seed's call, cut at the page edge, begins
    ``pseudo_random=True, o``); at inference they use fixed regions (see ``FractionalMaxPooling2D``).
    """
    pixels = pixel_input()
    x = rescale(pixels)
    for seed, (filters, ratio) in enumerate(FMP_STAGES, start=1):
        x = conv(x, filters, 2, "leaky_relu")
        x = FractionalMaxPooling2D(ratio, pseudo_random=True, overlapping=overlapping, seed=seed)(x)
    x = conv(x, 192, 2, "leaky_relu")  # 2x2 -> 1x1
    x = conv(x, 192, 1, "leaky_relu")
    features = layers.Dropout(dropout)(layers.Flatten()(x))
    return keras.Model(pixels, two_heads(features), name="fmp3")


# ----------------------------------------------------------------------------------------------------------
# large-allconv: LACNN on 126x126 upscaled input
# ----------------------------------------------------------------------------------------------------------

# Groups of (filters, strides) 2x2 convolutions; BatchNorm closes every group but the last.
# The seed's fourth group really ends with 960 filters (not 1280); its summary agrees, so we keep it.
LACNN_GROUPS = (
    ((320, 1), (320, 1), (320, 2)),
    ((640, 1), (640, 1), (640, 2)),
    ((960, 1), (960, 1), (960, 2)),
    ((1280, 1), (1280, 1), (960, 2)),
    ((1600, 1), (1600, 1), (1600, 2)),
    ((1920, 1),),
)
LACNN_SIZE = 126


def build_large_allconv() -> keras.Model:
    """The seed's LACNN: 32x32 pixels resized (bilinear) to 126x126 inside the model, 16 LeakyReLU 2x2
    convolutions in groups closed by BatchNorm, flatten, two L2-penalised heads; 70,098,570 parameters.
    """
    pixels = pixel_input()
    x = layers.Resizing(LACNN_SIZE, LACNN_SIZE, interpolation="bilinear", name="upscale")(rescale(pixels))
    for index, group in enumerate(LACNN_GROUPS):
        for filters, strides in group:
            x = conv(x, filters, 2, "leaky_relu", strides=strides)
        if index < len(LACNN_GROUPS) - 1:
            x = layers.BatchNormalization()(x)
    features = layers.Flatten()(x)
    return keras.Model(pixels, two_heads(features, l2=0.001), name="lacnn")


# ----------------------------------------------------------------------------------------------------------
# inception-naive: one naive Inception v1 module
# ----------------------------------------------------------------------------------------------------------


def naive_inception_module(x: keras.KerasTensor) -> keras.KerasTensor:
    """1x1 (64), 3x3 (128) and 5x5 (32) 'same' ReLU convolutions and a 3x3/1 max pool, concatenated."""
    branches = [
        conv(x, 64, 1, padding="same"),
        conv(x, 128, 3, padding="same"),
        conv(x, 32, 5, padding="same"),
        layers.MaxPooling2D(3, strides=1, padding="same")(x),
    ]
    return layers.Concatenate()(branches)


def build_inception_naive(hidden: int = 1000) -> keras.Model:
    """The report's naive Inception v1: one module on the raw image (32x32x227), flatten (232,448),
    Dense(hidden) ReLU, two heads; about 232M parameters with the table's ``hidden=1000``.
    """
    pixels = pixel_input()
    x = naive_inception_module(rescale(pixels))
    x = layers.Dense(hidden, activation="relu")(layers.Flatten()(x))
    return keras.Model(pixels, two_heads(x), name="inception_naive")


# ----------------------------------------------------------------------------------------------------------
# googlenet: Inception v1 with dimension reduction (and optional auxiliary classifiers)
# ----------------------------------------------------------------------------------------------------------

# Filters per module: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection (the paper's table).
GOOGLENET_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def inception_module(x: keras.KerasTensor, filters: Sequence[int], three_kernel: int) -> keras.KerasTensor:
    """An Inception v1 module with 1x1 reductions; ``three_kernel`` is the '3x3' branch's kernel size."""
    ones, reduce3, threes, reduce5, fives, pool_projection = filters
    branches = [
        conv(x, ones, 1, padding="same"),
        conv(conv(x, reduce3, 1, padding="same"), threes, three_kernel, padding="same"),
        conv(conv(x, reduce5, 1, padding="same"), fives, 5, padding="same"),
        conv(layers.MaxPooling2D(3, strides=1, padding="same")(x), pool_projection, 1, padding="same"),
    ]
    return layers.Concatenate()(branches)


def auxiliary_classifier(x, prefix: str, hidden: int, dropout: float) -> dict[str, keras.KerasTensor]:
    """The table's auxiliary classifier: 3x3/3 average pool (6x6 -> 2x2), flatten, dropout,
    Dense(hidden) ReLU, then its own ``first`` / ``second`` heads named ``{prefix}first`` / ``{prefix}second``.
    """
    x = layers.AveragePooling2D(3, strides=3)(x)
    x = layers.Dropout(dropout)(layers.Flatten()(x))
    return two_heads(layers.Dense(hidden, activation="relu")(x), prefix=prefix)


def build_googlenet(
    three_by_three: bool = False,
    aux_heads: bool = False,
    hidden: int = 1000,
    dropout: float = 0.4,
    aux_dropout: float = 0.7,
) -> keras.Model:
    """The report's "Inception v1 with dimension reduction" (GoogLeNet) on 32x32 input.

    7x7/2 valid conv (64) -> 13x13, modules 3a 3b, 3x3/2 max pool -> 6x6, 4a..4e, max pool -> 2x2, 5a 5b,
    global average pool, dropout, Dense(hidden) ReLU, two heads. The table's quirk: its "3x3" branch
    convolutions have 1x1 parameter counts (3a's 96 -> 128 is 12,416), so by default they are 1x1;
    ``three_by_three=True`` uses the paper's real 3x3 kernels. ``aux_heads=True`` adds the table's two
    auxiliary classifiers (on 4a and 4d) as outputs ``aux1_first`` .. ``aux2_second``; the total is then the
    table's 8,390,710. The table gives no auxiliary dropout rate; ``aux_dropout`` follows the paper's 0.7.
    """
    pixels = pixel_input()
    x = conv(rescale(pixels), 64, 7, strides=2)
    three_kernel = 3 if three_by_three else 1
    auxiliary_inputs = {}
    for module, filters in GOOGLENET_MODULES.items():
        if module in ("4a", "5a"):
            x = layers.MaxPooling2D(3, strides=2)(x)
        x = inception_module(x, filters, three_kernel)
        if module in ("4a", "4d"):
            auxiliary_inputs[f"aux{len(auxiliary_inputs) + 1}_"] = x
    x = layers.Dropout(dropout)(layers.GlobalAveragePooling2D()(x))
    outputs = two_heads(layers.Dense(hidden, activation="relu")(x))
    if aux_heads:
        for prefix, source in auxiliary_inputs.items():
            outputs.update(auxiliary_classifier(source, prefix, hidden, aux_dropout))
    return keras.Model(pixels, outputs, name="googlenet")


# ----------------------------------------------------------------------------------------------------------
# resnet-cpu: our airbench-style residual net
# ----------------------------------------------------------------------------------------------------------

STEM_WIDTH = 32
BATCHNORM_MOMENTUM = 0.9  # Keras' 0.99 lags badly over the few thousand steps a CPU run affords
POOLINGS = ("max", "avg")


def conv_bn_act(x: keras.KerasTensor, filters: int, activation: str = "gelu",
                name: str | None = None) -> keras.KerasTensor:
    """3x3 'same' convolution (no bias), BatchNorm, then ``activation``."""
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=BATCHNORM_MOMENTUM)(x)
    return activate(x, activation)


def residual_stage(x: keras.KerasTensor, width: int, activation: str = "gelu") -> keras.KerasTensor:
    """Airbench-style stage: conv -> 2x2 max pool -> BatchNorm -> activation, then one residual conv block."""
    x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
    x = layers.MaxPooling2D(2)(x)
    x = activate(layers.BatchNormalization(momentum=BATCHNORM_MOMENTUM)(x), activation)
    return layers.Add()([x, conv_bn_act(x, width, activation)])


def head_branch(x: keras.KerasTensor, head: str, width: int, pooling: str, dropout: float,
                activation: str = "gelu"):
    """A head's own conv block on the shared features, global pooling, dropout and its softmax."""
    x = conv_bn_act(x, width, activation, name=f"{head}_conv")
    pool = layers.GlobalMaxPooling2D() if pooling == "max" else layers.GlobalAveragePooling2D()
    x = layers.Dropout(dropout)(pool(x))
    return softmax_head(x, head)


WHITENING_LAYER = "whiten"  # the frozen 2x2 patch-whitening stem (cifarmix.whitening fills its kernel)
WHITENING_PATCH = 2
WHITENING_WIDTH = 2 * WHITENING_PATCH * WHITENING_PATCH * 3  # each whitened direction, positive and negative


def whitening_stem(x: keras.KerasTensor, activation: str) -> keras.KerasTensor:
    """A frozen 2x2 convolution whose filters whiten the patches of mixed training images (set from data when
    training starts, ``cifarmix.whitening``), then BatchNorm and ``activation``: the fast CIFAR-10 recipes' stem."""
    x = layers.Conv2D(WHITENING_WIDTH, WHITENING_PATCH, padding="same", use_bias=False, trainable=False,
                      name=WHITENING_LAYER)(x)
    x = layers.BatchNormalization(momentum=BATCHNORM_MOMENTUM)(x)
    return activate(x, activation)


def build_resnet_cpu(
    widths: Sequence[int] = (64, 256, 256),
    head_width: int = 128,
    dropout: float = 0.1,
    pooling: str = "max",
    activation: str = "gelu",
    head_stages: int = 0,
    whiten: bool = False,
) -> keras.Model:
    """Our CPU-friendly net: 3x3 stem (32), three residual stages at ``widths`` (32 -> 16 -> 8 -> 4 pixels),
    then per head a separate conv block (``head_width``), global ``pooling``, dropout and softmax.
    ``activation`` is GELU (the first champion) or ReLU (about 1.5x the training speed on these CPUs).
    ``head_stages``: the last stages each head has a copy of its own (the 82.75% peer's design; 0: all shared).
    ``whiten``: a frozen patch-whitening stem in place of the 3x3 one.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
    if not 0 <= head_stages <= len(widths):
        raise ValueError(f"head_stages must lie in 0..{len(widths)} (the stages); got {head_stages}.")
    pixels = pixel_input()
    x = rescale(pixels)
    x = whitening_stem(x, activation) if whiten else conv_bn_act(x, STEM_WIDTH, activation)
    shared = len(widths) - head_stages
    for width in widths[:shared]:
        x = residual_stage(x, int(width), activation)
    outputs = {}
    for head in HEADS:
        own = x
        for width in widths[shared:]:
            own = residual_stage(own, int(width), activation)
        outputs[head] = head_branch(own, head, head_width, pooling, dropout, activation)
    return keras.Model(pixels, outputs, name="resnet_cpu")


# ----------------------------------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------------------------------

_ENTRIES = (
    Architecture(
        name="random",
        title="Random baseline",
        description="Flatten straight into two softmax heads: untrained it guesses (about 20% per head), "
        "the floor every network must beat.",
        builder=build_random,
        needs_gpu=False,
        source="seed notebook: random_model, ~20%",
    ),
    Architecture(
        name="allconv",
        title="All-convolutional (ACCNRR)",
        description="Eight valid ReLU convolutions with BatchNorm, global average pooling and two L2-penalised "
        "heads; the seed notebook's best model (1.37M parameters).",
        builder=build_allconv,
        needs_gpu=False,
        source="seed notebook: ACCNRR, 77.2%",
        default_options={"activation": "relu", "head_l2": 0.001},
        option_rules={"activation": ACTIVATION, "head_l2": Option("float", 0, 1)},
    ),
    Architecture(
        name="allconv-leaky",
        title="All-convolutional, LeakyReLU (ACCNL)",
        description="The all-convolutional net with LeakyReLU activations and no L2 on the heads, "
        "from the seed notebook's activation ablation.",
        builder=build_allconv,
        needs_gpu=False,
        source="seed notebook: ACCNL (appendix), 74.5%",
        default_options={"activation": "leaky_relu", "head_l2": 0.0},
        option_rules={"activation": ACTIVATION, "head_l2": Option("float", 0, 1)},
    ),
    Architecture(
        name="fmp",
        title="Fractional max pooling (FMP3)",
        description="Six 2x2 LeakyReLU convolutions each followed by pseudo-random overlapping fractional max "
        "pooling (32 -> 2 pixels), dropout 0.5 and two heads; small (474k) but CPU-bound to train.",
        builder=build_fmp,
        needs_gpu=False,
        source="seed notebook: FMP3, 69.7%",
        default_options={"dropout": 0.5, "overlapping": True},
        option_rules={"dropout": DROPOUT, "overlapping": Option("bool")},
    ),
    Architecture(
        name="large-allconv",
        title="Large all-convolutional (LACNN)",
        description="Upscales each image to 126x126 inside the model and runs sixteen wide 2x2 LeakyReLU "
        "convolutions; 70M parameters, far too slow without a GPU.",
        builder=build_large_allconv,
        needs_gpu=True,
        source="seed notebook: LACNN, 70.4% validation",
    ),
    Architecture(
        name="inception-naive",
        title="Naive Inception v1 module",
        description="One naive Inception module (1x1, 3x3, 5x5 convolutions and max pooling side by side) "
        "flattened into a 1000-unit layer: about 232M parameters, almost all in that layer.",
        builder=build_inception_naive,
        needs_gpu=True,
        source="Inception report: naive Inception v1, 56% on CIFAR-10",
        default_options={"hidden": 1000},
        option_rules={"hidden": HIDDEN},
    ),
    Architecture(
        name="googlenet",
        title="GoogLeNet (Inception v1, dimension reduction)",
        description="Nine Inception modules with 1x1 reductions following the report's table, whose '3x3' "
        "branches are 1x1 (option three_by_three restores 3x3); optional auxiliary classifiers.",
        builder=build_googlenet,
        needs_gpu=False,
        source="Inception report: Inception v1 with dimension reduction (GoogLeNet)",
        default_options={
            "three_by_three": False, "aux_heads": False, "hidden": 1000, "dropout": 0.4, "aux_dropout": 0.7,
        },
        option_rules={"three_by_three": Option("bool"), "aux_heads": Option("bool"), "hidden": HIDDEN,
                      "dropout": DROPOUT, "aux_dropout": DROPOUT},
    ),
    Architecture(
        name="resnet-cpu",
        title="Residual net for CPUs (ours)",
        description="An airbench-style residual network (stages of 64/256/256 channels, GELU, BatchNorm) with a "
        "separate conv block per head; built to train well on a CPU.",
        builder=build_resnet_cpu,
        needs_gpu=False,
        source="cifarmix: airbench-style design",
        default_options={"widths": [64, 256, 256], "head_width": 128, "dropout": 0.1, "pooling": "max",
                         "activation": "gelu", "head_stages": 0, "whiten": False},
        option_rules={"widths": Option("ints", 8, 1024, length=3), "head_width": WIDTH, "dropout": DROPOUT,
                      "pooling": Option("choice", choices=POOLINGS), "activation": ACTIVATION,
                      "head_stages": Option("int", 0, 3), "whiten": Option("bool")},
    ),
)

ARCHITECTURES: dict[str, Architecture] = {entry.name: entry for entry in _ENTRIES}


def names() -> list[str]:
    """The registered architecture names, in registry order."""
    return list(ARCHITECTURES)


def get(name: str) -> Architecture:
    """The architecture called ``name``; ValueError listing the valid names otherwise."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; choose one of: {', '.join(names())}.")
    return ARCHITECTURES[name]


def check_options(name: str, options: dict | None = None) -> dict:
    """``options`` merged over the architecture's defaults.

    Raises:
        ValueError: for options that are not an object, unknown or non-JSON options, or a value of the wrong type
            or out of its range (``Architecture.option_rules``), naming the option and what it accepts.
    """
    architecture = get(name)
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"Options for {name!r} must be an object of option -> value; got {options!r}.")
    options = dict(options or {})
    unknown = sorted(set(options) - set(architecture.default_options))
    if unknown:
        valid = ", ".join(sorted(architecture.default_options)) or "none"
        raise ValueError(f"Unknown option(s) {', '.join(unknown)} for architecture {name!r}; valid options: {valid}.")
    try:
        json.dumps(options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Options for {name!r} must be JSON values (numbers, strings, lists): {error}") from None
    for option, value in options.items():
        rule = architecture.option_rules.get(option)
        if rule is not None and not rule.fits(value):
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise ValueError(f"{option} must be {rule.accepted()} for architecture {name!r}; got {shown}.")
    return {**architecture.default_options, **options}


# Parameters of the networks whose size no option changes (their seed tables, checked by the tests).
_FIXED_PARAMS = {"random": 30_730, "allconv": 1_374_730, "allconv-leaky": 1_374_730, "fmp": 474_410,
                 "large-allconv": 70_098_570}
# GoogLeNet without its last Dense layer and heads: with the table's 1x1 "3x3" branches, and with real 3x3 kernels.
_GOOGLENET_BASE = {False: 3_173_680, True: 5_831_984}
_GOOGLENET_FEATURES = 1024  # channels after 5b's global pooling
_GOOGLENET_AUX_FEATURES = (2048, 2112)  # the auxiliary classifiers' flattened 2x2 pools of 4a and 4d
_NAIVE_FEATURES, _NAIVE_MODULE = 32 * 32 * 227, 256 + 3584 + 2432  # flattened module output; its convolutions


def _dense_and_heads(features: int, hidden: int) -> int:
    """Dense(hidden) on ``features`` inputs, then the two 5-way heads."""
    return features * hidden + hidden + 2 * (5 * hidden + 5)


def _stage_copies(resolved: dict) -> list[tuple[int, int]]:
    """``resnet-cpu``'s stages as (width, copies): shared stages once, the last ``head_stages`` once per head."""
    widths = resolved["widths"]
    shared = len(widths) - resolved["head_stages"]
    return [(width, 1 if index < shared else len(HEADS)) for index, width in enumerate(widths)]


def estimated_params(name: str, **options) -> int:
    """The parameter count of ``build(name, **options)`` from the architecture's shapes, without building it
    (so a huge option is refused in microseconds, not after allocating it). Equal to :func:`param_count`."""
    resolved = check_options(name, options)
    if name in _FIXED_PARAMS:
        return _FIXED_PARAMS[name]
    if name == "inception-naive":
        return _NAIVE_MODULE + _dense_and_heads(_NAIVE_FEATURES, resolved["hidden"])
    if name == "googlenet":
        hidden = resolved["hidden"]
        total = _GOOGLENET_BASE[bool(resolved["three_by_three"])] + _dense_and_heads(_GOOGLENET_FEATURES, hidden)
        if resolved["aux_heads"]:
            total += sum(_dense_and_heads(features, hidden) for features in _GOOGLENET_AUX_FEATURES)
        return total
    if name == "resnet-cpu":
        def conv_bn(inputs: int, filters: int) -> int:  # 3x3 convolution without bias, BatchNorm's 4 per channel
            return 9 * inputs * filters + 4 * filters

        if resolved["whiten"]:  # 2x2 kernel, then BatchNorm
            total, channels = 4 * 3 * WHITENING_WIDTH + 4 * WHITENING_WIDTH, WHITENING_WIDTH
        else:
            total, channels = conv_bn(3, STEM_WIDTH), STEM_WIDTH
        for width, copies in _stage_copies(resolved):
            total += copies * (conv_bn(channels, width) + conv_bn(width, width))
            channels = width
        head = resolved["head_width"]
        return total + 2 * (conv_bn(channels, head) + 5 * head + 5)
    return param_count(name, **options)  # an architecture without a formula: build it once


def activation_floats(name: str, **options) -> int | None:
    """Roughly the floats one training image keeps for the backward pass (the layers' outputs), for the
    architectures whose options set their widths (``resnet-cpu``); None for the others (their size is fixed)."""
    if name != "resnet-cpu":
        return None
    resolved = check_options(name, options)
    size = 32
    total = 3 * size * size * (WHITENING_WIDTH if resolved["whiten"] else STEM_WIDTH)  # stem: conv, BatchNorm, act
    for width, copies in _stage_copies(resolved):
        # convolution at this size, then pool, BatchNorm, activation and the residual block at half the size
        total += copies * (size * size * width + 7 * (size // 2) ** 2 * width)
        size //= 2
    return total + 2 * 4 * size * size * resolved["head_width"]


PARAMETER_BUDGET = {"cpu": 50_000_000, "gpu": 1_000_000_000}  # the largest network cifarmix trains on each


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU here."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def memory_budget_bytes() -> int:
    """Half this machine's memory: what one training's weights, optimizer state and activations may take."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (OSError, ValueError):
        return 8 * 2**30


def check_budget(name: str, options: dict | None = None, batch_size: int = 1, gpu: bool | None = None) -> int:
    """Refuse a network too big to train here, before anything is built; returns its parameter count.

    The parameters are counted from the shapes (:func:`estimated_params`); on a CPU at most
    ``PARAMETER_BUDGET["cpu"]``. The memory of one step (weights, gradients and two optimizer moments per
    parameter, plus ``batch_size`` images' activations twice over) must fit in :func:`memory_budget_bytes`.

    Raises:
        ValueError: naming the network's size and the budget it exceeds.
    """
    options = dict(options or {})
    params = estimated_params(name, **options)
    device = "gpu" if (has_gpu() if gpu is None else gpu) else "cpu"
    limit = PARAMETER_BUDGET[device]
    if params > limit:
        hint = " (it needs a GPU)" if device == "cpu" else ""
        raise ValueError(f"{name} with these options has {params:,} parameters; cifarmix trains at most {limit:,} "
                         f"on a {device.upper()}{hint}: choose smaller options.")
    floats = activation_floats(name, **options) or 0
    needed = 16 * params + 8 * floats * batch_size
    budget = memory_budget_bytes()
    if needed > budget:
        raise ValueError(f"{name} with these options at batch size {batch_size} needs about {needed / 2**30:.1f} GB "
                         f"per training step; this machine allows {budget / 2**30:.1f} GB: choose smaller widths or "
                         "a smaller batch.")
    return params


def build(name: str, **options) -> keras.Model:
    """A freshly initialised model of architecture ``name`` with ``options`` over its defaults."""
    return get(name).builder(**check_options(name, options))


def param_count(name: str, **options) -> int:
    """The parameter count of ``build(name, **options)``, built once per process and then cached."""
    resolved = check_options(name, options)
    return _cached_param_count(name, json.dumps(resolved, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _cached_param_count(name: str, options_json: str) -> int:
    """Build, count and release a model (the big ones hold gigabytes, so collect them at once)."""
    model = get(name).builder(**json.loads(options_json))
    count = count_params(model)
    del model
    gc.collect()
    return count


def describe() -> list[dict]:
    """One row per architecture for a CLI table or a UI select box (builds each default model once)."""
    return [
        {
            "name": entry.name,
            "title": entry.title,
            "params": param_count(entry.name),
            "needs_gpu": entry.needs_gpu,
            "description": entry.description,
        }
        for entry in _ENTRIES
    ]
