"""Server time of a Mixer interaction (one script run after moving the weight slider: a new mix, the model's
answer, and with the maps on, each head's saliency map), with the maps off and on, for the champion.

Runs the app's Mixer through Streamlit's AppTest in this process (the same script run a browser click causes,
without the network), after the first map has compiled. Each timed click moves the slider to a weight not seen
before, so no cached map answers it; off and on alternate, so a busy machine slows both alike.

    CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz .venv/bin/python bench/mixer_latency.py [--clicks 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CIFARMIX_HOME", tempfile.mkdtemp(prefix="cifarmix-bench-"))  # a store of its own


def timed(run) -> float:
    started = time.perf_counter()
    at = run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=6, help="timed slider moves per setting")
    parser.add_argument("--model", default="champion")
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    first = timed(at.run)
    model = at.session_state["sidebar_model"]
    if model != args.model:
        raise SystemExit(f"the active model is {model}, not {args.model}")

    def keep(at):
        at.session_state["sidebar_model"] = model  # AppTest reruns the page without app.py's sidebar
        return at

    compile_seconds = timed(lambda: keep(at).toggle(key="mixer_maps").set_value(True).run())
    weights = iter([round(0.05 * i, 2) for i in range(1, 20) if i != 10])
    times = {"off": [], "on": []}
    for _ in range(args.clicks):
        for state in ("off", "on"):
            keep(at).toggle(key="mixer_maps").set_value(state == "on")
            weight = next(weights, None)
            if weight is None:
                weights = iter([round(0.05 * i + 0.025, 3) for i in range(1, 18)])
                weight = next(weights)
            times[state].append(timed(lambda: keep(at).slider(key="mixer_alpha").set_value(weight).run()))
    print(f"model {model}: first page load {first:.1f} s; turning the maps on the first time (compiles) "
          f"{compile_seconds:.1f} s")
    for state, values in times.items():
        print(f"slider move, maps {state:3s}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
              f"over {len(values)} clicks")


if __name__ == "__main__":
    main()
