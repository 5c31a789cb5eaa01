"""The full evaluation protocol (10 x 10,000 test pairs) against a bare model.predict on the same 100,000 images.

Run:  CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz .venv/bin/python bench/evaluation_cost.py [MODEL]

MODEL is a shipped model name, a run id or a .keras file; without it an untrained `allconv` is used (the
cost does not depend on the weights). Prints both times and their ratio, measured in one run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifarmix import architectures, catalog, data, evaluation, mixing  # noqa: E402
from cifarmix.store import RunStore  # noqa: E402


def main() -> None:
    model = catalog.resolve(sys.argv[1], RunStore()).load() if len(sys.argv) > 1 else architectures.build("allconv")
    try:
        (_, _), (x_test, y_test) = data.load_cifar10()
    except data.DataError as error:
        sys.exit(str(error))
    groups = mixing.split_groups(x_test, y_test)
    pairs = mixing.FixedPairs(groups, 500, 100_000, seed=evaluation.PROTOCOL_SEED)
    prebuilt = mixing.mix(groups.a_x[pairs.ia], groups.b_x[pairs.ib])
    model.predict(prebuilt[:1000], batch_size=500, verbose=0)  # warm-up
    started = time.perf_counter()
    model.predict(prebuilt, batch_size=500, verbose=0)
    bare = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluation.evaluate(model, x_test, y_test)
    protocol = time.perf_counter() - started
    print(f"bare model.predict on 100,000 pre-mixed images: {bare:7.1f} s ({100_000 / bare:,.0f} img/s)")
    print(f"full protocol (10 x 10,000 pairs, mixing + scoring): {protocol:7.1f} s ({100_000 / protocol:,.0f} img/s)")
    print(f"protocol / bare predict: {protocol / bare:.2f}x   (mean accuracy {result['mean_accuracy']:.4f})")


if __name__ == "__main__":
    main()
