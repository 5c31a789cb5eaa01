"""The seeds' evaluation protocol: repeats x pairs drawn from the test set, scored per head.

The first seed document scores a model on 10 repeats of 10,000 test pairs and reports per-head accuracy,
weighted F1, their mean and a confusion matrix per head. We report the same, plus the standard deviation of
the mean accuracy over the repeats and the gap between the heads. All pairs go through one batched
``model.predict`` call.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from cifarmix import breakdowns, mixing, models
from cifarmix.data import CLASS_NAMES, class_label
from cifarmix.heads import HEADS
from cifarmix.protocol import PROTOCOL_ALPHA, PROTOCOL_PAIRS, PROTOCOL_REPEATS, PROTOCOL_SEED  # noqa: F401


def evaluate(model, x_test: np.ndarray, y_test: np.ndarray, repeats: int = PROTOCOL_REPEATS,
             pairs: int = PROTOCOL_PAIRS, seed: int = PROTOCOL_SEED, alpha: float = PROTOCOL_ALPHA,
             batch_size: int = 500, verbose: int = 0, progress=None) -> dict:
    """Score ``model`` on ``repeats`` x ``pairs`` mixed test pairs fixed by ``seed``.

    Args:
        model: a two-head model (``{"first", "second"}`` outputs).
        x_test, y_test: CIFAR-10 test images (uint8 NHWC) and labels 0-9.
        verbose: Keras progress bar (1) or silence (0).
        progress: called with the fraction of pairs scored (0-1] as scoring goes on (e.g. a page's bar).

    Returns:
        a JSON-able dict: ``mean_accuracy``, ``std`` (of the mean accuracy over repeats), ``head_first``,
        ``head_second``, ``head_gap``, ``f1_first``, ``f1_second``, ``mean_f1``, ``per_repeat`` (mean accuracy
        of each repeat), ``confusion_first`` / ``confusion_second`` (5x5 lists, rows = true class),
        ``per_class_first`` / ``per_class_second`` (recall per class), ``pair_breakdown`` (accuracy per class of A
        x class of B: ``breakdowns.pair_breakdown``'s 5 x 5 tables), and the protocol settings.
    """
    if repeats < 1 or pairs < 1:
        raise ValueError(f"repeats and pairs must be positive; got repeats={repeats}, pairs={pairs}")
    groups = mixing.split_groups(x_test, y_test)
    dataset = mixing.FixedPairs(groups, batch_size=batch_size, count=repeats * pairs, seed=seed, alpha=alpha)
    started = time.perf_counter()
    predicted = models.predict_classes(model, dataset, verbose=verbose, progress=progress)
    seconds = time.perf_counter() - started
    return score(dataset.labels(), predicted, repeats, pairs) | {
        "repeats": repeats, "pairs": pairs, "seed": seed, "alpha": alpha, "seconds": round(seconds, 2),
    }


def evaluate_and_store(entry, store, x_test: np.ndarray, y_test: np.ndarray, repeats: int = PROTOCOL_REPEATS,
                       pairs: int = PROTOCOL_PAIRS, seed: int = PROTOCOL_SEED, alpha: float = PROTOCOL_ALPHA,
                       verbose: int = 0, save: bool = True, progress=None) -> dict:
    """Load a catalog entry (shipped model, run, file), score it with :func:`evaluate` and keep the result.

    The command line and the Runs page both evaluate through here, so a run scored in either place is scored
    the same way and lands in the run store the same way.

    Returns:
        The result of :func:`evaluate` with ``model`` (the entry's reference) added.

    Raises:
        models.ModelError: the model cannot be loaded. ValueError: bad settings.
    """
    mixing.check_alpha(alpha)
    result = evaluate(entry.load(), x_test, y_test, repeats=repeats, pairs=pairs, seed=seed, alpha=alpha,
                      verbose=verbose, progress=progress)
    result["model"] = entry.reference
    if save:
        store.add_evaluation(entry.run_id, entry.reference, result)
    return result


def is_full_protocol(result: dict) -> bool:
    """True for the seeds' protocol itself: 10 x 10,000 pairs at the plain average, on the protocol's pairs."""
    return (result.get("repeats"), result.get("pairs"), result.get("alpha", PROTOCOL_ALPHA),
            result.get("seed", PROTOCOL_SEED)) == (PROTOCOL_REPEATS, PROTOCOL_PAIRS, PROTOCOL_ALPHA, PROTOCOL_SEED)


def headline(results: list[dict]) -> dict | None:
    """The result that stands for a model in tables: its newest full-protocol result, else its newest result.

    ``results`` are newest first (as ``RunStore.evaluations`` gives them); a quick look with fewer pairs or
    another weight never hides a full protocol result.
    """
    return next((r for r in results if is_full_protocol(r)), results[0] if results else None)


def score(truth: dict[str, np.ndarray], predicted: dict[str, np.ndarray], repeats: int, pairs: int) -> dict:
    """Protocol figures from integer labels and predictions per head (length ``repeats * pairs``), with the
    breakdown per pair of classes (which pairs are hardest) from the same predictions."""
    result: dict = {}
    for head in HEADS:
        y, p = truth[head], predicted[head]
        result[f"head_{head}"] = float(accuracy_score(y, p))
        result[f"f1_{head}"] = float(f1_score(y, p, average="weighted"))
        matrix = confusion_matrix(y, p, labels=range(5))
        result[f"confusion_{head}"] = matrix.tolist()
        result[f"per_class_{head}"] = (matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)).tolist()
    correct = (truth["first"] == predicted["first"]).astype(float) + (truth["second"] == predicted["second"])
    per_repeat = (correct / 2.0).reshape(repeats, pairs).mean(axis=1)
    result["per_repeat"] = per_repeat.tolist()
    result["mean_accuracy"] = float(per_repeat.mean())
    result["std"] = float(per_repeat.std())
    result["head_gap"] = result["head_second"] - result["head_first"]
    result["mean_f1"] = (result["f1_first"] + result["f1_second"]) / 2.0
    result["pair_breakdown"] = breakdowns.pair_breakdown(truth["first"], truth["second"],
                                                         truth["first"] == predicted["first"],
                                                         truth["second"] == predicted["second"])
    return result


def mistakes(model, pairs: mixing.FixedPairs, limit: int) -> dict:
    """The mixes of ``pairs`` where at least one head of ``model`` is wrong (the first ``limit`` of them).

    Returns:
        ``images`` (uint8 mixes), ``count`` (how many of the pairs are wrong), ``total``, and per head ``truth``
        and ``predicted`` (labels 0-4 of the shown mixes).
    """
    predicted = models.predict_classes(model, pairs)
    truth = pairs.labels()
    wrong = np.flatnonzero((predicted["first"] != truth["first"]) | (predicted["second"] != truth["second"]))
    shown = wrong[:limit]
    groups = pairs.groups
    images = mixing.mix(groups.a_x[pairs.ia[shown]], groups.b_x[pairs.ib[shown]], pairs.alpha)
    return {"images": np.clip(images.round(), 0, 255).astype(np.uint8), "count": len(wrong), "total": len(pairs.ia),
            "truth": {head: truth[head][shown] for head in truth},
            "predicted": {head: predicted[head][shown] for head in predicted}}


def mistake_caption(found: dict, index: int) -> str:
    """``🐦 bird → deer ✗ · 🚚 truck ✓`` for mix ``index`` of :func:`mistakes`: each true class, and the model's
    answer where it is wrong."""
    parts = []
    for head, offset in (("first", 0), ("second", 5)):
        true, guess = int(found["truth"][head][index]), int(found["predicted"][head][index])
        name = class_label(true + offset)
        parts.append(f"{name} ✓" if true == guess else f"{name} → {CLASS_NAMES[guess + offset]} ✗")
    return " · ".join(parts)


def summary_line(result: dict) -> str:
    """One line for people: mean ± std and the heads."""
    return (
        f"mean accuracy {result['mean_accuracy']:.4f} ± {result['std']:.4f} over {result['repeats']} x "
        f"{result['pairs']:,} test pairs | first {result['head_first']:.4f} (F1 {result['f1_first']:.4f}) | "
        f"second {result['head_second']:.4f} (F1 {result['f1_second']:.4f})"
        + ("" if result.get("alpha", PROTOCOL_ALPHA) == PROTOCOL_ALPHA else f" | alpha {result['alpha']:g}")
    )
