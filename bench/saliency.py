"""Where each head looks: how long one explanation takes, and how faithful the maps are.

Latency: ``saliency.explain_with_answers`` on one mix (maps and answers from one compiled call), after a
warm-up, on different test mixes; the same calls run eagerly for comparison. Faithfulness: over ``--mixes``
test mixes, the fall in each head's probability for its answer when the 25% of pixels its map ranks highest
are blanked to the mix's mean colour, against a random 25% (mean of 4 random masks).

    CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz .venv/bin/python bench/saliency.py [--model REF]

Small by default (a minute or two on two busy cores); ``--smooth 1`` measures a blurred map for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from cifarmix import catalog, data, mixing, saliency
from cifarmix.store import RunStore

PAIR_SEED = 14


def test_mixes(x_test, y_test, count: int, seed: int = PAIR_SEED) -> np.ndarray:
    """``count`` plain-average mixes of test pairs fixed by ``seed``."""
    groups = mixing.split_groups(x_test, y_test)
    ia, ib = mixing.fixed_pairs(groups, count, seed)
    return mixing.mix(groups.a_x[ia], groups.b_x[ib], 0.5)


def milliseconds(samples: list[float]) -> str:
    ms = np.asarray(samples) * 1000.0
    return f"median {np.median(ms):6.0f} ms   p90 {np.percentile(ms, 90):6.0f} ms   ({len(ms)} calls)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="champion", help="shipped model name, run id or .keras path")
    parser.add_argument("--mixes", type=int, default=32, help="test mixes for the faithfulness figures")
    parser.add_argument("--calls", type=int, default=10, help="timed explain calls (default 10)")
    parser.add_argument("--eager-calls", type=int, default=3, help="timed eager calls (0 skips them)")
    parser.add_argument("--steps", type=int, default=saliency.DEFAULT_STEPS)
    parser.add_argument("--smooth", type=float, default=saliency.SMOOTH_SIGMA)
    args = parser.parse_args(argv)

    import tensorflow as tf

    try:
        (_, _), (x_test, y_test) = data.load_cifar10()
        entry = catalog.resolve(args.model, RunStore())
        model = entry.load()
    except (data.DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    mixes = test_mixes(x_test, y_test, max(args.mixes, args.calls + 1))

    start = time.perf_counter()
    saliency.explain_with_answers(model, mixes[-1], steps=args.steps, smooth=args.smooth)
    first_call = time.perf_counter() - start
    compiled = []
    for image in mixes[:args.calls]:
        start = time.perf_counter()
        saliency.explain_with_answers(model, image, steps=args.steps, smooth=args.smooth)
        compiled.append(time.perf_counter() - start)
    eager = []
    if args.eager_calls:
        tf.config.run_functions_eagerly(True)
        try:
            for image in mixes[:args.eager_calls]:
                start = time.perf_counter()
                saliency.explain_with_answers(model, image, steps=args.steps, smooth=args.smooth)
                eager.append(time.perf_counter() - start)
        finally:
            tf.config.run_functions_eagerly(False)

    start = time.perf_counter()
    check = saliency.deletion_check(model, mixes[:args.mixes], steps=args.steps, smooth=args.smooth)
    check_s = time.perf_counter() - start

    print(f"model: {entry.title} ({model.name}); method: {saliency.METHOD}, {args.steps} steps, "
          f"smoothing {args.smooth:g} px")
    print(f"explain, first call (compiles):  {first_call * 1000:6.0f} ms")
    print(f"explain, compiled tf.function:   {milliseconds(compiled)}")
    if eager:
        print(f"explain, eager:                  {milliseconds(eager)}")
    print(f"faithfulness over {args.mixes} test mixes (pair seed {PAIR_SEED}), blanking 25% of pixels to the "
          f"mix's mean colour; drop in the head's probability for its answer, mean ± std [{check_s:.0f} s]:")
    for head in mixing.HEADS:
        top, rand = check[head]["top"], check[head]["random"]
        gap = top - rand
        print(f"  {head:6s}  top-25%: {top.mean():.3f} ± {top.std():.3f}   random-25%: {rand.mean():.3f} ± "
              f"{rand.std():.3f}   gap {gap.mean():+.3f} (s.e. {gap.std(ddof=1) / np.sqrt(len(gap)):.3f})   "
              f"top > random in {(gap > 0).mean():.0%} of mixes")
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
