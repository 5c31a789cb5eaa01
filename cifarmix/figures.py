"""Plotly figures: of training runs (loss and accuracy curves, confusion matrices, per-class accuracy, overlays),
of the test protocol's breakdowns (accuracy against the weight of A, a 5 x 5 heatmap per pair of classes), and of
the mixer and the game (one head's probabilities, people against models per class).

Every builder takes what the run store returns (``RunStore.step_metrics`` / ``epoch_metrics`` DataFrames,
``RunStore.confusion`` matrices, ``evaluation.evaluate`` results) and returns a ``plotly.graph_objects.Figure``.
Missing columns or empty frames give a figure that says "no data yet" instead of failing, so a page can draw a
run that has only just started. No Streamlit here: the pages decide where the figures go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cifarmix.data import GROUP_A, GROUP_B, class_label
from cifarmix.heads import HEADS

HEAD_CLASSES = {"first": GROUP_A, "second": GROUP_B}
HEAD_TITLES = {"first": "first head (airplane … deer)", "second": "second head (dog … truck)"}
HEAD_COLOURS = {"first": "#1f77b4", "second": "#ff7f0e", "mean": "#2ca02c"}
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf")
HEIGHT = 340

# Per-epoch metrics a user may pick for an overlay: column -> label.
EPOCH_METRICS = {
    "val_mean_accuracy": "validation mean accuracy",
    "val_first_accuracy": "validation accuracy, first head",
    "val_second_accuracy": "validation accuracy, second head",
    "val_loss": "validation loss (both heads)",
    "loss": "training loss",
    "first_loss": "training loss, first head",
    "second_loss": "training loss, second head",
    "first_accuracy": "training accuracy, first head",
    "second_accuracy": "training accuracy, second head",
    "lr": "learning rate",
}


def _layout(figure: go.Figure, title: str, x_title: str, y_title: str, height: int = HEIGHT,
            subtitle: str | None = None) -> go.Figure:
    figure.update_layout(
        title=dict(text=title, x=0, xanchor="left", subtitle=dict(text=subtitle) if subtitle else None),
        height=height,
        margin=dict(l=10, r=10, t=62 if subtitle else 40, b=10),
        # Below the whole figure (container), so it never runs into the x-axis title as a plot-relative y does.
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
        hovermode="x unified",
        template="plotly_white",
    )
    figure.update_xaxes(title_text=x_title)
    figure.update_yaxes(title_text=y_title)
    return figure


def empty(title: str, message: str = "no data yet") -> go.Figure:
    """A blank figure with ``message`` in the middle (for a run that has not logged anything yet)."""
    figure = go.Figure()
    figure.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font=dict(size=16, color="#888"))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _layout(figure, title, "", "")


def _has(frame: pd.DataFrame | None, *columns: str) -> bool:
    return frame is not None and len(frame) > 0 and all(c in frame and frame[c].notna().any() for c in columns)


def plain_text(text: str) -> str:
    """``text`` made inert for plotly, which renders a few HTML tags (``<b>``, ``<a href>``) in names and titles."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(x, y, name: str, colour: str, dash: str | None = None, markers: bool = False,
          percent: bool = False) -> go.Scatter:
    hover = "%{y:.1%}" if percent else "%{y:.4f}"
    return go.Scatter(x=x, y=y, name=plain_text(name), mode="lines+markers" if markers else "lines",
                      line=dict(color=colour, dash=dash), hovertemplate=hover)


def _integer_axis(figure: go.Figure, values: pd.Series) -> None:
    """Whole-number ticks on the x axis (epochs, steps): one per value when there are few, never 1.5 or 2.5."""
    top = pd.Series(values).max() if len(values) else None
    if top is not None and top == top:
        figure.update_xaxes(dtick=1, tick0=0) if top <= 20 else figure.update_xaxes(tickformat="d")


_epoch_axis = _integer_axis


CHANCE = 0.2  # one class of five at random


def _chance_line(figure: go.Figure) -> None:
    """A dashed line at chance (20%), labelled in the right margin, where no bar, point or label can hide it."""
    figure.add_hline(y=CHANCE, line=dict(color="#999", dash="dash", width=1))
    figure.add_annotation(text="chance<br>20%", x=1, xref="paper", xanchor="left", xshift=4, y=CHANCE, yref="y",
                          showarrow=False, align="left", font=dict(size=11, color="#777"))
    figure.update_layout(margin=dict(r=56))


def _fitted_percent_range(values: Sequence[float]) -> list[float]:
    """A y range around the accuracies drawn (not a fixed 0-100%, which flattens a learning curve), reaching down
    to chance when that is near (within the data's own span below it), with a little room above and below."""
    finite = [float(v) for v in values if v == v]
    low, high = min(finite), max(finite)
    span = max(high - low, 0.05)
    if low - CHANCE <= span:
        low = min(low, CHANCE)
    pad = 0.06 * (high - low) + 0.01
    return [max(0.0, low - pad), min(1.02, high + pad)]


def step_losses(steps: pd.DataFrame, steps_per_epoch: int | None = None) -> pd.DataFrame:
    """Each step's own loss, recovered from Keras' running means (what ``RunStore.step_metrics`` holds).

    Keras reports after step k of an epoch the mean of its first k batch losses, mean_k; the k-th batch's own loss
    is then ``k * mean_k - (k - 1) * mean_(k-1)`` (and mean_1 itself at an epoch's first step). A step whose
    predecessor in its epoch is missing gets NaN rather than a wrong value.

    Args:
        steps: columns step, epoch (1-based), loss, loss_first, loss_second, as running means.
        steps_per_epoch: the run's steps per epoch, which places each epoch's first step exactly; None takes each
            epoch's first stored step for it.

    Returns:
        The same columns (and rows, sorted by step), each loss a per-step loss.
    """
    frame = steps.sort_values("step").reset_index(drop=True)
    if frame.empty:
        return frame
    epoch = frame["epoch"].astype("int64")
    first = ((epoch - 1) * steps_per_epoch + 1 if steps_per_epoch
             else frame.groupby(epoch)["step"].transform("min"))
    k = (frame["step"] - first + 1).astype("float64")
    follows = (frame["step"].diff() == 1) & (epoch.diff() == 0)  # the step before it is stored, in its epoch
    for column in ("loss", "loss_first", "loss_second"):
        if column in frame:
            mean = frame[column].astype("float64")
            own = k * mean - (k - 1) * mean.shift(1)
            frame[column] = mean.where(k == 1, own.where(follows))
            frame.loc[k < 1, column] = np.nan
    return frame


def smoothing_weight(points: int) -> float:
    """The EMA weight for a curve of ``points`` steps: none for a handful, 0.9 at 100 steps, at most 0.95."""
    return float(min(0.95, max(0.0, 1 - 10 / points))) if points else 0.0


def ema(values: Sequence[float] | pd.Series, weight: float) -> np.ndarray:
    """An exponential moving average with TensorBoard's debiasing: the first points are not pulled towards 0.

    ``smoothed_i = sum_j w^(i-j) (1-w) x_j / (1 - w^(n_i))`` over the non-missing values so far; NaN values are
    skipped (the curve carries on), and leading NaNs stay NaN.
    """
    smoothed = np.full(len(values), np.nan)
    last, count = 0.0, 0
    for index, value in enumerate(np.asarray(values, dtype=np.float64)):
        if value == value:  # not NaN
            last = weight * last + (1 - weight) * value
            count += 1
        if count:
            smoothed[index] = last / (1 - weight ** count) if weight else last
    return smoothed


def smoothed_steps(steps: pd.DataFrame, steps_per_epoch: int | None = None) -> pd.DataFrame:
    """Each step's losses (:func:`step_losses`) smoothed as :func:`step_loss` draws them: for overlays of runs."""
    own = step_losses(steps, steps_per_epoch)
    weight = smoothing_weight(len(own))
    for column in ("loss", "loss_first", "loss_second"):
        if column in own:
            own[column] = ema(own[column], weight)
    return own


def step_loss(steps: pd.DataFrame, title: str = "Training loss per step",
              steps_per_epoch: int | None = None) -> go.Figure:
    """Each step's training loss per head: the raw values faint, an exponential moving average bold.

    Args:
        steps: ``RunStore.step_metrics`` (columns step, epoch, loss, loss_first, loss_second): Keras' running means
            within each epoch, turned back into each step's own loss (:func:`step_losses`).
        steps_per_epoch: the run's steps per epoch (see :func:`step_losses`).
    """
    if not _has(steps, "step", "loss_first", "loss_second"):
        return empty(title, "no training steps logged yet")
    own = step_losses(steps, steps_per_epoch)
    weight = smoothing_weight(len(own))
    figure = go.Figure()
    for head in HEADS:
        raw = own[f"loss_{head}"]
        if weight:
            figure.add_trace(go.Scatter(
                x=own["step"], y=raw, name=f"{HEAD_TITLES[head]}, each step", mode="lines", showlegend=False,
                legendgroup=head, line=dict(color=HEAD_COLOURS[head], width=1), opacity=0.25, hoverinfo="skip"))
        line = _line(own["step"], ema(raw, weight) if weight else raw, HEAD_TITLES[head], HEAD_COLOURS[head],
                     markers=not weight)
        line.legendgroup = head
        line.line.width = 2.5
        figure.add_trace(line)
    _integer_axis(figure, own["step"])
    note = (f"faint: each step's loss · bold: smoothed (moving average, weight {weight:.2f})" if weight
            else "each step's loss")
    return _layout(figure, title, "step", "cross-entropy loss", subtitle=note)


def epoch_loss(epochs: pd.DataFrame, title: str = "Loss per epoch") -> go.Figure:
    """Training (solid) and validation (dotted) loss per epoch for each head.

    Args:
        epochs: ``RunStore.epoch_metrics`` (columns epoch, first_loss, second_loss, val_first_loss, ...).
    """
    if not _has(epochs, "epoch") or not any(_has(epochs, f"{p}{h}_loss") for p in ("", "val_") for h in HEADS):
        return empty(title, "no finished epoch yet")
    figure = go.Figure()
    for head in HEADS:
        for prefix, kind, dash in (("", "training", None), ("val_", "validation", "dot")):
            column = f"{prefix}{head}_loss"
            if _has(epochs, column):
                figure.add_trace(_line(epochs["epoch"], epochs[column], f"{kind}, {head} head",
                                       HEAD_COLOURS[head], dash=dash, markers=True))
    _epoch_axis(figure, epochs["epoch"])
    return _layout(figure, title, "epoch", "cross-entropy loss")


def accuracy(epochs: pd.DataFrame, title: str = "Validation accuracy per epoch") -> go.Figure:
    """Validation accuracy per head and their mean (solid), training accuracy per head (dotted), 20% chance.

    The y axis fits the accuracies drawn (reaching down to chance when it is near), so a curve from 27% to 52%
    fills the chart instead of a band of a 0-100% axis.

    Args:
        epochs: ``RunStore.epoch_metrics``.
    """
    if not _has(epochs, "epoch", "val_mean_accuracy"):
        return empty(title, "no finished epoch yet")
    figure = go.Figure()
    x = epochs["epoch"]
    for head in HEADS:
        if _has(epochs, f"val_{head}_accuracy"):
            figure.add_trace(_line(x, epochs[f"val_{head}_accuracy"], f"validation, {head} head",
                                   HEAD_COLOURS[head], markers=True, percent=True))
    figure.add_trace(_line(x, epochs["val_mean_accuracy"], "validation, mean of both", HEAD_COLOURS["mean"],
                           markers=True, percent=True))
    figure.data[-1].line.width = 3
    for head in HEADS:
        if _has(epochs, f"{head}_accuracy"):
            figure.add_trace(_line(x, epochs[f"{head}_accuracy"], f"training, {head} head", HEAD_COLOURS[head],
                                   dash="dot", percent=True))
    figure = _layout(figure, title, "epoch", "accuracy")
    bottom, top = _fitted_percent_range([v for trace in figure.data for v in trace.y])
    figure.update_yaxes(tickformat=".0%", range=[bottom, top])
    if bottom <= CHANCE:
        _chance_line(figure)
    else:  # chance is far below what the run reaches: say where it is instead of squashing the curves
        figure.add_annotation(text="chance (20%) is below this axis", x=1, xref="paper", xanchor="right",
                              y=0, yref="paper", yanchor="bottom", showarrow=False, font=dict(size=11, color="#777"))
    _epoch_axis(figure, x)
    return figure


def confusion(matrix: np.ndarray | Sequence | None, head: str, title: str | None = None,
              normalise: bool = True) -> go.Figure:
    """A confusion-matrix heatmap of one head with class names; rows = true class, columns = predicted.

    Args:
        matrix: 5 x 5 counts (``RunStore.confusion`` or an evaluation's ``confusion_first``), or None.
        head: ``"first"`` (airplane ... deer) or ``"second"`` (dog ... truck).
        normalise: colour by the share of each true class (row); the cell text shows count and share.
    """
    if head not in HEADS:
        raise ValueError(f"head must be 'first' or 'second'; got {head!r}")
    title = title or f"Confusion matrix, {HEAD_TITLES[head]}"
    if matrix is None:
        return empty(title, "no confusion matrix yet")
    counts = np.asarray(matrix, dtype=np.int64)
    classes = list(HEAD_CLASSES[head])
    if counts.shape != (len(classes), len(classes)):
        raise ValueError(f"expected a {len(classes)}x{len(classes)} matrix for the {head} head; got {counts.shape}")
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    text = [[f"{counts[i, j]}<br>{shares[i, j]:.0%}" if counts[i, j] else "0" for j in range(len(classes))]
            for i in range(len(classes))]
    figure = go.Figure(go.Heatmap(
        z=shares if normalise else counts, x=classes, y=classes, text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1 if normalise else None, showscale=False,
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    ))
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(tickangle=-30)  # every matrix alike (plotly would tilt only those whose names crowd)
    figure = _layout(figure, title, "predicted class", "true class", height=HEIGHT + 40)
    figure.update_layout(hovermode="closest")
    return figure


def per_class_accuracy(matrix: np.ndarray | Sequence) -> list[float]:
    """Recall per true class (the diagonal over the row sums) of a confusion matrix; 0 for empty rows."""
    counts = np.asarray(matrix, dtype=np.float64)
    return (counts.diagonal() / np.maximum(counts.sum(axis=1), 1)).tolist()


def per_class_bars(per_class: Mapping[str, Sequence[float] | None], title: str = "Accuracy per class") -> go.Figure:
    """Bars of the accuracy of each of the ten classes, coloured by head.

    Args:
        per_class: ``{"first": [5 accuracies], "second": [5 accuracies]}`` (an evaluation's ``per_class_*`` or
            :func:`per_class_accuracy` of a confusion matrix); a missing head is left out.
    """
    figure = go.Figure()
    for head in HEADS:
        values = per_class.get(head)
        if values is None:
            continue
        figure.add_trace(go.Bar(x=list(HEAD_CLASSES[head]), y=list(values), name=HEAD_TITLES[head],
                                marker_color=HEAD_COLOURS[head], text=[f"{v:.0%}" for v in values],
                                textposition="outside", hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    if not figure.data:
        return empty(title, "no confusion matrix yet")
    figure.update_yaxes(tickformat=".0%", range=[0, 1.1])
    figure = _layout(figure, title, "true class", "accuracy (recall)")
    _chance_line(figure)
    figure.update_layout(hovermode="closest")
    return figure


def overlay(frames: Mapping[str, pd.DataFrame], column: str, x: str = "epoch", title: str | None = None) -> go.Figure:
    """One metric of several runs on one set of axes (one line per run).

    Args:
        frames: run label -> ``epoch_metrics`` (or ``step_metrics``) frame, in legend order.
        column: the metric to draw, e.g. ``"val_mean_accuracy"`` or ``"loss_first"``.
        x: the x column, ``"epoch"`` or ``"step"``.
    """
    label = EPOCH_METRICS.get(column, column.replace("_", " "))
    title = title or f"{label[0].upper()}{label[1:]}, by run"
    figure = go.Figure()
    percent = column.endswith("accuracy")
    for index, (name, frame) in enumerate(frames.items()):
        if _has(frame, x, column):
            figure.add_trace(_line(frame[x], frame[column], name, RUN_COLOURS[index % len(RUN_COLOURS)],
                                   markers=x == "epoch" and len(frame) <= 30, percent=percent))
    if not figure.data:
        return empty(title, f"none of these runs has logged {label} yet")
    if percent:
        figure.update_yaxes(tickformat=".0%")
    if column == "lr":
        figure.update_yaxes(type="log")
    _integer_axis(figure, pd.concat([pd.Series(trace.x, dtype="float64") for trace in figure.data]))
    return _layout(figure, title, x, label)


# --------------------------------------------------------------------------------------- the game and the mixer

RIGHT_COLOUR = "#1E9E5A"
WRONG_COLOUR = "#D9463B"
OTHER_COLOUR = "#B9B4D6"
PEOPLE_COLOUR = "#F28C28"
MODELS_COLOUR = "#5B3FD9"


def probabilities(probs: np.ndarray | Sequence[float], classes: Sequence[int], truth: int | None = None,
                  title: str = "") -> go.Figure:
    """Horizontal bars of one head's probabilities.

    Args:
        probs: (5,) probabilities.
        classes: the CIFAR-10 indices of the five outputs (0-4 or 5-9).
        truth: the right CIFAR-10 index: its bar is green; the model's pick, when wrong, is red.
        title: the chart title.
    """
    probs = np.asarray(probs, dtype=float)
    picked = classes[int(probs.argmax())]
    colours = [RIGHT_COLOUR if truth is not None and cls == truth else
               WRONG_COLOUR if truth is not None and cls == picked else OTHER_COLOUR for cls in classes]
    figure = go.Figure(go.Bar(x=probs, y=[class_label(cls) for cls in classes], orientation="h",
                              marker_color=colours, text=[f"{p:.0%}" for p in probs], textposition="outside",
                              cliponaxis=False, hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    figure.update_layout(title=plain_text(title), height=260, margin={"l": 10, "r": 40, "t": 40, "b": 10},
                         xaxis={"range": [0, 1.12], "tickformat": ".0%", "showgrid": False},
                         yaxis={"autorange": "reversed"}, font={"size": 15}, showlegend=False)
    return figure


SHORT_BAR = 0.15  # a classroom bar below this share is too short to hold its figure: it goes above the bar


def classroom(rows: Sequence[Mapping]) -> go.Figure:
    """People's and models' accuracy per class over every game (rows of ``game.classroom_summary``)."""
    labels = [class_label(r["class_index"]) for r in rows]
    figure = go.Figure([
        go.Bar(name="People", x=labels, y=[r["human_accuracy"] for r in rows], marker_color=PEOPLE_COLOUR,
               customdata=[r["rounds"] for r in rows],
               hovertemplate="%{x}: %{y:.0%} of %{customdata} answers<extra>People</extra>"),
        go.Bar(name="Models", x=labels, y=[r["model_accuracy"] for r in rows], marker_color=MODELS_COLOUR,
               customdata=[r["model_rounds"] for r in rows],
               hovertemplate="%{x}: %{y:.0%} of %{customdata} answers<extra>Models</extra>"),
    ])
    # Each bar says its figure, so 0% (no bar to see) reads differently from "not played yet" (no label). The
    # figure goes inside its bar, at the top (above it only for a bar too short to hold it, 0% included), so two
    # neighbouring bars of 100% do not run their labels into each other above them; inside, all in one size, and
    # none squeezed below a readable one (on a phone's narrow bars they hide, and the hover still says them).
    for trace in figure.data:
        trace.textposition = ["outside" if y is not None and y < SHORT_BAR else "inside" for y in trace.y]
    figure.update_traces(texttemplate="%{y:.0%}", insidetextanchor="end", cliponaxis=False, textangle=0,
                         constraintext="inside", insidetextfont={"size": 12, "color": "white"},
                         outsidetextfont={"size": 12, "color": "#333"})
    figure.update_layout(barmode="group", bargap=0.12, height=340, uniformtext={"minsize": 10, "mode": "hide"},
                         yaxis={"range": [0, 1.1], "tickvals": [0, 0.2, 0.4, 0.6, 0.8, 1], "tickformat": ".0%",
                                "title": "share of answers right"},
                         margin={"l": 10, "r": 10, "t": 20, "b": 10}, legend={"orientation": "h", "y": 1.12},
                         font={"size": 15})
    return figure


def accuracy_against_cost(ours: Sequence, peers: Sequence, x: str = "pairs", dropped: Sequence = ()) -> go.Figure:
    """Accuracy against training cost: ``x`` is ``"pairs"`` (mixed pairs seen, log scale) or ``"cpu_hours"``;
    ``ours``, ``peers`` and ``dropped`` (our cycles trained but not shipped) are ``peers.Result``-like (label,
    pairs, accuracy, cpu_hours). Peers without the cost on ``x`` (GPU runs report no CPU time) are left out of
    that view."""
    figure = go.Figure()
    for name, points, colour, symbol in (("cifarmix", ours, RUN_COLOURS[0], "circle"),
                                         ("cifarmix, not shipped", dropped, RUN_COLOURS[0], "circle-open"),
                                         ("published", peers, RUN_COLOURS[1], "diamond")):
        shown = [p for p in points if getattr(p, x) is not None]
        if not shown:
            continue
        figure.add_trace(go.Scatter(
            x=[getattr(p, x) for p in shown], y=[100 * p.accuracy for p in shown], name=name,
            mode="lines+markers" if name == "cifarmix" else "markers", text=[p.label for p in shown],
            marker=dict(size=11, color=colour, symbol=symbol), line=dict(color=colour),
            hovertemplate="%{text}<br>%{x:,.3s}<br>%{y:.2f}%<extra></extra>"))
    title = "mixed pairs seen in training" if x == "pairs" else "training core-hours (2 CPU cores x hours)"
    _layout(figure, "Accuracy against training cost", title, "mean accuracy (%)")
    if x == "pairs":
        figure.update_xaxes(type="log")
    return figure


# ------------------------------------------------------------------------------ breakdowns of the test protocol


def weight_curves(sweeps: Mapping[str, Sequence[Mapping]], title: str = "How much of an image the model needs"
                  ) -> go.Figure:
    """Each head's accuracy against the weight of A (``breakdowns.weight_sweep`` points), one set of lines per
    model: for one model, both heads and their mean (with its 95% margin of error as bars); for several, each
    model's two heads in its colour (first head solid, second dashed).

    Args:
        sweeps: label -> points (dicts with ``alpha``, ``head_first``, ``head_second``, ``mean_accuracy`` and
            optionally ``margin`` and ``pairs``), in legend order; a label with no points is left out.
    """
    shown = {label: sorted(points, key=lambda p: p["alpha"]) for label, points in sweeps.items() if points}
    if not shown:
        return empty(title, "no weight sweep yet")
    figure = go.Figure()
    single = len(shown) == 1
    for index, (label, points) in enumerate(shown.items()):
        x = [p["alpha"] for p in points]
        colour = RUN_COLOURS[index % len(RUN_COLOURS)]
        for head, dash in (("first", None), ("second", "dash")):
            name = HEAD_TITLES[head] if single else f"{label} · {head} head"
            line = _line(x, [p[f"head_{head}"] for p in points], name, HEAD_COLOURS[head] if single else colour,
                         dash=None if single else dash, markers=True, percent=True)
            figure.add_trace(line)
        if single:
            margins = [p.get("margin") for p in points]
            known = all(isinstance(m, (int, float)) and m == m for m in margins)  # none missing or NaN
            mean = _line(x, [p["mean_accuracy"] for p in points], "mean of both", HEAD_COLOURS["mean"],
                         markers=True, percent=True)
            mean.line.width = 3
            if known:
                mean.error_y = dict(type="data", array=margins, visible=True, thickness=1)
                mean.customdata = margins
                mean.hovertemplate = "%{y:.1%} ± %{customdata:.1%}"
            figure.add_trace(mean)
    figure.add_hline(y=0.2, line=dict(color="#aaa", dash="dash", width=1), annotation_text="chance (20%)",
                     annotation_position="bottom right")
    figure.add_vline(x=0.5, line=dict(color="#bbb", dash="dot", width=1))
    figure.update_yaxes(tickformat=".0%", range=[0, 1.02])
    figure.update_xaxes(tickformat=".0%", range=[0, 1])
    pairs = {p.get("pairs") for points in shown.values() for p in points} - {None}
    subtitle = ("the same test pairs at every weight" + (f", {', '.join(f'{n:,}' for n in sorted(pairs))} "
                "per weight" if pairs else "") + "; the dotted line is the plain average (the protocol)")
    return _layout(figure, title, "weight of A in the mix (B gets the rest)", "accuracy", height=HEIGHT + 40,
                   subtitle=subtitle)


def pair_heatmap(breakdown: Mapping | None, title: str = "Which pairs are hardest") -> go.Figure:
    """A 5 x 5 heatmap of mean accuracy per (class of A, class of B) (``breakdowns.pair_breakdown``), each head's
    accuracy and the number of pairs on hover; rows are A's class, columns B's. The colours span the table's
    own range (red: hardest), so the differences show even when every pair is above 70%."""
    if not breakdown or "mean_accuracy" not in breakdown:
        return empty(title, "no breakdown by pair of classes yet")
    mean = [[np.nan if v is None else v for v in row] for row in breakdown["mean_accuracy"]]
    first = [[np.nan if v is None else v for v in row] for row in breakdown["head_first"]]
    second = [[np.nan if v is None else v for v in row] for row in breakdown["head_second"]]
    counts = np.asarray(breakdown["count"])
    rows, columns = [class_label(c) for c in range(5)], [class_label(c) for c in range(5, 10)]
    custom = np.dstack([np.asarray(first, float), np.asarray(second, float), counts]).tolist()
    text = [[f"{v:.0%}" if v == v else "—" for v in row] for row in mean]
    figure = go.Figure(go.Heatmap(
        z=mean, x=columns, y=rows, text=text, texttemplate="%{text}", customdata=custom, colorscale="RdYlGn",
        colorbar=dict(tickformat=".0%", title="mean"),
        hovertemplate=("A %{y} + B %{x}<br>mean accuracy %{z:.1%}<br>first head %{customdata[0]:.1%} · "
                       "second head %{customdata[1]:.1%}<br>%{customdata[2]:,} pairs<extra></extra>"),
    ))
    figure.update_yaxes(autorange="reversed")
    figure = _layout(figure, title, "class of B (second head)", "class of A (first head)", height=HEIGHT + 60)
    figure.update_layout(hovermode="closest")
    return figure
