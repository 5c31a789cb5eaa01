"""Recipe levers as short proxy trainings of equal budget, two at a time side by side (one CPU core each).

Run:  CIFARMIX_DATA=... .venv/bin/python bench/recipe_proxies.py --minutes 20 --home /tmp/proxies \
          --variants baseline smoothing-0.2

Every variant is the cycle-2 champion recipe (resnet-cpu with ReLU, batch 512, AdamW 2e-3, weight decay 0.05,
label smoothing 0.1, flip + 2-pixel shifts, bf16, the budget-cosine schedule) trained *from scratch* for the same
minutes, with one change. Variants run in pairs, each pinned to its own core (``taskset``), so both halves of a
pair see the same machine; with two cores, a pair takes the budget's minutes plus start-up and the last
validation. Each variant is an ordinary run in the store of ``--home`` (``python -m cifarmix runs`` lists them);
the script prints a table of best validation accuracy, epochs, pairs and minutes. Judge a lever by validation
accuracy at equal minutes: a lever that slows the step must earn it back per pair.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = dict(arch="resnet-cpu", options={"activation": "relu"}, epochs=1000, batch_size=512, steps_per_epoch=44,
            lr=2e-3, optimizer="adamw", weight_decay=0.05, schedule="budget-cosine", warmup_epochs=1,
            label_smoothing=0.1, augment=True, translate=2, precision="mixed_bfloat16",
            early_stop_patience=1000, val_pairs=5000)

# name: changes over BASE (options are merged with BASE's options)
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "baseline-seed-1": dict(seed=1),  # the same recipe with other pairs and initial weights: the noise between runs
    "smoothing-0.2": dict(label_smoothing=0.2),
    "ema": dict(ema=0.99),
    "nesterov-linear": dict(optimizer="sgd", lr=0.2, weight_decay=5e-4, schedule="budget-linear"),
    "per-head-stacks": dict(options={"head_stages": 1}),
    "whitening": dict(options={"whiten": True}),
    "wider": dict(options={"widths": [96, 320, 320]}),
}


def config_of(name: str, minutes: float) -> dict:
    change = dict(VARIANTS[name])
    options = BASE["options"] | change.pop("options", {})
    return BASE | change | dict(options=options, time_budget_minutes=minutes)


def launch(name: str, minutes: float, core: int, home: Path) -> subprocess.Popen:
    script = ("import json, sys; from cifarmix import training; from cifarmix.config import TrainConfig; "
              "from cifarmix.store import RunStore; "
              "run = training.train(TrainConfig.from_dict(json.loads(sys.argv[1])), RunStore(), name=sys.argv[2]); "
              "print(json.dumps({k: run.get(k) for k in ('id', 'best_val_mean', 'best_epoch', 'status')}))")
    environment = os.environ | {"CIFARMIX_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2",
                                "CIFARMIX_MAX_TRAININGS": str(len(os.sched_getaffinity(0)))}
    with open(home / f"{name}.log", "w") as log:  # the child keeps its own copy of the file
        return subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", script,
                                 json.dumps(config_of(name, minutes)), f"proxy {name}"],
                                cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)


def summary(home: Path, name: str) -> str:
    from cifarmix.store import RunStore

    os.environ["CIFARMIX_HOME"] = str(home)
    runs = [run for run in RunStore().list_runs() if run.get("name") == f"proxy {name}"]
    if not runs:
        return f"| {name} | — | — | — | no run recorded (see {home / (name + '.log')}) |"
    run = runs[0]
    steps = run.get("steps_done") or 0
    pairs = steps * BASE["batch_size"]
    best = run.get("best_val_mean")
    best_text = "—" if best is None else f"{best:.2%}"
    return (f"| {name} | {best_text} (epoch {run.get('best_epoch')}) | {pairs / 1e3:.0f} k | "
            f"{(run.get('train_seconds') or 0) / 60:.1f} | {run['status']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--minutes", type=float, default=20.0, help="each variant's training budget")
    parser.add_argument("--home", type=Path, required=True, help="a CIFARMIX_HOME for the proxy runs")
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    for start in range(0, len(args.variants), cores):
        batch = args.variants[start:start + cores]
        processes = [launch(name, args.minutes, core, args.home) for core, name in enumerate(batch)]
        for name, process in zip(batch, processes):
            if process.wait():
                print(f"{name}: the training process exited with {process.returncode}; see its log", file=sys.stderr)
    print("| variant | best validation | pairs | minutes | status |\n|---|---|---|---|---|")
    for name in args.variants:
        print(summary(args.home, name))


if __name__ == "__main__":
    main()
