"""How fast a class sees the demo preset learn: training minutes to 50% mean validation accuracy, before and after.

Run:  CIFARMIX_DATA=... .venv/bin/python bench/demo_speed.py [--repeats 2] [--home /tmp/demo-speed]

"before" is the demo preset as it was (GELU, batch 128); "after" is ``PRESETS["demo"]`` as shipped now. The runs
alternate (before, after, before, after, ...) on the whole machine, so its noise hits both alike; each is an
ordinary run in the store of ``--home``. Printed: every run's minutes and epoch to 50% and its best validation
accuracy, then each variant's median and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

THRESHOLD = 0.5
BEFORE = dict(options={"widths": [32, 64, 128], "head_width": 64, "activation": "gelu"}, batch_size=128,
              steps_per_epoch=40, lr=3e-3)  # the demo preset before ReLU (its other settings are today's)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--home", type=Path, required=True, help="a CIFARMIX_HOME for the demo runs")
    args = parser.parse_args()
    os.environ["CIFARMIX_HOME"] = str(args.home)

    from cifarmix import export, training
    from cifarmix.config import preset
    from cifarmix.store import RunStore

    store = RunStore()
    variants = {"before": preset("demo", **BEFORE), "after": preset("demo")}
    minutes: dict[str, list[float]] = {name: [] for name in variants}
    print(f"| variant | run | minutes to {THRESHOLD:.0%} | epoch | best validation | training minutes |")
    print("|---|---|---|---|---|---|")
    for repeat in range(args.repeats):
        for name, config in variants.items():
            run = training.train(config, store, name=f"demo speed {name} {repeat + 1}")
            reached = export.milestones(store.epoch_metrics(run["id"]), (THRESHOLD,))[f"{THRESHOLD:.4g}"]
            if reached:
                minutes[name].append(reached["minutes"])
            print(f"| {name} | {run['id']} | {reached['minutes'] if reached else 'not reached'} | "
                  f"{reached['epoch'] if reached else '—'} | {run['best_val_mean']:.2%} | "
                  f"{(run.get('train_seconds') or 0) / 60:.1f} |", flush=True)
    medians = {name: statistics.median(values) for name, values in minutes.items() if values}
    for name, value in medians.items():
        print(f"{name}: median {value:.2f} min to {THRESHOLD:.0%} over {len(minutes[name])} runs")
    if len(medians) == 2:
        print(f"after / before: {medians['after'] / medians['before']:.2f}x the time "
              f"({medians['before'] / medians['after']:.2f}x as fast)")


if __name__ == "__main__":
    main()
