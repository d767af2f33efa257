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
    ("train: mean position", ["train_recom"]),
    ("train: mean return", ["train_return"]),
    ("valid: mean position", ["valid_recom"]),
    ("valid: mean return", ["valid_return"]),
]


def _figure(**kwargs: object) -> Figure:
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def plot_panels(
    frame: pd.DataFrame,
    panels: list[tuple[str, list[str]]],
    *,
    x: str,
    layout: tuple[int, int],
    references: dict[str, dict[str, float]] | None = None,
    title: str = "",
) -> Figure:
    """One panel per ``(title, columns)`` entry, each column drawn against ``x``.

    Several rows per ``x`` value (replicas) are drawn as their mean with a ±1 sd band.
    ``references`` maps a column to labelled horizontal lines (e.g. OLS, truth).
    """
    import matplotlib

    references = references or {}
    rows, columns = layout
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(3.4 * columns + 0.6, 2.8 * rows + 0.4))
        axes = figure.subplots(rows, columns, sharex=True, squeeze=False)
        grouped = frame.groupby(x)
        replicated = bool(grouped.size().max() > 1)
        for axis, (panel_title, panel_columns) in zip(axes.flat, panels, strict=True):
            for color, column in zip(COLORS, panel_columns, strict=False):
                mean = grouped[column].mean()
                axis.plot(mean.index, mean.to_numpy(), color=color, linewidth=1.2, label=column)
                if replicated:
                    spread = grouped[column].std()
                    axis.fill_between(mean.index, mean - spread, mean + spread,
                                      color=color, alpha=0.2)
                for style, (label, value) in zip(
                    ("--", ":"), references.get(column, {}).items(), strict=False
                ):
                    axis.axhline(value, color="black", linestyle=style, linewidth=1, label=label)
            if len(panel_columns) > 1 or references.get(panel_columns[0]):
                axis.legend(frameon=False)
            axis.set_title(panel_title)
            axis.set_xlabel(x)
        if title:
            figure.suptitle(title)
    return figure


def plot_history(history: pd.DataFrame, title: str = "") -> Figure:
    """The tutorial's 2×2 training history: train/valid mean position and return per
    epoch (mean and ±1 sd band over seeds when ``history`` holds several)."""
    return plot_panels(history, HISTORY_PANELS, x="epoch", layout=(2, 2), title=title)


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


BACKTEST_SERIES = {"strategy_return": "strategy", "buy_and_hold_return": "buy and hold"}


def _time_axis_plot(
    series: dict[str, pd.Series], ylabel: str, title: str, *, log: bool = False,
    zero_line: bool = False,
) -> Figure:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(8, 3.4))
        axis = figure.subplots()
        for color, (label, values) in zip(COLORS, series.items(), strict=False):
            axis.plot(values.index, values.to_numpy(), color=color, linewidth=1.1, label=label)
        if log:
            from matplotlib.ticker import ScalarFormatter

            axis.set_yscale("log")
            for formatter in (axis.yaxis.set_major_formatter, axis.yaxis.set_minor_formatter):
                formatter(ScalarFormatter())
        if zero_line:
            axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xlabel("date")
        axis.set_ylabel(ylabel)
        axis.legend(frameon=False)
        axis.set_title(title)
    return figure


def plot_backtest(daily: pd.DataFrame, periods_per_year: int, title: str = "") -> dict[str, Figure]:
    """The backtest's three pictures, strategy against buy-and-hold: ``equity`` (growth
    of 1, log scale), ``drawdown`` (% below the running peak) and ``rolling_sharpe``
    (annualised, trailing one year).

    ``daily`` has ``strategy_return`` and ``buy_and_hold_return`` by date.
    """
    from .metrics import drawdown, equity_curve, rolling_sharpe

    columns = {label: daily[column] for column, label in BACKTEST_SERIES.items()}
    prefix = f"{title}: " if title else ""
    return {
        "equity": _time_axis_plot(
            {label: pd.Series(equity_curve(values), values.index)
             for label, values in columns.items()},
            "growth of 1 (log scale)", f"{prefix}equity, after costs", log=True,
        ),
        "drawdown": _time_axis_plot(
            {label: pd.Series(100 * drawdown(values), values.index)
             for label, values in columns.items()},
            "drawdown (% below peak)", f"{prefix}drawdown",
        ),
        "rolling_sharpe": _time_axis_plot(
            {label: rolling_sharpe(values, periods_per_year) for label, values in columns.items()},
            "Sharpe ratio (annualised)", f"{prefix}rolling one-year Sharpe", zero_line=True,
        ),
    }


__all__ = ["COLORS", "plot_backtest", "plot_history", "plot_panels", "plot_policy"]
