"""Several finished runs of one kind side by side: one table and overlaid plots.

``neuraltrader compare RUN_DIR...`` prints the table and writes one self-contained
page, ``compare.html`` (images embedded, no script, no external link), as the report
does. What is compared depends on the kind:

- backtests: each run's out-of-sample figures, and its equity curve (from
  ``backtest.csv``'s ``strategy_return``) and drawdown, overlaid;
- studies: each (data set, model) result, and the training histories (``history.csv``,
  mean over seeds) overlaid;
- sweeps (of one pipeline): each cell's result and each run's verdicts, and every cell's
  figure per run.

Config keys whose values differ between the runs lead the table: they are what the
comparison is about. Every run directory is read and checked (``metrics.json`` as the
report checks it) before anything is written; a bad one is a one-line ``DataError``.
"""

from __future__ import annotations

import glob
import html
import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..evaluation.metrics import drawdown, equity_curve
from ..io.tables import format_table
from .page import (
    CSS,
    _figure_png,
    _png_uri,
    _read_metrics,
    _read_table,
    _records_table,
    _require_columns,
    run_kind,
)
from .plots import COLORS, STYLE, _figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KINDS = ("backtest", "study", "sweep")  # a demo has no figure two runs share
BACKTEST_FIGURES = ("sharpe", "annual_return", "annual_volatility", "max_drawdown",
                    "turnover", "hit_rate")
STUDY_FIGURES = ("seeds", "epochs", "valid_return", "valid_return_std", "oracle_capture",
                 "p_value", "sharpe", "best_epoch", "train_return")
SWEEP_FIGURES = ("seeds", "valid_return", "valid_return_std", "oracle_capture", "p_value",
                 "sharpe", "annual_return", "max_drawdown", "turnover", "best_epoch")

# a sweep's figure per cell: simulated sweeps' validation return, else backtests' Sharpe
CELL_VALUES = {"valid_return": "validation return per period",
               "sharpe": "out-of-sample Sharpe ratio"}


@dataclass
class Run:
    """One finished run directory: its label in the table and plots (the path as
    given), its kind and its checked ``metrics.json``."""

    label: str
    path: Path
    kind: str
    metrics: dict[str, Any]


@dataclass
class Comparison:
    """What ``compare`` shows: ``tables`` (title → frame, one row per run or result)
    and ``figures`` (caption → matplotlib ``Figure``)."""

    kind: str
    runs: list[Run]
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure] = field(default_factory=dict)


def read_runs(run_dirs: Sequence[str | Path]) -> list[Run]:
    """The runs to compare, checked: at least two, each given once, finished, with a
    readable ``metrics.json``, all of one kind (sweeps: of one pipeline)."""
    if len(run_dirs) < 2:
        raise DataError(f"compare needs at least 2 run directories, got {len(run_dirs)}")
    runs, seen = [], {}
    for text in run_dirs:
        path = Path(text)
        resolved = path.resolve()
        if resolved in seen:
            raise DataError(f"run directory {str(text)!r} is given twice (also as "
                            f"{seen[resolved]!r})")
        seen[resolved] = str(text)
        _check_finished(path)
        metrics = _read_metrics(path)
        runs.append(Run(str(text), path, run_kind(metrics), metrics))
    first = runs[0]
    for run in runs[1:]:
        if run.kind != first.kind:
            raise DataError(f"compare takes runs of one kind: {first.label!r} is a "
                            f"{first.kind}, {run.label!r} a {run.kind}")
    if first.kind not in KINDS:
        raise DataError(f"compare takes backtests, studies or sweeps; {first.label!r} is a "
                        f"{first.kind}")
    if first.kind == "sweep":
        pipelines = {run.label: run.metrics.get("pipeline", "study") for run in runs}
        if len(set(map(str, pipelines.values()))) > 1:
            shown = ", ".join(f"{label!r} sweeps {name}" for label, name in pipelines.items())
            raise DataError(f"compare takes sweeps of one pipeline: {shown}")
    return runs


def _check_finished(path: Path) -> None:
    """Refuse a run that is still being written or was interrupted: its files are in
    the staging directory ``.NAME.incomplete-PID`` beside it (see io.rundir)."""
    if (path / "metrics.json").is_file():
        return
    staging = path.parent / f".{glob.escape(path.name)}.incomplete-*"
    if any(Path(p).is_dir() for p in glob.glob(str(staging))):
        raise DataError(f"run directory {str(path)!r} is unfinished (being written, or "
                        f"interrupted: `neuraltrader resume {path}` finishes it)")


def compare_runs(run_dirs: Sequence[str | Path]) -> Comparison:
    """Read ``run_dirs`` (see :func:`read_runs`) and build their comparison."""
    runs = read_runs(run_dirs)
    build = {"backtest": _compare_backtests, "study": _compare_studies,
             "sweep": _compare_sweeps}[runs[0].kind]
    return build(runs)


# ---------------------------------------------------------------------------- tables


def _scalar(value: Any) -> Any:
    """A figure for a table cell: numbers and text as they are (a JSON ``null``, a NaN
    when written, as NaN); anything else (lists, objects) left out as NaN."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        try:
            return float(value) if isinstance(value, float) else int(value)
        except OverflowError:  # pragma: no cover - an integer beyond float range
            return math.nan
    return math.nan


def _get(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...`` as a table figure, NaN where anything is missing."""
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return math.nan
        value = value[key]
    return _scalar(value)


def _flat_config(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json``'s config as ``{"train.lr": 0.01, ...}`` (lists as text)."""

    def leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        for key, item in value.items():
            if isinstance(item, dict):
                yield from leaves(item, f"{prefix}{key}.")
            elif isinstance(item, list):
                yield prefix + key, ",".join(map(str, item))
            else:
                yield prefix + key, _scalar(item)

    config = metrics.get("config")
    return dict(leaves(config, "")) if isinstance(config, dict) else {}


def config_differences(runs: list[Run]) -> pd.DataFrame:
    """One row per run, one column per config key whose value is not the same in
    every run (a key a run lacks counts as different)."""
    configs = [_flat_config(run.metrics) for run in runs]
    keys = list(dict.fromkeys(key for config in configs for key in config))
    differ = [key for key in keys
              if len({repr(config.get(key, "unset")) for config in configs}) > 1]
    frame = pd.DataFrame([{key: config.get(key, "unset") for key in differ}
                          for config in configs])
    frame.insert(0, "run", [run.label for run in runs])
    return frame


def _with_differences(frame: pd.DataFrame, differences: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with a ``run`` column) with the differing config keys after ``run``."""
    return differences.merge(frame, on="run", how="right")


def _present(records: list[dict[str, Any]], names: Sequence[str]) -> list[str]:
    return [name for name in names if any(name in record for record in records)]


def _compare_backtests(runs: list[Run]) -> Comparison:
    rows = []
    for run in runs:
        metrics = run.metrics
        row = {"run": run.label, "data": _get(metrics, "data", "name"),
               "start": _get(metrics, "data", "start"), "end": _get(metrics, "data", "end")}
        row |= {name: _get(metrics, "strategy", name) for name in BACKTEST_FIGURES}
        row["buy_and_hold_sharpe"] = _get(metrics, "buy_and_hold", "sharpe")
        row["spa_p_value"] = _get(metrics, "spa", "p_value")
        rows.append(row)
    table = _with_differences(pd.DataFrame(rows), config_differences(runs))
    daily = {run.label: _backtest_returns(run) for run in runs}
    return Comparison("backtest", runs, {"backtests": table}, {
        "equity of each run's strategy (growth of 1, log scale, after costs)":
            _plot_equity(daily, runs),
        "drawdown of each run's strategy (% below its running peak)": _plot_drawdown(daily),
    })


def _backtest_returns(run: Run) -> pd.Series:
    """The strategy's daily return by date, from ``backtest.csv``."""
    path = run.path / "backtest.csv"
    table = _run_table(path, "backtest", ["date"], ["strategy_return", "buy_and_hold_return"])
    dates = pd.to_datetime(table["date"], errors="coerce")
    if dates.isna().any():
        raise DataError(f"{str(path)!r}: backtest.csv column 'date' must hold dates")
    return table.set_index(dates)[["strategy_return", "buy_and_hold_return"]]


def _compare_studies(runs: list[Run]) -> Comparison:
    rows = []
    for run in runs:
        results = run.metrics.get("results", [])
        for record in results:
            row = {"run": run.label, "dataset": _scalar(record.get("dataset", math.nan)),
                   "model": _scalar(record.get("model", math.nan))}
            row |= {name: _get(record, name) for name in _present(results, STUDY_FIGURES)}
            rows.append(row)
    if not rows:
        raise DataError(f"{runs[0].label!r}: a study's metrics.json holds no results")
    table = _with_differences(pd.DataFrame(rows), config_differences(runs))
    histories = {run.label: _study_history(run) for run in runs}
    return Comparison("study", runs, {"results": table}, {
        "training histories, mean over seeds: validation (solid) and training (dashed) "
        "return per period": _plot_histories(histories),
    })


def _study_history(run: Run) -> pd.DataFrame:
    return _run_table(run.path / "history.csv", "study", ["dataset", "model"],
                      ["epoch", "train_return", "valid_return"])


def _run_table(path: Path, kind: str, labels: list[str], numbers: list[str]) -> pd.DataFrame:
    """A finished ``kind`` run's CSV at ``path``, checked to hold the ``labels`` and
    numeric ``numbers`` columns the comparison reads."""
    if not path.is_file():
        raise DataError(f"{str(path)!r}: a finished {kind} has {path.name}; it is missing")
    table = _read_table(path)
    _require_columns(table, path, labels, numbers)
    return table


def _compare_sweeps(runs: list[Run]) -> Comparison:
    rows, verdicts = [], []
    for run in runs:
        grid = run.metrics.get("grid") or {}
        results = run.metrics.get("results", [])
        for record in results:
            row = {"run": run.label, "cell": _cell_label(record, list(grid))}
            row |= {"dataset": _scalar(record.get("dataset", math.nan)),
                    "model": _scalar(record.get("model", math.nan))}
            row |= {name: _get(record, name) for name in _present(results, SWEEP_FIGURES)}
            rows.append(row)
        found = run.metrics["verdicts"]
        verdicts.append({
            "run": run.label, "cells": len(results),
            "best": _cell_label(found.get("best") or {}, list(grid)),
            "deflated_sharpe": _get(found, "deflated_sharpe", "deflated_sharpe_ratio"),
            "pbo": _get(found, "pbo", "pbo"),
            "spa_p_value": _get(found, "spa", "p_value"),
        })
    if not rows:
        raise DataError(f"{runs[0].label!r}: a sweep's metrics.json holds no results")
    cells = pd.DataFrame(rows)
    value = "valid_return" if "valid_return" in cells else "sharpe"
    if value not in cells:
        raise DataError(f"{runs[0].label!r}: a sweep's results hold neither valid_return "
                        f"nor sharpe")
    differences = config_differences(runs)
    return Comparison("sweep", runs, {
        "verdicts": _with_differences(pd.DataFrame(verdicts), differences),
        "cells": cells,
    }, {f"{CELL_VALUES[value]} of every cell, per run": _plot_cells(cells, value)})


def _cell_label(record: dict[str, Any], keys: list[str]) -> str:
    """``model.hidden=2 data.rho=0.3`` (a cell's grid values), or ``n/a`` for none."""
    found = [f"{key}={record[key]}" for key in keys if key in record]
    return " ".join(found) or "n/a"


# ---------------------------------------------------------------------------- plots


def _styles() -> Iterator[tuple[str, str]]:
    """(colour, line style) for run after run: every colour solid, then dash-dotted,
    so that no run shares another's line however many are compared."""
    for style in itertools.cycle(("-", "-.", ":")):
        for color in COLORS:
            yield color, style


def _plot_equity(daily: dict[str, pd.DataFrame], runs: list[Run]) -> Figure:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(9, 4))
        axis = figure.subplots()
        for (color, style), (label, frame) in zip(_styles(), daily.items(), strict=False):
            axis.plot(frame.index, equity_curve(frame["strategy_return"].to_numpy()),
                      color=color, linestyle=style, linewidth=1.2, label=label)
        # buy-and-hold once per data set (runs on the same prices share it)
        by_data: dict[str, pd.DataFrame] = {}
        for run in runs:
            by_data.setdefault(str(_get(run.metrics, "data", "name")), daily[run.label])
        for (name, frame), gray in zip(by_data.items(), ("black", "0.45", "0.65"), strict=False):
            axis.plot(frame.index, equity_curve(frame["buy_and_hold_return"].to_numpy()),
                      color=gray, linestyle="--", linewidth=1, label=f"buy and hold ({name})")
        _log_scale(axis)
        axis.set_xlabel("date")
        axis.set_ylabel("growth of 1 (log scale)")
        axis.legend(frameon=False, fontsize=8)
        axis.set_title("equity, after costs")
    return figure


def _log_scale(axis: Axes) -> None:
    from matplotlib.ticker import ScalarFormatter

    axis.set_yscale("log")
    for formatter in (axis.yaxis.set_major_formatter, axis.yaxis.set_minor_formatter):
        formatter(ScalarFormatter())


def _plot_drawdown(daily: dict[str, pd.DataFrame]) -> Figure:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(9, 3.2))
        axis = figure.subplots()
        for (color, style), (label, frame) in zip(_styles(), daily.items(), strict=False):
            axis.plot(frame.index, 100 * drawdown(frame["strategy_return"].to_numpy()),
                      color=color, linestyle=style, linewidth=1.1, label=label)
        axis.set_xlabel("date")
        axis.set_ylabel("drawdown (% below peak)")
        axis.legend(frameon=False, fontsize=8)
        axis.set_title("drawdown of the strategy")
    return figure


def _plot_histories(histories: dict[str, pd.DataFrame]) -> Figure:
    """One panel per (data set, model) of any run: each run's mean validation return
    per epoch (solid) and training return (dashed, thin), one colour per run."""
    import matplotlib
    from matplotlib.lines import Line2D

    pairs = list(dict.fromkeys(
        pair for history in histories.values()
        for pair in zip(history["dataset"], history["model"], strict=True)
    ))
    columns = min(2, len(pairs))
    rows = math.ceil(len(pairs) / columns)
    colors = dict(zip(histories, _styles(), strict=False))
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(4.6 * columns + 0.6, 3.0 * rows + 0.6))
        axes = list(figure.subplots(rows, columns, squeeze=False).flat)
        for axis, (dataset, model) in zip(axes, pairs, strict=False):
            for label, history in histories.items():
                rows_of_pair = history[(history["dataset"] == dataset)
                                       & (history["model"] == model)]
                if rows_of_pair.empty:
                    continue
                mean = rows_of_pair.groupby("epoch")[["train_return", "valid_return"]].mean()
                color = colors[label][0]
                axis.plot(mean.index, mean["valid_return"], color=color, linewidth=1.3)
                axis.plot(mean.index, mean["train_return"], color=color, linewidth=0.8,
                          linestyle="--", alpha=0.8)
            axis.axhline(0, color="black", linewidth=0.6)
            axis.set_title(f"{dataset} data, {model} model")
            axis.set_xlabel("epoch")
            axis.set_ylabel("return per period")
        for axis in axes[len(pairs):]:  # panels left over when the pairs do not fill the grid
            axis.set_visible(False)
        handles = [Line2D([], [], color=colors[label][0], label=label) for label in histories]
        handles += [Line2D([], [], color="0.3", label="validation"),
                    Line2D([], [], color="0.3", linestyle="--", label="training")]
        figure.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)),
                      frameon=False)
    return figure


def _plot_cells(cells: pd.DataFrame, value: str) -> Figure:
    """Each cell's ``value`` (mean over seeds) per run: cells along x, a marker and
    line per run."""
    import matplotlib

    labels = cells["cell"].astype(str)
    if cells[["dataset", "model"]].drop_duplicates().shape[0] > 1:
        labels = labels + " " + cells["dataset"].astype(str) + "/" + cells["model"].astype(str)
    frame = cells.assign(label=labels)
    order = list(dict.fromkeys(frame["label"]))
    with matplotlib.rc_context(STYLE):
        figure = _figure(figsize=(max(6.0, 0.8 * len(order) + 2.5), 4.2))
        axis = figure.subplots()
        positions = {label: index for index, label in enumerate(order)}
        for (color, style), (run, rows) in zip(_styles(), frame.groupby("run", sort=False),
                                               strict=False):
            x = rows["label"].map(positions).to_numpy()
            axis.plot(x, rows[value].to_numpy(dtype=float), color=color, linestyle=style,
                      marker="o", linewidth=1, label=str(run))
        axis.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(CELL_VALUES[value])
        axis.set_xlabel("cell")
        axis.axhline(0, color="black", linewidth=0.6)
        axis.legend(frameon=False, fontsize=8)
    return figure


# ---------------------------------------------------------------------------- output


def comparison_text(comparison: Comparison) -> str:
    """The tables as plain text, for the terminal."""
    return "\n\n".join(f"{title}:\n{format_table(table)}"
                       for title, table in comparison.tables.items())


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Table rows as dicts for the page, NaN as ``None`` (shown ``n/a``)."""
    return [{key: (None if isinstance(value, float) and math.isnan(value)
                   else value.item() if isinstance(value, np.generic) else value)
             for key, value in row.items()}
            for row in table.to_dict(orient="records")]


def render_comparison(comparison: Comparison) -> str:
    """The comparison as one self-contained HTML page: figures first, then tables."""
    runs = "".join(f"<li>{html.escape(run.label)} ({html.escape(str(run.path.resolve()))})"
                   f"</li>" for run in comparison.runs)
    figures = "".join(
        f'<figure><img src="{_png_uri(_figure_png(figure))}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, figure in comparison.figures.items()
    )
    tables = "".join(
        f'<h2>{html.escape(title.capitalize())}</h2><div class="scroll">'
        f"{_records_table(_records(table), title)}</div>"
        for title, table in comparison.tables.items()
    )
    title = f"neuraltrader compare: {len(comparison.runs)} {comparison.kind} runs"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1><ul class=\"meta\">{runs}</ul>\n"
        f'<h2>Figures</h2><div class="figures">{figures}</div>\n{tables}\n</body></html>\n'
    )


def write_comparison(run_dirs: Sequence[str | Path], out: str | Path) -> tuple[Comparison, Path]:
    """Compare ``run_dirs`` and write the page to ``out`` (atomically); every input and
    ``out`` are checked first, so a refusal writes nothing."""
    out = Path(out)
    if out.is_dir():
        raise DataError(f"--out {str(out)!r} is a directory; give the page's file name")
    if not out.parent.is_dir():
        raise DataError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist")
    comparison = compare_runs(run_dirs)
    page = render_comparison(comparison)
    temporary = out.parent / f".{out.name}.incomplete-{os.getpid()}"
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DataError(f"--out {str(out)!r} cannot be written ({error.strerror})") from None
    return comparison, out


__all__ = [
    "Comparison", "Run", "compare_runs", "comparison_text", "config_differences",
    "read_runs", "render_comparison", "write_comparison",
]
