"""The published results on the mixed CIFAR-10 task we measure ourselves against, and our own lineage's points.

Peers' figures are their test accuracies (mean of both heads) and the mixed pairs their training saw, as their
write-ups report them (the VGG's: about 43 epochs of 500 x 512 pairs); none reports CPU time (all trained on
GPUs). The seed notebook's 77.2% is the starting line; it does not say how many pairs it saw. Two public repositories claim 85.5% and 90.4%: they score a head's loss as an accuracy, or classify
unmixed images, so they are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    label: str
    pairs: float  # mixed training pairs seen
    accuracy: float  # test mean accuracy of the two heads, 0-1
    cpu_hours: float | None = None  # core-hours of training (None: trained on a GPU, not reported)


PEERS = (
    Result("8.4 M-parameter CNN (GPU)", 3.84e6, 0.7981),
    Result("1.15 M VGG, early-stopped (GPU)", 43 * 500 * 512, 0.8154),
    Result("ResNet, two residual stacks per head (GPU)", 9.6e6, 0.8275),
    Result("best public solution (GPU)", 79e6, 0.8487),
)


# Our cycles that were trained and measured but not shipped (their validation was below the model they started
# from), so the curve of accuracy against cost shows what the last core-hours bought. Cycle 3 of the champion:
# `python -m cifarmix train --preset champion --init-from champion` (cycle 2's settings from the shipped cycle 2):
# 100.8 min, 1.26 M pairs, best validation 79.76% (README, "Champion cycles").
# The whitened-stem net from scratch, one 58-minute cycle (README, "The whitened stem at full scale"): its own
# lineage, so its cost starts from zero.
DROPPED = (
    Result("champion cycle 3 (validation; dropped)", 3.11e6 + 1.26e6, 0.7976, round(6.61 + 100.8 / 60 * 2, 2)),
    Result("whitened stem, from scratch, one cycle (validation; not shipped)", 3456 * 512, 0.7822,
           round(58.1 / 60 * 2, 2)),
)


def lineage_points(card: dict, cores: int = 2) -> list[Result]:
    """One point per cycle of a shipped model's lineage: its cumulative pairs and core-hours and its best
    validation accuracy, the last with the card's test accuracy."""
    points, pairs, minutes = [], 0.0, 0.0
    lineage = card.get("lineage") or [{"pairs": card.get("pairs_seen"), "minutes": card.get("train_wall_minutes"),
                                       "best_val_mean_accuracy": card.get("best_val_mean_accuracy")}]
    for number, cycle in enumerate(lineage, start=1):
        pairs += cycle.get("pairs") or 0
        minutes += cycle.get("minutes") or 0
        accuracy = cycle.get("best_val_mean_accuracy")
        if accuracy is not None:
            points.append(Result(f"{card.get('name', 'model')} cycle {number} (validation)", pairs, float(accuracy),
                                 round(minutes / 60 * cores, 2)))
    test = (card.get("evaluation") or {}).get("mean_accuracy")
    if points and isinstance(test, (int, float)):
        last = points[-1]
        points.append(Result(f"{card.get('name', 'model')} (test protocol)", last.pairs, float(test), last.cpu_hours))
    return points
