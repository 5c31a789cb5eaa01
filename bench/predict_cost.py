"""CPU cost of one answer from a shipped model: eager ``model(x)`` against the traced graph ``models.predict``
uses (``models.compiled_call``), side by side in one run, for 1 and 6 images (a Mixer answer, a gallery).

Run:  .venv/bin/python bench/predict_cost.py [--model champion] [--repeats 20]

CPU time of this process (time.process_time), not wall time, so another job on the machine does not inflate
it; medians over the repeats, alternating eager and compiled.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from cifarmix import catalog, models  # noqa: E402
from cifarmix.store import RunStore  # noqa: E402


def cpu_ms(call) -> float:
    started = time.process_time()
    call()
    return 1000 * (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="champion")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    model = catalog.resolve(args.model, RunStore()).load()
    compiled = models.compiled_call(model)
    print(f"{'images':>6s} {'eager CPU ms':>13s} {'compiled CPU ms':>16s} {'ratio':>6s} {'max |diff|':>11s}")
    for count in (1, 6):
        images = np.random.default_rng(count).uniform(0, 255, (count, 32, 32, 3)).astype("float32")
        eager_out, graph_out = model(images, training=False), compiled(images)  # warm-up: traces, kernels
        diff = max(float(np.abs(np.asarray(eager_out[h]) - np.asarray(graph_out[h])).max()) for h in ("first", "second"))
        eager, graph = [], []
        for _ in range(args.repeats):
            eager.append(cpu_ms(lambda: model(images, training=False)))
            graph.append(cpu_ms(lambda: compiled(images)))
        e, g = statistics.median(eager), statistics.median(graph)
        print(f"{count:6d} {e:13.1f} {g:16.1f} {e / g:5.1f}x {diff:11.1e}")


if __name__ == "__main__":
    main()
