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

# train against valid in each panel: the gap between the curves is the overfitting
HISTORY_PANELS = [
    ("mean return", ["train_return", "valid_return"], "return per period"),
    ("mean position", ["train_recom", "valid_recom"], "position (share of capital)"),
]


def _figure(**kwargs: object) -> Figure:
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def plot_panels(
    frame: pd.DataFrame,
    panels: list[tuple[str, list[str]]] | list[tuple[str, list[str], str]],
    *,
    x: str,
    layout: tuple[int, int],
    references: dict[str, dict[str, float]] | None = None,
    title: str = "",
) -> Figure:
    """One panel per ``(title, columns)`` or ``(title, columns, y label)`` entry, each
    column drawn against ``x``.

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
        for axis, (panel_title, panel_columns, *ylabel) in zip(axes.flat, panels, strict=True):
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
            if ylabel:
                axis.set_ylabel(ylabel[0])
        if title:
            figure.suptitle(title)
    return figure


def plot_history(history: pd.DataFrame, title: str = "") -> Figure:
    """The training history: mean return and mean position per epoch, train against
    valid (mean and ±1 sd band over seeds when ``history`` holds several)."""
    return plot_panels(history, HISTORY_PANELS, x="epoch", layout=(1, 2), title=title)


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
BASELINE_LABELS = {"tsmom": "time-series momentum", "macd": "MACD trend"}


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


def plot_backtest(
    daily: pd.DataFrame, periods_per_year: int, title: str = "",
    baselines: list[str] | tuple[str, ...] = (),
) -> dict[str, Figure]:
    """The backtest's three pictures, strategy against buy-and-hold: ``equity`` (growth
    of 1, log scale, with the ``baselines`` too), ``drawdown`` (% below the running
    peak) and ``rolling_sharpe`` (annualised, trailing one year).

    ``daily`` has ``strategy_return``, ``buy_and_hold_return`` and, per baseline,
    ``<baseline>_return`` by date.
    """
    from ..evaluation.metrics import drawdown, equity_curve, rolling_sharpe

    columns = {label: daily[column] for column, label in BACKTEST_SERIES.items()}
    ruled = columns | {BASELINE_LABELS.get(name, name): daily[f"{name}_return"]
                       for name in baselines}
    prefix = f"{title}: " if title else ""
    return {
        "equity": _time_axis_plot(
            {label: pd.Series(equity_curve(values), values.index)
             for label, values in ruled.items()},
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


def plot_seed_returns(seeds: pd.DataFrame, title: str = "") -> Figure:
    """Validation returns over seeds against the spread expected with no edge.

    One panel per (dataset, model) in ``seeds`` (columns ``dataset``, ``model``,
    ``valid_return``, ``valid_return_se``): each seed's return as a tick (and a histogram
    from 10 seeds on), their mean, and the no-edge distribution N(0, se²), se being the
    seeds' mean standard error of the validation return.
    """
    import matplotlib
    import numpy as np

    pairs = list(seeds.groupby(["dataset", "model"], sort=False))
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(3.4 * len(pairs) + 0.6, 3.0))
        axes = figure.subplots(1, len(pairs), squeeze=False)[0]
        for axis, ((dataset, model), rows) in zip(axes, pairs, strict=True):
            returns = rows["valid_return"].to_numpy()
            se = float(rows["valid_return_se"].mean())
            low = min(returns.min(), -4 * se)
            high = max(returns.max(), 4 * se)
            grid = np.linspace(low, high, 200)
            null = np.exp(-0.5 * (grid / se) ** 2) / (se * np.sqrt(2 * np.pi))
            axis.fill_between(grid, null, color=COLORS[5], alpha=0.35, label="no edge")
            if len(returns) >= 10:  # a histogram says little about fewer seeds
                axis.hist(returns, bins=np.linspace(low, high, 40), density=True,
                          color=COLORS[0], alpha=0.7)
            axis.plot(returns, np.zeros_like(returns), "|", color=COLORS[0], markersize=16,
                      markeredgewidth=1.5, label=f"{len(returns)} seed(s)")
            axis.axvline(returns.mean(), color=COLORS[3], linestyle="--", linewidth=1.2,
                         label="mean over seeds")
            axis.axvline(0, color="black", linewidth=0.8)
            axis.set_xlabel("validation return per period")
            axis.set_ylabel("density")
            axis.set_title(f"{dataset} data, {model} model")
            axis.legend(frameon=False, loc="upper left", fontsize=7)
        if title:
            figure.suptitle(title)
    return figure


def plot_sweep_heatmaps(
    summary: pd.DataFrame, keys: list[str], value: str = "valid_return"
) -> Figure:
    """Heatmaps of ``value`` (mean over seeds) over the first two swept ``keys``, one per
    (dataset, model) where those vary within a grid point (not when a swept key such as
    ``model.kind`` sets them); other swept keys are averaged. One swept key gives one
    row."""
    import matplotlib

    row_key = keys[0]
    column_key = keys[1] if len(keys) > 1 else None
    within = summary.groupby(keys, sort=False)
    panels = [label for label in ("dataset", "model") if within[label].nunique().max() > 1]
    # a label in the title when it names the panel or is the same everywhere
    titled = [label for label in ("dataset", "model")
              if label in panels or summary[label].nunique() == 1]
    pairs = [
        (tuple(rows.iloc[0][["dataset", "model"]]), rows)
        for _, rows in (summary.groupby(panels, sort=False) if panels else [(None, summary)])
    ]
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(4.2 * len(pairs) + 0.8, 3.6))
        axes = figure.subplots(1, len(pairs), squeeze=False)[0]
        for axis, ((dataset, model), rows) in zip(axes, pairs, strict=True):
            if column_key is None:
                table = rows.groupby(row_key, sort=False)[value].mean().to_frame().T
                table.index = [value]
            else:
                table = rows.pivot_table(index=row_key, columns=column_key, values=value,
                                         aggfunc="mean", sort=False)
            image = axis.imshow(table.to_numpy(dtype=float), cmap="viridis", aspect="auto")
            axis.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
            axis.set_yticks(range(table.shape[0]), [str(i) for i in table.index])
            axis.set_xlabel(column_key or row_key)
            axis.set_ylabel(row_key if column_key else "")
            axis.grid(False)
            for (i, j), number in pd.DataFrame(table.to_numpy()).stack().items():
                axis.text(j, i, f"{number:.4f}", ha="center", va="center", fontsize=8,
                          color="white" if number < table.to_numpy().mean() else "black")
            names = {"dataset": f"{dataset} data", "model": f"{model} model"}
            axis.set_title(", ".join(names[label] for label in titled))
            figure.colorbar(image, ax=axis, label=value.replace("_", " ")
                            + (" (per period)" if value.endswith("return") else ""))
    return figure


__all__ = [
    "COLORS", "plot_backtest", "plot_history", "plot_panels", "plot_policy",
    "plot_seed_returns", "plot_sweep_heatmaps",
]
