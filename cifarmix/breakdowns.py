"""Two breakdowns of the test protocol: accuracy against the mixing weight, and accuracy per pair of classes.

* :func:`weight_sweep` — how much of an image the model needs: each head's accuracy as the share ``alpha`` of
  component A goes from 0.05 to 0.95, on the same test pairs at every weight (so the curve's wiggles are the
  weight's doing, not the pairs'), with a 95% margin of error per point.
* :func:`pair_breakdown` — which pairs are hardest: mean accuracy (and each head's) per (class of A, class of B)
  as 5 x 5 tables, from any list of scored pairs (a model's protocol run via :func:`model_pair_breakdown`, or a
  player's game rounds); :func:`hardest_pair` names the worst cell.

Results are JSON-able (lists, ``None`` for an empty cell), ready to be stored with an evaluation.

A sweep is stored in the run store (``RunStore.add_sweep``) keyed by the model reference and its settings
(:func:`sweep_settings`) with the model file's version: :func:`sweep_and_store` computes one and keeps it (the
command line and the Runs page both sweep through it), :func:`stored_sweep` and :func:`latest_sweep` find what
is there, so a page never recomputes what it has; :func:`accuracy_at` reads a curve at any weight.
"""

from __future__ import annotations

import time

import numpy as np

from cifarmix import mixing, models
from cifarmix.protocol import PROTOCOL_ALPHA, PROTOCOL_SEED

SWEEP_ALPHAS = tuple(round(0.05 + 0.1 * i, 2) for i in range(10))  # 0.05, 0.15, ..., 0.95
# A sweep's default size: 10 weights x 500 pairs = 5,000 mixes. The shipped models (6 views each) score about
# 90 (champion) and 120 (allconv) mixes a second on these two cores when idle (their cards' 100,000-mix
# evaluations), so a sweep takes 40-55 s; measured with the machine busy (load 7-8): 48 and 24 a second, 1.5-3.5
# min. The margin of error (95%) per point is then about +-2.6 points of mean accuracy (0.026 at alpha 0.5).
SWEEP_REPEATS = 1
SWEEP_PAIRS = 500
Z95 = 1.96


def _margin(per_pair: np.ndarray) -> float:
    """Half-width of a normal 95% interval for the mean of ``per_pair``."""
    if len(per_pair) < 2:
        return float("nan")
    return float(Z95 * per_pair.std(ddof=1) / np.sqrt(len(per_pair)))


def weight_sweep(model, x_test: np.ndarray, y_test: np.ndarray, alphas=SWEEP_ALPHAS, repeats: int = SWEEP_REPEATS,
                 pairs: int = SWEEP_PAIRS, seed: int = PROTOCOL_SEED, batch_size: int = 500,
                 progress=None) -> list[dict]:
    """Each head's accuracy on ``repeats`` x ``pairs`` test mixes at every weight of A in ``alphas``.

    The same pairs (fixed by ``seed``) are mixed at every weight. ``progress``, if given, is called with the
    fraction of the whole sweep done (0-1] after each batch.

    Returns:
        one dict per weight, in the order given: ``alpha``, ``head_first``, ``head_second``, ``mean_accuracy``,
        ``margin`` (95% half-width of ``mean_accuracy``), ``std`` (of the mean accuracy over repeats; 0 for one
        repeat), ``repeats``, ``pairs``, ``seed``.
    """
    alphas = [mixing.check_alpha(alpha) for alpha in alphas]
    if not alphas:
        raise ValueError("give at least one mixing weight")
    if repeats < 1 or pairs < 1:
        raise ValueError(f"repeats and pairs must be positive; got repeats={repeats}, pairs={pairs}")
    groups = mixing.split_groups(x_test, y_test)
    points = []
    for index, alpha in enumerate(alphas):
        dataset = mixing.FixedPairs(groups, batch_size=batch_size, count=repeats * pairs, seed=seed, alpha=alpha)
        report = None if progress is None else (lambda done, i=index: progress((i + done) / len(alphas)))
        predicted = models.predict_classes(model, dataset, progress=report)
        truth = dataset.labels()
        right = {head: predicted[head] == truth[head] for head in mixing.HEADS}
        per_pair = (right["first"].astype(float) + right["second"]) / 2.0
        per_repeat = per_pair.reshape(repeats, pairs).mean(axis=1)
        points.append({
            "alpha": alpha,
            "head_first": float(right["first"].mean()),
            "head_second": float(right["second"].mean()),
            "mean_accuracy": float(per_pair.mean()),
            "margin": _margin(per_pair),
            "std": float(per_repeat.std()),
            "repeats": repeats, "pairs": pairs, "seed": seed,
        })
    return points


def sweep_settings(alphas=SWEEP_ALPHAS, repeats: int = SWEEP_REPEATS, pairs: int = SWEEP_PAIRS,
                   seed: int = PROTOCOL_SEED) -> dict:
    """A sweep's settings as the run store keys them: ``{"alphas": [...], "repeats", "pairs", "seed"}`` (each
    weight checked and rounded to 4 decimals, so 0.30000000000000004 and 0.3 are the same sweep).

    Raises:
        ValueError: no weight, a weight outside (0, 1), or repeats / pairs below 1.
    """
    alphas = [round(mixing.check_alpha(alpha), 4) for alpha in alphas]
    if not alphas:
        raise ValueError("give at least one mixing weight")
    if int(repeats) < 1 or int(pairs) < 1:
        raise ValueError(f"repeats and pairs must be positive; got repeats={repeats}, pairs={pairs}")
    return {"alphas": alphas, "repeats": int(repeats), "pairs": int(pairs), "seed": int(seed)}


def stored_sweep(entry, store, settings: dict) -> dict | None:
    """The stored sweep of catalog ``entry`` with ``settings`` measured on the entry's current model file, or
    None (see ``RunStore.sweep``)."""
    from cifarmix import catalog

    return store.sweep(entry.reference, settings, model_version=catalog.model_version(entry))


def latest_sweep(entry, store) -> dict | None:
    """The newest stored sweep of catalog ``entry``'s current model file, whatever its settings, or None (what
    the Mixer reads its "right X% of the time" from)."""
    from cifarmix import catalog

    found = store.sweeps(model_ref=entry.reference, model_version=catalog.model_version(entry))
    return found[0] if found else None


def sweep_and_store(entry, store, x_test: np.ndarray, y_test: np.ndarray, settings: dict | None = None,
                    progress=None, save: bool = True, reuse: bool = True) -> dict:
    """The weight sweep of catalog ``entry`` (a shipped model, a run, a file) with ``settings`` (default
    :func:`sweep_settings`): the stored one when there is one for the current model file (and ``reuse``), else
    computed with :func:`weight_sweep` and (if ``save``) stored.

    Returns:
        ``{"points": [...], "settings", "model_ref", "seconds", "stored": bool (True: read from the store),
        "created_at" (stored ones)}``.

    Raises:
        models.ModelError: the model cannot be loaded. ValueError: bad settings. OSError: unreadable file.
    """
    from cifarmix import catalog

    settings = sweep_settings(**settings) if settings else sweep_settings()
    version = catalog.model_version(entry)
    if reuse:
        found = store.sweep(entry.reference, settings, model_version=version)
        if found is not None:
            return {"points": found["points"], "settings": settings, "model_ref": entry.reference,
                    "seconds": found["seconds"], "stored": True, "created_at": found["created_at"]}
    model = entry.load()
    started = time.perf_counter()
    points = weight_sweep(model, x_test, y_test, alphas=settings["alphas"], repeats=settings["repeats"],
                          pairs=settings["pairs"], seed=settings["seed"], progress=progress)
    seconds = round(time.perf_counter() - started, 2)
    if save:
        store.add_sweep(entry.reference, settings, points, run_id=entry.run_id, model_version=version,
                        seconds=seconds)
    return {"points": points, "settings": settings, "model_ref": entry.reference, "seconds": seconds,
            "stored": False}


def accuracy_at(points: list[dict], alpha: float) -> dict:
    """A sweep's curve read at weight ``alpha``: each figure (``mean_accuracy``, ``head_first``, ``head_second``,
    ``margin``) interpolated linearly between the two measured weights around it; outside the measured range,
    the nearest end's figures, with ``measured_at`` saying which weight they are from (None when inside).
    """
    ordered = sorted(points, key=lambda point: point["alpha"])
    if not ordered:
        raise ValueError("the sweep has no points")
    alphas = [point["alpha"] for point in ordered]
    alpha = float(alpha)
    outside = alphas[0] if alpha < alphas[0] else alphas[-1] if alpha > alphas[-1] else None
    found = {"alpha": alpha, "measured_at": outside}
    for key in ("mean_accuracy", "head_first", "head_second", "margin"):
        values = [point.get(key) for point in ordered]
        if any(value is None for value in values):
            found[key] = None
            continue
        found[key] = float(np.interp(alpha, alphas, values))
    return found


def _table(values: np.ndarray, counts: np.ndarray) -> list[list[float | None]]:
    """A 5 x 5 list of lists, ``None`` where no pair was scored."""
    return [[float(values[a, b]) if counts[a, b] else None for b in range(5)] for a in range(5)]


def pair_breakdown(a_classes, b_classes, first_correct, second_correct) -> dict:
    """Accuracy per (class of A, class of B) from scored pairs.

    Args:
        a_classes: class of each pair's component A, 0-4.
        b_classes: class of each pair's component B, 0-4 (CIFAR-10 classes 5-9 minus 5) or 5-9.
        first_correct, second_correct: whether each head named its half right.

    Returns:
        ``mean_accuracy``, ``head_first``, ``head_second``: 5 x 5 lists (row = class of A, column = class of B;
        ``None`` for a pair of classes never met), and ``count``: 5 x 5 pairs scored per cell.
    """
    a = np.asarray(a_classes, dtype=int).ravel()
    b = np.asarray(b_classes, dtype=int).ravel()
    b = np.where(b >= 5, b - 5, b)
    first = np.asarray(first_correct, dtype=float).ravel()
    second = np.asarray(second_correct, dtype=float).ravel()
    if not len(a) == len(b) == len(first) == len(second):
        raise ValueError("classes and correctness must have one entry per pair")
    if len(a) and (a.min() < 0 or a.max() > 4 or b.min() < 0 or b.max() > 4):
        raise ValueError("class of A must be 0-4 and class of B 0-4 or 5-9")
    cell = a * 5 + b
    counts = np.bincount(cell, minlength=25).reshape(5, 5)
    safe = np.maximum(counts, 1)
    sums = {name: np.bincount(cell, weights=values, minlength=25).reshape(5, 5)
            for name, values in (("first", first), ("second", second))}
    return {
        "mean_accuracy": _table((sums["first"] + sums["second"]) / (2 * safe), counts),
        "head_first": _table(sums["first"] / safe, counts),
        "head_second": _table(sums["second"] / safe, counts),
        "count": counts.tolist(),
    }


def model_pair_breakdown(model, x_test: np.ndarray, y_test: np.ndarray, repeats: int = 1, pairs: int = 10_000,
                         seed: int = PROTOCOL_SEED, alpha: float = PROTOCOL_ALPHA, batch_size: int = 500,
                         progress=None) -> dict:
    """:func:`pair_breakdown` of ``model`` on ``repeats`` x ``pairs`` test mixes fixed by ``seed`` (the protocol's
    pairs by default), with the settings added (``repeats``, ``pairs``, ``seed``, ``alpha``)."""
    if repeats < 1 or pairs < 1:
        raise ValueError(f"repeats and pairs must be positive; got repeats={repeats}, pairs={pairs}")
    groups = mixing.split_groups(x_test, y_test)
    dataset = mixing.FixedPairs(groups, batch_size=batch_size, count=repeats * pairs, seed=seed,
                                alpha=mixing.check_alpha(alpha))
    predicted = models.predict_classes(model, dataset, progress=progress)
    truth = dataset.labels()
    breakdown = pair_breakdown(truth["first"], truth["second"], predicted["first"] == truth["first"],
                               predicted["second"] == truth["second"])
    return breakdown | {"repeats": repeats, "pairs": pairs, "seed": seed, "alpha": alpha}


def hardest_pair(breakdown: dict, min_count: int = 1) -> dict | None:
    """The (class of A, class of B) cell with the lowest mean accuracy among those with at least ``min_count``
    pairs (ties: the one met most often, then the first in order).

    Returns:
        ``{"a": 0-4, "b": 5-9 (CIFAR-10 class), "mean_accuracy", "head_first", "head_second", "count"}``, or
        None when no cell has enough pairs.
    """
    cells = [(breakdown["mean_accuracy"][a][b], -breakdown["count"][a][b], a, b)
             for a in range(5) for b in range(5)
             if breakdown["count"][a][b] >= max(1, min_count) and breakdown["mean_accuracy"][a][b] is not None]
    if not cells:
        return None
    accuracy, negative_count, a, b = min(cells)
    return {"a": a, "b": b + 5, "mean_accuracy": accuracy, "head_first": breakdown["head_first"][a][b],
            "head_second": breakdown["head_second"][a][b], "count": -negative_count}
