"""Sweeps: a grid of study configs, each cell one vectorised ensemble, judged together.

Every (cell, data set, model) is a strategy: its return in each validation period is
that of the seeds' average position. Picking the best of many strategies on the same
data flatters it, so the verdicts account for how many were tried: the deflated Sharpe
ratio of the best, the probability of backtest overfitting across all (CSCV), and the
studentized SPA test of all against buy-and-hold.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..io.config import parse_override, with_overrides
from ..errors import ConfigError
from .study import (
    DataConfig,
    ModelConfig,
    StudyConfig,
    format_table,
    labels_first,
    reference_returns,
    seed_figures,
    simulate_dataset,
    summarize_seeds,
    train_replicas,
    valid_positions,
)
from ..io.rundir import staged_run_dir, write_run_files
from ..evaluation.stats import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    spa_test,
)


@dataclass
class SweepDataConfig(DataConfig):
    """As the study's ``[data]``, but one data set per cell by default: momentum
    (sweep ``data.rho``; rho = 0 is iid)."""

    datasets: list[str] = field(default_factory=lambda: ["momentum"])


@dataclass
class SweepModelConfig(ModelConfig):
    """As the study's ``[model]``, but one model per cell by default: the MLP with
    dropout ``model.dropout`` (0 is the plain NeuralTrader)."""

    models: list[str] = field(default_factory=lambda: ["dropout"])


@dataclass
class SweepConfig(StudyConfig):
    """The base config every cell of a sweep starts from."""

    data: SweepDataConfig = field(default_factory=SweepDataConfig)
    model: SweepModelConfig = field(default_factory=SweepModelConfig)


@dataclass
class SweepResult:
    """A sweep's figures: ``seeds`` (one row per cell and seed, ``sweep.csv``),
    ``summary`` (one row per cell, ``summary.csv``) and the ``verdicts``."""

    config: SweepConfig
    grid: dict[str, list[Any]]
    seeds: pd.DataFrame
    summary: pd.DataFrame
    history: pd.DataFrame
    verdicts: dict[str, Any]


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """``["model.hidden=2,5,20", ...]`` → ``{"model.hidden": ["2", "5", "20"], ...}``."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        items = [item.strip() for item in values.split(",") if item.strip()]
        if not sep or not key.strip() or not items:
            raise ConfigError(f"--grid expects section.key=value1,value2,..., got {spec!r}")
        if key.strip() in grid:
            raise ConfigError(f"--grid names {key.strip()!r} twice")
        grid[key.strip()] = items
    if not grid:
        raise ConfigError("a sweep needs at least one --grid section.key=value1,value2,...")
    return grid


def grid_cells(base: SweepConfig, grid: dict[str, list[str]]) -> list[tuple[dict, SweepConfig]]:
    """Every combination of grid values as ``(labels, config)``, all validated first."""
    cells = []
    for values in itertools.product(*grid.values()):
        overrides = [f"{key}={value}" for key, value in zip(grid, values, strict=True)]
        labels = {".".join(keys): value for keys, value in (parse_override(o) for o in overrides)}
        cells.append((labels, with_overrides(base, overrides)))
    return cells


def run_sweep(
    base: SweepConfig, grid: dict[str, list[str]], *, progress: bool = True,
    reps: int = 1000,
) -> SweepResult:
    """Train every cell of ``grid`` (each (data set, model) one ensemble of
    ``train.seeds`` replicas) and judge the cells together."""
    cells = grid_cells(base, grid)
    strategies = [(labels, config, dataset, model)
                  for labels, config in cells
                  for dataset in config.data.datasets for model in config.model.models]
    seed_rows, summaries, histories, gains, benchmark = [], [], [], [], []
    for labels, config, dataset, model in tqdm(
        strategies, desc="sweep", unit="cell", disable=not progress
    ):
        data = simulate_dataset(dataset, config)
        epochs = config.train.epochs_for(dataset)
        ensemble, history, seconds = train_replicas(
            model, data, config, epochs=epochs, progress=False
        )
        positions = valid_positions(ensemble, data)
        figures = seed_figures(history, positions, data, ensemble.seeds,
                               early_stopping=config.train.patience is not None)
        valid_y = data.valid[1]
        average_position = positions.mean(0)
        references = reference_returns(data, config.model.position)
        strategy = labels | {"dataset": dataset, "model": model}
        gains.append((average_position * valid_y).numpy())
        benchmark.append(valid_y.numpy())
        summaries.append(
            strategy | {"seeds": config.train.seeds, "epochs": epochs}
            | summarize_seeds(figures, history, references["oracle_valid_return"])
            | {"sharpe": float(sharpe_ratio(gains[-1]))} | references
            | {"train_seconds": seconds}
        )
        seed_rows.append(figures.assign(**strategy))
        histories.append(history.assign(**strategy))
    leading = [*grid, "dataset", "model", "seed", "epoch"]
    summary = pd.DataFrame(summaries)
    return SweepResult(
        config=base,
        grid={key: [parse_override(f"{key}={value}")[1] for value in values]
              for key, values in grid.items()},
        seeds=labels_first(pd.concat(seed_rows, ignore_index=True), leading),
        summary=summary,
        history=labels_first(pd.concat(histories, ignore_index=True), leading),
        verdicts=judge(gains, benchmark, summary[leading[:-2]], reps=reps, seed=base.seed),
    )


def judge(
    gains: list[np.ndarray], benchmark: list[np.ndarray], labels: pd.DataFrame,
    *, reps: int = 1000, seed: int = 0,
) -> dict[str, Any]:
    """Verdicts over all strategies from their per-period validation returns.

    ``gains[i]`` and ``benchmark[i]`` are strategy i's and buy-and-hold's returns on
    the same validation windows; all strategies must have the same number of them.
    """
    lengths = {len(g) for g in gains}
    if len(lengths) > 1:
        return {"note": "cells differ in validation size (data.n_valid, length or lag "
                        "in the grid): no joint verdict is possible"}
    returns = np.stack(gains, axis=1)  # (T, N)
    differentials = returns - np.stack(benchmark, axis=1)
    sharpes = sharpe_ratio(returns)
    best = int(np.argmax(sharpes))
    verdicts: dict[str, Any] = {
        "strategies": returns.shape[1],
        "periods": returns.shape[0],
        "best": labels.iloc[best].to_dict(),
        "deflated_sharpe": deflated_sharpe_ratio(returns[:, best], sharpes)
        | {"note": "a score that accounts for the number of cells tried, "
                   "not a calibrated p-value"},
        "spa": spa_test(differentials, reps=reps, seed=seed)
        | {"benchmark": "buy_and_hold"},
    }
    verdicts["spa"]["best"] = labels.iloc[verdicts["spa"]["best"]].to_dict()
    if returns.shape[1] >= 2:
        blocks = min(16, (returns.shape[0] // 2) // 2 * 2)
        pbo = probability_of_backtest_overfitting(returns, blocks=blocks)
        verdicts["pbo"] = pbo
    return verdicts


def verdict_lines(verdicts: dict[str, Any]) -> list[str]:
    """The verdicts in plain words, one line each."""
    if "note" in verdicts:
        return [verdicts["note"]]
    best = ", ".join(f"{key}={value}" for key, value in verdicts["best"].items())
    dsr = verdicts["deflated_sharpe"]
    spa = verdicts["spa"]
    lines = [
        f"best of {verdicts['strategies']} cells by validation Sharpe: {best}",
        f"deflated Sharpe ratio {dsr['deflated_sharpe_ratio']:.3f} (Sharpe {dsr['sharpe']:.4f} "
        f"per period vs {dsr['expected_max_sharpe']:.4f} expected of the best of "
        f"{dsr['trials']} with no skill; a score, not a p-value)",
        f"SPA test against buy-and-hold: p = {spa['p_value']:.3f} "
        f"(bounds {spa['p_value_lower']:.3f} to {spa['p_value_upper']:.3f}, "
        f"studentized, {spa['reps']} stationary-bootstrap draws)",
    ]
    if "pbo" in verdicts:
        pbo = verdicts["pbo"]
        lines.append(
            f"probability of backtest overfitting {pbo['pbo']:.3f} over {pbo['splits']} "
            f"CSCV splits (median logit {pbo['logit_quantiles']['50%']:.2f}; "
            f"degradation slope {pbo['degradation_slope']:.2f})"
        )
    return lines


def summary_table(summary: pd.DataFrame, grid: dict[str, Any]) -> str:
    """The printed summary: one row per cell."""
    columns = [*grid, "valid_return", "valid_return_std", "sharpe", "p_value",
               "share_significant", "oracle_capture"]
    return format_table(summary[columns])


def write_sweep(result: SweepResult, directory: Path) -> None:
    """``config.toml``, ``metrics.json`` (results and verdicts), ``history.csv``,
    ``sweep.csv`` (per cell and seed) and ``summary.csv`` (per cell)."""
    payload = {"grid": result.grid, "results": result.summary.to_dict("records"),
               "verdicts": result.verdicts}
    write_run_files(directory, result.config, payload, result.history, {})
    result.seeds.to_csv(directory / "sweep.csv", index=False)
    result.summary.to_csv(directory / "summary.csv", index=False)


def sweep(
    base: SweepConfig, grid: dict[str, list[str]], out: str | Path, *, progress: bool = True
) -> SweepResult:
    """Run a sweep and write its run directory at ``out`` (complete, or not at all)."""
    grid_cells(base, grid)  # every cell's config is checked before any work
    with staged_run_dir(out) as staging:
        result = run_sweep(base, grid, progress=progress)
        write_sweep(result, staging)
    return result


__all__ = ["SweepConfig", "SweepResult", "parse_grid", "run_sweep", "sweep", "verdict_lines"]
