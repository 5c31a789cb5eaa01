"""Figure builders: what the store returns becomes labelled plotly figures; empty data never fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cifarmix import figures
from cifarmix.data import GROUP_A, GROUP_B


def epoch_frame(epochs: int = 3) -> pd.DataFrame:
    x = np.arange(1, epochs + 1)
    return pd.DataFrame({
        "epoch": x, "loss": 4.0 / x, "first_loss": 2.0 / x, "second_loss": 1.8 / x,
        "first_accuracy": 0.3 + 0.1 * x, "second_accuracy": 0.35 + 0.1 * x,
        "val_first_loss": 2.1 / x, "val_second_loss": 1.9 / x, "val_loss": 4.0 / x,
        "val_first_accuracy": 0.25 + 0.1 * x, "val_second_accuracy": 0.3 + 0.1 * x,
        "val_mean_accuracy": 0.275 + 0.1 * x, "lr": [1e-3, 1e-3, 2e-4][:epochs],
    })


def step_frame(steps: int = 6) -> pd.DataFrame:
    s = np.arange(1, steps + 1)
    return pd.DataFrame({"step": s, "epoch": (s - 1) // 3 + 1, "loss": 4.0 / s, "loss_first": 2.0 / s,
                         "loss_second": 1.9 / s})


def names(figure: go.Figure) -> list[str]:
    return [trace.name for trace in figure.data]


def running_means(losses: np.ndarray, steps_per_epoch: int) -> np.ndarray:
    """What Keras reports after each step: the mean of the epoch's batch losses so far."""
    means = np.empty_like(losses)
    for start in range(0, len(losses), steps_per_epoch):
        chunk = losses[start:start + steps_per_epoch]
        means[start:start + len(chunk)] = np.cumsum(chunk) / np.arange(1, len(chunk) + 1)
    return means


def keras_steps(own: dict[str, np.ndarray], steps_per_epoch: int) -> pd.DataFrame:
    """A step_metrics frame as the run store holds it (running means per epoch) from each step's own losses."""
    s = np.arange(1, len(own["first"]) + 1)
    first, second = (running_means(own[head], steps_per_epoch) for head in ("first", "second"))
    return pd.DataFrame({"step": s, "epoch": (s - 1) // steps_per_epoch + 1, "loss": first + second,
                         "loss_first": first, "loss_second": second})


def test_each_steps_loss_is_recovered_from_keras_running_means_across_epoch_boundaries():
    rng = np.random.default_rng(0)
    own = {"first": rng.uniform(0.5, 2.5, 25), "second": rng.uniform(0.5, 2.5, 25)}
    steps = keras_steps(own, steps_per_epoch=10)  # epochs 1-2 whole, epoch 3 cut after 5 steps
    for known in (10, None):  # the run's steps per epoch, or each epoch's first stored step
        recovered = figures.step_losses(steps, steps_per_epoch=known)
        assert list(recovered["step"]) == list(range(1, 26))
        assert recovered["loss_first"].to_numpy() == pytest.approx(own["first"])
        assert recovered["loss_second"].to_numpy() == pytest.approx(own["second"])
        assert recovered["loss"].to_numpy() == pytest.approx(own["first"] + own["second"])


def test_a_step_whose_predecessor_is_missing_gets_no_made_up_loss():
    own = {"first": np.arange(1.0, 13.0), "second": np.ones(12)}
    steps = keras_steps(own, steps_per_epoch=6).drop(index=[2])  # step 3 was never stored
    recovered = figures.step_losses(steps, steps_per_epoch=6).set_index("step")["loss_first"]
    assert np.isnan(recovered[4])  # its running mean is known, the one before it is not
    assert recovered[[1, 2, 5, 6, 7, 8]].tolist() == pytest.approx([1, 2, 5, 6, 7, 8])  # epoch 2 starts afresh


def test_the_moving_average_is_debiased_skips_gaps_and_keeps_a_short_curve_raw():
    assert figures.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # not pulled towards 0 at first
    assert figures.ema([1.0, 3.0], 0.5) == pytest.approx([1.0, 1.75 / 0.75])  # (0.25 + 1.5) / (1 - 0.25)
    smoothed = figures.ema([np.nan, 1.0, np.nan, 1.0], 0.8)
    assert np.isnan(smoothed[0]) and smoothed[1:] == pytest.approx([1.0, 1.0, 1.0])
    assert figures.ema([1.0, 5.0], 0.0) == pytest.approx([1.0, 5.0])
    assert figures.smoothing_weight(6) == 0 and figures.smoothing_weight(100) == pytest.approx(0.9)
    assert figures.smoothing_weight(10_000) == 0.95


def test_step_loss_draws_each_steps_loss_faint_and_its_moving_average_bold_per_head():
    rng = np.random.default_rng(1)
    own = {"first": 2.0 - np.linspace(0, 1, 200) + rng.normal(0, 0.2, 200),
           "second": 1.8 - np.linspace(0, 1, 200) + rng.normal(0, 0.2, 200)}
    figure = figures.step_loss(keras_steps(own, steps_per_epoch=50), steps_per_epoch=50)
    raw = [trace for trace in figure.data if trace.opacity is not None and trace.opacity < 1]
    bold = [trace for trace in figure.data if trace.showlegend is not False]
    assert len(raw) == 2 and len(bold) == 2 and all("head" in trace.name for trace in bold)
    assert np.asarray(raw[0].y) == pytest.approx(own["first"])  # no jump at an epoch's start: each step's own loss
    assert np.asarray(bold[0].y) == pytest.approx(figures.ema(own["first"], figures.smoothing_weight(200)))
    assert np.abs(np.diff(bold[0].y)).max() < 0.1  # smooth, and no jump at the epoch boundaries
    assert figure.layout.xaxis.title.text == "step" and "smoothed" in figure.layout.title.subtitle.text


def test_runs_overlaid_get_the_same_smoothed_step_losses():
    own = {"first": np.linspace(2, 1, 120), "second": np.linspace(1.8, 0.9, 120)}
    smoothed = figures.smoothed_steps(keras_steps(own, steps_per_epoch=40))
    weight = figures.smoothing_weight(120)
    assert smoothed["loss_first"].to_numpy() == pytest.approx(figures.ema(own["first"], weight))
    assert smoothed["loss"].to_numpy() == pytest.approx(figures.ema(own["first"] + own["second"], weight))


def test_a_short_step_curve_is_drawn_raw_with_markers():
    figure = figures.step_loss(step_frame())  # 6 steps: nothing to smooth
    assert len(figure.data) == 2 and all("head" in name for name in names(figure))
    assert list(figure.data[0].x) == [1, 2, 3, 4, 5, 6] and figure.data[0].mode == "lines+markers"
    # running means 2/s within epochs of 3 steps, turned back into each step's loss
    assert list(figure.data[0].y) == pytest.approx([2.0, 0.0, 0.0, 0.5, 0.3, 0.2])
    assert figure.layout.xaxis.dtick == 1  # whole steps: never 2.5


def test_epoch_loss_has_training_and_validation_per_head():
    figure = figures.epoch_loss(epoch_frame())
    assert sorted(names(figure)) == sorted(["training, first head", "validation, first head",
                                            "training, second head", "validation, second head"])
    validation = next(t for t in figure.data if t.name == "validation, second head")
    assert validation.line.dash == "dot"


def test_accuracy_shows_validation_heads_their_mean_and_training_accuracy():
    figure = figures.accuracy(epoch_frame())
    assert "validation, mean of both" in names(figure)
    assert {"validation, first head", "validation, second head", "training, first head"} <= set(names(figure))
    mean = next(t for t in figure.data if t.name == "validation, mean of both")
    assert list(mean.y) == pytest.approx([0.375, 0.475, 0.575])
    assert figure.layout.yaxis.tickformat == ".0%"


def chance_labels(figure: go.Figure) -> list:
    return [note for note in figure.layout.annotations if "chance" in note.text]


def test_the_accuracy_axis_fits_the_curves_and_marks_chance_in_the_margin():
    figure = figures.accuracy(epoch_frame())  # accuracies from 35% to 65%
    bottom, top = figure.layout.yaxis.range
    assert 0.15 <= bottom < 0.2 and 0.65 < top < 0.75  # down to chance (it is near), not up to 100%
    [line] = figure.layout.shapes
    assert line.y0 == line.y1 == 0.2
    [label] = chance_labels(figure)
    assert label.xref == "paper" and label.x == 1 and label.xanchor == "left"  # beside the plot: no point hides it


def test_an_accuracy_curve_far_above_chance_is_not_squashed_down_to_it():
    frame = epoch_frame()
    frame[[c for c in frame if c.endswith("accuracy")]] += 0.3  # 65% to 95%
    figure = figures.accuracy(frame)
    bottom, top = figure.layout.yaxis.range
    assert 0.6 < bottom < 0.65 and 0.95 < top <= 1.0
    assert not figure.layout.shapes and "below this axis" in chance_labels(figure)[0].text


def test_per_class_bars_label_chance_beside_the_plot_not_over_a_bar_label():
    figure = figures.per_class_bars({"first": [0.2, 0.21, 0.5, 0.6, 0.7]})
    [label] = chance_labels(figure)
    assert label.xref == "paper" and label.x == 1 and label.xanchor == "left"


def test_confusion_heatmap_names_the_classes_of_its_head_and_shows_counts():
    matrix = np.diag([5, 4, 3, 2, 1]) + 1
    figure = figures.confusion(matrix, "second")
    heatmap = figure.data[0]
    assert list(heatmap.x) == list(GROUP_B) and list(heatmap.y) == list(GROUP_B)
    assert heatmap.text[0][0] == "6<br>60%"  # row 0: 6 of 10 right
    assert np.asarray(heatmap.z)[0].sum() == pytest.approx(1.0)  # rows normalised
    assert "second head" in figure.layout.title.text
    first = figures.confusion(matrix, "first")
    assert list(first.data[0].x) == list(GROUP_A)
    # "automobile" would make plotly tilt only the first head's labels: both are tilted alike
    assert first.layout.xaxis.tickangle == figure.layout.xaxis.tickangle == -30


def test_confusion_refuses_a_wrong_shape_or_head_and_draws_a_placeholder_for_none():
    with pytest.raises(ValueError, match="5x5"):
        figures.confusion(np.ones((3, 3), dtype=int), "first")
    with pytest.raises(ValueError, match="head"):
        figures.confusion(np.ones((5, 5), dtype=int), "third")
    placeholder = figures.confusion(None, "first")
    assert not placeholder.data and "no confusion matrix" in placeholder.layout.annotations[0].text


def test_per_class_accuracy_and_bars_cover_all_ten_classes():
    matrix = np.array([[8, 2, 0, 0, 0], [0, 5, 5, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 6], [0, 0, 0, 0, 4]])
    assert figures.per_class_accuracy(matrix) == pytest.approx([0.8, 0.5, 0.0, 0.1, 1.0])
    figure = figures.per_class_bars({"first": figures.per_class_accuracy(matrix), "second": [0.5] * 5})
    assert [list(bar.x) for bar in figure.data] == [list(GROUP_A), list(GROUP_B)]
    assert figure.data[0].text[0] == "80%"


def test_overlay_draws_one_line_per_run_and_skips_runs_without_the_metric():
    frames = {"#1 allconv": epoch_frame(3), "#2 resnet": epoch_frame(2), "#3 new": pd.DataFrame({"epoch": []})}
    figure = figures.overlay(frames, "val_mean_accuracy")
    assert names(figure) == ["#1 allconv", "#2 resnet"]
    assert "validation mean accuracy" in figure.layout.title.text.lower()
    steps = figures.overlay({"a": step_frame(), "b": step_frame(3)}, "loss_first", x="step")
    assert [len(t.x) for t in steps.data] == [6, 3]
    assert figures.overlay(frames, "lr").layout.yaxis.type == "log"
    assert figure.layout.xaxis.dtick == 1  # epochs 1, 2, 3: never 1.5 or 2.5
    many = figures.overlay({"long": pd.DataFrame({"epoch": range(1, 41), "val_mean_accuracy": 0.5})},
                           "val_mean_accuracy")
    assert many.layout.xaxis.tickformat == "d" and many.layout.xaxis.dtick is None


@pytest.mark.parametrize("builder", [
    lambda: figures.step_loss(pd.DataFrame(columns=["step", "epoch", "loss", "loss_first", "loss_second"])),
    lambda: figures.epoch_loss(pd.DataFrame({"epoch": pd.Series(dtype="int64")})),
    lambda: figures.accuracy(pd.DataFrame({"epoch": pd.Series(dtype="int64")})),
    lambda: figures.per_class_bars({}),
    lambda: figures.overlay({}, "val_mean_accuracy"),
])
def test_a_run_with_no_data_yet_gets_a_placeholder_not_an_error(builder):
    figure = builder()
    assert isinstance(figure, go.Figure) and not figure.data
    assert figure.layout.annotations[0].text.startswith(("no ", "none "))


def test_figures_serialise_to_json_for_the_browser():
    for figure in (figures.accuracy(epoch_frame()), figures.confusion(np.eye(5, dtype=int), "first"),
                   figures.per_class_bars({"first": [0.1] * 5})):
        assert figure.to_json()


def test_probability_bars_colour_the_right_class_green_and_a_wrong_pick_red():
    figure = figures.probabilities([0.1, 0.6, 0.1, 0.1, 0.1], [5, 6, 7, 8, 9], truth=8, title="<b>x</b>")
    bar = figure.data[0]
    assert list(bar.y) == ["🐶 dog", "🐸 frog", "🐴 horse", "🚢 ship", "🚚 truck"]
    assert list(bar.marker.color) == [figures.OTHER_COLOUR, figures.WRONG_COLOUR, figures.OTHER_COLOUR,
                                      figures.RIGHT_COLOUR, figures.OTHER_COLOUR]
    assert figure.layout.title.text == "&lt;b&gt;x&lt;/b&gt;"
    right = figures.probabilities([0.1, 0.6, 0.1, 0.1, 0.1], [5, 6, 7, 8, 9], truth=6)
    assert figures.WRONG_COLOUR not in right.data[0].marker.color


def test_the_classroom_chart_has_a_bar_pair_per_class_and_leaves_gaps_without_a_model():
    rows = [{"class_index": 3, "rounds": 4, "human_accuracy": 0.75, "model_rounds": 2, "model_accuracy": 0.5},
            {"class_index": 8, "rounds": 1, "human_accuracy": 1.0, "model_rounds": 0, "model_accuracy": None}]
    people, models = figures.classroom(rows).data
    assert list(people.x) == ["🐱 cat", "🚢 ship"] and list(people.y) == [0.75, 1.0]
    assert list(models.y) == [0.5, None] and list(models.customdata) == [2, 0]


def test_classroom_bars_say_their_figure_so_a_zero_is_not_mistaken_for_no_games():
    rows = [{"class_index": 2, "rounds": 2, "human_accuracy": 0.0, "model_rounds": 2, "model_accuracy": 0.0}]
    figure = figures.classroom(rows)
    assert all(trace.texttemplate == "%{y:.0%}" and trace.cliponaxis is False for trace in figure.data)
    assert figure.layout.yaxis.range[1] > 1 and max(figure.layout.yaxis.tickvals) == 1  # room for a 100% label


def test_accuracy_against_cost_shows_our_lineage_beside_the_peers():
    from cifarmix import peers

    card = {"name": "champ", "evaluation": {"mean_accuracy": 0.81},
            "lineage": [{"pairs": 1_000_000, "minutes": 60, "best_val_mean_accuracy": 0.79},
                        {"pairs": 2_000_000, "minutes": 120, "best_val_mean_accuracy": 0.82}]}
    ours = peers.lineage_points(card)
    assert [(p.pairs, p.accuracy, p.cpu_hours) for p in ours] == [(1e6, 0.79, 2.0), (3e6, 0.82, 6.0), (3e6, 0.81, 6.0)]
    by_pairs = figures.accuracy_against_cost(ours, peers.PEERS)
    assert [trace.name for trace in by_pairs.data] == ["cifarmix", "published"]
    assert max(by_pairs.data[1].y) == pytest.approx(84.87) and by_pairs.layout.xaxis.type == "log"
    by_hours = figures.accuracy_against_cost(ours, peers.PEERS, x="cpu_hours")
    assert [trace.name for trace in by_hours.data] == ["cifarmix"]  # the peers trained on GPUs: no CPU hours
    with_dropped = figures.accuracy_against_cost(ours, peers.PEERS, x="cpu_hours", dropped=peers.DROPPED)
    assert [trace.name for trace in with_dropped.data] == ["cifarmix", "cifarmix, not shipped"]
    assert with_dropped.data[1].marker.symbol == "circle-open" and max(with_dropped.data[1].x) > 6.61
    old_card = {"name": "old", "pairs_seen": 5, "train_wall_minutes": 30, "best_val_mean_accuracy": 0.5}
    assert [p.cpu_hours for p in peers.lineage_points(old_card)] == [1.0]


SWEEP = [{"alpha": a, "head_first": a, "head_second": 1 - a, "mean_accuracy": 0.5, "margin": 0.03, "pairs": 500}
         for a in (0.9, 0.1, 0.5)]


def test_weight_curves_of_one_model_draw_both_heads_and_the_mean_with_its_margin():
    figure = figures.weight_curves({"champion": SWEEP})
    assert [trace.name for trace in figure.data] == [figures.HEAD_TITLES["first"], figures.HEAD_TITLES["second"],
                                                     "mean of both"]
    assert list(figure.data[0].x) == [0.1, 0.5, 0.9]  # sorted by weight
    assert list(figure.data[0].y) == pytest.approx([0.1, 0.5, 0.9])
    assert list(figure.data[2].error_y.array) == [0.03] * 3
    assert "500 per weight" in figure.layout.title.subtitle.text


def test_weight_curves_of_several_models_draw_two_lines_each_and_skip_empty_ones():
    figure = figures.weight_curves({"#1 <b>a</b>": SWEEP, "#2": SWEEP, "#3": []})
    assert len(figure.data) == 4 and figure.data[0].name == "#1 &lt;b&gt;a&lt;/b&gt; · first head"
    assert figure.data[1].line.dash == "dash" and figure.data[0].line.color == figure.data[1].line.color
    assert figures.weight_curves({"x": []}).layout.annotations[0].text == "no weight sweep yet"


def test_pair_heatmap_shows_mean_accuracy_per_pair_of_classes_and_each_head_on_hover():
    from cifarmix import breakdowns

    table = breakdowns.pair_breakdown([0, 0, 3], [5, 5, 9], [1, 0, 1], [1, 1, 0])
    figure = figures.pair_heatmap(table)
    heatmap = figure.data[0]
    assert len(heatmap.z) == 5 and len(heatmap.z[0]) == 5
    assert heatmap.z[0][0] == 0.75 and heatmap.text[3][4] == "50%" and heatmap.text[1][1] == "—"
    assert heatmap.customdata[0][0] == [0.5, 1.0, 2]
    assert "first head" in heatmap.hovertemplate and "pairs" in heatmap.hovertemplate
    assert heatmap.y[0].endswith("airplane") and heatmap.x[4].endswith("truck")
    assert figures.pair_heatmap(None).layout.annotations[0].text == "no breakdown by pair of classes yet"


def test_the_classroom_chart_says_what_its_axis_counts_and_keeps_its_labels_apart():
    rows = [{"class_index": i, "rounds": 3, "human_accuracy": 1.0, "model_rounds": 3, "model_accuracy": 1.0}
            for i in range(9)] + [{"class_index": 9, "rounds": 3, "human_accuracy": 0.0, "model_rounds": 0,
                                   "model_accuracy": None}]
    people, models = figures.classroom(rows).data
    assert figures.classroom(rows).layout.yaxis.title.text == "share of answers right"
    # inside the bar tops (neighbouring 100% bars do not collide above them), one readable size for all; a 0% bar
    # has its figure above it, and a class no model played has no bar and no figure
    assert list(people.textposition) == ["inside"] * 9 + ["outside"] and people.insidetextanchor == "end"
    assert models.y[-1] is None and figures.classroom(rows).layout.uniformtext.minsize >= 10
