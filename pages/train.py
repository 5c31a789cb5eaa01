"""Train: set up a run, start it as a separate process, watch its curves and confusion matrices live, stop it.

The run being watched is named in the URL (``?run=ID``), so a refresh or a second viewer finds it again. The
page only reads the run store; the training process writes it.
"""

from __future__ import annotations

import json

import streamlit as st

from cifarmix import architectures, devices, figures, jobs, mixing, processes, runinfo
from cifarmix.config import OPTIMIZERS, PRECISIONS, PRESET_DESCRIPTIONS, SCHEDULES, TrainConfig, parse_options, preset
from cifarmix.heads import HEADS
from cifarmix.store import RUN_NAME_MAX, RunStore
from pages import ui, use_app_navigation

use_app_navigation()  # first: a legacy run of this page runs app.py instead

REFRESH_SECONDS = 2
CUSTOM = "custom"
STATUS_ICONS = {"queued": "⏳", "running": "🏃", "finished": "✅", "stopped": "⏹️", "failed": "❌", "killed": "💀"}


# ------------------------------------------------------------------------------------------------- helpers


def store() -> RunStore:
    return ui.run_store()


def queues_only() -> bool:
    """Whether this app only queues trainings for workers (``CIFARMIX_TRAINING=queue``; a bad value: no)."""
    try:
        return jobs.training_mode() == "queue"
    except ValueError:
        return False


@st.cache_resource(show_spinner=False)
def device() -> devices.Device:
    """Where trainings run on this server (checked once per server)."""
    return devices.detect()


def watched_run_id() -> int | None:
    """The run in the URL, else the newest active run (so a second viewer without the link sees it), which then
    goes into the URL: when it ends, this viewer still sees how (finished, failed, killed) instead of the form."""
    linked = ui.run_id_from_link()
    if linked is not None:
        return linked
    active = jobs.active_runs(store())
    if not active:
        return None
    st.query_params["run"] = str(active[0]["id"])
    return active[0]["id"]


# ------------------------------------------------------------------------------------------------ sections


def header() -> None:
    ui.page_header("Train a model", "Pick an architecture and a recipe, start a run and watch it learn to name "
                   "both classes of a mixed image. Training runs in its own process: you can leave this page, "
                   "refresh it, or share its link.")
    active = jobs.active_runs(store())
    running = [run for run in active if not jobs.is_worker_run(run)]
    for_workers = len(active) - len(running)
    allowed = jobs.max_trainings()
    workers = f" &nbsp;·&nbsp; **With training workers:** {for_workers} active or queued" if for_workers else ""
    try:
        mode = jobs.training_mode()
    except ValueError as error:
        st.error(f"{ui.escape_markdown(error)} Start and Resume refuse until the setting is fixed.", icon="⚙️")
        mode = "local"
    if mode == "queue":
        st.markdown("**Trainings** are queued for training workers (`CIFARMIX_TRAINING=queue`): start a worker with "
                    f"`python -m cifarmix worker` on a machine that shares this run store{workers}")
        return
    st.markdown(
        f"**Device:** {device().text()} ({devices.summary(device())}) &nbsp;·&nbsp; **Trainings running:** "
        f"{len(running)} of {allowed} allowed for this app's runs{workers}"
    )


def preset_picker() -> dict:
    """The preset whose values fill the form (a starting point, every field stays editable)."""
    descriptions = PRESET_DESCRIPTIONS | {CUSTOM: "the plain defaults"}
    choice = st.selectbox(
        "Start from a preset", list(descriptions), index=0, key="train_preset",
        format_func=lambda name: f"{name} — {descriptions[name]}",
        help="Fills the form below; change any field before starting.",
    )
    values = TrainConfig().to_dict()
    if choice != CUSTOM:
        values = preset(choice).to_dict()
    values["preset"] = choice
    return values


def architecture_picker(defaults: dict) -> str:
    """Architecture with its description and size; a warning for GPU-sized nets on a CPU-only server."""
    names = architectures.names()
    name = st.selectbox(
        "Architecture", names, index=names.index(defaults["arch"]), key=f"train_arch_{defaults['preset']}",
        format_func=lambda n: f"{n} — {architectures.get(n).title}",
    )
    entry = architectures.get(name)
    with st.spinner("Counting parameters…"):
        params = architectures.param_count(name)
    st.caption(f"{entry.description} **{params:,} parameters.** Source: {entry.source}.")
    if not devices.startable(name, device()):
        st.warning(
            f"**{entry.title}** is a large network ({params / 1e6:.0f}M parameters) meant for a GPU, and this "
            "server has none: an epoch can take hours. Choose a smaller network for a demo.",
            icon="🐢",
        )
    return name


def training_form(arch: str, defaults: dict) -> tuple[TrainConfig, str | None] | None:
    """The form; returns (config, run name) when submitted, else None (``jobs.start`` validates the config)."""
    key = defaults["preset"]
    with st.form(f"train_form_{key}"):
        left, middle, right = st.columns(3)
        epochs = left.number_input("Epochs", value=defaults["epochs"], step=1, key=f"epochs_{key}")
        batch_size = middle.number_input("Batch size", value=defaults["batch_size"], step=16, key=f"batch_{key}")
        lr = right.number_input("Learning rate", value=float(defaults["lr"]), step=1e-4, format="%.5f",
                                key=f"lr_{key}")
        train_size = left.number_input(
            "Training images", value=defaults["train_size"], step=100, key=f"train_size_{key}",
            placeholder="all 45,000", help="A class-balanced subset of the training set; empty uses all of it.",
        )
        steps = middle.number_input(
            "Steps per epoch", value=defaults["steps_per_epoch"], step=1, key=f"steps_{key}",
            placeholder="one pass", help="Batches per epoch; empty means one mixed pair per training image.",
        )
        seed = right.number_input("Seed", value=defaults["seed"], step=1, key=f"seed_{key}")
        alpha = left.number_input(
            "Mixing weight α", min_value=mixing.ALPHA_MIN, max_value=mixing.ALPHA_MAX, value=float(defaults["alpha"]),
            step=mixing.ALPHA_STEP, format="%.2f", key=f"alpha_{key}",
            help="mixed = α · first image + (1 − α) · second image; 0.5 is a plain average.",
        )
        smoothing = middle.number_input("Label smoothing", value=float(defaults["label_smoothing"]), step=0.05,
                                        format="%.2f", key=f"smoothing_{key}")
        default_name = None if key == CUSTOM else key  # the preset's name, so the Runs table says what it was
        name = right.text_input("Run name (optional)", key=f"name_{key}", max_chars=RUN_NAME_MAX,
                                placeholder=default_name or "")
        augment = st.checkbox("Augment: random flips and shifts of each image before mixing",
                              value=defaults["augment"], key=f"augment_{key}")
        advanced = advanced_fields(defaults, key, arch)
        submitted = st.form_submit_button("Start training", type="primary", icon="🚀")
    if not submitted:
        return None
    values = dict(defaults, arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, train_size=train_size,
                  steps_per_epoch=steps, seed=seed, alpha=alpha, label_smoothing=smoothing, augment=augment)
    try:
        values.update(advanced())  # reads the architecture options' JSON
    except ValueError as error:
        st.error(f"Not started: {ui.escape_markdown(error)}", icon="🚫")
        return None
    return TrainConfig.from_dict(values), name.strip() or default_name


def advanced_fields(defaults: dict, key: str, arch: str):
    """Optimizer, schedule, precision and the rest, in a collapsed expander. Returns a function that reads them
    (called after submission, so a bad JSON options string is reported like any other invalid value)."""
    with st.expander("Advanced: optimizer, schedule, precision, validation"):
        left, middle, right = st.columns(3)
        optimizer = left.selectbox("Optimizer", OPTIMIZERS,
                                   index=OPTIMIZERS.index(defaults["optimizer"]), key=f"opt_{key}")
        schedule = middle.selectbox("Learning-rate schedule", SCHEDULES,
                                    index=SCHEDULES.index(defaults["schedule"]), key=f"schedule_{key}",
                                    help="plateau: divide by 5 when validation loss stalls; cosine: warm-up then "
                                         "cosine decay; constant: no change.")
        precision = right.selectbox("Precision", PRECISIONS,
                                    index=PRECISIONS.index(defaults["precision"]), key=f"precision_{key}",
                                    help="auto: mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bf16 "
                                         "instructions (faster there), float32 otherwise.")
        warmup = left.number_input("Warm-up epochs (cosine)", value=float(defaults["warmup_epochs"]), step=1.0,
                                   key=f"warmup_{key}")
        decay = middle.number_input("Weight decay", value=float(defaults["weight_decay"]), step=1e-4,
                                    format="%.5f", key=f"decay_{key}")
        val_pairs = right.number_input("Validation pairs", value=defaults["val_pairs"], step=100,
                                       key=f"val_pairs_{key}")
        translate = left.number_input("Shift augmentation (pixels)", value=defaults["translate"], step=1,
                                      key=f"translate_{key}")
        early_stop = middle.number_input("Early-stop patience (epochs)", value=defaults["early_stop_patience"],
                                         step=1, key=f"early_{key}")
        plateau = right.number_input("Plateau patience (epochs)", value=defaults["plateau_patience"], step=1,
                                     key=f"plateau_{key}")
        preset_options = defaults["options"] if arch == defaults["arch"] else {}  # a preset's options fit its net
        options = st.text_input("Architecture options (JSON)", value=json.dumps(preset_options),
                                key=f"options_{key}_{arch}", help='e.g. {"activation": "gelu"} for allconv')

    def read() -> dict:
        return dict(optimizer=optimizer, schedule=schedule, precision=precision, warmup_epochs=warmup,
                    weight_decay=decay, val_pairs=val_pairs, translate=translate, early_stop_patience=early_stop,
                    plateau_patience=plateau, options=parse_options(options))

    return read


def start(config: TrainConfig, name: str | None) -> None:
    """Start the run's process and put its id in the URL; the server's job limit refuses extra runs."""
    try:
        run_id = jobs.start(config, store(), name=name)
    except jobs.JobLimitReached as error:
        st.error(f"Not started: {ui.escape_markdown(error)}", icon="🚦")
        return
    except (ValueError, OSError) as error:
        st.error(f"Not started: {ui.escape_markdown(error)}", icon="🚫")
        return
    st.query_params["run"] = str(run_id)
    queued = jobs.is_worker_run(store().get_run(run_id))
    st.session_state["train_flash"] = f"Run #{run_id} {'queued for a training worker' if queued else 'started'}."
    st.rerun()


def new_run_section(watching: bool) -> None:
    with st.expander("New training run", expanded=not watching, icon="🧪"):
        defaults = preset_picker()
        arch = architecture_picker(defaults)
        submitted = training_form(arch, defaults)
    if submitted:
        start(*submitted)


def missing_run(run_id: int) -> None:
    st.warning(f"There is no run #{run_id} (it may have been deleted). Start a new one above.", icon="🔎")
    if st.button("Forget this run"):
        del st.query_params["run"]
        st.rerun()


def live_view(run_id: int) -> None:
    """The watched run; refreshes itself every few seconds while it is active."""
    run = store().get_run(run_id)
    if run is None:
        missing_run(run_id)
        return
    every = REFRESH_SECONDS if run["status"] in jobs.ACTIVE else None
    st.fragment(run_every=every)(live_run)(run_id, run["status"])


def live_run(run_id: int, shown_status: str) -> None:
    jobs.reap(store())  # marks a run whose process died as killed
    run = store().get_run(run_id)
    if run is None:
        missing_run(run_id)
        return
    if (run["status"] in jobs.ACTIVE) != (shown_status in jobs.ACTIVE):
        st.rerun()  # started or ended since the page was drawn: redraw (and stop or start refreshing)
    epochs = store().epoch_metrics(run_id)
    run_header(run)
    if runinfo.waiting_for_worker(run):
        st.info(runinfo.WAITING_FOR_WORKER, icon="⏳")
        controls(run)
        return
    getting_ready = runinfo.phase(run)
    if getting_ready:
        phases(run, getting_ready)
    else:
        progress(run, epochs)
    controls(run)
    if getting_ready:  # nothing to draw yet: say what comes, rather than three empty charts
        placeholder("The curves start with the first training step", "Loss per step first, then loss and "
                    "validation accuracy per epoch and the confusion matrices as each epoch ends.")
        return
    curves(run, epochs)
    latest_confusions(run)


def run_header(run: dict) -> None:
    label = f" “{ui.escape_markdown(run['name'])}”" if run.get("name") else ""
    icon = STATUS_ICONS.get(run["status"], "")
    st.subheader(f"Run #{run['id']}{label}: {run['arch']} — {icon} {run['status']}")
    worker = runinfo.worker_text(run)
    st.caption(f"{(run.get('config') or {}).get('epochs')} epochs · {runinfo.config_text(run)}"
               + (f" · trained by {ui.escape_markdown(worker)}" if worker else ""))


def phases(run: dict, current: str) -> None:
    """Before the first training step: which phase the run is in (of four), since when, and its step count."""
    with st.container(border=True):
        age = processes.age_seconds(run.get("pid"), run.get("process_started"))
        st.markdown(f"⏳ **{runinfo.phase_text(run, age)}**")
        done = runinfo.PHASES.index(current)
        st.markdown(" → ".join(f"✅ {name}" if i < done else f"**▶ {name}**" if i == done else f"◻️ {name}"
                               for i, name in enumerate(runinfo.PHASES)))
        st.caption(runinfo.PHASE_HINTS[current])
        total, steps = run.get("total_steps"), run.get("steps_done") or 0
        if total:  # known once the data is loaded (a resumed run's, from its last session)
            st.progress(min(1.0, steps / total), text=runinfo.progress_text(run))
        else:
            st.progress(0.0, text=f"Step {steps} · the step total is known once the data is loaded")


def placeholder(title: str, text: str, where=None) -> None:
    """What stands where a chart will be: what it is waiting for (never an empty plot). In a column beside a
    chart (``where``), as tall as that chart, so the page does not jump when this one arrives."""
    box = st.container(border=True) if where is None else where.container(border=True, height=figures.HEIGHT)
    with box:
        st.markdown(f"📈 **{title}**")
        st.caption(text)


def steps_per_epoch(run: dict) -> int | None:
    total, epochs = run.get("total_steps"), run.get("total_epochs")
    return total // epochs if total and epochs else None


def progress(run: dict, epochs) -> None:
    total, done = run.get("total_steps"), run.get("steps_done") or 0
    if not total:
        st.caption("Waiting for the training process's first numbers…" if run["status"] in jobs.ACTIVE
                   else f"This run ended ({run['status']}) before its first training step.")
        return
    left = runinfo.seconds_left(run, epochs["seconds"] if "seconds" in epochs else (),
                                epochs["steps"] if "steps" in epochs else None)
    st.progress(min(1.0, done / total), text=runinfo.progress_text(run, left))
    columns = st.columns(4)
    last = epochs["val_mean_accuracy"].iloc[-1] if "val_mean_accuracy" in epochs and len(epochs) else None
    columns[0].metric("Best mean val. accuracy", runinfo.best_val_text(run),
                      help="The mean of both heads' accuracy on the validation mixes; its checkpoint is kept.")
    columns[1].metric("Best epoch", runinfo.best_epoch_text(run),
                      help="An epoch cut short by Stop is validated and can hold the best weights; a resume redoes "
                           "it in full.")
    columns[2].metric("Last epoch's mean accuracy", runinfo.percent_text(last))
    columns[3].metric("Time training", runinfo.training_time_text(run),
                      help="Over all sessions of the run; the time between a kill and its resume does not count.")


def controls(run: dict) -> None:
    """Stop while active; once ended, the outcome, the log of a run that died, Resume, and a link to Runs."""
    status = run["status"]
    if status in jobs.ACTIVE:
        if run.get("kill_requested"):
            st.info("Kill requested: the run's training worker ends its process at its next heartbeat.", icon="⚠️")
        elif run.get("stop_requested"):
            st.info("Stop requested: the run ends after its current step and keeps its best checkpoint. While it "
                    "loads data or scores the validation pairs, that can take a minute.", icon="⏹️")
            if st.button("Kill the process now", icon="⚠️", key=f"kill_{run['id']}",
                         help="Ends the training process at once. Its unfinished epoch is lost; Resume continues "
                              "from the last whole epoch."):
                try:
                    jobs.kill(run["id"], store())
                except ValueError as error:  # a process the store cannot identify is never signalled
                    st.error(f"Not killed: {ui.escape_markdown(error)}", icon="🛑")
                    return
                st.rerun()
        elif st.button("Stop training", icon="⏹️", key=f"stop_{run['id']}",
                       help="Ends the run cleanly; the best checkpoint so far is kept."):
            jobs.stop(run["id"], store())
            st.rerun()
        return
    message = ui.escape_markdown(run.get("message") or status)
    if status == "finished":
        st.success(f"{message}. Its best checkpoint now answers on the other pages (pick it in the sidebar).",
                   icon="✅")
    else:
        box = st.error if status in ("failed", "killed") else st.info
        box(f"This run is **{status}**: {message}", icon=STATUS_ICONS.get(status))
        log_tail(run)
        resume_button(run)
    if run.get("model_path"):
        st.page_link(ui.PAGE_RUNS, label="Evaluate it, see its mistakes or compare it on the Runs page",
                     icon="📈", query_params={"run": str(run["id"])})


def log_tail(run: dict) -> None:
    tail = jobs.log_tail(run["id"])
    if tail:
        with st.expander("Last lines of the training log", expanded=run["status"] in ("failed", "killed")):
            st.code(tail, language=None)


def resume_button(run: dict) -> None:
    where = ("Queues it for a training worker, which continues" if jobs.is_worker_run(run) or queues_only()
             else "Continues")
    if st.button(f"Resume run #{run['id']}", icon="▶️", key=f"resume_{run['id']}",
                 help=f"{where} from the last completed epoch in a new process."):
        try:
            jobs.resume(run["id"], store())
        except (jobs.JobLimitReached, ValueError) as error:
            st.error(f"Not resumed: {ui.escape_markdown(error)}", icon="🚦")
            return
        st.rerun()


def curves(run: dict, epochs) -> None:
    """Loss per step, loss per epoch and accuracy; where a chart has nothing yet, what it waits for."""
    run_id, active = run["id"], run["status"] in jobs.ACTIVE
    steps = store().step_metrics(run_id)
    left, right = st.columns(2)
    if len(steps):
        left.plotly_chart(figures.step_loss(steps, steps_per_epoch=steps_per_epoch(run)), key=f"steps_{run_id}")
    else:
        placeholder("Training loss per step", "The first steps are being logged: the curve starts in a moment."
                    if active else "This run logged no training step.", where=left)
    if len(epochs):
        right.plotly_chart(figures.epoch_loss(epochs), key=f"epoch_loss_{run_id}")
        st.plotly_chart(figures.accuracy(epochs), key=f"accuracy_{run_id}")
        return
    per_epoch = steps_per_epoch(run)
    into = (run.get("steps_done") or 0) - (run.get("epochs_done") or 0) * (per_epoch or 0)
    placeholder("Loss and validation accuracy per epoch",
                f"They appear when epoch {(run.get('epochs_done') or 0) + 1} ends and its validation pairs are "
                f"scored: {into} of its {per_epoch} steps done." if active and per_epoch
                else "This run ended before its first epoch did.", where=right)


def latest_confusions(run: dict) -> None:
    run_id = run["id"]
    epochs = store().confusion_epochs(run_id)
    if not epochs:
        if run["status"] in jobs.ACTIVE:
            st.caption("**Validation confusion matrices** appear when the first epoch ends.")
        return
    st.markdown(f"**Validation confusion matrices** (epoch {epochs[-1]})")
    columns = st.columns(2)
    for column, head in zip(columns, HEADS):
        column.plotly_chart(figures.confusion(store().confusion(run_id, head=head), head), key=f"cm_{head}_{run_id}")


# ---------------------------------------------------------------------------------------------------- page

header()
if "train_flash" in st.session_state:
    st.toast(st.session_state.pop("train_flash"), icon="🚀")
run_id = watched_run_id()
if ui.data_available():
    new_run_section(watching=run_id is not None and store().get_run(run_id) is not None)
else:
    ui.no_data_box()
if run_id is not None:
    live_view(run_id)
