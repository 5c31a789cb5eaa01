"""Where each head looks: a saliency map per head, drawn over the mix.

Method: integrated gradients (Sundararajan et al., 2017) of each head's probability for its answer, from a
baseline image filled with the mix's own mean colour to the mix, through the whole saved model. Why this and
not Grad-CAM on a head's own conv block:

* it explains the model users play against, test-time views included: the gradient flows back through the
  shifts and mirror images of :mod:`cifarmix.views` to the pixels, so no per-view map has to be un-shifted;
* it works for every architecture alike (allconv has no per-head layers, and its last feature map is 2x2,
  resnet-cpu's head blocks are 4x4: Grad-CAM would be a handful of blocks stretched over 32x32 pixels);
* the baseline is what the faithfulness check blanks pixels to, and integrated gradients are *complete*:
  a head's attributions sum to ``p(mix) - p(mean-colour image)``, so a pixel's score estimates how much
  the head's probability falls when that pixel is blanked.

A head's map is its per-pixel attribution summed over the colour channels, with the pixels that speak against
the answer set to 0, scaled to [0, 1] (the 99th percentile maps to 1); larger = more important. It is not
smoothed by default: a blurred map looks tidier but is less faithful (see ``bench/saliency.py --smooth 1``).

Each call runs one compiled ``tf.function`` (one batch of ``2 * steps + 1`` images through the model; compiled
once per model and step count, which takes a few seconds: a page may warm it up). The model is not locked
here: a page that shares one model between sessions calls this under the same lock it predicts under.

No Streamlit here: :func:`overlay` and :func:`panel` return numpy RGB arrays, :func:`write_png` /
:func:`write_npz` write files (the CLI's ``explain``).
"""

from __future__ import annotations

import os
import threading
import weakref

import numpy as np

from cifarmix import mixing

METHOD = "integrated gradients, mean-colour baseline"
DEFAULT_STEPS = 4  # path points, two images each (one per head); 8 were no more faithful (bench/saliency.py)
SMOOTH_SIGMA = 0.0  # pixels of Gaussian smoothing; smoothing looks tidier but is less faithful (bench/saliency.py)
NORMALISE_PERCENTILE = 99.0

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {steps: tf.function}
_compiled_lock = threading.Lock()


def _as_image(image) -> np.ndarray:
    """One (32, 32, 3) image as float32 pixels in [0, 255]."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape == (1, 32, 32, 3):
        image = image[0]
    if image.shape != (32, 32, 3):
        raise ValueError(f"expected one image of shape (32, 32, 3); got {image.shape}")
    return image


def mean_colour(image) -> np.ndarray:
    """The image's mean colour, as a (32, 32, 3) float32 image: the baseline, and what blanked pixels become."""
    image = _as_image(image)
    return np.broadcast_to(image.mean(axis=(0, 1)), image.shape).astype(np.float32)


def blank(image, mask: np.ndarray) -> np.ndarray:
    """``image`` with the pixels where ``mask`` (32, 32) is true set to the image's mean colour."""
    image = _as_image(image)
    return np.where(np.asarray(mask, dtype=bool)[:, :, None], mean_colour(image), image).astype(np.float32)


def top_mask(saliency: np.ndarray, fraction: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """A (32, 32) mask of the ``fraction`` of pixels the map ranks highest (ties broken at random)."""
    values = np.asarray(saliency, dtype=np.float64).ravel()
    count = int(round(fraction * values.size))
    tie_break = (rng or np.random.default_rng(0)).random(values.size)
    order = np.lexsort((tie_break, -values))  # highest first; equal values in random order
    mask = np.zeros(values.size, dtype=bool)
    mask[order[:count]] = True
    return mask.reshape(np.shape(saliency))


def _integrated_gradients_fn(model, steps: int):
    """The compiled attribution function for ``model`` and ``steps`` (built on first use, then cached)."""
    with _compiled_lock:
        per_model = _compiled.setdefault(model, {})
        if steps in per_model:
            return per_model[steps]
        import tensorflow as tf

        fractions = tf.constant(np.arange(1, steps + 1, dtype=np.float32) / steps)  # right Riemann sum: ends at x
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function(reduce_retracing=True)
        def attribute(image, baseline, targets):
            path = baseline[None] + fractions[:, None, None, None] * (image - baseline)[None]
            batch = tf.concat([path, path, baseline[None]], axis=0)  # rows 0..s-1 first head, s..2s-1 second
            with tf.GradientTape() as tape:
                tape.watch(batch)
                outputs = model_ref()(batch, training=False)
                first, second = (tf.cast(outputs[head], tf.float32) for head in mixing.HEADS)
                answer_first = tf.where(targets[0] >= 0, targets[0], tf.argmax(first[steps - 1], output_type=tf.int32))
                answer_second = tf.where(targets[1] >= 0, targets[1],
                                         tf.argmax(second[steps - 1], output_type=tf.int32))
                objective = (tf.reduce_sum(first[:steps, answer_first])
                             + tf.reduce_sum(second[steps:2 * steps, answer_second]))
            gradients = tape.gradient(objective, batch)
            delta = image - baseline
            return {
                "first": delta * tf.reduce_mean(gradients[:steps], axis=0),
                "second": delta * tf.reduce_mean(gradients[steps:2 * steps], axis=0),
                "classes": tf.stack([answer_first, answer_second]),
                "probabilities_first": first[steps - 1], "probabilities_second": second[steps - 1],
                "baseline_first": first[-1], "baseline_second": second[-1],
            }

        per_model[steps] = attribute
        return attribute


def attributions(model, image, targets: dict[str, int] | None = None, steps: int = DEFAULT_STEPS) -> dict:
    """Integrated-gradients attributions of each head's answer, per pixel and colour channel.

    Args:
        model: a two-head model (a shipped one explains its test-time views too).
        image: one (32, 32, 3) mix, pixels in [0, 255].
        targets: the class (0-4) to explain per head; by default the head's own answer.
        steps: points on the path from the mean-colour baseline to the image.

    Returns:
        ``first`` / ``second``: (32, 32, 3) float32 attributions (summing to ``p(image) - p(baseline)`` for the
        explained class, up to the path's discretisation); ``classes``: the explained class per head;
        ``probabilities`` / ``baseline_probabilities``: each head's (5,) answer on the image / the baseline.
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    image = _as_image(image)
    wanted = [int((targets or {}).get(head, -1)) for head in mixing.HEADS]
    if any(not -1 <= value < 5 for value in wanted):
        raise ValueError(f"target classes are 0-4 per head; got {targets}")
    raw = _integrated_gradients_fn(model, int(steps))(image, mean_colour(image), np.asarray(wanted, np.int32))
    raw = {key: np.asarray(value) for key, value in raw.items()}
    return {
        "first": raw["first"], "second": raw["second"],
        "classes": {head: int(raw["classes"][i]) for i, head in enumerate(mixing.HEADS)},
        "probabilities": {head: raw[f"probabilities_{head}"] for head in mixing.HEADS},
        "baseline_probabilities": {head: raw[f"baseline_{head}"] for head in mixing.HEADS},
    }


def _gaussian_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array (reflecting borders)."""
    radius = max(1, int(round(3 * sigma)))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="reflect")
    rows = np.apply_along_axis(np.convolve, 0, padded, kernel, mode="valid")
    return np.apply_along_axis(np.convolve, 1, rows, kernel, mode="valid")


def to_map(attribution: np.ndarray, smooth: float = SMOOTH_SIGMA) -> np.ndarray:
    """A (32, 32) map in [0, 1] from (32, 32, 3) attributions: channel sum, evidence against the answer set to
    0, optional Gaussian smoothing of ``smooth`` pixels, scaled so the 99th percentile is 1 (the few pixels above
    it are clipped to 1, so one outlier does not wash out the rest); all zeros if no pixel is positive.
    """
    values = np.maximum(np.asarray(attribution, dtype=np.float64).sum(axis=-1), 0.0)
    if smooth > 0:
        values = _gaussian_blur(values, smooth)
    scale = np.percentile(values, NORMALISE_PERCENTILE)
    scale = scale if scale > 0 else values.max()
    return (np.clip(values / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(values)).astype(np.float32)


def explain(model, image, targets: dict[str, int] | None = None, steps: int = DEFAULT_STEPS,
            smooth: float = SMOOTH_SIGMA) -> dict[str, np.ndarray]:
    """Where each head looks in ``image``: ``{"first": (32, 32), "second": (32, 32)}`` maps in [0, 1].

    See :func:`attributions` for the arguments; :func:`explain_with_answers` also returns the answers.
    """
    found = explain_with_answers(model, image, targets, steps, smooth)
    return {head: found[head] for head in mixing.HEADS}


def explain_with_answers(model, image, targets: dict[str, int] | None = None, steps: int = DEFAULT_STEPS,
                         smooth: float = SMOOTH_SIGMA) -> dict:
    """:func:`explain`'s maps plus ``classes`` (explained class per head) and ``probabilities`` ((5,) per head),
    from the same single model call, so a page needs no second prediction."""
    found = attributions(model, image, targets, steps)
    return {**{head: to_map(found[head], smooth) for head in mixing.HEADS},
            "classes": found["classes"], "probabilities": found["probabilities"]}


def deletion_check(model, images: np.ndarray, fraction: float = 0.25, random_masks: int = 4, seed: int = 0,
                   steps: int = DEFAULT_STEPS, smooth: float = SMOOTH_SIGMA) -> dict:
    """How faithful the maps are: per image and head, the fall in the head's probability for its answer when the
    ``fraction`` of pixels its map ranks highest are blanked (to the image's mean colour), against blanking a
    random ``fraction`` (averaged over ``random_masks`` random masks, the same for both heads).

    Returns:
        per head ``{"top": (N,), "random": (N,)}`` probability drops, and ``summary``: per head the mean and
        standard deviation of each, and the share of images where the top pixels cost more than random ones.
    """
    from cifarmix import models

    rng = np.random.default_rng(seed)
    images = np.asarray(images, dtype=np.float32)
    count = int(round(fraction * 32 * 32))
    variants, answers = [], []
    for image in images:
        found = explain_with_answers(model, image, steps=steps, smooth=smooth)
        answers.append({head: (found["classes"][head], float(found["probabilities"][head][found["classes"][head]]))
                        for head in mixing.HEADS})
        variants += [blank(image, top_mask(found[head], fraction, rng)) for head in mixing.HEADS]
        for _ in range(random_masks):
            mask = np.zeros(32 * 32, dtype=bool)
            mask[rng.choice(32 * 32, count, replace=False)] = True
            variants.append(blank(image, mask.reshape(32, 32)))
    probabilities = models.predict(model, np.stack(variants))
    per_image = 2 + random_masks
    result: dict = {}
    for h, head in enumerate(mixing.HEADS):
        top, random = [], []
        for i, answer in enumerate(answers):
            cls, before = answer[head]
            rows = probabilities[head][i * per_image:(i + 1) * per_image, cls]
            top.append(before - rows[h])
            random.append(before - rows[2:].mean())
        result[head] = {"top": np.array(top), "random": np.array(random)}
    result["summary"] = {
        head: {"top_mean": float(result[head]["top"].mean()), "top_std": float(result[head]["top"].std()),
               "random_mean": float(result[head]["random"].mean()), "random_std": float(result[head]["random"].std()),
               "top_beats_random": float((result[head]["top"] > result[head]["random"]).mean())}
        for head in mixing.HEADS}
    return result


# ----------------------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------------------

# A "hot" colour ramp for importance: dark red -> red -> orange -> yellow -> pale yellow.
_RAMP_POINTS = np.array([0.0, 0.3, 0.6, 0.85, 1.0])
_RAMP_COLOURS = np.array([[90, 0, 0], [200, 20, 0], [255, 120, 0], [255, 220, 40], [255, 255, 200]], dtype=float)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """RGB colours (float, 0-255) for importance values in [0, 1] (any shape; a trailing axis of 3 is added)."""
    values = np.clip(np.asarray(values, dtype=float), 0.0, 1.0)
    return np.stack([np.interp(values, _RAMP_POINTS, _RAMP_COLOURS[:, c]) for c in range(3)], axis=-1)


def overlay(image, saliency: np.ndarray, strength: float = 0.7, scale: int = 8) -> np.ndarray:
    """``image`` (32, 32, 3; pixels 0-255) with the map drawn over it: the more important a pixel, the more it
    takes the heat colour (unimportant pixels show the image). Returns uint8 RGB, ``scale`` times the size
    (nearest neighbour, so the 32 x 32 pixels stay visible)."""
    image = np.clip(_as_image(image), 0, 255).astype(np.float64)
    saliency = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, 1.0)
    if saliency.shape != image.shape[:2]:
        raise ValueError(f"the map must be {image.shape[:2]}; got {saliency.shape}")
    weight = (strength * saliency)[:, :, None]
    blended = (1.0 - weight) * image + weight * heat_colours(saliency)
    return upscale(blended, scale)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """An image enlarged ``scale`` times by repeating pixels, as uint8."""
    image = np.clip(np.asarray(image, dtype=np.float64).round(), 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def panel(mix, maps: dict[str, np.ndarray], components: tuple | None = None, captions: list[str] | None = None,
          scale: int = 8, gap: int = 8) -> np.ndarray:
    """One picture: the mix, the mix under each head's map and (given ``components`` = (A, B)) each component
    under its own head's map, side by side, each with an optional caption below. Returns uint8 RGB."""
    from PIL import Image, ImageDraw, ImageFont

    tiles = [upscale(_as_image(mix), scale), overlay(mix, maps["first"], scale=scale),
             overlay(mix, maps["second"], scale=scale)]
    if components is not None:
        tiles += [overlay(components[0], maps["first"], scale=scale),
                  overlay(components[1], maps["second"], scale=scale)]
    captions = list(captions or [])
    size = 32 * scale
    caption_height = 22 if captions else 0
    canvas = Image.new("RGB", (len(tiles) * size + (len(tiles) + 1) * gap, size + 2 * gap + caption_height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    for index, tile in enumerate(tiles):
        left = gap + index * (size + gap)
        canvas.paste(Image.fromarray(tile), (left, gap))
        if index < len(captions) and captions[index]:
            draw.text((left, gap + size + 4), captions[index], fill=(20, 20, 20), font=font)
    return np.asarray(canvas)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> str:
    """Write a uint8 RGB array as PNG; returns the absolute path."""
    from PIL import Image

    Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB").save(path, format="PNG")
    return os.path.abspath(path)


def write_npz(path: str | os.PathLike, mix, maps: dict[str, np.ndarray]) -> str:
    """Write ``first`` and ``second`` (32 x 32 maps, larger = more important) and ``mix`` (32 x 32 x 3 pixels in
    [0, 255]) to an ``.npz`` file; returns the absolute path (numpy adds ``.npz`` if missing)."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    np.savez(path, first=np.asarray(maps["first"], np.float32), second=np.asarray(maps["second"], np.float32),
             mix=_as_image(mix))
    return os.path.abspath(path)
