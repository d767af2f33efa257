"""What a backtest's page says beyond its tables of ``metrics.json``: the verdict in a
sentence, what the SPA fields mean, and tables computed from ``backtest.csv`` (returns
per calendar year, figures per asset).

``metrics.json`` is read as untrusted: a figure of the wrong type is left out of a
sentence, never an error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .plots import BASELINE_LABELS, position_assets
from .tables import is_number

SIGNIFICANCE = 0.05  # the level the verdict sentence is stated at
BENCHMARK_LABELS = {"buy_and_hold": "buy-and-hold"} | BASELINE_LABELS


def get(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``, or ``None`` where a step is missing or not an
    object."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None``."""
    if not is_number(value) or not math.isfinite(float(value)):
        return None
    return float(value)


def benchmark_name(name: Any) -> str:
    return BENCHMARK_LABELS.get(str(name), str(name))


def verdict_sentences(metrics: dict[str, Any]) -> list[str]:
    """The backtest's verdict in words: does an edge survive the SPA test at 5%, how
    the Sharpe ratios compare, and what the placebo test found (when one ran)."""
    sentences = []
    p_value = number(metrics.get("spa_pvalue"))
    p_values = get(metrics, "spa", "p_values")
    names = ([benchmark_name(name) for name in p_values] if isinstance(p_values, dict)
             and p_values else ["buy-and-hold"])
    against = names[0] if len(names) == 1 else f"the best of {', '.join(names)}"
    if p_value is not None:
        binding = get(metrics, "spa", "benchmark")
        if p_value < SIGNIFICANCE:
            sentences.append(
                f"An edge that survives the SPA test at 5%: the strategy beats {against} "
                f"at equal volatility (p = {p_value:.3f})."
            )
        else:
            tail = (f"; the binding benchmark is {benchmark_name(binding)}"
                    if isinstance(binding, str) and len(names) > 1 else "")
            sentences.append(
                f"No edge that survives the SPA test at 5%: p = {p_value:.3f} against "
                f"{against}{tail}."
            )
    sharpe = number(get(metrics, "strategy", "sharpe"))
    held = number(get(metrics, "buy_and_hold", "sharpe"))
    if sharpe is not None and held is not None:
        sentences.append(f"Out-of-sample Sharpe ratio {sharpe:.2f}, buy-and-hold's {held:.2f}"
                         f" (annualised, after costs).")
    placebo = metrics.get("placebo")
    copies = get(placebo, "copies")
    mean, spread, placebo_p = (number(get(placebo, key)) for key in ("mean", "sd", "p_value"))
    if is_number(copies) and None not in (mean, spread, placebo_p):
        copies = int(copies)
        caveat = (f"; with {copies} copies p cannot fall below {1 / (copies + 1):.2f}"
                  if copies < 20 else "")  # p = 1/(K+1) < 5% takes K >= 20
        real = f"the real {sharpe:.2f}" if sharpe is not None else "the real Sharpe ratio"
        sentences.append(
            f"Placebo test: on {copies} random-sign copies of the data the strategy's "
            f"Sharpe ratio is {mean:.2f} ± {spread:.2f}; {real} has permutation "
            f"p = {placebo_p:.3f}{caveat}."
        )
    return sentences


def spa_note(metrics: dict[str, Any]) -> str:
    """What the ``spa`` fields of ``metrics.json`` mean, in a short paragraph."""
    reps = get(metrics, "spa", "reps")
    block = number(get(metrics, "spa", "block_size"))
    draws = f"{reps} " if is_number(reps) else ""
    length = f", mean block length {block:.1f} periods" if block is not None else ""
    return (
        "SPA is Hansen's test for superior predictive ability: could the best of the "
        "candidates (the strategy, which trades the seeds' mean position, and each seed "
        "alone) beat a benchmark only by luck? Every series is first scaled to the same "
        "volatility, each candidate's mean excess return is divided by its bootstrap "
        f"standard error (studentized), and the null is resampled by {draws}"
        f"stationary-bootstrap draws{length}. The test runs once against each benchmark: "
        "spa.p_values holds those p-values. An edge must beat every benchmark, so the "
        "reported p-value (spa_pvalue, the same as spa.p_value) is the largest of them "
        "and spa.benchmark names the binding one; this needs no correction for "
        "testing several. spa.p_value_lower and spa.p_value_upper are Hansen's liberal "
        "and conservative versions of that test's p-value, spa.statistic its largest "
        "studentized mean, spa.best the candidate that reached it (0 is the strategy, "
        "k the k-th seed)."
    )


def read_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """``backtest.csv``'s frame indexed by its ``date`` column (as dates)."""
    dates = pd.to_datetime(daily["date"], errors="coerce")
    return daily.drop(columns="date").set_axis(pd.DatetimeIndex(dates), axis=0)


def calendar_years(
    daily: pd.DataFrame, baselines: list[str]
) -> tuple[list[list[Any]], list[str]]:
    """Compounded return per calendar year of the strategy, buy-and-hold and every
    baseline (``daily`` indexed by date), with the periods each year holds (a year of
    fewer is part of one). Returns ``(rows, columns)``."""
    series = {"strategy": "strategy_return", "buy-and-hold": "buy_and_hold_return"} | {
        benchmark_name(name): f"{name}_return" for name in baselines
    }
    grouped = daily.groupby(daily.index.year)
    rows = []
    for year, frame in grouped:
        growth = [float(np.prod(1.0 + frame[column].to_numpy(dtype=float)) - 1.0)
                  for column in series.values()]
        rows.append([str(year), *(f"{100 * value:.1f}%" for value in growth), len(frame)])
    return rows, ["year", *series, "periods"]


def per_asset(
    daily: pd.DataFrame, periods_per_year: int
) -> tuple[list[list[Any]], list[str]]:
    """Per asset (``<asset>_position`` and ``<asset>_return`` columns of ``daily``):
    the mean position traded, the share of periods long, the asset's own annual return
    and Sharpe ratio held long, and what trading it added to the strategy (its annual
    return before costs, the equal-weight share of the portfolio) with its Sharpe
    ratio and annual turnover. Returns ``(rows, columns)``."""
    assets = [asset for asset in position_assets(daily) if f"{asset}_return" in daily]
    rows = []
    root = math.sqrt(periods_per_year)

    def sharpe(values: np.ndarray) -> float:
        spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return float(np.mean(values)) / spread * root if spread > 0 else math.nan

    for asset in assets:
        position = daily[f"{asset}_position"].to_numpy(dtype=float)
        returns = daily[f"{asset}_return"].to_numpy(dtype=float)
        traded = position * returns
        turnover = np.abs(np.diff(position, prepend=0.0)).mean() * periods_per_year
        rows.append([
            asset, f"{position.mean():.3f}", f"{100 * (position > 0).mean():.0f}%",
            f"{100 * returns.mean() * periods_per_year:.1f}%", f"{sharpe(returns):.2f}",
            f"{100 * traded.mean() / len(assets) * periods_per_year:.2f}%",
            f"{sharpe(traded):.2f}", f"{turnover:.1f}",
        ])
    columns = ["asset", "mean position", "periods long", "asset's annual return",
               "asset's Sharpe", "added to the strategy (annual, before costs)",
               "Sharpe of trading it", "turnover per year"]
    return rows, columns


__all__ = ["calendar_years", "per_asset", "read_daily", "spa_note", "verdict_sentences"]
