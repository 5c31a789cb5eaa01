"""Where each head looks: saliency maps per head for every shipped architecture (views included), faithful on real
mixes, drawn and written by the CLI's ``explain``."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarmix import mixing, saliency
from cifarmix.cli import main

SHIPPED = Path(__file__).resolve().parent.parent / "artifacts" / "models"
SHIPPED_FOLDERS = sorted(folder for folder in SHIPPED.glob("*") if (folder / "model.keras").is_file())


@pytest.fixture(scope="module")
def viewed_random_model():
    """The untrained ``random`` baseline wrapped in the shipped models' test-time views (fast to explain)."""
    from cifarmix import architectures, views

    return views.with_views(architectures.build("random"), "flip-diagonal")


def some_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (32, 32, 3)).astype(np.float32)


def test_explain_gives_one_map_per_head_in_the_unit_interval(viewed_random_model):
    maps = saliency.explain(viewed_random_model, some_image())
    assert set(maps) == {"first", "second"}
    for head in ("first", "second"):
        assert maps[head].shape == (32, 32) and maps[head].dtype == np.float32
        assert maps[head].min() >= 0 and maps[head].max() == pytest.approx(1.0)
    assert not np.allclose(maps["first"], maps["second"]), "each head gets its own map"


def test_attributions_are_complete_they_sum_to_the_fall_from_the_baseline(viewed_random_model):
    found = saliency.attributions(viewed_random_model, some_image(1), steps=64)
    for head in ("first", "second"):
        cls = found["classes"][head]
        fall = found["probabilities"][head][cls] - found["baseline_probabilities"][head][cls]
        assert found[head].sum() == pytest.approx(fall, abs=0.02)
        assert cls == int(np.argmax(found["probabilities"][head])), "by default the head's own answer"


def test_a_chosen_class_is_explained_instead_of_the_answer(viewed_random_model):
    image = some_image(2)
    answer = saliency.explain_with_answers(viewed_random_model, image)
    other = (answer["classes"]["first"] + 1) % 5
    chosen = saliency.explain_with_answers(viewed_random_model, image, targets={"first": other})
    assert chosen["classes"] == {"first": other, "second": answer["classes"]["second"]}
    assert not np.allclose(chosen["first"], answer["first"])
    np.testing.assert_allclose(chosen["second"], answer["second"], atol=1e-5)
    with pytest.raises(ValueError, match="0-4"):
        saliency.explain(viewed_random_model, image, targets={"first": 5})
    with pytest.raises(ValueError, match="32, 32, 3"):
        saliency.explain(viewed_random_model, np.zeros((16, 16, 3)))


def test_the_compiled_function_cache_does_not_keep_a_model_alive():
    from cifarmix import architectures

    model = architectures.build("random")
    saliency.explain(model, some_image())
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("folder", SHIPPED_FOLDERS, ids=[folder.name for folder in SHIPPED_FOLDERS])
def test_every_shipped_model_is_explained_through_its_test_time_views(folder):
    from cifarmix import models, views

    model = models.load_model(folder / "model.keras")
    assert views.network_of(model) is not model, "the shipped model averages test-time views"
    found = saliency.explain_with_answers(model, some_image(3))
    direct = models.predict(model, some_image(3))
    for head in ("first", "second"):
        assert found[head].shape == (32, 32) and 0 <= found[head].min() and found[head].max() <= 1
        np.testing.assert_allclose(found["probabilities"][head], direct[head][0], atol=1e-5)


def test_blanking_and_masks():
    image = some_image(4)
    saliency_map = np.arange(32 * 32, dtype=float).reshape(32, 32)
    mask = saliency.top_mask(saliency_map, 0.25)
    assert mask.sum() == 256 and mask[-8:].all() and not mask[:24].any()
    blanked = saliency.blank(image, mask)
    np.testing.assert_allclose(blanked[-1, -1], image.mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_array_equal(blanked[0], image[0])
    ties = saliency.top_mask(np.zeros((32, 32)), 0.25, np.random.default_rng(1))
    assert ties.sum() == 256 and 0 < ties[:16].sum() < 256, "ties are broken at random, not by position"


def test_overlay_panel_and_png(tmp_path):
    image = some_image(5)
    flat = saliency.overlay(image, np.zeros((32, 32)), scale=4)
    assert flat.shape == (128, 128, 3) and flat.dtype == np.uint8
    np.testing.assert_array_equal(flat, saliency.upscale(image, 4))  # an empty map leaves the image as it is
    hot = np.zeros((32, 32))
    hot[0, 0] = 1.0
    drawn = saliency.overlay(image, hot, scale=4)
    assert not np.array_equal(drawn[:4, :4], flat[:4, :4]) and np.array_equal(drawn[4:], flat[4:])
    maps = {"first": hot, "second": hot.T}
    picture = saliency.panel(image, maps, components=(image, image), captions=["a", "b", "c", "d", "e"], scale=2)
    path = saliency.write_png(tmp_path / "p.png", picture)
    with Image.open(path) as written:
        assert written.format == "PNG" and written.mode == "RGB" and written.width == 5 * 64 + 6 * 8


def test_cli_explain_writes_the_picture_and_the_maps(tiny_data, untrained_model_file, tmp_path, capsys):
    out, npz = tmp_path / "explain.png", tmp_path / "maps.npz"
    code = main(["explain", str(untrained_model_file), "--a", "3", "--b", "7", "--alpha", "0.6",
                 "--out", str(out), "--npz", str(npz)])
    printed = capsys.readouterr().out
    assert code == 0 and "first head" in printed and "second head" in printed
    with Image.open(out) as picture:
        assert picture.format == "PNG"
    saved = np.load(npz)
    assert sorted(saved.files) == ["first", "mix", "second"]
    assert saved["first"].shape == saved["second"].shape == (32, 32) and saved["mix"].shape == (32, 32, 3)
    assert 0 <= saved["mix"].min() and saved["mix"].max() <= 255 and saved["first"].max() <= 1


@pytest.mark.parametrize("argv, message", [
    (["--a", "7", "--b", "3"], "not of group A"),
    (["--a", "3", "--b", "5000"], "outside the test set"),  # in range for CIFAR-10, beyond the tiny test set
])
def test_cli_explain_refuses_bad_indices_in_one_line(tiny_data, untrained_model_file, tmp_path, capsys, argv, message):
    code = main(["explain", str(untrained_model_file), *argv, "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    code = main(["explain", str(untrained_model_file), "--a", "3", "--b", "7", "--out", str(tmp_path / "no" / "x.png")])
    assert code == 2 and "could not write" in capsys.readouterr().err


@pytest.mark.slow
def test_maps_are_faithful_on_real_mixes_for_the_champion(real_data):
    """Blanking the 25% of pixels a head's map ranks highest costs that head clearly more probability for its answer
    than blanking a random 25% (the figures bench/saliency.py prints; measured gap about +0.25 first, +0.15 second)."""
    from cifarmix import data, models

    champion = SHIPPED / "champion" / "model.keras"
    if not champion.is_file():
        pytest.skip("no shipped champion")
    model = models.load_model(champion)
    (_, _), (x_test, y_test) = data.load_cifar10()
    groups = mixing.split_groups(x_test, y_test)
    ia, ib = mixing.fixed_pairs(groups, 32, seed=14)
    check = saliency.deletion_check(model, mixing.mix(groups.a_x[ia], groups.b_x[ib], 0.5))
    gaps = {}
    for head in ("first", "second"):
        gap = check[head]["top"] - check[head]["random"]
        gaps[head] = gap.mean()
        assert gap.mean() > 0.08, (head, check["summary"][head])
        assert (gap > 0).mean() >= 0.6, (head, check["summary"][head])
    assert np.mean(list(gaps.values())) > 0.12, check["summary"]
