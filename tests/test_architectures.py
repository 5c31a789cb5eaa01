"""Tests for the architecture registry and custom layers: exact parameter counts against the seed tables,
the two-head contract, safe save/load, fractional max pooling, and helpful errors. No training."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import cifarmix  # noqa: F401  (registers the custom layers, as every user of a saved model must)
from cifarmix import architectures
from cifarmix.layers import FractionalMaxPooling2D

HUGE = {"large-allconv", "inception-naive"}
BUILDABLE = [name for name in architectures.names() if name not in HUGE]


def pixel_batch(count: int = 2, seed: int = 0) -> np.ndarray:
    """Float32 pixels in [0, 255], shape (count, 32, 32, 3)."""
    return np.random.default_rng(seed).uniform(0, 255, size=(count, 32, 32, 3)).astype("float32")


def layer_sizes(model: keras.Model, layer_type: type) -> list[int]:
    """The spatial output size of every layer of ``layer_type`` in ``model``, in order."""
    return [layer.output.shape[1] for layer in model.layers if isinstance(layer, layer_type)]


@pytest.fixture
def restore_dtype_policy():
    """Put the global dtype policy back after a mixed-precision test."""
    yield
    keras.mixed_precision.set_dtype_policy("float32")


# --- parameter counts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, options, expected",
    [
        ("random", {}, 2 * (32 * 32 * 3 * 5 + 5)),
        ("allconv", {}, 1_374_730),  # seed notebook, ACCNRR summary
        ("allconv-leaky", {}, 1_374_730),  # seed notebook, ACCNL summary
        ("fmp", {}, 474_410),  # seed notebook, FMP3 summary
        ("googlenet", {"aux_heads": True}, 8_390_710),  # Inception report, GoogLeNet table total
        ("googlenet", {}, 8_390_710 - 2_049_000 - 2_113_000 - 4 * 5_005),  # the same without auxiliaries
    ],
)
def test_param_counts_match_the_seed_tables(name, options, expected):
    assert architectures.param_count(name, **options) == expected


def test_resnet_cpu_stays_small():
    assert architectures.param_count("resnet-cpu") < 3_000_000


@pytest.mark.slow
def test_huge_architectures_match_the_seed_tables():
    assert architectures.param_count("inception-naive") == 32 * 32 * 227 * 1000 + 1000 + 256 + 3584 + 2432 + 10_010
    model = architectures.build("large-allconv")
    assert architectures.count_params(model) == 70_098_570
    assert layer_sizes(model, keras.layers.Conv2D) == [125, 124, 62, 61, 60, 30, 29, 28, 14, 13, 12, 6, 5, 4, 2, 1]


def test_allconv_sizes_follow_the_seed_table():
    model = architectures.build("allconv")
    assert layer_sizes(model, keras.layers.Conv2D) == [30, 28, 13, 11, 9, 4, 2, 2]


def test_googlenet_modules_follow_the_table():
    model = architectures.build("googlenet")
    modules = [layer.output.shape[1:] for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert [size for size, _, _ in modules] == [13, 13, 6, 6, 6, 6, 6, 2, 2]
    assert [channels for _, _, channels in modules] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]


def kernel_sizes(model: keras.Model) -> set[int]:
    """The distinct square kernel sizes of the model's convolutions."""
    return {layer.kernel_size[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}


def test_googlenet_follows_the_table_quirk_unless_three_by_three():
    assert kernel_sizes(architectures.build("googlenet")) == {1, 5, 7}
    assert kernel_sizes(architectures.build("googlenet", three_by_three=True)) == {1, 3, 5, 7}


# --- the two-head contract ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILDABLE)
def test_every_architecture_maps_pixels_to_two_softmax_heads(name):
    model = architectures.build(name)
    predictions = model.predict(pixel_batch(), verbose=0)
    assert set(predictions) == {"first", "second"}
    for head in ("first", "second"):
        assert predictions[head].shape == (2, 5)
        np.testing.assert_allclose(predictions[head].sum(axis=1), 1.0, rtol=1e-5)
        assert model.get_layer(head).dtype_policy.compute_dtype == "float32"
    assert tuple(model.inputs[0].shape) == (None, 32, 32, 3)


def test_rescaling_is_inside_the_model():
    model = architectures.build("allconv")
    assert isinstance(model.get_layer("rescale"), keras.layers.Rescaling)


def test_googlenet_auxiliary_heads_are_extra_outputs():
    model = architectures.build("googlenet", aux_heads=True)
    predictions = model.predict(pixel_batch(), verbose=0)
    assert set(predictions) == {"first", "second", "aux1_first", "aux1_second", "aux2_first", "aux2_second"}
    assert all(value.shape == (2, 5) for value in predictions.values())


@pytest.mark.parametrize("name, options", [("allconv", {}), ("fmp", {}), ("resnet-cpu", {}), ("googlenet", {})])
def test_safe_save_and_load_gives_identical_predictions(tmp_path, name, options):
    model = architectures.build(name, **options)
    batch = pixel_batch(4)
    before = model.predict(batch, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = loaded.predict(batch, verbose=0)
    for head in ("first", "second"):
        np.testing.assert_array_equal(before[head], after[head])


# --- fractional max pooling ---------------------------------------------------------------------------------


def test_fmp_sizes_follow_the_seed_table():
    model = architectures.build("fmp")
    assert layer_sizes(model, keras.layers.Conv2D) == [31, 21, 14, 9, 5, 3, 1, 1]
    assert layer_sizes(model, FractionalMaxPooling2D) == [22, 15, 10, 6, 4, 2]


def test_fractional_pooling_is_fixed_at_inference_and_random_in_training():
    layer = FractionalMaxPooling2D(31 / 22, seed=3)
    images = np.random.default_rng(1).normal(size=(2, 31, 31, 4)).astype("float32")
    inference = [np.asarray(layer(images, training=False)) for _ in range(3)]
    training = [np.asarray(layer(images, training=True)) for _ in range(12)]
    assert inference[0].shape == (2, 22, 22, 4)
    assert all(np.array_equal(inference[0], other) for other in inference[1:])
    assert any(not np.array_equal(training[0], other) for other in training[1:])


def test_fractional_pooling_config_round_trips():
    layer = FractionalMaxPooling2D([1.5, 1.25], overlapping=False, seed=9)
    clone = FractionalMaxPooling2D.from_config(json.loads(json.dumps(layer.get_config())))
    assert clone.get_config() == layer.get_config()


def test_fractional_pooling_rejects_a_zero_seed():
    with pytest.raises(ValueError, match="seed"):
        FractionalMaxPooling2D(2.0, seed=0)


def test_fmp_trains_one_step_with_auto_jit():
    model = architectures.build("fmp")
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile="auto")
    labels = np.eye(5, dtype="float32")[[0, 3]]
    losses = model.train_on_batch(pixel_batch(), {"first": labels, "second": labels})
    assert model.jit_compile is False  # the FractionalMaxPool op has no XLA kernel
    assert np.all(np.isfinite(losses))


@pytest.mark.parametrize("name", ["fmp", "resnet-cpu"])
def test_mixed_precision_keeps_float32_heads(name, restore_dtype_policy):
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    model = architectures.build(name)
    predictions = model.predict(pixel_batch(), verbose=0)
    assert predictions["first"].dtype == np.float32
    np.testing.assert_allclose(predictions["second"].sum(axis=1), 1.0, rtol=1e-5)


# --- registry and errors ------------------------------------------------------------------------------------


def test_registry_entries_are_complete_and_json_friendly():
    assert {"random", "allconv", "allconv-leaky", "fmp", "large-allconv", "inception-naive", "googlenet",
            "resnet-cpu"} == set(architectures.names())
    for name, entry in architectures.ARCHITECTURES.items():
        assert entry.name == name and entry.title and entry.description and entry.source
        assert json.loads(json.dumps(entry.default_options)) == entry.default_options
    assert {name for name in architectures.names() if architectures.get(name).needs_gpu} == HUGE


def test_describe_lists_every_architecture(monkeypatch):
    monkeypatch.setattr(architectures, "param_count", lambda name: 123)
    rows = architectures.describe()
    assert [row["name"] for row in rows] == architectures.names()
    assert set(rows[0]) == {"name", "title", "params", "needs_gpu", "description"}


def test_unknown_architecture_names_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown architecture 'nope'.*allconv.*resnet-cpu"):
        architectures.get("nope")
    with pytest.raises(ValueError, match="choose one of"):
        architectures.build("nope")


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown option.*depth.*valid options: activation, dropout, head_stages, head_width"):
        architectures.build("resnet-cpu", depth=3)
    with pytest.raises(ValueError, match="valid options: none"):
        architectures.param_count("large-allconv", hidden=10)


def test_options_must_be_json_values():
    with pytest.raises(ValueError, match="JSON"):
        architectures.check_options("resnet-cpu", {"dropout": object()})


def test_options_override_defaults():
    assert architectures.check_options("googlenet", {"aux_heads": True})["aux_heads"] is True
    small = architectures.build("resnet-cpu", widths=[16, 32, 32], head_width=16)
    assert architectures.count_params(small) < architectures.param_count("resnet-cpu")
