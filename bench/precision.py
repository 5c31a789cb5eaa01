"""Training throughput in bf16 mixed precision vs float32, side by side, for each preset's network.

Run:  .venv/bin/python bench/precision.py [--steps 10] [--repeats 3] [--presets champion allconv]

Both models train on the same pre-built batch of random pixels (the data feed is not what is measured here;
bench/throughput.py measures it). Measurements alternate (bf16, float32, bf16, ...) so machine noise hits both
alike; the median of the repeats is reported, with the speed-up of bf16 over float32.
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

from cifarmix import architectures, models, training  # noqa: E402

PRECISIONS = ("mixed_bfloat16", "float32")


def compiled(arch: str, precision: str, options: dict) -> keras.Model:
    with models.precision_policy(precision):
        model = architectures.build(arch, **options)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def images_per_second(model: keras.Model, x: np.ndarray, y: dict, batch_size: int) -> float:
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return len(x) / (time.perf_counter() - started)


def measure(preset_name: str, steps: int, repeats: int) -> dict[str, float]:
    config = training.preset(preset_name)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (steps * config.batch_size, 32, 32, 3)).astype("float32")
    labels = {head: keras.utils.to_categorical(rng.integers(0, 5, len(x)), 5) for head in ("first", "second")}
    nets = {precision: compiled(config.arch, precision, config.options) for precision in PRECISIONS}
    for precision, model in nets.items():  # warm-up: graph tracing
        model.fit(x[:config.batch_size], {k: v[:config.batch_size] for k, v in labels.items()}, verbose=0)
    speeds: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    for _ in range(repeats):
        for precision, model in nets.items():
            speeds[precision].append(images_per_second(model, x, labels, config.batch_size))
    return {"arch": config.arch, "batch": config.batch_size,
            **{precision: statistics.median(values) for precision, values in speeds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="batches per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=["champion", "allconv"])
    args = parser.parse_args()
    print(f"{'architecture':12s} {'batch':>5s} {'bf16 img/s':>11s} {'float32 img/s':>14s} {'bf16 speed-up':>14s}")
    for preset_name in args.presets:
        row = measure(preset_name, args.steps, args.repeats)
        print(f"{row['arch']:12s} {row['batch']:5d} {row['mixed_bfloat16']:11.1f} {row['float32']:14.1f} "
              f"{row['mixed_bfloat16'] / row['float32']:13.2f}x")


if __name__ == "__main__":
    main()
