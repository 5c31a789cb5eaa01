"""cifarmix.answers: a model's answers to test-image mixes, each pair computed once, bounded, same as predict."""

from __future__ import annotations

import numpy as np
import pytest

from cifarmix import pairs
from cifarmix.answers import AnswerCache


def fake_model(calls: list):
    """Probabilities that depend on the image (so a wrong row would show), recording each batch's size."""
    def predict(images):
        calls.append(len(images))
        means = images.reshape(len(images), -1).mean(axis=1, keepdims=True)
        return {"first": np.hstack([means + k for k in range(5)]).astype(np.float32),
                "second": np.hstack([means * (k + 1) for k in range(5)]).astype(np.float32)}
    return predict


@pytest.fixture
def x_test():
    return np.random.default_rng(0).uniform(0, 255, (20, 32, 32, 3)).astype(np.float32)


def test_answers_are_the_models_own_in_the_asked_order_and_each_pair_is_computed_once(x_test):
    calls = []
    cache = AnswerCache(fake_model(calls))
    asked = [pairs.Pair(1, 12), pairs.Pair(3, 15, 0.3), pairs.Pair(1, 12)]
    expected = fake_model([])(pairs.pair_images(x_test, asked))
    got = cache.predict_pairs(asked, x_test)
    for head in ("first", "second"):
        np.testing.assert_array_equal(got[head], expected[head])
    assert calls == [2]  # one batch, the repeated pair once
    again = cache.predict_pairs([pairs.Pair(3, 15, 0.3), pairs.Pair(4, 16)], x_test)
    assert calls == [2, 1]  # only the new pair was asked for
    np.testing.assert_array_equal(again["first"][0], expected["first"][1])
    assert cache.computed == 3 and len(cache) == 3


def test_the_weight_is_part_of_the_key_and_the_oldest_answer_goes_first(x_test):
    calls = []
    cache = AnswerCache(fake_model(calls), capacity=2)
    cache.predict_pairs([pairs.Pair(1, 12, 0.5)], x_test)
    cache.predict_pairs([pairs.Pair(1, 12, 0.4)], x_test)
    cache.predict_pairs([pairs.Pair(1, 12, 0.5)], x_test)  # held: now the most recent
    cache.predict_pairs([pairs.Pair(2, 13)], x_test)  # pushes out (1, 12, 0.4)
    assert calls == [1, 1, 1] and len(cache) == 2
    cache.predict_pairs([pairs.Pair(1, 12, 0.4)], x_test)
    assert calls == [1, 1, 1, 1]


def test_no_pairs_and_a_bad_capacity(x_test):
    cache = AnswerCache(fake_model([]))
    assert cache.predict_pairs([], x_test)["first"].shape == (0, 5)
    with pytest.raises(ValueError, match="at least 1"):
        AnswerCache(fake_model([]), capacity=0)
