"""Runs: every training run in a table; one run in depth (curves, confusion matrices per epoch, per-class
accuracy, the test protocol with its hardest pairs of classes, how much of an image it needs, its mistakes and
where each head looked in them, CSV export, delete); several runs compared side by side (curves, weight
curves, figures)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cifarmix import breakdowns, catalog, data, evaluation, figures, jobs, mixing, models, peers, runinfo, saliency
from cifarmix.store import RunStore
from pages import ui, use_app_navigation

use_app_navigation()  # first: a legacy run of this page runs app.py instead

GALLERY_SIZE = 16
GALLERY_COLUMNS = 4
GALLERY_ZOOM = 5  # 32 -> 160 pixels
MAP_COLUMNS = 2  # mistakes with their maps: three pictures each
NEEDS_DATA = "This needs the CIFAR-10 images, which this server could not load (see the sidebar's data status)."


# ------------------------------------------------------------------------------------------------- helpers


def store() -> RunStore:
    return ui.run_store()


# ------------------------------------------------------------------------------------------------ sections


def header() -> None:
    ui.page_header("Training runs", "Every run started here or on the command line. Pick one to see how it "
                   "learned, score it on the test protocol and look at its mistakes; or compare several.")


# What matters fits at 1280 px (run, name, status, the two accuracies); the rest follows and scrolls sideways.
RUNS_TABLE_ORDER = ("run", "name", "status", "best val. mean", "test protocol", "epochs", "time training",
                    "architecture", "options", "created")


def runs_table(runs: list[dict]) -> None:
    tested = runinfo.latest_evaluations(store())
    rows = [{
        "run": run["id"], "name": run.get("name") or "", "architecture": run["arch"],
        "options": runinfo.options_text(run.get("options")), "status": run["status"],
        "epochs": runinfo.epochs_text(run), "time training": runinfo.training_time_text(run),
        "best val. mean": run.get("best_val_mean"),  # a number: the table sorts it and shows it as a percentage
        "test protocol": runinfo.evaluation_text(tested.get(run["id"])),
        "created": ui.format_time(run.get("created_at") or ""),
    } for run in runs]
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_order=RUNS_TABLE_ORDER, column_config={
        "run": st.column_config.NumberColumn("run", format="#%d", width="small"),
        "best val. mean": st.column_config.NumberColumn(
            "best val. mean", format="percent", help="Best mean accuracy of both heads on the validation mixes"),
        "test protocol": st.column_config.TextColumn(
            "test protocol", width="medium",
            help="The newest full-protocol result (else the newest quick look): mean accuracy ± spread over the "
                 "repeats · repeats × pairs · α when not 0.5"),
    })


def no_runs() -> None:
    st.info("No runs yet. Start one on the **Train** page (the *smoke* preset takes seconds), or from a terminal: "
            "`python -m cifarmix train --preset smoke`.", icon="🧪")


def pick_run(runs: list[dict]) -> dict:
    """The run to look at: first the one in the URL (``?run=ID``), then the user's pick, kept in the URL."""
    ids = [run["id"] for run in runs]
    by_id = {run["id"]: run for run in runs}
    wanted = ui.run_id_from_link()
    if wanted is not None and wanted not in ids:
        st.warning(f"Run {wanted} from the link is not in the run store (deleted?); showing the newest run.",
                   icon="🔗")
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox("Run", ids, index=index, format_func=lambda i: runinfo.run_label(by_id[i]),
                          key="runs_pick")
    st.query_params["run"] = str(chosen)
    return by_id[chosen]


def run_summary(run: dict, tested: dict | None) -> None:
    columns = st.columns(4)
    columns[0].metric("Best mean val. accuracy", runinfo.best_val_text(run),
                      help=f"at epoch {runinfo.best_epoch_text(run)}" if run.get("best_epoch") else None)
    columns[1].metric("Test protocol", runinfo.percent_text(tested["mean_accuracy"] if tested else None),
                      delta=runinfo.quick_look_text(tested), delta_color="off", delta_arrow="off",  # on the figure
                      help=runinfo.evaluation_text(tested) if tested else "Not evaluated yet: see below.")
    columns[2].metric("Epochs", runinfo.epochs_text(run, " of "))
    columns[3].metric("Time training", runinfo.training_time_text(run))
    message = f": {ui.escape_markdown(run['message'])}" if run.get("message") else ""
    st.caption(f"Status **{run['status']}**{message} · {runinfo.config_text(run)}")


def run_curves(run_id: int, epochs: pd.DataFrame) -> None:
    st.subheader("How it learned")
    left, right = st.columns(2)
    left.plotly_chart(figures.step_loss(store().step_metrics(run_id)), key="run_steps")
    right.plotly_chart(figures.epoch_loss(epochs), key="run_epoch_loss")
    st.plotly_chart(figures.accuracy(epochs), key="run_accuracy")


def confusion_by_epoch(run_id: int) -> None:
    st.subheader("Confusion matrices on the validation mixes")
    epochs = store().confusion_epochs(run_id)
    if not epochs:
        st.info("No epoch has finished yet, so there is no confusion matrix.", icon="⏳")
        return
    epoch = epochs[0] if len(epochs) == 1 else st.select_slider(
        "Epoch", options=epochs, value=epochs[-1], key=f"cm_epoch_{run_id}",
        help="Slide to watch the confusions change as the run learned.")
    if len(epochs) == 1:
        st.caption(f"Epoch {epoch} (the only one so far)")
    matrices = {head: store().confusion(run_id, epoch=epoch, head=head) for head in figures.HEADS}
    columns = st.columns(2)
    for column, head in zip(columns, figures.HEADS):
        column.plotly_chart(figures.confusion(matrices[head], head, title=f"{figures.HEAD_TITLES[head]}, "
                                              f"epoch {epoch}"), key=f"cm_{head}")
    per_class = {head: figures.per_class_accuracy(matrix) for head, matrix in matrices.items() if matrix is not None}
    st.plotly_chart(figures.per_class_bars(per_class, title=f"Accuracy per class on the validation mixes, "
                                                            f"epoch {epoch}"), key="per_class_val")


def test_protocol(run: dict) -> None:
    st.subheader("Test protocol")
    st.caption("The seeds' protocol: mixes drawn from the test set, 10 repeats of 10,000 pairs, scored per head. "
               "The full protocol takes a few minutes on a CPU; fewer repeats or pairs give a quick look.")
    results = store().evaluations(run_id=run["id"])
    if run["status"] in jobs.ACTIVE:
        st.info("Evaluate this run once it has ended.", icon="⏳")
    elif not run.get("model_path"):
        st.info("This run has no saved model to evaluate.", icon="🚫")
    elif not ui.data_available():
        st.info(NEEDS_DATA, icon="📦")
    else:
        evaluation_form(run)
        results = store().evaluations(run_id=run["id"])
    if results:
        evaluation_results(results)


def evaluation_form(run: dict) -> None:
    with st.form(f"evaluate_{run['id']}", clear_on_submit=True):  # back to the full protocol after a quick look
        left, middle, right = st.columns(3)
        repeats = left.number_input("Repeats", min_value=1, max_value=evaluation.PROTOCOL_REPEATS,
                                    value=evaluation.PROTOCOL_REPEATS, step=1)
        pairs = middle.number_input("Test pairs per repeat", min_value=100, max_value=evaluation.PROTOCOL_PAIRS,
                                    value=evaluation.PROTOCOL_PAIRS, step=1000)
        alpha = right.number_input("Mixing weight α", min_value=mixing.ALPHA_MIN, max_value=mixing.ALPHA_MAX,
                                   value=evaluation.PROTOCOL_ALPHA, step=mixing.ALPHA_STEP,
                                   help="0.5, the plain average, is the protocol; other weights are a side look.")
        submitted = st.form_submit_button("Evaluate on the test protocol", icon="🧮")
    if not submitted:
        return
    text = f"Scoring {repeats} × {pairs:,} test mixes…"
    bar = st.progress(0.0, text=text)
    try:
        splits = ui.data_status().splits
        result = evaluation.evaluate_and_store(
            catalog.resolve(f"run:{run['id']}", store()), store(), splits.x_test, splits.y_test,
            repeats=int(repeats), pairs=int(pairs), alpha=float(alpha),
            progress=lambda done: bar.progress(done, text=f"{text} {done:.0%}"))
    except (ValueError, models.ModelError) as error:
        st.error(f"Could not evaluate run #{run['id']}: {ui.escape_markdown(error)}", icon="🚫")
        return
    finally:
        bar.empty()
    st.success(f"Stored: mean accuracy {runinfo.evaluation_text(result)} (first head "
               f"{runinfo.percent_text(result['head_first'])}, second {runinfo.percent_text(result['head_second'])}), "
               f"scored in {runinfo.duration_text(result['seconds'])}.", icon="✅")


def evaluation_results(results: list[dict]) -> None:
    rows = [{
        "when": row["created_at"][:16].replace("T", " "), "repeats × pairs": f"{r['repeats']} × {r['pairs']:,}",
        "α": r.get("alpha", evaluation.PROTOCOL_ALPHA), "full protocol": evaluation.is_full_protocol(r),
        "mean accuracy": r["mean_accuracy"], "± std": r["std"], "first head": r["head_first"],
        "second head": r["head_second"], "mean F1": r["mean_f1"],
    } for row in results for r in [row["result"]]]
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        "mean accuracy": percent, "± std": st.column_config.NumberColumn(
            format="percent", help="Spread of the mean accuracy over the repeats"),
        "first head": percent, "second head": percent, "mean F1": st.column_config.NumberColumn(format="%.3f")})
    shown = evaluation.headline([row["result"] for row in results])
    st.plotly_chart(figures.per_class_bars(
        {"first": shown["per_class_first"], "second": shown["per_class_second"]},
        title=f"Accuracy per class on the test protocol ({runinfo.evaluation_text(shown)})"),
        key="per_class_test")
    hardest_pairs(shown)


def hardest_pairs(result: dict) -> None:
    """The 5 x 5 heatmap of the shown protocol result, by class of A and class of B (each head on hover)."""
    breakdown = result.get("pair_breakdown")
    if not breakdown:
        st.caption("Which pairs of classes are hardest: this result was stored before evaluations kept their "
                   "breakdown by pair; evaluate again to see it.")
        return
    worst = breakdowns.hardest_pair(breakdown)
    st.plotly_chart(figures.pair_heatmap(breakdown, title=f"Which pairs are hardest "
                                                          f"({runinfo.evaluation_text(result)})"),
                    key="pair_heatmap")
    if worst is not None:
        st.caption(f"Hardest: {data.class_label(worst['a'])} + {data.class_label(worst['b'])}, "
                   f"{runinfo.percent_text(worst['mean_accuracy'])} mean accuracy over {worst['count']:,} pairs "
                   f"(first head {runinfo.percent_text(worst['head_first'])}, second "
                   f"{runinfo.percent_text(worst['head_second'])}). Hover a cell for both heads.")


# ------------------------------------------------------------------------------------ how much of an image


SWEEP_MARGIN_TEXT = ("{pairs:,} test pairs per weight, the same pairs at every weight: each point's 95% margin of "
                     "error is at most ±{margin:.0f} points (the bars on the mean show each point's own)")


def sweep_caption(settings: dict) -> str:
    """How many pairs a sweep scored per weight, and the worst-case 95% margin of a point's mean accuracy (a
    pair's mean of two heads has a spread of at most 0.5)."""
    pairs = settings["repeats"] * settings["pairs"]
    return SWEEP_MARGIN_TEXT.format(pairs=pairs, margin=100 * breakdowns.Z95 * 0.5 / pairs ** 0.5)


def run_entry(run: dict):
    """The catalog entry of a run's model, or None (with the reason shown) when it has none to measure."""
    if run["status"] in jobs.ACTIVE or not run.get("model_path"):
        st.info("This needs the saved model of a run that has ended.", icon="⏳")
        return None
    try:
        return catalog.resolve(f"run:{run['id']}", store())
    except ValueError as error:
        st.info(ui.escape_markdown(error), icon="🚫")
        return None


def compute_sweeps(entries: list, settings: dict) -> bool:
    """Measure the weight sweep of each entry (stored; a progress bar over all of them); False on an error."""
    splits = ui.data_status().splits
    text = (f"Measuring {len(settings['alphas'])} weights × {settings['pairs']:,} test pairs"
            + (f" for {len(entries)} runs" if len(entries) > 1 else "") + "…")
    bar = st.progress(0.0, text=text)
    try:
        for index, entry in enumerate(entries):
            def report(done: float, i: int = index) -> None:
                share = min(1.0, (i + done) / len(entries))
                bar.progress(share, text=f"{text} {share:.0%}")

            breakdowns.sweep_and_store(entry, store(), splits.x_test, splits.y_test, settings, progress=report)
    except (ValueError, OSError, models.ModelError) as error:
        st.error(f"Could not measure the weight sweep: {ui.escape_markdown(error)}", icon="🚫")
        return False
    finally:
        bar.empty()
    return True


def weight_sweep_section(run: dict) -> None:
    st.subheader("How much of an image does it need?")
    st.caption("Each head's accuracy as the share of photo A in the mix goes from 5% to 95%: where the first "
               "head's curve crosses the second's is where the model stops seeing one photo for the other.")
    if not ui.data_available():
        st.info(NEEDS_DATA, icon="📦")
        return
    entry = run_entry(run)
    if entry is None:
        return
    settings = breakdowns.sweep_settings(pairs=breakdowns.SWEEP_PAIRS)
    found = breakdowns.stored_sweep(entry, store(), settings) or breakdowns.latest_sweep(entry, store())
    if found is None:
        if st.button("Compute", icon="📈", key=f"sweep_{run['id']}",
                     help=f"{len(settings['alphas'])} weights × {settings['pairs']:,} test pairs: about a minute "
                          "for a shipped-size model on two cores; stored, so it is measured once."):
            if compute_sweeps([entry], settings):
                found = breakdowns.stored_sweep(entry, store(), settings)
        if found is None:
            st.caption(sweep_caption(settings) + ".")
            return
    st.plotly_chart(figures.weight_curves({runinfo.short_label(run): found["points"]}),
                    key=f"sweep_curve_{run['id']}")
    seconds = f", measured in {runinfo.duration_text(found['seconds'])}" if found.get("seconds") else ""
    st.caption(sweep_caption(found["settings"]) + f"{seconds}.")


def compare_sweeps(runs: list[dict]) -> None:
    """The weight curves of the compared runs that have one; a button measures the others."""
    st.subheader("How much of an image each run needs")
    entries, curves, missing = {}, {}, []
    for run in runs:
        if run["status"] in jobs.ACTIVE or not run.get("model_path"):
            continue
        try:
            entry = catalog.resolve(f"run:{run['id']}", store())
            found = breakdowns.latest_sweep(entry, store())
        except (ValueError, OSError):
            continue
        entries[run["id"]] = entry
        if found is None:
            missing.append(run)
        else:
            curves[runinfo.short_label(run)] = found["points"]
    settings = breakdowns.sweep_settings(pairs=breakdowns.SWEEP_PAIRS)
    if missing and ui.data_available():
        names = ", ".join(f"#{run['id']}" for run in missing)
        if st.button(f"Compute for {names}", icon="📈", key="sweep_compare"):
            if compute_sweeps([entries[run["id"]] for run in missing], settings):
                st.rerun()
    if not curves:
        st.caption("None of these runs has a weight sweep yet.")
        return
    st.plotly_chart(figures.weight_curves(curves, title="How much of an image each run needs"),
                    key="compare_sweeps")
    st.caption("First head solid, second dashed; " + sweep_caption(settings) + " (for the default settings).")


@st.cache_data(show_spinner="Finding the validation mixes it gets wrong…", max_entries=8)
def validation_mistakes(model_path: str, modified: float, alpha: float, val_pairs: int, limit: int) -> dict:
    """Mixed validation pairs (the run's own validation set) where at least one head is wrong.

    ``modified`` (the model file's mtime) is only part of the cache key.
    """
    splits = ui.data_status().splits
    pairs = mixing.validation_pairs(splits.x_val, splits.y_val, val_pairs, alpha)
    return evaluation.mistakes(models.load_model(model_path), pairs, limit)


def mistakes_gallery(run: dict) -> None:
    st.subheader("Mistakes on the validation mixes")
    if run["status"] in jobs.ACTIVE or not run.get("model_path"):
        st.info("The gallery needs a saved model of a run that has ended.", icon="⏳")
        return
    if not ui.data_available():
        st.info(NEEDS_DATA, icon="📦")
        return
    if not st.toggle("Show misclassified validation mixes", key=f"gallery_{run['id']}"):
        return
    config = run.get("config") or {}
    try:
        path = catalog.resolve(f"run:{run['id']}", store()).path
        found = validation_mistakes(str(path), path.stat().st_mtime, config.get("alpha", 0.5),
                                    config.get("val_pairs", 5000), GALLERY_SIZE)
    except (ValueError, OSError, models.ModelError) as error:
        st.error(f"Could not load run #{run['id']}'s model: {ui.escape_markdown(error)}", icon="🚫")
        return
    st.caption(f"The best checkpoint gets {found['count']:,} of {found['total']:,} validation mixes wrong in at "
               f"least one head. Here are the first {len(found['images'])}: under each, its two true classes, "
               "and after → the model's answer where a head got it wrong.")
    if st.toggle("Where does each head look?", key=f"gallery_maps_{run['id']}",
                 help="Each head's saliency map over every mistake: where it looked for the answer it gave."):
        mistake_maps(run, found)
        return
    for start in range(0, len(found["images"]), GALLERY_COLUMNS):  # one row at a time keeps the rows aligned
        for column, index in zip(st.columns(GALLERY_COLUMNS), range(start, len(found["images"]))):
            column.image(ui.upscale(found["images"][index], GALLERY_ZOOM),
                         caption=evaluation.mistake_caption(found, index),
                         width="stretch", output_format="PNG")  # same size in every column, crisp pixels


def mistake_maps(run: dict, found: dict) -> None:
    """Each mistake beside each head's map over it (cached per server by model file and image)."""
    model = ui.get_model(f"run:{run['id']}")
    if model is None:
        return
    images = found["images"]
    bar = st.progress(0.0, text="Working out where each head looked…")
    panels = []
    for index, image in enumerate(images):
        maps = ui.image_maps(model, image)
        panels.append(saliency.panel(image, maps, scale=GALLERY_ZOOM, gap=4))
        bar.progress((index + 1) / len(images), text=f"Working out where each head looked… {index + 1} of "
                                                     f"{len(images)}")
    bar.empty()
    st.caption("Each mistake, then the first head's map over it, then the second head's: the brighter a pixel, "
               "the more it pushed the head towards the answer it gave (right or wrong).")
    for start in range(0, len(panels), MAP_COLUMNS):
        for column, index in zip(st.columns(MAP_COLUMNS), range(start, len(panels))):
            column.image(panels[index], caption=evaluation.mistake_caption(found, index), width="stretch",
                         output_format="PNG")


def csv_export(run: dict, epochs: pd.DataFrame) -> None:
    st.download_button("Download epoch metrics (CSV)", epochs.to_csv(index=False).encode(), icon="⬇️",
                       file_name=f"cifarmix-run-{run['id']}-epochs.csv", mime="text/csv",
                       disabled=epochs.empty, key=f"csv_{run['id']}")


def delete_section(run: dict) -> None:
    """Delete with a confirmation step; refused while the run is active."""
    run_id = run["id"]
    if run["status"] in jobs.ACTIVE:
        st.button(f"Delete run #{run_id}", icon="🗑️", disabled=True, key=f"delete_{run_id}",
                  help="Stop the run on the Train page first.")
        st.caption("A run cannot be deleted while it is running: stop it on the **Train** page first.")
        return
    if st.session_state.get("confirm_delete") != run_id:
        if st.button(f"Delete run #{run_id}", icon="🗑️", key=f"delete_{run_id}"):
            st.session_state["confirm_delete"] = run_id
            st.rerun()
        return
    st.warning(f"Delete run #{run_id} with its metrics, confusion matrices, evaluations and model files? "
               "This cannot be undone.", icon="⚠️")
    buttons = st.container(horizontal=True)
    if buttons.button("Yes, delete it", type="primary", icon="🗑️", key=f"confirm_delete_{run_id}"):
        st.session_state.pop("confirm_delete", None)
        delete(run_id)
    if buttons.button("Cancel", key=f"cancel_delete_{run_id}"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()


def delete(run_id: int) -> None:
    run = store().get_run(run_id)
    if run is not None and run["status"] in jobs.ACTIVE:
        st.error(f"Run #{run_id} has started running again; stop it first.", icon="🚫")
        return
    try:
        store().delete_run(run_id)
    except (LookupError, ValueError) as error:
        st.error(f"Could not delete run #{run_id}: {ui.escape_markdown(error)}", icon="🚫")
        return
    st.session_state["runs_flash"] = f"Run #{run_id} deleted."
    st.session_state.pop("runs_pick", None)
    st.query_params.pop("run", None)
    st.rerun()


def one_run(runs: list[dict]) -> None:
    run = pick_run(runs)
    epochs = store().epoch_metrics(run["id"])
    run_summary(run, runinfo.latest_evaluations(store()).get(run["id"]))
    run_curves(run["id"], epochs)
    confusion_by_epoch(run["id"])
    test_protocol(run)
    weight_sweep_section(run)
    mistakes_gallery(run)
    st.subheader("Export and clean up")
    csv_export(run, epochs)
    delete_section(run)


def compare_runs(runs: list[dict]) -> None:
    by_id = {run["id"]: run for run in runs}
    with_epochs = [run["id"] for run in runs if run.get("epochs_done")]
    chosen = st.multiselect("Runs to compare", list(by_id), default=with_epochs[:3],
                            format_func=lambda i: runinfo.run_label(by_id[i]), key="compare_runs")
    if len(chosen) < 2:
        st.info("Pick two or more runs to overlay their curves and compare them side by side.", icon="📈")
        return
    metric = st.selectbox("Curve", list(figures.EPOCH_METRICS), format_func=figures.EPOCH_METRICS.get,
                          key="compare_metric")
    frames = {runinfo.short_label(by_id[i]): store().epoch_metrics(i) for i in chosen}
    st.plotly_chart(figures.overlay(frames, metric), key="compare_overlay")
    steps = {runinfo.short_label(by_id[i]): figures.smoothed_steps(store().step_metrics(i)) for i in chosen}
    st.plotly_chart(figures.overlay(steps, "loss", x="step", title="Training loss per step (smoothed), by run"),
                    key="compare_steps")
    compare_sweeps([by_id[i] for i in chosen])
    side_by_side([by_id[i] for i in chosen])


def side_by_side(runs: list[dict]) -> None:
    tested = runinfo.latest_evaluations(store())
    table = {}
    for run in runs:
        config = run.get("config") or {}
        result = tested.get(run["id"])
        table[runinfo.short_label(run)] = {
            "architecture": run["arch"], "status": run["status"], "options": runinfo.options_text(run.get("options")),
            "epochs": runinfo.epochs_text(run), "best val. mean": runinfo.best_val_text(run),
            "best epoch": runinfo.best_epoch_text(run), "test protocol": runinfo.evaluation_text(result),
            "test first / second": (f"{runinfo.percent_text(result['head_first'])} / "
                                    f"{runinfo.percent_text(result['head_second'])}") if result else runinfo.NONE,
            "time training": runinfo.training_time_text(run),
            "batch size": str(config.get("batch_size")), "learning rate": str(config.get("lr")),
            "optimizer": config.get("optimizer"), "schedule": config.get("schedule"),
            "training images": str(config.get("train_size") or "all"), "augment": str(config.get("augment")),
            "label smoothing": str(config.get("label_smoothing")), "α": str(config.get("alpha")),
            "seed": str(config.get("seed")),
        }
    st.dataframe(pd.DataFrame(table), key="compare_table")  # plain text: run names are never rendered as markdown


def against_the_peers() -> None:
    """The shipped models' accuracy against their training cost, beside the published results on the task."""
    axis = st.segmented_control("Cost", ["pairs seen", "CPU core-hours"], default="pairs seen", key="peers_axis")
    x = "cpu_hours" if axis == "CPU core-hours" else "pairs"
    ours = [point for entry in catalog.shipped() for point in peers.lineage_points(entry.card)]
    st.plotly_chart(figures.accuracy_against_cost(ours, peers.PEERS, x=x, dropped=peers.DROPPED), width="stretch",
                    key="peers_chart")
    st.caption("Shipped models: validation accuracy after each training cycle (cumulative pairs and 2-core hours), "
               "then the test protocol; open circles: our trainings that were not shipped (no better). Published results are test accuracies with the pairs their write-ups "
               "report; all trained on GPUs, so they have no point on the CPU core-hours view.")


# ---------------------------------------------------------------------------------------------------- page

header()
if "runs_flash" in st.session_state:
    st.success(st.session_state.pop("runs_flash"), icon="🗑️")
jobs.reap(store())
all_runs = store().list_runs()
if not all_runs:
    no_runs()
    st.stop()
runs_table(all_runs)
one, several, field = st.tabs(["One run", "Compare runs", "Against the peers"])
with one:
    one_run(all_runs)
with several:
    compare_runs(all_runs)
with field:
    against_the_peers()
