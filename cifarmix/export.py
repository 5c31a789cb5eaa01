"""Turn a finished run into a shipped model: float32 weights, test-time views averaged inside it, a model card.

The shipped model lives in ``artifacts/models/<name>/model.keras`` with ``card.json`` beside it. Test-time
augmentation (the mirror image, optionally shifted copies; see ``VIEW_SETS``) is part of the saved model
itself, so the app, the CLI and the evaluator all get the same answers from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

import keras

from cifarmix import architectures, evaluation, models, paths
from cifarmix.catalog import CARD_FILE, MODEL_FILE
from cifarmix.store import RunStore
from cifarmix.checkpoints import STATE_FILE
from cifarmix.config import TrainConfig, preset
from cifarmix.views import VIEW_SETS, network_of, view_count, with_views


def float32_copy(model: keras.Model, config: TrainConfig) -> keras.Model:
    """Rebuild the run's architecture in float32 and copy the trained weights (bf16 runs ship as float32)."""
    with models.precision_policy("float32"):
        copy = architectures.build(config.arch, **config.options)
    copy.set_weights(model.get_weights())
    return copy


def training_command(config: TrainConfig, preset_name: str | None) -> str:
    """The command line that reproduces a run's configuration (a preset plus whatever differs from it)."""
    baseline = preset(preset_name) if preset_name else TrainConfig()
    parts = ["python -m cifarmix train"] + ([f"--preset {preset_name}"] if preset_name else [])
    for key, value in config.to_dict().items():
        if value != getattr(baseline, key) and value is not None:
            flag = "--" + key.replace("_", "-").replace("time-budget-minutes", "time-budget")
            if isinstance(value, bool):
                parts.append(flag if value else f"--no-{flag[2:]}")
            elif isinstance(value, dict):
                parts.append(f"{flag} '{json.dumps(value)}'")
            else:
                parts.append(f"{flag} {value}")
    return " ".join(parts)


MILESTONES = (0.70, 0.772)  # 70%, and the seed notebook's 77.2%
# Over a cycled recipe's whole lineage: also 80%, and the two best public results (82.75%, 84.87%)
LINEAGE_MILESTONES = (0.70, 0.772, 0.80, 0.8275, 0.8487)


def milestones(epochs, thresholds=MILESTONES) -> dict:
    """Training minutes until the mean validation accuracy first reached each threshold, from a run's own
    per-epoch log (``RunStore.epoch_metrics``); None for a threshold never reached."""
    reached = {}
    for threshold in thresholds:
        hits = epochs[epochs["val_mean_accuracy"] >= threshold] if "val_mean_accuracy" in epochs else epochs[:0]
        reached[f"{threshold:.4g}"] = (None if not len(hits) else
                                      {"epoch": int(hits["epoch"].iloc[0]),
                                       "minutes": round(float(hits["train_seconds"].iloc[0]) / 60, 1)})
    return reached


def export_run(run_id: int, name: str, store: RunStore, x_test, y_test, views: str = "flip",
               preset_name: str | None = None, data_copy: str = "", notes: str = "",
               destination: Path | None = None, repeats: int = evaluation.PROTOCOL_REPEATS,
               pairs: int = evaluation.PROTOCOL_PAIRS) -> dict:
    """Ship run ``run_id``'s best checkpoint as ``name``, evaluated once on the full test protocol.

    Returns:
        the model card (also written to ``card.json``).
    """
    run = store.get_run(run_id)
    if run is None or not run.get("model_path"):
        raise ValueError(f"run {run_id} has no best checkpoint to export")
    config = TrainConfig.from_dict(run["config"])
    earlier = previous_cycles(config, store)  # read before the export replaces a shipped model it started from
    model = float32_copy(models.load_model(run["model_path"]), config)
    model = with_views(model, views)
    folder = (destination or paths.shipped_models_dir()) / name
    target = models.save_atomically(model, folder / MODEL_FILE)
    shipped = models.load_model(target)  # evaluate exactly what users will load
    result = evaluation.evaluate(shipped, x_test, y_test, repeats=repeats, pairs=pairs, verbose=1)
    card = model_card(run, config, result, name, views, preset_name, data_copy, notes, target)
    epochs = store.epoch_metrics(run_id)
    card["milestones"] = milestones(epochs)
    this_cycle = cycle_record(card, config, milestones(epochs, LINEAGE_MILESTONES), run_id)
    card.update(lineage_summary([*earlier, this_cycle]))
    paths.write_json_atomically(folder / CARD_FILE, card)
    store.add_evaluation(run_id, name, result)
    write_models_readme(folder.parent)
    return card


def cycle_record(card: dict, config: TrainConfig, reached: dict, run_id: int | None = None) -> dict:
    """One cycle of a model's lineage: its command, minutes, machine, pairs, best validation accuracy and the
    training minutes (within the cycle) to each of ``LINEAGE_MILESTONES``."""
    return {"cycle": config.cycle, "run_id": run_id, "init_from": config.init_from,
            "command": card.get("training_command"), "minutes": card.get("train_wall_minutes"),
            "machine": card.get("machine"), "epochs": card.get("epochs"), "pairs": card.get("pairs_seen"),
            "best_val_mean_accuracy": card.get("best_val_mean_accuracy"), "milestones": reached}


def previous_cycles(config: TrainConfig, store: RunStore) -> list[dict]:
    """The cycles a warm-restarted run stands on: the lineage of the shipped model or run it started from (a
    shipped card from before lineages counts as one cycle); [] for a run trained from scratch."""
    if not config.init_from:
        return []
    from cifarmix import catalog

    entry = catalog.resolve(config.init_from, store)
    if entry.card:
        card = entry.card
        if isinstance(card.get("lineage"), list):
            return card["lineage"]
        before = TrainConfig.from_dict(card.get("config") or {})
        return [cycle_record(card, before, card.get("milestones") or {})]
    run = store.get_run(entry.run_id) if entry.run_id else None
    if run is None:
        return [{"cycle": None, "init_from": str(entry.path), "command": None,
                 "note": "weights from a model file whose own training is not recorded"}]
    before = TrainConfig.from_dict(run["config"])
    summary = {"training_command": training_command(before, before.lineage), "machine": machine_description(
        run.get("device")), "train_wall_minutes": round((run.get("train_seconds") or 0) / 60, 1),
        "best_val_mean_accuracy": run.get("best_val_mean"), "epochs": run.get("epochs_done")}
    return [*previous_cycles(before, store),
            cycle_record(summary, before, milestones(store.epoch_metrics(run["id"]), LINEAGE_MILESTONES), run["id"])]


def lineage_summary(lineage: list[dict]) -> dict:
    """The card's lineage fields: every cycle, their total minutes and pairs, and the training minutes over the
    whole lineage until the validation accuracy first reached each of ``LINEAGE_MILESTONES``."""
    total, reached = 0.0, {}
    for number, cycle in enumerate(lineage, start=1):
        cycle["cycle"] = cycle.get("cycle") or number
        for threshold in LINEAGE_MILESTONES:
            key, hit = f"{threshold:.4g}", (cycle.get("milestones") or {}).get(f"{threshold:.4g}")
            if key not in reached and hit:
                reached[key] = {"minutes": round(total + hit["minutes"], 1), "cycle": cycle["cycle"],
                                "epoch": hit["epoch"]}
        total += cycle.get("minutes") or 0.0
    return {"lineage": lineage, "lineage_minutes": round(total, 1),
            "lineage_pairs": sum(cycle.get("pairs") or 0 for cycle in lineage),
            "lineage_milestones": {f"{t:.4g}": reached.get(f"{t:.4g}") for t in LINEAGE_MILESTONES}}


def views_of(card: dict) -> str:
    """The name of the view set a card's model averages (older cards only say whether they flip)."""
    return (card.get("test_time_views") or {}).get("name") or ("flip" if card.get("flip_averaging") else "none")


def change_views(name: str, views: str, x_test, y_test, destination: Path | None = None,
                 repeats: int = evaluation.PROTOCOL_REPEATS, pairs: int = evaluation.PROTOCOL_PAIRS) -> dict:
    """Re-wrap shipped model ``name``'s trained network with the view set ``views`` and evaluate it once on the
    full test protocol; the model and its card (training facts kept, the change recorded in ``history``) are
    replaced only once that evaluation has finished.

    Returns:
        the updated card.
    """
    folder = (destination or paths.shipped_models_dir()) / name
    if not (folder / CARD_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        raise ValueError(f"there is no shipped model {name!r} (with {MODEL_FILE} and {CARD_FILE}) in {folder.parent}")
    card = json.loads((folder / CARD_FILE).read_text())
    model = with_views(network_of(models.load_model(folder / MODEL_FILE)), views)
    candidate = models.save_atomically(model, folder / f".{views}-candidate.keras")
    try:
        result = evaluation.evaluate(models.load_model(candidate), x_test, y_test, repeats=repeats, pairs=pairs,
                                     verbose=1)
    except BaseException:
        candidate.unlink(missing_ok=True)
        raise
    card.setdefault("history", []).append({
        "changed_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "change": f"test-time views {views_of(card)} -> {views}",
        "mean_accuracy_before": card["evaluation"]["mean_accuracy"], "mean_accuracy_after": result["mean_accuracy"],
    })
    card.update(flip_averaging=VIEW_SETS[views] is not None, test_time_views=views_record(views), evaluation=result,
                model_file_mb=round(candidate.stat().st_size / 2**20, 2))
    os.replace(candidate, folder / MODEL_FILE)
    paths.write_json_atomically(folder / CARD_FILE, card)
    write_models_readme(folder.parent)
    return card


def views_record(views: str) -> dict:
    """What a card says of its test-time views."""
    return {"name": views, "count": view_count(views), "shifts": [list(shift) for shift in VIEW_SETS[views] or ()]}


def model_card(run: dict, config: TrainConfig, result: dict, name: str, views: str,
               preset_name: str | None, data_copy: str, notes: str, target: Path) -> dict:
    """Everything a reader needs to trust (or reproduce) a shipped model."""
    state = json.loads((paths.run_dir(run["id"]) / STATE_FILE).read_text())
    epochs = state["epoch"]
    # The batches the shipped (best) weights were trained on; runs older than best_steps: the run's last step.
    steps = state.get("best_steps") or run.get("steps_done") or 0
    device = device_record(run, config)
    return {
        "name": name,
        "title": architectures.get(config.arch).title,
        "architecture": config.arch,
        "options": config.options,
        "parameters": architectures.count_params(models.load_model(target)),
        "flip_averaging": VIEW_SETS[views] is not None,
        "test_time_views": views_record(views),
        "training_command": training_command(config, preset_name),
        "config": config.to_dict(),
        "epochs": epochs,
        "best_epoch": run.get("best_epoch"),
        "best_val_mean_accuracy": run.get("best_val_mean"),
        "pairs_seen": steps * device["batch_size"],
        "train_wall_minutes": round(state.get("train_seconds", 0.0) / 60, 1),
        "machine": machine_description(run.get("device")),
        "device": device,
        "data_copy": data_copy,
        "evaluation": result,
        "model_file_mb": round(target.stat().st_size / 2**20, 2),
        "exported_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "notes": notes,
    }


def device_record(run: dict, config: TrainConfig) -> dict:
    """What a card says of the device a run trained on (``devices.Device.record``: kind, name, count, memory in
    GiB, bf16, text) and the precision and batch size it chose there; a run from before devices recorded them
    gives its device text and its config's values."""
    resolved = (run.get("config") or {}).get("resolved") or {}
    record = resolved.get("device") or {"text": run.get("device")}
    return {**record, "precision": resolved.get("precision", config.precision),
            "batch_size": resolved.get("batch_size", config.batch_size)}


def machine_description(device: str | None) -> str:
    """``"CPU x2 (x86_64), Intel(R) Xeon(R) Processor, 24 GiB RAM"``: the run's device, with the CPU model and
    memory of *this* machine as Linux tells them (/proc); the device alone elsewhere. Export on the machine that
    trained, as ``export`` is meant to be run."""
    parts = [device or platform.machine()]
    with contextlib.suppress(OSError, ValueError, IndexError):  # not Linux, or /proc says less: the device alone
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")][:1]
        parts += [name for name in model if name not in parts[0]]  # a CPU device's text already names its model
        meminfo = Path("/proc/meminfo").read_text().split()
        parts.append(f"{round(int(meminfo[meminfo.index('MemTotal:') + 1]) / 2**20)} GiB RAM")
    return ", ".join(parts)


def _views_text(card: dict) -> str:
    """The card's test-time views for the table: ``flip-diagonal (6)``; older cards only say flip or not."""
    name = views_of(card)
    return f"{name} ({view_count(name)})"


def _milestone_text(hit: dict | None) -> str:
    return "not reached" if not hit else f"{hit['minutes']} min (epoch {hit['epoch']})"


def write_models_readme(folder: Path) -> Path:
    """``README.md`` in the shipped-models folder: one table row per ``*/card.json`` (written by ``export`` and ``set-views``)."""
    rows, times = [], []
    for card_path in sorted(folder.glob("*/card.json")):
        card = json.loads(card_path.read_text())
        result = card["evaluation"]
        times.append(f"| `{card['name']}` | " + " | ".join(_milestone_text(card.get("milestones", {}).get(f"{t:.4g}"))
                                                           for t in MILESTONES)
                     + f" | {card['train_wall_minutes']} | **{result['mean_accuracy']:.2%}** |")
        rows.append(
            f"| `{card['name']}` | {card['architecture']} | {card['parameters']:,} | "
            f"**{result['mean_accuracy']:.2%}** ± {result['std']:.2%} | {result['head_first']:.2%} / "
            f"{result['head_second']:.2%} | {result['f1_first']:.3f} / {result['f1_second']:.3f} | "
            f"{card['epochs']} | {card['pairs_seen']:,} | {card['train_wall_minutes']} | "
            f"{_views_text(card)} | {card['model_file_mb']} | `{card['training_command']}` |"
        )
    text = "\n".join([
        "# Shipped models",
        "",
        "Each folder holds `model.keras` (float32; loads with `keras.saving.load_model(path, safe_mode=True)` after",
        "`import cifarmix`; float32 pixels in [0, 255], shape (N, 32, 32, 3) -> `{\"first\": (N, 5), \"second\": (N, 5)}`)",
        "and `card.json`: the exact training command and configuration, epochs, pairs seen (by the shipped weights),",
        "training time (minutes of training, summed over resumes; downtime excluded), machine, the",
        "data copy, and the full test-protocol result (10 x 10,000 test pairs, seed 2024) with confusion matrices.",
        "This table is written by `python -m cifarmix export` and `set-views` from the cards; file sizes in MiB.",
        "",
        "| model | architecture | parameters | test mean accuracy ± std | heads (first / second) | weighted F1 "
        "(first / second) | epochs | pairs seen | training minutes | test-time views | file MB | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## Accuracy against training time",
        "",
        "Training minutes (and epoch) until the mean *validation* accuracy first reached 70% and the seed notebook's",
        "77.2%, read from each run's own per-epoch log; then the run's total training minutes and the final *test*",
        "protocol result of the shipped model.",
        "",
        "| model | to 70% | to 77.2% | training minutes | test mean accuracy |",
        "|---|---|---|---|---|",
        *times,
        "",
    ])
    target = folder / "README.md"
    target.write_text(text)
    return target
