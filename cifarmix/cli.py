"""Command line: ``python -m cifarmix {data check, architectures, train (or queue a run: --queue), worker, evaluate
(the protocol, or a weight sweep with --alphas), runs, export, set-views, mix, explain, serve, lesson {list, export,
close}}``.

Every user error (bad arguments, missing data, a file that is not a model) ends with one clear message on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cifarmix import config, data, mixing, paths, serving, slots
from cifarmix.models import ModelError
from cifarmix.views import VIEW_SETS


class CliError(Exception):
    """A user-facing error: printed as one message, exit code 2."""


def _in_range(bounds):
    """An argparse type for a number in ``bounds`` (a ``config.Range``): anything else is refused, naming the
    accepted range, before a command does any work (so no run is created, no array allocated)."""

    def parse(text: str):
        try:
            value = int(text) if bounds.integer else float(text)
        except ValueError:
            kind = "a whole number" if bounds.integer else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind} in {bounds.text()}, got {text!r}") from None
        problem = bounds.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"expected {problem.split(' must be ', 1)[1]}")
        return value

    return parse


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


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value} (leave the option "
                                         "out for no limit)")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


# A weight sweep's default size (breakdowns.SWEEP_REPEATS / SWEEP_PAIRS, without importing TensorFlow here).
SWEEP_DEFAULTS = {"repeats": 1, "pairs": 500}


def _alpha_list(text: str) -> list[float]:
    """``0.1,0.3,0.5`` -> [0.1, 0.3, 0.5], each a mixing weight of the app's range (0.05..0.95)."""
    values = [part.strip() for part in text.split(",")]
    if not any(values):
        raise argparse.ArgumentTypeError("expected weights of A separated by commas, e.g. 0.1,0.3,0.5")
    return [_mixing_weight(value) for value in values if value]


def _protocol_arguments(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    """The test protocol's size: repeats x pairs (default 10 x 10,000; a weight sweep's default is smaller)."""
    also = (f"; with --alphas {SWEEP_DEFAULTS['repeats']}" if sweep else "")
    parser.add_argument("--repeats", type=_in_range(config.EVAL_REPEATS), default=None if sweep else 10,
                        help=f"test-protocol repeats, {config.EVAL_REPEATS.text()} (default 10{also})")
    also = (f"; with --alphas {SWEEP_DEFAULTS['pairs']:,} per weight" if sweep else "")
    parser.add_argument("--pairs", type=_in_range(config.EVAL_PAIRS), default=None if sweep else 10_000,
                        help=f"pairs per repeat, {config.EVAL_PAIRS.text()} (default 10,000{also})")


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
    train.add_argument("--epochs", type=_in_range(config.EPOCHS))
    train.add_argument("--batch-size", type=_in_range(config.BATCH_SIZE))
    train.add_argument("--steps-per-epoch", type=_in_range(config.STEPS_PER_EPOCH))
    train.add_argument("--train-size", type=_in_range(config.TRAIN_SIZE),
                       help="training images to use (class-balanced subset)")
    train.add_argument("--val-pairs", type=_in_range(config.VAL_PAIRS))
    train.add_argument("--lr", type=_positive_float)
    train.add_argument("--optimizer")
    train.add_argument("--schedule")
    train.add_argument("--label-smoothing", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--warmup-epochs", type=float, help="epochs of warm-up from a tenth of the rate")
    train.add_argument("--ema", type=float, metavar="MOMENTUM",
                       help="keep an exponential moving average of the weights (e.g. 0.99); validation, "
                            "checkpoints and the best model hold it (default 0: none)")
    train.add_argument("--alpha", type=_mixing_weight, help="mixing weight of the first component (0.5 = average)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="flip + translate each component before mixing")
    train.add_argument("--precision", help="auto (by the device), float32, mixed_bfloat16 or mixed_float16")
    train.add_argument("--batch-scaling", help="auto (a larger batch on a GPU with the memory for it) or none")
    train.add_argument("--seed", type=_in_range(config.SEED))
    train.add_argument("--time-budget", type=_in_range(config.TIME_BUDGET), metavar="MINUTES",
                       help="stop cleanly after this many minutes of training (summed over resumes)")
    train.add_argument("--name")
    train.add_argument("--init-from", metavar="MODEL",
                       help="start from this model's weights (a shipped model, a run id or a .keras file), with a "
                       "fresh optimizer and schedule: a warm restart")
    _data_argument(train)
    train.add_argument("--run-id", type=_in_range(config.RUN_ID), help=argparse.SUPPRESS)  # used by cifarmix.jobs
    train.add_argument("--resume", type=_in_range(config.RUN_ID), metavar="RUN_ID",
                       help="continue a stopped or killed run")
    train.add_argument("--queue", action="store_true",
                       help="only record the run as queued (or, with --resume, queue it again): a training worker "
                       "(`python -m cifarmix worker`) claims and trains it")

    worker = commands.add_parser("worker", help="train queued runs from the run store, one at a time, until stopped")
    worker.add_argument("--max-runs", type=_at_least_one, metavar="N", help="exit after training N runs")
    worker.add_argument("--exit-when-idle", action="store_true", help="exit when no run is waiting in the queue")
    worker.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="train on what TensorFlow finds (auto, the default), on the CPU only, or require a GPU")
    worker.add_argument("--heartbeat", type=_positive_float, metavar="SECONDS",
                        help="seconds between heartbeats and between looks at the queue (default: "
                        "$CIFARMIX_HEARTBEAT_SECONDS, else 5)")
    _data_argument(worker)

    evaluate = commands.add_parser(
        "evaluate", help="score a model on the test protocol, or each head's accuracy against the weight of A")
    evaluate.add_argument("model", nargs="?", help="a .keras file, a run id, or a shipped model name")
    evaluate.add_argument("--arch", help="evaluate a freshly built, untrained model of this architecture")
    _protocol_arguments(evaluate, sweep=True)
    evaluate.add_argument("--seed", type=_in_range(config.SEED))
    evaluate.add_argument("--alpha", type=_mixing_weight, help="mixing weight of A (default 0.5, the protocol)")
    evaluate.add_argument("--alphas", type=_alpha_list, metavar="W,W,...",
                          help="how much of an image the model needs: each head's accuracy at each of these weights "
                          "of A (e.g. 0.1,0.3,0.5,0.7,0.9), on the same test pairs; stored in the run store and "
                          "read back from it when already measured on this model file")
    evaluate.add_argument("--json", action="store_true",
                          help="print one JSON object (with --alphas: a list, one object per weight)")
    evaluate.add_argument("--no-store", action="store_true",
                          help="do not record the result in the run store (with --alphas: nor read a stored one)")
    _data_argument(evaluate)

    commands.add_parser("runs", help="list training runs")

    lesson = commands.add_parser("lesson", help="lessons (a teacher's class): list them, export one's results as "
                                                "CSV, close one")
    lesson_actions = lesson.add_subparsers(dest="action", required=True)
    lesson_actions.add_parser("list", help="every lesson: code, name, opened, closed, games")
    lesson_export = lesson_actions.add_parser("export", help="a lesson's games (one row each) as CSV")
    lesson_export.add_argument("code", help="the lesson's code, as shown or typed (K7M-Q4P, k7mq4p)")
    lesson_export.add_argument("--classes", action="store_true",
                               help="export people against the models per class instead of the games")
    lesson_export.add_argument("--out", help="write to this file (default: standard output)")
    lesson_close = lesson_actions.add_parser("close", help="close a lesson: it takes no new games")
    lesson_close.add_argument("code", help="the lesson's code")

    export = commands.add_parser("export", help="ship a run's best model to artifacts/models/NAME with a model card")
    export.add_argument("run_id", type=_in_range(config.RUN_ID))
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
    mix.add_argument("--first", type=_in_range(config.TEST_INDEX),
                     help="test-set index of component A, of group A (classes 0-4, airplane … deer); default: random")
    mix.add_argument("--second", type=_in_range(config.TEST_INDEX),
                     help="test-set index of component B, of group B (classes 5-9, dog … truck); default: random")
    mix.add_argument("--alpha", type=_mixing_weight, default=0.5)
    mix.add_argument("--seed", type=_in_range(config.SEED), default=0)
    mix.add_argument("--out", default="mix.png")
    mix.add_argument("--a-file", metavar="PHOTO", help="your own photo as component A (with --b-file)")
    mix.add_argument("--b-file", metavar="PHOTO", help="your own photo as component B (with --a-file)")
    mix.add_argument("--model", help="with photos: the model that names both halves (default: champion)")
    mix.add_argument("--json", action="store_true", help="with photos: print one JSON object")
    _data_argument(mix)

    explain = commands.add_parser("explain", help="where each head looks: saliency maps of a test mix (PNG, .npz)")
    explain.add_argument("model", help="a .keras file, a run id, or a shipped model name")
    explain.add_argument("--a", type=_in_range(config.TEST_INDEX), required=True, metavar="TEST_INDEX",
                         help="test-set index of component A (classes 0-4)")
    explain.add_argument("--b", type=_in_range(config.TEST_INDEX), required=True, metavar="TEST_INDEX",
                         help="test-set index of component B (classes 5-9)")
    explain.add_argument("--alpha", type=_mixing_weight, default=0.5, help="mixing weight of A (default 0.5)")
    explain.add_argument("--out", required=True, metavar="FILE.png",
                         help="the picture: the mix, each head's map over it and over its own component")
    explain.add_argument("--npz", metavar="FILE.npz", help="also save the maps (first, second: 32 x 32) and the mix")
    _data_argument(explain)

    serve = commands.add_parser(
        "serve", help="serve the app for a classroom: several Streamlit processes behind nginx (Ctrl-C stops all)",
        description="Start the app on ADDRESS:PORT. With --processes 2 or more, that many Streamlit servers run on "
                    "internal ports behind nginx, which keeps each browser on one of them (a cookie); all share "
                    "the run store of $CIFARMIX_HOME. Extra Streamlit options go after --, e.g. "
                    "-- --server.maxUploadSize 20.")
    serve.add_argument("--processes", type=int, default=1,
                       help="Streamlit server processes (default 1; about one per core; more than 1 needs nginx)")
    serve.add_argument("--address", default="0.0.0.0", help="the address to listen on (default 0.0.0.0: the LAN)")
    serve.add_argument("--port", type=int, default=8501, help="the port to listen on (default 8501)")
    serve.add_argument("streamlit_options", nargs=argparse.REMAINDER, help="after --: options for streamlit run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"data": cmd_data, "architectures": cmd_architectures, "train": cmd_train, "worker": cmd_worker,
                "evaluate": cmd_evaluate, "runs": cmd_runs, "mix": cmd_mix, "export": cmd_export,
                "set-views": cmd_set_views, "explain": cmd_explain, "serve": cmd_serve, "lesson": cmd_lesson}
    try:
        return handlers[args.command](args) or 0
    except (CliError, data.DataError, ModelError, ValueError, paths.HomeError, slots.TrainingRefused,
            serving.ServeError) as error:
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


def _train_overrides(args) -> dict:
    """The training settings the user typed (None for those left to the preset or the defaults)."""
    overrides = dict(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                     steps_per_epoch=args.steps_per_epoch, train_size=args.train_size, val_pairs=args.val_pairs,
                     lr=args.lr, optimizer=args.optimizer, schedule=args.schedule,
                     label_smoothing=args.label_smoothing, ema=args.ema, weight_decay=args.weight_decay,
                     warmup_epochs=args.warmup_epochs, alpha=args.alpha, augment=args.augment,
                     precision=args.precision, seed=args.seed, time_budget_minutes=args.time_budget,
                     init_from=args.init_from, batch_scaling=args.batch_scaling)
    if args.options:
        overrides["options"] = config.parse_options(args.options, what="--options")
    return overrides


def _train_config(args):
    overrides = _train_overrides(args)
    if args.preset:
        return config.preset(args.preset, **overrides)
    if not args.arch:
        raise CliError("give --arch NAME (see `python -m cifarmix architectures`) or --preset NAME")
    return config.TrainConfig.from_dict({k: v for k, v in overrides.items() if v is not None})


def cmd_train(args) -> None:
    from cifarmix import cycles, training
    from cifarmix.config import TrainConfig
    from cifarmix.store import RunStore

    store = RunStore()
    if args.queue:
        return _queue(args, store)

    def train_one(config):
        name = f"{args.name or config.lineage} · cycle {config.cycle}"
        return training.train(config, store, name=name, data_source=args.data)

    if args.resume:
        run = training.resume(args.resume, store, args.data)
        config = TrainConfig.from_dict(run["config"])
        following = cycles.next_cycle(config)
        if run["status"] == "finished" and following and run.get("model_path"):  # the cycles after it follow
            run = cycles.run_cycles(config.lineage, following, f"run:{run['id']}", train_one)
    elif args.run_id:
        run = training.Trainer(store, args.run_id, args.data).run()
    elif cycles.has_cycles(args.preset):
        overrides = _train_overrides(args)
        init_from = overrides.pop("init_from")
        start = cycles.first_cycle(args.preset, init_from)
        run = cycles.run_cycles(args.preset, start, init_from, train_one, **overrides)
    else:
        run = training.train(_train_config(args), store, name=args.name, data_source=args.data)
    best = run.get("best_val_mean")
    print(f"run {run['id']} {run['status']}: best mean validation accuracy "
          f"{best if best is None else f'{best:.4f}'} (epoch {run.get('best_epoch')}); model {run.get('model_path')}")


def _queue(args, store) -> None:
    """``train --queue``: record the run for a training worker (``--resume ID --queue``: hand an ended one back)."""
    from cifarmix import cycles, jobs

    if args.data:
        raise CliError("--data goes to the worker that trains the run: python -m cifarmix worker --data PATH")
    if args.run_id:
        raise CliError("--queue records a new run (or, with --resume ID, an ended one); not with --run-id")
    if args.resume:
        jobs.requeue(args.resume, store)
        print(f"run {args.resume} queued to resume: a worker (`python -m cifarmix worker`) continues it")
        return
    if cycles.has_cycles(args.preset):
        raise CliError(f"--queue takes one run; the {args.preset!r} preset trains several cycles one after another. "
                       "Queue it with --arch and the settings of one cycle, or train it here without --queue")
    run_id = jobs.queue(_train_config(args), store, name=args.name)
    print(f"run {run_id} queued: a worker (`python -m cifarmix worker`) claims and trains it")


def cmd_worker(args) -> None:
    from cifarmix import workers
    from cifarmix.store import RunStore

    worker = workers.Worker(RunStore(), device=args.device, heartbeat=args.heartbeat, max_runs=args.max_runs,
                            exit_when_idle=args.exit_when_idle, data_source=args.data)
    worker.serve()


def cmd_evaluate(args) -> None:
    from cifarmix import catalog, evaluation
    from cifarmix.store import RunStore

    if bool(args.model) == bool(args.arch):
        raise CliError("give exactly one of: a model file, a run id or a shipped model name; or --arch NAME")
    if args.alphas is not None and args.alpha is not None:
        raise CliError("give --alpha (one weight, the protocol) or --alphas (a sweep over several), not both")
    store = RunStore()
    entry = catalog.untrained(args.arch) if args.arch else catalog.resolve(args.model, store)
    (_, _), (x_test, y_test) = data.load_cifar10(args.data)
    seed = evaluation.PROTOCOL_SEED if args.seed is None else args.seed
    if args.alphas is not None:
        return _sweep(args, entry, store, x_test, y_test, seed)
    result = evaluation.evaluate_and_store(entry, store, x_test, y_test,
                                           repeats=10 if args.repeats is None else args.repeats,
                                           pairs=10_000 if args.pairs is None else args.pairs, seed=seed,
                                           alpha=evaluation.PROTOCOL_ALPHA if args.alpha is None else args.alpha,
                                           verbose=0 if args.json else 1, save=not args.no_store and not args.arch)
    print(json.dumps(result) if args.json else evaluation.summary_line(result))


SWEEP_FIELDS = ("alpha", "head_first", "head_second", "mean_accuracy")


def _sweep(args, entry, store, x_test, y_test, seed: int) -> None:
    """``evaluate MODEL --alphas ...``: each head's accuracy at each weight of A (``breakdowns.sweep_and_store``)."""
    from cifarmix import breakdowns

    settings = breakdowns.sweep_settings(
        args.alphas, repeats=SWEEP_DEFAULTS["repeats"] if args.repeats is None else args.repeats,
        pairs=SWEEP_DEFAULTS["pairs"] if args.pairs is None else args.pairs, seed=seed)
    keep = not args.no_store and not args.arch
    total = len(settings["alphas"]) * settings["repeats"] * settings["pairs"]
    if not args.json:
        print(f"{entry.reference}: {len(settings['alphas'])} weights x {settings['repeats']} x "
              f"{settings['pairs']:,} test pairs ({total:,} mixes)", file=sys.stderr)
    found = breakdowns.sweep_and_store(entry, store, x_test, y_test, settings, save=keep, reuse=keep)
    points = found["points"]
    margins = [point["margin"] for point in points if point.get("margin") == point.get("margin")]  # not NaN
    where = (f"read from the run store (measured {found['created_at'][:16].replace('T', ' ')} UTC on this model "
             f"file; --no-store measures again)" if found["stored"] else
             f"measured in {found['seconds']:.1f} s" + ("; stored in the run store" if keep else ""))
    margin = f"95% margin of error up to ±{max(margins):.1%} per point" if margins else "no margin (one pair)"
    if args.json:
        print(json.dumps([{key: point[key] for key in SWEEP_FIELDS} for point in points]))
        print(f"{margin}; {where}", file=sys.stderr)
        return
    print(f"{'weight of A':>11s}  {'first head':>10s}  {'second head':>11s}  {'mean':>6s}  {'± 95%':>6s}")
    for point in points:
        print(f"{point['alpha']:11.2f}  {point['head_first']:10.1%}  {point['head_second']:11.1%}  "
              f"{point['mean_accuracy']:6.1%}  {point['margin']:6.1%}")
    print(f"{margin}; {where}")


def cmd_runs(args) -> None:
    from cifarmix import jobs, runinfo
    from cifarmix.store import RunStore

    store = RunStore()
    jobs.reap(store)
    runs = store.list_runs()
    if not runs:
        print("no runs yet: start one with `python -m cifarmix train --preset smoke`")
        return
    print(f"{'id':>4s}  {'name':18s} {'architecture':14s} {'status':9s} {'epochs':>9s}  {'best val':>8s}")
    for run in runs:
        print(f"{run['id']:4d}  {(run.get('name') or '')[:18]:18s} {run['arch']:14s} {run['status']:9s} "
              f"{runinfo.epochs_text(run):>9s}  {runinfo.best_val_text(run):>8s}")


def cmd_lesson(args) -> None:
    """``lesson list``, ``lesson export CODE [--classes] [--out FILE]``, ``lesson close CODE`` (whoever runs the
    server's commands owns its store: closing here takes no teacher's key)."""
    from cifarmix import lessons
    from cifarmix.store import RunStore

    store = RunStore()
    if args.action == "list":
        _list_lessons(store)
        return
    lesson = lessons.find_lesson(store, args.code)
    if args.action == "close":
        closed = store.close_lesson(lesson["id"])
        print(f"closed the lesson {closed['name']!r} ({lessons.shown_code(closed['code'])}) at {closed['closed_at']}")
        return
    found = lessons.results(store, lesson)
    text = lessons.classes_csv(found) if args.classes else lessons.games_csv(found)
    if not args.out:
        sys.stdout.write(text)
        return
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except OSError as error:
        raise CliError(f"could not write {args.out}: {error.strerror or error}") from None
    print(f"wrote {os.path.abspath(args.out)}: {len(found.classes if args.classes else found.games)} rows")


def _list_lessons(store) -> None:
    """Every lesson, newest first: its code as shown, name, when opened and closed (UTC), games saved in it."""
    from cifarmix import lessons

    def minute(iso: str | None) -> str:
        return iso[:16].replace("T", " ") if iso else "open"

    rows = [(lessons.shown_code(lesson["code"]), lesson["name"][:30], minute(lesson["created_at"]),
             minute(lesson["closed_at"]), len(store.leaderboard(limit=None, lesson_id=lesson["id"])))
            for lesson in store.lessons()]
    if not rows:
        print("no lessons yet: open one on the app's Lesson page")
    for row in [("code", "name", "opened", "closed", "games")] * bool(rows) + rows:
        print("{:8s} {:30s} {:17s} {:17s} {:>5}".format(*row))


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

    from cifarmix import pairs

    if args.a_file or args.b_file:
        return _mix_photos(args)
    if args.model or args.json:
        raise CliError("--model and --json go with your own photos (--a-file and --b-file)")
    (_, _), (x_test, y_test) = data.load_cifar10(args.data)
    pair = pairs.pair_of(y_test, np.random.default_rng(args.seed), args.first, args.second, args.alpha)
    mixed = pair.image(x_test)
    Image.fromarray(mixed.round().astype(np.uint8)).resize((256, 256), Image.NEAREST).save(args.out)
    print(f"wrote {os.path.abspath(args.out)}: {data.CLASS_NAMES[y_test[pair.a_index]]} (#{pair.a_index}) + "
          f"{data.CLASS_NAMES[y_test[pair.b_index]]} (#{pair.b_index}), alpha {args.alpha}")


def cmd_explain(args) -> None:
    import time

    from cifarmix import catalog, saliency
    from cifarmix.store import RunStore

    import numpy as np

    from cifarmix import pairs

    (_, _), (x_test, y_test) = data.load_cifar10(args.data)
    pair = pairs.pair_of(y_test, np.random.default_rng(0), args.a, args.b, args.alpha)
    a, b = pair.a_index, pair.b_index
    entry = catalog.resolve(args.model, RunStore())
    model = entry.load()
    mixed = pair.image(x_test)
    started = time.perf_counter()
    found = saliency.explain_with_answers(model, mixed)
    seconds = time.perf_counter() - started
    answers = {}
    for head, offset in (("first", 0), ("second", 5)):
        cls = found["classes"][head]
        answers[head] = f"{data.CLASS_NAMES[cls + offset]} {found['probabilities'][head][cls]:.0%}"
    captions = [f"mix, alpha {args.alpha:g}", f"first: {answers['first']}", f"second: {answers['second']}",
                f"A #{a}: {data.CLASS_NAMES[y_test[a]]}", f"B #{b}: {data.CLASS_NAMES[y_test[b]]}"]
    picture = saliency.panel(mixed, found, components=(x_test[a], x_test[b]), captions=captions)
    try:
        written = [saliency.write_png(args.out, picture)]
        if args.npz:
            written.append(saliency.write_npz(args.npz, mixed, found))
    except OSError as error:
        raise CliError(f"could not write {error.filename or args.out}: {error.strerror or error}") from None
    print(f"{entry.reference}: {data.CLASS_NAMES[y_test[a]]} (#{a}) + {data.CLASS_NAMES[y_test[b]]} (#{b}), "
          f"alpha {args.alpha:g} -> first head {answers['first']}, second head {answers['second']}")
    print(f"maps: {saliency.METHOD} ({seconds:.1f} s, the first call compiles); wrote {', '.join(written)}")


def _read_photo(path: str):
    """A photo file through :func:`cifarmix.photos.load_photo` (read into memory, at most the size limit)."""
    from cifarmix import photos

    try:
        with open(path, "rb") as handle:
            payload = handle.read(photos.MAX_BYTES + 1)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return photos.load_photo(payload)
    except photos.PhotoError as error:
        raise CliError(f"{path}: {error}") from None


def _mix_photos(args) -> None:
    """``mix --a-file PHOTO --b-file PHOTO``: mix two of your own photos and let a model name both halves."""
    import numpy as np
    from PIL import Image

    from cifarmix import catalog, mixing, models
    from cifarmix.store import RunStore

    if not (args.a_file and args.b_file):
        raise CliError("give both --a-file and --b-file (two photos to mix)")
    if args.first is not None or args.second is not None:
        raise CliError("--first / --second pick test images; with --a-file and --b-file give only the photos")
    a, b = _read_photo(args.a_file), _read_photo(args.b_file)
    entry = catalog.resolve(args.model or "champion", RunStore())
    model = entry.load()
    mixed = mixing.mix(a.pixels, b.pixels, args.alpha)
    try:
        Image.fromarray(mixed.round().astype(np.uint8)).resize((256, 256), Image.NEAREST).save(args.out, format="PNG")
    except OSError as error:
        raise CliError(f"could not write {args.out}: {error.strerror or error}") from None
    probabilities = models.predict(model, mixed)
    answers = {}
    for head, offset in (("first", 0), ("second", 5)):
        p = probabilities[head][0]
        answers[head] = {"answer": data.CLASS_NAMES[int(p.argmax()) + offset], "probability": round(float(p.max()), 4),
                         "probabilities": {data.CLASS_NAMES[i + offset]: round(float(p[i]), 4) for i in range(5)}}
    photos_info = {side: {"file": path, "format": photo.format, "size": list(photo.source_size),
                          "notes": list(photo.notes)}
                   for side, path, photo in (("a", args.a_file, a), ("b", args.b_file, b))}
    result = {"out": os.path.abspath(args.out), "alpha": args.alpha, "model": entry.reference, **photos_info,
              **answers}
    if args.json:
        print(json.dumps(result))
        return
    described = [f"{info['file']}" + (f" ({'; '.join(info['notes'])})" if info["notes"] else "")
                 for info in (photos_info["a"], photos_info["b"])]
    print(f"wrote {result['out']}: {described[0]} + {described[1]}, alpha {args.alpha:g}")
    for head, group in (("first", "classes 0-4"), ("second", "classes 5-9")):
        ranked = sorted(answers[head]["probabilities"].items(), key=lambda item: -item[1])
        print(f"{entry.reference} {head} head ({group}): {answers[head]['answer']} "
              f"{answers[head]['probability']:.0%}  [" + ", ".join(f"{name} {p:.0%}" for name, p in ranked[1:]) + "]")


def cmd_serve(args) -> int:
    extra = [option for option in args.streamlit_options if option != "--"]
    server = serving.Server(args.processes, args.address, args.port, extra)
    server.start()
    behind = f"{args.processes} Streamlit processes behind nginx" if args.processes > 1 else "one Streamlit process"
    print(f"cifarmix is serving on http://{args.address}:{args.port} ({behind}); Ctrl-C stops it", flush=True)
    return server.wait()
