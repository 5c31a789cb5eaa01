"""Training-step throughput of network variants, side by side in one run (today's champion net vs others).

Run:  .venv/bin/python bench/step_speed.py [--steps 8] [--repeats 3] [--variants gelu relu ...]

Every variant trains (bf16 mixed precision, AdamW, the champion's losses) on the same pre-built batch of random
pixels, so the data feed is not measured (bench/throughput.py does that). Measurements alternate variant by
variant within each repeat, so machine noise hits all alike; the median of the repeats is reported, with each
variant's speed relative to the first one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cifarmix import architectures, models  # noqa: E402

# name: (architecture options over resnet-cpu's defaults, batch size)
VARIANTS: dict[str, tuple[dict, int]] = {
    "gelu": ({}, 256),  # the first champion's net, as shipped
    "gelu-b512": ({}, 512),
    "relu": ({"activation": "relu"}, 256),
    "relu-b512": ({"activation": "relu"}, 512),
    "relu-192": ({"activation": "relu", "widths": [64, 192, 192]}, 256),
    "relu-wide": ({"activation": "relu", "widths": [96, 256, 384]}, 256),
    "relu-b512-whiten": ({"activation": "relu", "whiten": True}, 512),  # the frozen 2x2 whitening stem
    "relu-b512-heads": ({"activation": "relu", "head_stages": 1}, 512),  # each head its own last stage
    # the demo preset's slim net (before: GELU, batch 128)
    "demo-gelu": ({"widths": [32, 64, 128], "head_width": 64}, 128),
    "demo-relu": ({"widths": [32, 64, 128], "head_width": 64, "activation": "relu"}, 128),
    "demo-relu-whiten": ({"widths": [32, 64, 128], "head_width": 64, "activation": "relu", "whiten": True}, 128),
}


def compiled(options: dict) -> keras.Model:
    with models.precision_policy("mixed_bfloat16"):
        model = architectures.build("resnet-cpu", **options)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    return model


def images_per_second(model: keras.Model, x: np.ndarray, y: dict, batch_size: int) -> float:
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="batches of 256 images per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.steps * 256, 32, 32, 3)).astype("float32")
    y = {head: keras.utils.to_categorical(rng.integers(0, 5, len(x)), 5) for head in ("first", "second")}
    nets = {name: compiled(VARIANTS[name][0]) for name in args.variants}
    for name, model in nets.items():  # warm-up: graph tracing and oneDNN kernel choice
        batch = VARIANTS[name][1]
        model.fit(x[:2 * batch], {k: v[:2 * batch] for k, v in y.items()}, batch_size=batch, verbose=0)
    speeds: dict[str, list[float]] = {name: [] for name in nets}
    for _ in range(args.repeats):
        for name, model in nets.items():
            speeds[name].append(images_per_second(model, x, y, VARIANTS[name][1]))
    base = statistics.median(speeds[args.variants[0]])
    print(f"{'variant':10s} {'batch':>5s} {'params':>9s} {'img/s':>8s} {'vs ' + args.variants[0]:>9s}")
    for name, model in nets.items():
        speed = statistics.median(speeds[name])
        print(f"{name:10s} {VARIANTS[name][1]:5d} {model.count_params():9,d} {speed:8.1f} {speed / base:8.2f}x")


if __name__ == "__main__":
    main()
