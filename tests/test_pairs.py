"""cifarmix.pairs: a mix's two test indices and weight, its URL form, random and gallery pairs, captions."""

from __future__ import annotations

import numpy as np
import pytest

from cifarmix import mixing, pairs

Y_TEST = np.arange(400) % 10  # like the tiny tarball: 40 test images per class


def test_random_pair_respects_requested_classes_and_groups():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pair = pairs.random_pair(Y_TEST, rng)
        assert Y_TEST[pair.a_index] < 5 <= Y_TEST[pair.b_index]
    pair = pairs.random_pair(Y_TEST, rng, first=3, second=9, alpha=0.7)
    assert (Y_TEST[pair.a_index], Y_TEST[pair.b_index], pair.alpha) == (3, 9, 0.7)
    assert list(pairs.class_members(Y_TEST, 3)[:3]) == [3, 13, 23]


@pytest.mark.parametrize("pair", [pairs.Pair(13, 29, 0.35), pairs.Pair(0, 399), pairs.Pair(4, 5, 0.05),
                                  pairs.Pair(390, 9, 0.95), pairs.Pair(2, 7, 0.1234)])
def test_a_pair_round_trips_through_the_url_query(pair):
    query = pair.to_query()
    assert set(query) == {"a", "b", "w"} and all(isinstance(v, str) for v in query.values())
    assert pairs.pair_from_query(query, Y_TEST, np.random.default_rng(0)) == (pair, [])


def test_the_url_form_is_short_and_a_url_without_a_pair_names_none():
    assert pairs.Pair(13, 29, 0.35).to_query() == {"a": "13", "b": "29", "w": "0.35"}
    assert pairs.Pair(13, 29).to_query()["w"] == "0.5"
    assert pairs.pair_from_query({}, Y_TEST, np.random.default_rng(0)) == (None, [])
    assert pairs.pair_from_query({"run": "3"}, Y_TEST, np.random.default_rng(0)) == (None, [])
    assert pairs.pair_from_query({"a": " 13 ", "b": "29"}, Y_TEST, np.random.default_rng(0)) == (
        pairs.Pair(13, 29, pairs.DEFAULT_ALPHA), [])  # spaces are forgiven; no weight is the plain average


@pytest.mark.parametrize("query, bad", [
    ({"a": "abc", "b": "5", "w": "0.5"}, "a"),
    ({"a": "5", "b": "5", "w": "0.5"}, "a"),  # image 5 is a dog: not group A
    ({"a": "3", "b": "4", "w": "0.5"}, "b"),  # image 4 is a deer: not group B
    ({"a": "3", "b": "99999", "w": "0.5"}, "b"),
    ({"a": "3", "b": "-1", "w": "0.5"}, "b"),
    ({"a": "3", "b": "5", "w": "1.5"}, "w"),
    ({"a": "3", "b": "5", "w": "nan"}, "w"),
    ({"a": "3", "w": "0.5"}, "b"),
])
def test_bad_query_values_fall_back_with_a_message_each(query, bad):
    pair, problems = pairs.pair_from_query(query, Y_TEST, np.random.default_rng(0))
    assert len(problems) == 1 and problems[0].startswith(f"'{bad}")
    assert Y_TEST[pair.a_index] < 5 <= Y_TEST[pair.b_index] and 0 < pair.alpha < 1
    if bad != "a":
        assert pair.a_index == 3
    if bad == "w":
        assert pair.alpha == pairs.DEFAULT_ALPHA


@pytest.mark.parametrize("query, message", [
    ({"a": "abc", "b": "5"}, "'a=abc' in the link is not a test image number; a random image is shown."),
    ({"a": "5", "b": "5"}, "'a=5' in the link is a dog, not of group A (airplane … deer); a random image is shown."),
    ({"a": "3", "b": "0"},
     "'b=0' in the link is an airplane, not of group B (dog … truck); a random image is shown."),
    ({"a": "3", "b": "400"}, "'b=400' in the link is outside the test set (0–399); a random image is shown."),
    ({"a": "3"}, "'b' is missing from the link; a random image of group B (dog … truck) is shown."),
    ({"a": "3", "b": "5", "w": "x"},
     "'w=x' in the link is not a mixing weight strictly between 0 and 1; 0.5 is used."),
    ({"a": "3", "b": "5", "w": "0"}, "'w=0' in the link is not a mixing weight strictly between 0 and 1; 0.5 is used."),
])
def test_each_bad_link_value_says_what_was_wrong_and_what_is_shown_instead(query, message):
    assert pairs.pair_from_query(query, Y_TEST, np.random.default_rng(0))[1] == [message]


@pytest.mark.parametrize("text, used", [("0.01", mixing.ALPHA_MIN), ("0.97", mixing.ALPHA_MAX)])
def test_a_link_weight_beyond_the_mixers_range_is_moved_to_the_nearest_end(text, used):
    pair, problems = pairs.pair_from_query({"a": "3", "b": "5", "w": text}, Y_TEST, np.random.default_rng(0))
    assert pair.alpha == used and len(problems) == 1 and problems[0].startswith(f"'w={text}'")
    assert problems[0].endswith(f"outside the mixer's range ({mixing.ALPHA_MIN}–{mixing.ALPHA_MAX}); {used} is used.")


def test_a_long_link_value_is_quoted_back_cut_to_forty_characters():
    assert pairs.shown_link_value("x" * 40) == "x" * 40
    assert pairs.shown_link_value("x" * 41) == "x" * 40 + "…"
    pair, problems = pairs.pair_from_query({"a": "y" * 500, "b": "5"}, Y_TEST, np.random.default_rng(0))
    assert problems == [f"'a={'y' * 40}…' in the link is not a test image number; a random image is shown."]


def test_every_bad_value_of_a_link_gets_its_own_message():
    _, problems = pairs.pair_from_query({"a": "5", "b": "x", "w": "2"}, Y_TEST, np.random.default_rng(0))
    assert [p[:3] for p in problems] == ["'a=", "'b=", "'w="]


def test_pair_of_checks_given_components_and_draws_the_others():
    rng = np.random.default_rng(0)
    assert pairs.pair_of(Y_TEST, rng, 3, 5, 0.6) == pairs.Pair(3, 5, 0.6)
    drawn = pairs.pair_of(Y_TEST, rng, a_index=3)
    assert drawn.a_index == 3 and Y_TEST[drawn.b_index] >= 5 and drawn.alpha == pairs.DEFAULT_ALPHA
    both = pairs.pair_of(Y_TEST, np.random.default_rng(7))
    assert both == pairs.pair_of(Y_TEST, np.random.default_rng(7))  # a seed gives the same pair again
    assert Y_TEST[both.a_index] < 5 <= Y_TEST[both.b_index]
    with pytest.raises(ValueError, match=r"test image 5 is a dog, not of group A \(airplane … deer\)"):
        pairs.pair_of(Y_TEST, rng, a_index=5)
    with pytest.raises(ValueError, match=r"test image 400 is outside the test set \(0–399\)"):
        pairs.pair_of(Y_TEST, rng, 3, 400)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        pairs.pair_of(Y_TEST, rng, 3, 5, alpha=1.0)


def test_a_component_problem_names_the_class_found_and_the_group_wanted():
    assert pairs.component_problem(3, Y_TEST, "a") is None and pairs.component_problem(5, Y_TEST, "b") is None
    assert pairs.component_problem(8, Y_TEST, "a") == "a ship, not of group A (airplane … deer)"
    assert pairs.component_problem(-1, Y_TEST, "a") == "outside the test set (0–399)"


def test_a_pairs_image_is_the_mix_of_its_two_test_images():
    x = np.random.default_rng(0).integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    pair = pairs.Pair(3, 5, 0.3)
    assert np.allclose(pair.image(x), 0.3 * x[3].astype(np.float32) + 0.7 * x[5].astype(np.float32), atol=1e-3)
    images = pairs.pair_images(x, [pair, pairs.Pair(1, 9)])
    assert images.shape == (2, 32, 32, 3) and np.array_equal(images[0], pair.image(x))
    assert pairs.pair_images(x, []).shape == (0, 32, 32, 3)


def test_gallery_pairs_are_fixed_by_their_seed():
    assert pairs.gallery_pairs(Y_TEST, 4, 6) == pairs.gallery_pairs(Y_TEST, 4, 6) != pairs.gallery_pairs(Y_TEST, 5, 6)
    assert all(p.alpha == 0.3 for p in pairs.gallery_pairs(Y_TEST, 4, 3, alpha=0.3))


def test_gallery_captions_give_away_nothing_the_models_guesses_or_the_answers():
    assert pairs.gallery_caption((3, 9), (3, 5), "nothing") == pairs.gallery_caption((3, 9), None, "nothing") == "?"
    assert pairs.gallery_caption((3, 9), None, show="model") == "?"  # no model: nothing to show yet
    assert pairs.gallery_caption((3, 9), (3, 5), show="model") == "🤖 cat + dog"
    assert pairs.gallery_caption((3, 9), None, show="answers") == "cat + truck"
    assert pairs.gallery_caption((3, 9), (3, 5), show="answers") == "✅ cat + ❌ dog → truck"
    with pytest.raises(ValueError, match="nothing, model, answers"):
        pairs.gallery_caption((3, 9), None, show="all")
