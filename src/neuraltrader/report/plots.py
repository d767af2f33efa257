"""Plots of runs. Each function returns a matplotlib ``Figure`` (no pyplot state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
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


# words for the parts of a column name: ``valid_recom`` is the "validation position"
WORDS = {"valid": "validation", "recom": "position", "pos": "positive", "neg": "negative",
         "bayes": "Bayes"}
SPLITS = ("train", "valid")


def human(column: str) -> str:
    """A column name in words: ``valid_recom`` → ``validation position``."""
    return " ".join(WORDS.get(part, part) for part in column.split("_"))


def _legend_labels(columns: list[str]) -> list[str]:
    """Legend labels for one panel's ``columns``: only the split (``train``,
    ``validation``) when they share what follows it, else each column in words."""
    parts = [column.split("_", 1) for column in columns]
    if len(columns) > 1 and all(len(p) == 2 and p[0] in SPLITS for p in parts) \
            and len({p[1] for p in parts}) == 1:
        return [WORDS.get(p[0], p[0]) for p in parts]
    return [human(column) for column in columns]


def _grid_shape(panels: int, most: int = 3) -> tuple[int, int]:
    """``(rows, columns)`` for ``panels`` small panels, at most ``most`` a row (four
    make two rows of two), so that a figure keeps a width a page shows unscaled."""
    columns = 2 if panels == 4 else min(panels, most)
    return -(-panels // columns), columns


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

    Several rows per ``x`` value (replicas) are drawn as their mean with a ±1 sd band,
    and the title says so. Legends name columns in words (``valid_recom`` is the
    "validation position"). ``references`` maps a column to labelled horizontal lines
    (e.g. OLS, truth).
    """
    import matplotlib

    references = references or {}
    rows, columns = layout
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(3.4 * columns + 0.6, 2.8 * rows + 0.4))
        axes = figure.subplots(rows, columns, sharex=True, squeeze=False)
        grouped = frame.groupby(x)
        replicas = int(grouped.size().max())
        replicated = replicas > 1
        for axis, (panel_title, panel_columns, *ylabel) in zip(axes.flat, panels, strict=True):
            labels = _legend_labels(panel_columns)
            for color, column, label in zip(COLORS, panel_columns, labels, strict=False):
                mean = grouped[column].mean()
                axis.plot(mean.index, mean.to_numpy(), color=color, linewidth=1.2, label=label)
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
        if replicated:
            title = f"{title}{': ' if title else ''}mean ± 1 sd over {replicas} seeds"
        if title:
            figure.suptitle(title)
    return figure


def plot_history(history: pd.DataFrame, title: str = "") -> Figure:
    """The training history: mean return and mean position per epoch, train against
    valid (mean and ±1 sd band over seeds when ``history`` holds several)."""
    return plot_panels(history, HISTORY_PANELS, x="epoch", layout=(1, 2), title=title)


def plot_policy(curves: pd.DataFrame, title: str = "", *, seeds: int = 1) -> Figure:
    """Position against the last return (other inputs 0) for each model and the oracle.

    ``curves`` is indexed by the last return and has one column per model plus
    ``oracle``; with ``seeds`` > 1 each model's curve is the mean position over that
    many seeds, and the legend and axis say so.
    """
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(6, 4))
        axis = figure.subplots()
        models = [column for column in curves.columns if column != "oracle"]
        mean = f" (mean of {seeds} seeds)" if seeds > 1 else ""
        for color, model in zip(COLORS, models, strict=False):
            axis.plot(curves.index, curves[model], color=color, label=f"{model}{mean}",
                      linewidth=1.5)
        axis.step(
            curves.index, curves["oracle"], where="mid", color="black",
            linestyle="--", linewidth=1.2, label="oracle",
        )
        axis.set_xlabel("last return (other window inputs set to 0)")
        axis.set_ylabel("mean position over seeds" if seeds > 1 else "position")
        axis.legend(frameon=False)
        if title:
            axis.set_title(title)
    return figure


BACKTEST_SERIES = {"strategy_return": "strategy", "buy_and_hold_return": "buy and hold"}
BASELINE_LABELS = {"tsmom": "time-series momentum", "macd": "MACD trend"}


def _draw_time_series(
    axis: Axes, series: dict[str, pd.Series], ylabel: str, title: str, *, log: bool = False,
    zero_line: bool = False,
) -> None:
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
    axis.legend(frameon=False, fontsize=8)
    axis.set_title(title)


def _time_axis_plot(
    series: dict[str, pd.Series], ylabel: str, title: str, *, log: bool = False,
    zero_line: bool = False,
) -> Figure:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(8, 3.4))
        _draw_time_series(figure.subplots(), series, ylabel, title, log=log, zero_line=zero_line)
    return figure


def volatility_matched(returns: pd.Series, reference: pd.Series) -> tuple[pd.Series, float]:
    """``returns`` scaled by ``k`` to ``reference``'s volatility over the whole sample
    (ex post), and ``k``; a series that never moves stays at 0 (``k`` = 0)."""
    spread = float(returns.std())
    scale = float(reference.std()) / spread if spread > 0 else 0.0
    return returns * scale, scale


def plot_equity(
    daily: pd.DataFrame, baselines: list[str] | tuple[str, ...] = (), title: str = ""
) -> Figure:
    """Growth of 1 after costs (log scale), strategy against buy-and-hold and the
    ``baselines``: on the left as traded, on the right with every series scaled to
    buy-and-hold's volatility (ex post, over the whole sample; the legend gives each
    factor), so that returns compare at equal risk."""
    import matplotlib

    from ..evaluation.metrics import equity_curve

    reference = daily["buy_and_hold_return"]
    series = {"strategy": daily["strategy_return"], "buy and hold": reference} | {
        BASELINE_LABELS.get(name, name): daily[f"{name}_return"] for name in baselines
    }
    matched = {}
    for label, values in series.items():
        scaled, factor = (values, 1.0) if label == "buy and hold" else volatility_matched(
            values, reference)
        matched[label if label == "buy and hold" else f"{label} ×{factor:.2f}"] = scaled

    def growth(returns: dict[str, pd.Series]) -> dict[str, pd.Series]:
        return {label: pd.Series(equity_curve(values), values.index)
                for label, values in returns.items()}

    prefix = f"{title}: " if title else ""
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(12, 3.6))
        raw, scaled = figure.subplots(1, 2, sharex=True)
        _draw_time_series(raw, growth(series), "growth of 1 (log scale)",
                          f"{prefix}equity as traded, after costs", log=True)
        _draw_time_series(scaled, growth(matched), "growth of 1 (log scale)",
                          "scaled to buy-and-hold's volatility (ex post)", log=True)
    return figure


# beyond this many assets, positions are drawn as a heatmap rather than lines
MAX_POSITION_LINES = 6


def plot_positions(daily: pd.DataFrame, assets: list[str], title: str = "") -> Figure:
    """Positions over time, per asset: above, the position traded (the signal at the
    volatility target, ``<asset>_position``); below, the model's signal (the seeds'
    mean position before scaling, ``<asset>_signal``). Beyond
    :data:`MAX_POSITION_LINES` assets each panel is a heatmap, one row per asset."""
    import matplotlib
    import numpy as np

    panels = [("position", "position traded (at the volatility target)"),
              ("signal", "model's signal (mean over seeds, before scaling)")]
    panels = [(kind, words) for kind, words in panels
              if all(f"{asset}_{kind}" in daily for asset in assets)]
    dates = pd.to_datetime(daily.index)
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(8, 2.4 * len(panels) + 0.6))
        axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for axis, (kind, words) in zip(axes, panels, strict=True):
            values = daily[[f"{asset}_{kind}" for asset in assets]].to_numpy(dtype=float)
            if len(assets) > MAX_POSITION_LINES:
                from matplotlib.dates import date2num

                reach = float(np.nanmax(np.abs(values))) if values.size else 1.0
                image = axis.imshow(
                    values.T, aspect="auto", cmap="RdBu", vmin=-reach, vmax=reach,
                    interpolation="nearest",
                    extent=(date2num(dates[0]), date2num(dates[-1]), len(assets) - 0.5, -0.5),
                )
                axis.xaxis_date()
                axis.set_yticks(range(len(assets)), assets, fontsize=6)
                axis.grid(False)
                figure.colorbar(image, ax=axis, label=kind)
            else:
                for color, asset, column in zip(COLORS, assets, values.T, strict=False):
                    axis.plot(dates, column, color=color, linewidth=0.9, label=asset)
                axis.axhline(0, color="black", linewidth=0.8)
                axis.set_ylabel(kind)
                if len(assets) > 1:
                    axis.legend(frameon=False, fontsize=8)
            axis.set_title(words)
        axes[-1].set_xlabel("date")
        if title:
            figure.suptitle(title)
    return figure


def plot_backtest(
    daily: pd.DataFrame, periods_per_year: int, title: str = "",
    baselines: list[str] | tuple[str, ...] = (),
) -> dict[str, Figure]:
    """The backtest's pictures, strategy against buy-and-hold: ``equity`` (growth of
    1, log scale, with the ``baselines`` too; as traded and at buy-and-hold's
    volatility, :func:`plot_equity`), ``drawdown`` (% below the running peak),
    ``rolling_sharpe`` (annualised, trailing one year) and, when ``daily`` has them,
    ``positions`` over time (:func:`plot_positions`).

    ``daily`` has ``strategy_return``, ``buy_and_hold_return`` and, per baseline,
    ``<baseline>_return`` by date; per asset, optionally, ``<asset>_position`` and
    ``<asset>_signal``.
    """
    from ..evaluation.metrics import drawdown, rolling_sharpe

    columns = {label: daily[column] for column, label in BACKTEST_SERIES.items()}
    prefix = f"{title}: " if title else ""
    figures = {
        "equity": plot_equity(daily, baselines, title),
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
    assets = position_assets(daily)
    if assets:
        figures["positions"] = plot_positions(daily, assets, f"{prefix}positions")
    return figures


def position_assets(daily: pd.DataFrame) -> list[str]:
    """The assets with a ``<asset>_position`` column in ``daily``, in column order."""
    suffix = "_position"
    return [str(column)[: -len(suffix)] for column in daily.columns
            if str(column).endswith(suffix) and len(str(column)) > len(suffix)]


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
    grid_rows, grid_columns = _grid_shape(len(pairs))
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(3.4 * grid_columns + 0.6, 3.0 * grid_rows))
        axes = list(figure.subplots(grid_rows, grid_columns, squeeze=False).flat)
        for axis in axes[len(pairs):]:
            axis.set_visible(False)
        for axis, ((dataset, model), rows) in zip(axes, pairs, strict=False):
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


# what a sweep's heatmap colours, in words
VALUE_WORDS = {"valid_return": "validation return per period",
               "sharpe": "out-of-sample Sharpe ratio (annualised)"}
# a sweep figure draws at most this many small multiples (the page says how many more)
MAX_PANELS = 24


def sweep_panels(summary: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """The panels of :func:`plot_sweep_heatmaps`: ``(title, rows)`` per value of the
    swept keys beyond the first two, and per data set and model where those vary within
    a grid point (not when a swept key such as ``model.kind`` sets them)."""
    within = summary.groupby(keys, sort=False)
    labels = [label for label in ("dataset", "model") if within[label].nunique().max() > 1]
    # a data set or model in the title when it names the panel or is the same everywhere
    titled = [label for label in ("dataset", "model")
              if label in labels or summary[label].nunique() == 1]
    by = [*keys[2:], *labels]
    groups = summary.groupby(by, sort=False) if by else [((), summary)]
    panels = []
    for _, rows in groups:
        first = rows.iloc[0]
        words = [f"{key}={first[key]}" for key in keys[2:]]
        words += [f"{first[label]} {'data' if label == 'dataset' else 'model'}"
                  for label in titled]
        panels.append((", ".join(words), rows))
    return panels


def plot_sweep_heatmaps(
    summary: pd.DataFrame, keys: list[str], value: str = "valid_return"
) -> Figure:
    """Heatmaps of ``value`` (mean over seeds) over the first two swept ``keys``; small
    multiples (:func:`sweep_panels`, at most :data:`MAX_PANELS`) over the values of any
    further swept keys and over data sets and models, on one colour scale. One swept
    key gives one row per panel."""
    import matplotlib
    import numpy as np

    row_key = keys[0]
    column_key = keys[1] if len(keys) > 1 else None
    panels = sweep_panels(summary, keys)
    shown = panels[:MAX_PANELS]
    tables = []
    for _, rows in shown:
        if column_key is None:
            table = rows.groupby(row_key, sort=False)[value].mean().to_frame().T
            table.index = [human(value)]
        else:
            table = rows.pivot_table(index=row_key, columns=column_key, values=value,
                                     aggfunc="mean", sort=False)
        tables.append(table)
    finite = np.concatenate([table.to_numpy(dtype=float).ravel() for table in tables])
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    words = VALUE_WORDS.get(value, human(value))
    grid_rows, grid_columns = _grid_shape(len(shown))
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(3.8 * grid_columns + 0.8, 3.1 * grid_rows + 0.3))
        axes = list(figure.subplots(grid_rows, grid_columns, squeeze=False).flat)
        for axis in axes[len(shown):]:
            axis.set_visible(False)
        image = None
        for axis, (title, _), table in zip(axes, shown, tables, strict=False):
            numbers = table.to_numpy(dtype=float)
            image = axis.imshow(numbers, cmap="viridis", aspect="auto", vmin=low, vmax=high)
            axis.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
            axis.set_yticks(range(table.shape[0]), [str(i) for i in table.index])
            axis.set_xlabel(column_key or row_key)
            axis.set_ylabel(row_key if column_key else "")
            axis.grid(False)
            if numbers.size <= 49:  # numbers in the cells while they fit
                middle = (low + high) / 2
                for (i, j), number in np.ndenumerate(numbers):
                    axis.text(j, i, f"{number:.4f}", ha="center", va="center", fontsize=7,
                              color="white" if number < middle else "black")
            axis.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axes[:len(shown)], label=words, shrink=0.9)
        if len(panels) > len(shown):
            figure.suptitle(f"the first {len(shown)} of {len(panels)} panels; "
                            f"every cell is in the results table")
    return figure


def plot_pbo(
    logits: list[float], pbo: float | None = None, *,
    in_sample: list[float] | None = None, out_of_sample: list[float] | None = None,
    slope: float | None = None, intercept: float | None = None,
) -> Figure:
    """The probability of backtest overfitting, drawn: the histogram of the CSCV
    ``logits`` (one per split; the PBO is the share at or below 0) and, when given,
    the out-of-sample against the in-sample Sharpe ratio of each split's chosen
    strategy with the least-squares degradation line (``slope``, ``intercept``)."""
    import matplotlib
    import numpy as np

    values = np.asarray(logits, dtype=float)
    values = values[np.isfinite(values)]
    scatter = in_sample is not None and out_of_sample is not None
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(10.8 if scatter else 5.6, 3.4))
        axes = figure.subplots(1, 2 if scatter else 1, squeeze=False)[0]
        axis = axes[0]
        axis.hist(values, bins=40, color=COLORS[0], alpha=0.8)
        axis.axvline(0, color="black", linewidth=1, linestyle="--",
                     label="logit 0: the chosen strategy ranks at the median")
        axis.set_xlabel("logit of the chosen strategy's out-of-sample rank")
        axis.set_ylabel("CSCV splits")
        share = "" if pbo is None or not np.isfinite(pbo) else f"PBO = {pbo:.3f}: "
        axis.set_title(f"{share}share of {len(values)} splits at or below 0")
        axis.legend(frameon=False, fontsize=8, loc="best")
        if scatter:
            axis = axes[1]
            x = np.asarray(in_sample, dtype=float)
            y = np.asarray(out_of_sample, dtype=float)
            axis.scatter(x, y, s=4, alpha=0.25, color=COLORS[0], linewidths=0, rasterized=True)
            if slope is not None and intercept is not None and np.isfinite(x).any():
                line = np.linspace(np.nanmin(x), np.nanmax(x), 2)
                axis.plot(line, intercept + slope * line, color=COLORS[3], linewidth=1.2,
                          label=f"least squares: slope {slope:.2f}")
                axis.legend(frameon=False, fontsize=8)
            axis.axhline(0, color="black", linewidth=0.8)
            axis.set_xlabel("in-sample Sharpe ratio of the chosen strategy")
            axis.set_ylabel("its out-of-sample Sharpe ratio")
            axis.set_title("performance degradation over the splits")
    return figure


def plot_placebo(sharpes: list[float], real: float | None, p_value: float | None = None
                 ) -> Figure:
    """The placebo test: the Sharpe ratio of each random-sign copy of the data (a tick,
    and a histogram from 10 copies on) against the real strategy's (``real``)."""
    import matplotlib
    import numpy as np

    values = np.asarray(sharpes, dtype=float)
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(6, 3.2))
        axis = figure.subplots()
        if len(values) >= 10:
            axis.hist(values[np.isfinite(values)], bins=30, color=COLORS[5], alpha=0.6,
                      density=True)
        axis.plot(values, np.zeros_like(values), "|", color=COLORS[0], markersize=16,
                  markeredgewidth=1.5, label=f"{len(values)} random-sign copies")
        if real is not None and np.isfinite(real):
            axis.axvline(real, color=COLORS[3], linewidth=1.5, label="the real data")
        axis.set_xlabel("Sharpe ratio (annualised)")
        axis.set_yticks([])
        p = "" if p_value is None or not np.isfinite(p_value) else f" (p = {p_value:.3f})"
        axis.set_title(f"placebo: the strategy on data with random signs{p}")
        axis.legend(frameon=False, fontsize=8, loc="upper left")
    return figure


def plot_values(values: list[float], label: str) -> Figure:
    """A histogram of a list of numbers (any array ``metrics.json`` holds that the page
    has no figure of its own for), named ``label``."""
    import matplotlib
    import numpy as np

    numbers = np.asarray(values, dtype=float)
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(5.6, 3.0))
        axis = figure.subplots()
        axis.hist(numbers[np.isfinite(numbers)], bins=40, color=COLORS[0], alpha=0.8)
        axis.set_xlabel(label)
        axis.set_ylabel("count")
        axis.set_title(f"{label}: {len(numbers)} values")
    return figure


__all__ = [
    "COLORS", "human", "plot_backtest", "plot_equity", "plot_history", "plot_panels",
    "plot_pbo", "plot_placebo", "plot_policy", "plot_positions", "plot_seed_returns",
    "plot_sweep_heatmaps", "plot_values", "position_assets", "sweep_panels",
    "volatility_matched",
]
