"""Which test-time views to average: a shipped model's network scored on the validation split with each set.

Run:  CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz .venv/bin/python bench/test_time_views.py \
          [--model champion] [--pairs 20000]

Every named set of ``views.VIEW_SETS`` wraps the same trained network with ``views.with_views`` (the code
that ships) and predicts the same validation pairs (the validation images, never the test set), so the
differences are paired. Prints mean accuracy, the change against flip averaging with its paired standard
error, and seconds per 1,000 pairs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from cifarmix import catalog, data, mixing, models, views  # noqa: E402
from cifarmix.store import RunStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="champion", help="a shipped model name, run:N or a .keras path")
    parser.add_argument("--pairs", type=int, default=20000, help="validation pairs")
    parser.add_argument("--views", nargs="+", default=list(views.VIEW_SETS), choices=list(views.VIEW_SETS),
                        help="the view sets to score (flip, the reference, is always scored)")
    args = parser.parse_args()
    try:
        splits = data.load_splits()
    except data.DataError as error:
        sys.exit(str(error))
    network = views.network_of(models.load_model(catalog.resolve(args.model, RunStore()).path))
    pairs = mixing.validation_pairs(splits.x_val, splits.y_val, args.pairs)
    labels = pairs.labels()
    print(f"{args.model}: {args.pairs:,} validation pairs")
    correct, seconds = {}, {}
    names = ["flip"] + [name for name in args.views if name != "flip"]
    for name in names:
        model = views.with_views(network, name)
        started = time.perf_counter()
        answers = model.predict(pairs, verbose=0)
        seconds[name] = time.perf_counter() - started
        correct[name] = np.stack([np.argmax(answers[head], axis=1) == labels[head] for head in mixing.HEADS]).mean(0)
    print(f"{'views':22s} {'count':>5s} {'mean acc.':>9s} {'vs flip':>8s} {'± s.e.':>7s} {'s / 1000 pairs':>14s}")
    for name in names:
        change = correct[name] - correct["flip"]
        print(f"{name:22s} {views.view_count(name):5d} {100 * correct[name].mean():8.2f}% {100 * change.mean():+8.2f} "
              f"{100 * change.std(ddof=1) / np.sqrt(len(change)):7.2f} {1000 * seconds[name] / args.pairs:14.2f}")


if __name__ == "__main__":
    main()
