"""Groups, mixing, fresh training pairs per epoch, fixed evaluation pairs, component augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from cifarmix import mixing


@pytest.fixture
def groups():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 10
    x = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    return mixing.split_groups(x, y)


def test_groups_hold_classes_0_to_4_and_5_to_9_relabelled(groups):
    assert set(groups.a_y) == set(range(5)) and set(groups.b_y) == set(range(5))
    assert len(groups.a_x) == len(groups.b_x) == 100


def test_split_refuses_a_missing_group():
    with pytest.raises(ValueError, match="both groups"):
        mixing.split_groups(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 3]))


def test_mix_is_the_weighted_average():
    a = np.full((1, 32, 32, 3), 200, np.uint8)
    b = np.full((1, 32, 32, 3), 100, np.uint8)
    assert mixing.mix(a, b).dtype == np.float32
    assert np.allclose(mixing.mix(a, b), 150)
    assert np.allclose(mixing.mix(a, b, alpha=0.75), 175)


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5])
def test_alpha_outside_the_open_interval_is_refused(alpha):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        mixing.check_alpha(alpha)


def test_training_pairs_are_fresh_each_epoch_and_reproducible(groups):
    data = mixing.MixedPairs(groups, batch_size=16, steps_per_epoch=4, seed=3)
    first_epoch = data.ia.copy()
    data.on_epoch_end()
    assert not np.array_equal(first_epoch, data.ia)
    again = mixing.MixedPairs(groups, batch_size=16, steps_per_epoch=4, seed=3, epoch=1)
    assert np.array_equal(again.ia, data.ia), "a resumed run must see the same pairs for the same epoch"


def test_batches_have_mixed_pixels_and_one_hot_targets(groups):
    data = mixing.MixedPairs(groups, batch_size=8, steps_per_epoch=2, seed=0)
    x, y = data[1]
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32
    assert set(y) == {"first", "second"} and y["first"].shape == (8, 5)
    expected = mixing.mix(groups.a_x[data.ia[8:16]], groups.b_x[data.ib[8:16]])
    assert np.allclose(x, expected)
    assert np.array_equal(y["first"].argmax(1), groups.a_y[data.ia[8:16]])


def test_auxiliary_outputs_get_their_heads_labels(groups):
    data = mixing.MixedPairs(groups, batch_size=4, steps_per_epoch=1, output_names=("first", "second", "aux1_first"))
    _, y = data[0]
    assert np.array_equal(y["aux1_first"], y["first"])


def test_fixed_pairs_are_identical_for_the_same_seed(groups):
    one = mixing.FixedPairs(groups, batch_size=10, count=25, seed=7)
    two = mixing.FixedPairs(groups, batch_size=10, count=25, seed=7)
    assert len(one) == 3 and np.array_equal(one[2][0], two[2][0])
    assert len(one[2][0]) == 5
    assert one.labels()["first"].shape == (25,)


def test_augmentation_flips_and_shifts_but_keeps_content():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    out = mixing.augment(images, rng, translate=2, flip=True)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    unchanged = mixing.augment(images, rng, translate=0, flip=False)
    assert np.array_equal(unchanged, images)


def test_augmented_training_batches_differ_from_plain_ones(groups):
    plain = mixing.MixedPairs(groups, batch_size=8, steps_per_epoch=1, seed=1)
    augmented = mixing.MixedPairs(groups, batch_size=8, steps_per_epoch=1, seed=1, augment_translate=2,
                                  augment_flip=True)
    assert np.array_equal(plain.ia, augmented.ia)
    assert not np.allclose(plain[0][0], augmented[0][0])
