"""Test-time views: a model's answers averaged over the image, its mirror image and shifted copies.

Shifting or mirroring a mixed image is the same as mixing the shifted or mirrored components, so each view is
a fair question for the model. The views live inside the saved model (``export`` wraps the trained network),
so the app, the CLI and the evaluator all get the same answers.
"""

from __future__ import annotations

import keras

from cifarmix import models
from cifarmix.heads import HEADS

NO_SHIFT = ((0, 0),)
# Named sets of test-time views: the (rows, cols) shifts averaged, each with its mirror image (None: one view).
VIEW_SETS: dict[str, tuple | None] = {
    "none": None,
    "flip": NO_SHIFT,
    "flip-diagonal": ((0, 0), (1, 1), (-1, -1)),
    "flip-cross": ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)),
    "flip-diagonal2": ((0, 0), (2, 2), (-2, -2)),
}


def view_count(views: str) -> int:
    """How many images a view set predicts per input."""
    shifts = VIEW_SETS[views]
    return 1 if shifts is None else 2 * len(shifts)


def network_of(model: keras.Model) -> keras.Model:
    """The trained network inside a view-averaging model (the model itself when it averages nothing)."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner[0] if len(inner) == 1 else model


def with_views(model: keras.Model, views: str) -> keras.Model:
    """``model`` averaged over the named view set (itself for ``none``)."""
    if views not in VIEW_SETS:
        raise ValueError(f"unknown view set {views!r}; choose one of {', '.join(VIEW_SETS)}")
    shifts = VIEW_SETS[views]
    if shifts is None:
        return model
    with models.precision_policy("float32"):
        return with_view_averaging(model, shifts)


def with_view_averaging(model: keras.Model, shifts=NO_SHIFT) -> keras.Model:
    """A model that averages ``model``'s answers, per head, over views of the image: for each (rows, cols)
    in ``shifts``, the image shifted so (reflected at the border) and its mirror image.

    The default, no shift, is flip averaging: the image and its mirror image.
    """
    from cifarmix.layers import HorizontalFlip, Translate

    shifts = tuple((int(rows), int(cols)) for rows, cols in shifts)
    if not shifts or len(set(shifts)) != len(shifts):
        raise ValueError(f"shifts must be distinct (rows, cols) pairs, at least one; got {shifts}")
    pixels = keras.Input((32, 32, 3), name="pixels")
    answers = []
    for rows, cols in shifts:
        tag = f"{rows}_{cols}".replace("-", "m")
        shifted = pixels if (rows, cols) == (0, 0) else Translate(rows, cols, name=f"shift_{tag}")(pixels)
        mirrored = HorizontalFlip(name="mirror" if tag == "0_0" else f"mirror_{tag}")(shifted)
        answers += [model(shifted), model(mirrored)]
    outputs = {head: keras.layers.Average(name=head)([answer[head] for answer in answers]) for head in HEADS}
    suffix = "flip_averaged" if shifts == NO_SHIFT else "view_averaged"
    return keras.Model(pixels, outputs, name=f"{model.name}_{suffix}")
