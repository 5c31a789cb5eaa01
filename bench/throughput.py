"""Training throughput: each model fed by the mixing pipeline vs by a pre-built in-memory array, side by side.

Run:  CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz .venv/bin/python bench/throughput.py [--steps 30]

Prints images/s for both feeds and the pipeline's cost in percent, for `allconv` and `resnet-cpu` with the
precision and augmentation of their presets. Feeds alternate (pipeline, array, pipeline, array, ...) so
machine noise hits both alike; the median of the repeats is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cifarmix import architectures, data, devices, mixing, training  # noqa: E402


def images_per_second(model, feed, steps: int, batch_size: int) -> float:
    started = time.perf_counter()
    model.fit(feed, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch_size / (time.perf_counter() - started)


def measure(preset_name: str, groups: mixing.Groups, steps: int, repeats: int, workers: int = 1) -> dict:
    config = training.preset(preset_name)
    config = devices.applied(config, devices.resolve(config, devices.detect()))  # "auto" as a training would
    keras.mixed_precision.set_global_policy(config.precision)
    model = architectures.build(config.arch, **config.options)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    pipeline = mixing.MixedPairs(groups, config.batch_size, steps, seed=0,
                                 augment_translate=config.translate if config.augment else 0,
                                 augment_flip=config.augment, workers=workers)
    x, y = pipeline[0]
    batches = [pipeline[i] for i in range(steps)]
    prebuilt_x = np.concatenate([b[0] for b in batches])
    prebuilt_y = {head: np.concatenate([b[1][head] for b in batches]) for head in mixing.HEADS}
    model.fit(x, y, epochs=1, verbose=0)  # warm-up: graph tracing
    fed, raw = [], []
    for _ in range(repeats):
        fed.append(images_per_second(model, pipeline, steps, config.batch_size))
        started = time.perf_counter()
        model.fit(prebuilt_x, prebuilt_y, batch_size=config.batch_size, epochs=1, verbose=0)
        raw.append(steps * config.batch_size / (time.perf_counter() - started))
    keras.mixed_precision.set_global_policy("float32")
    return {"arch": config.arch, "precision": config.precision, "batch": config.batch_size,
            "augment": config.augment, "pipeline": statistics.median(fed), "array": statistics.median(raw)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="batches per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=training.DATA_WORKERS,
                        help="threads preparing batches (the training default)")
    parser.add_argument("--presets", nargs="+", default=["allconv", "champion"])
    args = parser.parse_args()
    try:
        splits = data.load_splits()
    except data.DataError as error:
        sys.exit(str(error))
    groups = mixing.split_groups(splits.x_train, splits.y_train)
    print(f"{'architecture':12s} {'precision':15s} {'batch':>5s} {'augment':>7s} {'pipeline img/s':>15s} "
          f"{'array img/s':>12s} {'pipeline cost':>14s}")
    for preset_name in args.presets:
        row = measure(preset_name, groups, args.steps, args.repeats, args.workers)
        cost = 100 * (1 - row["pipeline"] / row["array"])
        print(f"{row['arch']:12s} {row['precision']:15s} {row['batch']:5d} {str(row['augment']):>7s} "
              f"{row['pipeline']:15.1f} {row['array']:12.1f} {cost:13.1f}%")


if __name__ == "__main__":
    main()
