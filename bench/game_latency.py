"""How long a game round takes (new pair + the model's answer), against a bare ``model.predict`` on one image.

Both run after a warm-up, in the same process, interleaved (so a busy machine slows both alike). A round is
what the Game page does when it shows a round: mix the round's two test images and ask the shared model under
its lock (``cifarmix.game.play_model_round`` -> ``models.predict``). Dealing a new 10-round game is timed too.

    CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz .venv/bin/python bench/game_latency.py [--model REF]

``--model`` takes a shipped model name, a run id or a .keras path; by default the shipped "champion", else the
first available model, else an untrained "allconv" (the seed-strength net: latency does not depend on weights).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from cifarmix import architectures, catalog, data, game, models
from cifarmix.store import RunStore


def choose_model(reference: str | None):
    """(keras model, description) for ``--model``, or the default described in the module docstring."""
    store = RunStore()
    if reference:
        entry = catalog.resolve(reference, store)
        return entry.load(), entry.title
    entries = catalog.available(store)
    preferred = [e for e in entries if e.reference == "champion"] or entries
    if preferred:
        return preferred[0].load(), preferred[0].title
    return architectures.build("allconv"), "untrained allconv (no trained model found)"


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    """Median and 90th percentile, in milliseconds."""
    ms = np.asarray(samples_s) * 1000.0
    return float(np.median(ms)), float(np.percentile(ms, 90))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="shipped model name, run id or .keras path")
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls of each kind first (default 20)")
    args = parser.parse_args(argv)

    try:
        (_, _), (x_test, y_test) = data.load_cifar10()
    except data.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model, title = choose_model(args.model)
    lock = threading.Lock()  # the app's SharedModel guard: one predict at a time per model

    def guarded_predict(images):
        with lock:
            return models.predict(model, images)

    seed = 0
    current = game.new_game(y_test, seed=seed, opponent="bench")
    image = game.round_image(x_test, current.current)[None]
    for _ in range(args.warmup):
        game.play_model_round(current, x_test, guarded_predict)
        model.predict(image, verbose=0)

    round_s, bare_s, deal_s = [], [], []
    for i in range(args.rounds):
        if current.is_last_round:  # a new game every 10 rounds, as players do
            seed += 1
            start = time.perf_counter()
            current = game.new_game(y_test, seed=seed, opponent="bench")
            deal_s.append(time.perf_counter() - start)
        else:
            current.position += 1  # the next round's pair (scoring is not part of the latency)
        start = time.perf_counter()
        mixed, _answer = game.play_model_round(current, x_test, guarded_predict)
        round_s.append(time.perf_counter() - start)

        start = time.perf_counter()
        model.predict(mixed[None], verbose=0)
        bare_s.append(time.perf_counter() - start)

    round_med, round_p90 = percentiles(round_s)
    bare_med, bare_p90 = percentiles(bare_s)
    deal_med, _ = percentiles(deal_s or [0.0])
    print(f"model: {title} ({architectures.count_params(model):,} parameters)")
    print(f"data: {data.describe_source()}; {args.rounds} rounds after {args.warmup} warm-up calls")
    print(f"game round (new pair + model answer): median {round_med:7.2f} ms   p90 {round_p90:7.2f} ms")
    print(f"bare model.predict, one image:        median {bare_med:7.2f} ms   p90 {bare_p90:7.2f} ms")
    print(f"ratio round / bare predict:           median {round_med / bare_med:7.2f}      "
          f"p90 {round_p90 / bare_p90:7.2f}")
    print(f"dealing a new 10-round game:          median {deal_med:7.2f} ms  ({len(deal_s)} games)")
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (other work slows both alike)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
