"""Test-time views: the Translate layer and the view-averaging wrapper that shipped models carry."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import cifarmix  # noqa: F401  (registers the custom layers)
from cifarmix import mixing, models, views
from cifarmix.layers import Translate

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (3, 32, 32, 3)).astype("float32")


def shifted_by_numpy(images, rows, cols):
    margin = max(abs(rows), abs(cols))
    padded = np.pad(images, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="reflect")
    return padded[:, margin - rows:margin - rows + 32, margin - cols:margin - cols + 32]


@pytest.mark.parametrize("rows, cols", [(0, 0), (1, 1), (-1, -1), (2, -1), (0, 1)])
def test_translate_shifts_with_reflection_like_numpy(rows, cols):
    out = keras.ops.convert_to_numpy(Translate(rows, cols)(IMAGES))
    assert out.shape == IMAGES.shape
    assert np.array_equal(out, shifted_by_numpy(IMAGES, rows, cols))
    if rows >= 0 and cols >= 0:
        assert np.array_equal(out[:, rows:, cols:], IMAGES[:, :32 - rows, :32 - cols]), "content moves down-right"


def test_shifting_a_mix_is_mixing_the_shifted_components():
    a, b = IMAGES[:1], IMAGES[1:2]
    shift = Translate(1, -1)
    mixed_then_shifted = keras.ops.convert_to_numpy(shift(mixing.mix(a, b, 0.5)))
    shifted_then_mixed = mixing.mix(keras.ops.convert_to_numpy(shift(a)), keras.ops.convert_to_numpy(shift(b)), 0.5)
    assert np.allclose(mixed_then_shifted, shifted_then_mixed, atol=1e-4)


def tiny_network() -> keras.Model:
    pixels = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255)(pixels))
    x = keras.layers.Flatten()(x)
    heads = {head: keras.layers.Dense(5, activation="softmax", name=head)(x) for head in mixing.HEADS}
    return keras.Model(pixels, heads, name="tiny")


def test_view_averaging_averages_each_shifted_view_and_its_mirror(tmp_path):
    network = tiny_network()
    shifts = ((0, 0), (1, 1), (-1, -1))
    wrapped = views.with_view_averaging(network, shifts)
    images = [image for rows, cols in shifts
              for image in (shifted_by_numpy(IMAGES, rows, cols), shifted_by_numpy(IMAGES, rows, cols)[:, :, ::-1])]
    expected = {head: np.mean([models.predict(network, image)[head] for image in images], axis=0)
                for head in mixing.HEADS}
    loaded = models.load_model(models.save_atomically(wrapped, tmp_path / "views.keras"))  # safe_mode load
    for model in (wrapped, loaded):
        answers = models.predict(model, IMAGES)
        for head in mixing.HEADS:
            assert np.allclose(answers[head], expected[head], atol=1e-5)
    assert wrapped.name == "tiny_view_averaged" and views.with_view_averaging(network).name == "tiny_flip_averaged"


@pytest.mark.parametrize("shifts", [(), ((1, 1), (1, 1))])
def test_view_averaging_refuses_no_or_repeated_shifts(shifts):
    with pytest.raises(ValueError, match="distinct"):
        views.with_view_averaging(tiny_network(), shifts)


def test_named_view_sets_count_their_images_and_unknown_names_are_refused():
    network = tiny_network()
    assert views.with_views(network, "none") is network
    assert [views.view_count(name) for name in ("none", "flip", "flip-diagonal", "flip-cross")] == [1, 2, 6, 10]
    answers = models.predict(views.with_views(network, "flip-diagonal"), IMAGES)
    assert answers["first"].shape == (3, 5) and np.allclose(answers["second"].sum(axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="flip-diagonal"):
        views.with_views(network, "sideways")
