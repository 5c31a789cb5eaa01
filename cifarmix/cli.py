"""Command line: ``python -m cifarmix {data check, architectures, train, evaluate, runs, export, set-views, mix}``.

Every user error (bad arguments, missing data, a file that is not a model) ends with one clear message on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cifarmix import data, mixing, paths
from cifarmix.models import ModelError
from cifarmix.views import VIEW_SETS


class CliError(Exception):
    """A user-facing error: printed as one message, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _mixing_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a mixing weight in {mixing.ALPHA_MIN:g}..{mixing.ALPHA_MAX:g}, "
                                         f"got {text!r}") from None
    try:
        return mixing.check_alpha_range(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The test protocol's size: repeats x pairs (default 10 x 10,000)."""
    parser.add_argument("--repeats", type=_positive_int, default=10, help="test-protocol repeats (default 10)")
    parser.add_argument("--pairs", type=_positive_int, default=10_000, help="pairs per repeat (default 10,000)")


def _data_argument(parser: argparse.ArgumentParser) -> None:
    """Where CIFAR-10 is read from; without it, the environment variable, then Keras' own download."""
    parser.add_argument("--data", help=f"CIFAR-10 tarball or folder (default: ${paths.DATA_ENV}, then Keras)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cifarmix", description="Mixed CIFAR-10: data, training, evaluation.")
    commands = parser.add_subparsers(dest="command", required=True)

    data_parser = commands.add_parser("data", help="check the CIFAR-10 data")
    data_parser.add_argument("action", choices=["check"])
    _data_argument(data_parser)

    commands.add_parser("architectures", help="list the architectures")

    train = commands.add_parser("train", help="train a model (or resume a run)")
    train.add_argument("--preset", help="start from a named recipe: champion, allconv, demo, smoke")
    train.add_argument("--arch", help="architecture name (see `architectures`)")
    train.add_argument("--options", help='architecture options as JSON, e.g. \'{"widths": [64, 128, 256]}\'')
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--steps-per-epoch", type=_positive_int)
    train.add_argument("--train-size", type=_positive_int, help="training images to use (class-balanced subset)")
    train.add_argument("--val-pairs", type=_positive_int)
    train.add_argument("--lr", type=_positive_float)
    train.add_argument("--optimizer")
    train.add_argument("--schedule")
    train.add_argument("--label-smoothing", type=float)
    train.add_argument("--alpha", type=_mixing_weight, help="mixing weight of the first component (0.5 = average)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="flip + translate each component before mixing")
    train.add_argument("--precision", help="float32 or mixed_bfloat16")
    train.add_argument("--seed", type=int)
    train.add_argument("--time-budget", type=_positive_float, metavar="MINUTES",
                       help="stop cleanly after this many minutes of training (summed over resumes)")
    train.add_argument("--name")
    train.add_argument("--init-from", metavar="MODEL",
                       help="start from this model's weights (a shipped model, a run id or a .keras file), with a "
                       "fresh optimizer and schedule: a warm restart")
    _data_argument(train)
    train.add_argument("--run-id", type=_positive_int, help=argparse.SUPPRESS)  # used by cifarmix.jobs
    train.add_argument("--resume", type=_positive_int, metavar="RUN_ID", help="continue a stopped or killed run")

    evaluate = commands.add_parser("evaluate", help="score a model on the test protocol")
    evaluate.add_argument("model", nargs="?", help="a .keras file, a run id, or a shipped model name")
    evaluate.add_argument("--arch", help="evaluate a freshly built, untrained model of this architecture")
    _protocol_arguments(evaluate)
    evaluate.add_argument("--seed", type=int)
    evaluate.add_argument("--alpha", type=_mixing_weight, default=0.5)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--no-store", action="store_true", help="do not record the result in the run store")
    _data_argument(evaluate)

    commands.add_parser("runs", help="list training runs")

    export = commands.add_parser("export", help="ship a run's best model to artifacts/models/NAME with a model card")
    export.add_argument("run_id", type=_positive_int)
    export.add_argument("--name", required=True, help="shipped model name, e.g. champion")
    export.add_argument("--preset", help="the preset the run was trained with (for the card's command)")
    export.add_argument("--views", default="flip", choices=list(VIEW_SETS),
                        help="test-time views averaged inside the shipped model (default flip: image + mirror)")
    export.add_argument("--data-copy", default="", help="which CIFAR-10 copy the figures were measured on")
    export.add_argument("--notes", default="")
    _protocol_arguments(export)
    _data_argument(export)

    set_views = commands.add_parser(
        "set-views", help="re-wrap a shipped model with other test-time views; evaluates it once on the protocol")
    set_views.add_argument("name", help="shipped model name, e.g. champion")
    set_views.add_argument("views", choices=list(VIEW_SETS), help="the view set to average inside the model")
    _protocol_arguments(set_views)
    _data_argument(set_views)

    mix = commands.add_parser("mix", help="write a mixed test image as PNG")
    mix.add_argument("--first", type=int, help="test-set index of the component of classes 0-4")
    mix.add_argument("--second", type=int, help="test-set index of the component of classes 5-9")
    mix.add_argument("--alpha", type=_mixing_weight, default=0.5)
    mix.add_argument("--seed", type=int, default=0)
    mix.add_argument("--out", default="mix.png")
    _data_argument(mix)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"data": cmd_data, "architectures": cmd_architectures, "train": cmd_train,
                "evaluate": cmd_evaluate, "runs": cmd_runs, "mix": cmd_mix, "export": cmd_export,
                "set-views": cmd_set_views}
    try:
        return handlers[args.command](args) or 0
    except (CliError, data.DataError, ModelError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_data(args) -> None:
    print(f"reading CIFAR-10 from {data.describe_source(args.data)}")
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(args.data)
    splits = data.load_splits(args.data)
    rows = [("train (all)", y_train), ("train (after the 10% split)", splits.y_train),
            ("validation", splits.y_val), ("test", y_test)]
    print(f"{'split':30s} {'images':>7s}  " + " ".join(f"{name[:8]:>8s}" for name in data.CLASS_NAMES))
    for label, y in rows:
        counts = data.class_counts(y)
        print(f"{label:30s} {len(y):7d}  " + " ".join(f"{counts[name]:8d}" for name in data.CLASS_NAMES))
    print(f"images: {x_train.shape[1:]} {x_train.dtype}; labels 0-9; test images {len(x_test)}")


def cmd_architectures(args) -> None:
    from cifarmix import architectures

    print(f"{'name':16s} {'parameters':>12s}  {'GPU?':5s} description")
    for row in architectures.describe():
        gpu = "yes" if row["needs_gpu"] else ""
        print(f"{row['name']:16s} {row['params']:12,d}  {gpu:5s} {row['description']}")


def _train_config(args):
    from cifarmix import config

    overrides = dict(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                     steps_per_epoch=args.steps_per_epoch, train_size=args.train_size, val_pairs=args.val_pairs,
                     lr=args.lr, optimizer=args.optimizer, schedule=args.schedule,
                     label_smoothing=args.label_smoothing, alpha=args.alpha, augment=args.augment,
                     precision=args.precision, seed=args.seed, time_budget_minutes=args.time_budget,
                     init_from=args.init_from)
    if args.options:
        overrides["options"] = config.parse_options(args.options, what="--options")
    if args.preset:
        return config.preset(args.preset, **overrides)
    if not args.arch:
        raise CliError("give --arch NAME (see `python -m cifarmix architectures`) or --preset NAME")
    return config.TrainConfig.from_dict({k: v for k, v in overrides.items() if v is not None})


def cmd_train(args) -> None:
    from cifarmix import training
    from cifarmix.store import RunStore

    store = RunStore()
    if args.resume:
        run = training.resume(args.resume, store, args.data)
    elif args.run_id:
        run = training.Trainer(store, args.run_id, args.data).run()
    else:
        run = training.train(_train_config(args), store, name=args.name, data_source=args.data)
    best = run.get("best_val_mean")
    print(f"run {run['id']} {run['status']}: best mean validation accuracy "
          f"{best if best is None else f'{best:.4f}'} (epoch {run.get('best_epoch')}); model {run.get('model_path')}")


def cmd_evaluate(args) -> None:
    from cifarmix import catalog, evaluation
    from cifarmix.store import RunStore

    if bool(args.model) == bool(args.arch):
        raise CliError("give exactly one of: a model file, a run id or a shipped model name; or --arch NAME")
    store = RunStore()
    entry = catalog.untrained(args.arch) if args.arch else catalog.resolve(args.model, store)
    (_, _), (x_test, y_test) = data.load_cifar10(args.data)
    seed = evaluation.PROTOCOL_SEED if args.seed is None else args.seed
    result = evaluation.evaluate_and_store(entry, store, x_test, y_test, repeats=args.repeats, pairs=args.pairs,
                                           seed=seed, alpha=args.alpha, verbose=0 if args.json else 1,
                                           save=not args.no_store and not args.arch)
    print(json.dumps(result) if args.json else evaluation.summary_line(result))


def cmd_runs(args) -> None:
    from cifarmix import jobs
    from cifarmix.store import RunStore

    store = RunStore()
    jobs.reap(store)
    runs = store.list_runs()
    if not runs:
        print("no runs yet: start one with `python -m cifarmix train --preset smoke`")
        return
    print(f"{'id':>4s}  {'name':18s} {'architecture':14s} {'status':9s} {'epochs':>9s}  {'best val':>8s}")
    for run in runs:
        best = f"{run['best_val_mean']:.4f}" if run.get("best_val_mean") is not None else "-"
        epochs = f"{run.get('epochs_done') or 0}/{run.get('total_epochs') or '?'}"
        print(f"{run['id']:4d}  {(run.get('name') or '')[:18]:18s} {run['arch']:14s} {run['status']:9s} "
              f"{epochs:>9s}  {best:>8s}")


def cmd_export(args) -> None:
    import re

    from cifarmix import evaluation, export
    from cifarmix.store import RunStore

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", args.name):
        raise CliError(f"model names use lowercase letters, digits, '-' and '_' (at most 40); got {args.name!r}")
    (_, _), (x_test, y_test) = data.load_cifar10(args.data)
    card = export.export_run(args.run_id, args.name, RunStore(), x_test, y_test,
                             views=args.views, preset_name=args.preset,
                             data_copy=args.data_copy or data.describe_source(args.data), notes=args.notes,
                             repeats=args.repeats, pairs=args.pairs)
    print(f"shipped {args.name}: {evaluation.summary_line(card['evaluation'])}")


def cmd_set_views(args) -> None:
    from cifarmix import evaluation, export

    (_, _), (x_test, y_test) = data.load_cifar10(args.data)
    card = export.change_views(args.name, args.views, x_test, y_test, repeats=args.repeats, pairs=args.pairs)
    change = card["history"][-1]
    print(f"{args.name}: {change['change']}; mean accuracy {change['mean_accuracy_before']:.2%} -> "
          f"{change['mean_accuracy_after']:.2%} ({evaluation.summary_line(card['evaluation'])})")


def cmd_mix(args) -> None:
    import numpy as np
    from PIL import Image

    (_, _), (x_test, y_test) = data.load_cifar10(args.data)
    rng = np.random.default_rng(args.seed)
    first = args.first if args.first is not None else int(rng.choice(np.flatnonzero(y_test < 5)))
    second = args.second if args.second is not None else int(rng.choice(np.flatnonzero(y_test >= 5)))
    for index, wanted in ((first, "0-4"), (second, "5-9")):
        if not 0 <= index < len(y_test):
            raise CliError(f"test index {index} is outside 0..{len(y_test) - 1}")
        if (y_test[index] < 5) != (wanted == "0-4"):
            raise CliError(f"test image {index} is a {data.CLASS_NAMES[y_test[index]]}, not of classes {wanted}")
    mixed = mixing.mix(x_test[first], x_test[second], args.alpha)
    Image.fromarray(mixed.round().astype(np.uint8)).resize((256, 256), Image.NEAREST).save(args.out)
    print(f"wrote {os.path.abspath(args.out)}: {data.CLASS_NAMES[y_test[first]]} (#{first}) + "
          f"{data.CLASS_NAMES[y_test[second]]} (#{second}), alpha {args.alpha}")
