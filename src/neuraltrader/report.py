"""Plots of a study. Each function returns a matplotlib ``Figure`` (no pyplot state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe–Ito colours: distinguishable with every common colour-vision deficiency.
COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]
STYLE = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "figure.dpi": 100,
}

HISTORY_PANELS = [
    ("train_recom", "train: mean position"),
    ("train_return", "train: mean return"),
    ("valid_recom", "valid: mean position"),
    ("valid_return", "valid: mean return"),
]


def _figure(**kwargs: object) -> Figure:
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def plot_history(history: pd.DataFrame, title: str = "") -> Figure:
    """The tutorial's 2×2 training history: train/valid mean position and return per epoch.

    ``history`` has an ``epoch`` column, the four history columns and optionally
    ``seed``; with several seeds the mean is drawn with a ±1 sd band.
    """
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(10, 6))
        axes = figure.subplots(2, 2, sharex=True)
        grouped = history.groupby("epoch")
        for axis, (column, label) in zip(axes.flat, HISTORY_PANELS, strict=True):
            mean = grouped[column].mean()
            axis.plot(mean.index, mean.to_numpy(), color=COLORS[0], linewidth=1.2)
            if grouped.size().max() > 1:
                spread = grouped[column].std()
                axis.fill_between(
                    mean.index, mean - spread, mean + spread, color=COLORS[0], alpha=0.2
                )
            axis.set_title(label)
            axis.set_xlabel("epoch")
        if title:
            figure.suptitle(title)
    return figure


def plot_policy(curves: pd.DataFrame, title: str = "") -> Figure:
    """Position against the last return (other inputs 0) for each model and the oracle.

    ``curves`` is indexed by the last return and has one column per model plus
    ``oracle``.
    """
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(6, 4))
        axis = figure.subplots()
        models = [column for column in curves.columns if column != "oracle"]
        for color, model in zip(COLORS, models, strict=False):
            axis.plot(curves.index, curves[model], color=color, label=model, linewidth=1.5)
        axis.step(
            curves.index, curves["oracle"], where="mid", color="black",
            linestyle="--", linewidth=1.2, label="oracle",
        )
        axis.set_xlabel("last return (other window inputs set to 0)")
        axis.set_ylabel("position")
        axis.legend(frameon=False)
        if title:
            axis.set_title(title)
    return figure


__all__ = ["COLORS", "plot_history", "plot_policy"]
