"""Sweeps: a grid of configs of any pipeline, every cell run, all judged together.

``neuraltrader sweep`` (pipeline ``study``) runs one simulated cell per (grid point,
data set, policy), each one vectorised ensemble; ``neuraltrader sweep backtest`` runs
one walk-forward backtest per grid point. Every cell is a strategy with a per-period
return series on the same periods (validation windows; out-of-sample days). Picking
the best of many strategies on the same data flatters it, so the verdicts
(:func:`~neuraltrader.evaluation.verdicts.judge`) account for how many were tried:
the deflated Sharpe ratio of the best, the probability of backtest overfitting across
all (CSCV), and the studentized SPA test of all against buy-and-hold.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.registry import policy_names
from ..errors import ConfigError
from ..evaluation.verdicts import judge
from ..io.config import parse_override, setting, to_dict, with_overrides
from ..io.rundir import RunRecord, run_request, staged_run_dir, write_record
from ..io.tables import format_table, labels_first
from ..io.units import Unit, UnitStore
from .backtest import (
    BacktestConfig,
    WalkForward,
    load_market_data,
    run_backtest,
    training_key,
    walk_forward,
)
from .cell import DATASETS, check_cell_memory, run_cell, simulate_dataset
from .study import DataConfig, ModelConfig, StudyConfig

PIPELINES = ("study", "backtest")


@dataclass
class SweepDataConfig(DataConfig):
    """As the study's ``[data]``, but one data set per cell by default: momentum
    (sweep ``data.rho``; rho = 0 is iid)."""

    datasets: list[str] = setting(factory=lambda: ["momentum"], choices=DATASETS)


@dataclass
class SweepModelConfig(ModelConfig):
    """As the study's ``[model]``, but one model per cell by default: the MLP with
    dropout ``model.dropout`` (0 is the plain NeuralTrader)."""

    models: list[str] = setting(factory=lambda: ["dropout"], choices=policy_names)


@dataclass
class SweepConfig(StudyConfig):
    """The base config every cell of a sweep starts from."""

    data: SweepDataConfig = setting(factory=SweepDataConfig)
    model: SweepModelConfig = setting(factory=SweepModelConfig)


@dataclass
class SweepResult:
    """A sweep's figures: ``seeds`` (one row per cell and seed, ``sweep.csv``),
    ``summary`` (one row per cell, ``summary.csv``) and the ``verdicts``."""

    config: Any
    grid: dict[str, list[Any]]
    seeds: pd.DataFrame
    summary: pd.DataFrame
    history: pd.DataFrame
    verdicts: dict[str, Any]
    pipeline: str = "study"

    def record(self) -> RunRecord:
        """``metrics.json`` (kind ``sweep``: grid, results, verdicts), ``history.csv``,
        ``sweep.csv`` and ``summary.csv``."""
        payload = {"pipeline": self.pipeline, "grid": self.grid,
                   "results": self.summary.to_dict("records"), "verdicts": self.verdicts}
        return RunRecord("sweep", self.config, payload, self.history,
                         tables={"sweep": self.seeds, "summary": self.summary})


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


def grid_cells(base: Any, grid: dict[str, list[str]]) -> list[tuple[dict, Any]]:
    """Every combination of grid values as ``(labels, config)``, all validated first."""
    cells = []
    for values in itertools.product(*grid.values()):
        overrides = [f"{key}={value}" for key, value in zip(grid, values, strict=True)]
        labels = {".".join(keys): value for keys, value in (parse_override(o) for o in overrides)}
        cells.append((labels, with_overrides(base, overrides)))
    return cells


# a sweep cell's work: given where finished work is kept and the cell's name there
Job = Callable[["UnitStore | None", str], "CellOutcome"]


@dataclass
class CellOutcome:
    """What one sweep cell contributes: its ``strategy`` labels, its ``summary`` row,
    one row per seed, its history, and its per-period returns and buy-and-hold's."""

    strategy: dict[str, Any]
    summary: dict[str, Any]
    seeds: pd.DataFrame
    history: pd.DataFrame
    gains: np.ndarray
    benchmark: np.ndarray

    def to_unit(self) -> Unit:
        return Unit(
            tensors={"gains": torch.from_numpy(self.gains.copy()),
                     "benchmark": torch.from_numpy(self.benchmark.copy())},
            frames={"seeds": self.seeds, "history": self.history},
            payload={"strategy": self.strategy, "summary": self.summary},
        )

    @classmethod
    def from_unit(cls, unit: Unit) -> CellOutcome:
        return cls(unit.payload["strategy"], unit.payload["summary"], unit.frames["seeds"],
                   unit.frames["history"], unit.tensors["gains"].numpy(),
                   unit.tensors["benchmark"].numpy())


def _study_jobs(cells: list[tuple[dict, Any]]) -> list[Job]:
    """One job per (cell, data set, policy) of a simulated sweep. The policies of one
    cell and data set run one after another on data simulated once."""
    simulated: dict[tuple[int, str], Any] = {}  # the last (cell, data set) only

    def job(labels: dict, config: Any, dataset: str, model: str,
            units: UnitStore | None, name: str) -> CellOutcome:
        state = (units.training_state(name, config.train.checkpoint_every)
                 if units is not None else None)
        key = (id(config), dataset)
        if key not in simulated:
            simulated.clear()
            simulated[key] = simulate_dataset(dataset, config)
        cell = run_cell(dataset, simulated[key], model, config, progress=False, state=state)
        return CellOutcome(labels | {"dataset": dataset, "model": model}, cell.summary,
                           cell.figures, cell.history, cell.gains.numpy(),
                           cell.benchmark.numpy())

    return [functools.partial(job, labels, config, dataset, model)
            for labels, config in cells
            for dataset in config.data.datasets for model in config.model.models]


def _backtest_jobs(cells: list[tuple[dict, Any]]) -> list[Job]:
    """One job per grid point of a sweep of backtests: its out-of-sample daily returns
    against buy-and-hold's. Each data set is loaded once, and cells that differ only in
    costs share one trained walk-forward (kept per cell, not per block: a killed sweep
    of backtests retrains an unfinished cell from its start)."""
    loaded: dict[str, Any] = {}
    trained: dict[str, WalkForward] = {}

    def job(labels: dict, config: Any, units: UnitStore | None, name: str) -> CellOutcome:
        data_key, train_key = repr(to_dict(config.data)), training_key(config)
        if data_key not in loaded:
            loaded[data_key] = load_market_data(config.data)
        if train_key not in trained:
            trained[train_key] = walk_forward(config, loaded[data_key], progress=False)
        result = run_backtest(config, loaded[data_key], trained=trained[train_key])
        metrics = result.metrics
        summary = ({"seeds": config.train.seeds, "epochs": config.train.epochs}
                   | metrics["strategy"]
                   | {"buy_and_hold_sharpe": metrics["buy_and_hold"]["sharpe"],
                      "spa_pvalue": metrics["spa_pvalue"],
                      "train_seconds": metrics["train_seconds"]})
        seeds = pd.DataFrame({"seed": [config.seed + s for s in range(config.train.seeds)],
                              "sharpe": metrics["seed_sharpes"]})
        return CellOutcome(
            labels | {"dataset": metrics["data"]["name"], "model": config.model.kind},
            summary, seeds, result.history, result.daily["strategy_return"].to_numpy(),
            result.daily["buy_and_hold_return"].to_numpy(),
        )

    return [functools.partial(job, labels, config) for labels, config in cells]


def run_sweep(
    base: Any, grid: dict[str, list[str]], *, progress: bool = True, reps: int = 1000,
    pipeline: str = "study", units: UnitStore | None = None,
) -> SweepResult:
    """Run every cell of ``grid`` through ``pipeline`` (``study``: each (data set,
    policy) one ensemble of ``train.seeds`` replicas; ``backtest``: one walk-forward
    backtest) and judge the cells together. With ``units``, each finished cell is kept
    there and a cell already there is read back, not run again."""
    if pipeline not in PIPELINES:
        raise ConfigError(f"sweep pipeline must be one of {', '.join(PIPELINES)}; got {pipeline!r}")
    cells = grid_cells(base, grid)
    jobs = (_study_jobs if pipeline == "study" else _backtest_jobs)(cells)
    outcomes = []
    for index, job in enumerate(tqdm(jobs, desc=f"sweep {pipeline}", unit="cell",
                                     disable=not progress)):
        name = f"cell-{index}"
        if units is not None and name in units:
            outcomes.append(CellOutcome.from_unit(units.load(name)))
            continue
        outcomes.append(job(units, name))
        if units is not None:
            units.save(name, outcomes[-1].to_unit())
    leading = [*grid, "dataset", "model", "block", "seed", "epoch"]
    summary = pd.DataFrame([o.strategy | o.summary for o in outcomes])
    return SweepResult(
        config=base,
        grid={key: [parse_override(f"{key}={value}")[1] for value in values]
              for key, values in grid.items()},
        seeds=labels_first(pd.concat([o.seeds.assign(**o.strategy) for o in outcomes],
                                     ignore_index=True), leading),
        summary=summary,
        history=labels_first(pd.concat([o.history.assign(**o.strategy) for o in outcomes],
                                       ignore_index=True), leading),
        verdicts=judge([o.gains for o in outcomes], [o.benchmark for o in outcomes],
                       summary[[*grid, "dataset", "model"]], reps=reps, seed=base.seed,
                       risk_matched=pipeline == "backtest",
                       sample="out-of-sample" if pipeline == "backtest" else "validation"),
        pipeline=pipeline,
    )


def summary_table(summary: pd.DataFrame, grid: dict[str, Any]) -> str:
    """The printed summary: one row per cell."""
    figures = (["valid_return", "valid_return_std", "sharpe", "p_value", "share_significant",
                "oracle_capture"] if "valid_return" in summary
               else ["sharpe", "annual_return", "annual_volatility", "max_drawdown",
                     "turnover", "spa_pvalue"])
    labels = [key for key in ("dataset", "model") if summary[key].nunique() > 1]
    table = format_table(summary[[*grid, *labels, *figures]])
    collapsed = summary.get("collapsed_share", pd.Series(0.0, index=summary.index))
    warnings = [
        f"warning: cell {', '.join(f'{key}={row[key]}' for key in [*grid, *labels])}: "
        f"{share:.0%} of seeds collapsed (every validation position at a bound of the head)"
        for (_, row), share in zip(summary.iterrows(), collapsed, strict=True) if share > 0
    ]
    return "\n".join([table, *warnings])


def write_sweep(result: SweepResult, directory: Path) -> None:
    """``config.toml``, ``metrics.json`` (results and verdicts), ``history.csv``,
    ``sweep.csv`` (per cell and seed) and ``summary.csv`` (per cell)."""
    write_record(result.record(), directory)


def sweep(
    base: Any, grid: dict[str, list[str]], out: str | Path, *, progress: bool = True,
    pipeline: str = "study",
) -> SweepResult:
    """Run a sweep and write its run directory at ``out`` (complete, or not at all)."""
    cells = grid_cells(base, grid)  # every cell's config is checked before any work
    if pipeline == "study":
        for _, config in cells:
            check_cell_memory(config)
    if pipeline == "backtest":
        load_market_data(base.data)  # a bad file fails here, before any directory exists
    request = run_request("sweep", base, pipeline=pipeline, grid=grid)
    with staged_run_dir(out, request) as staging:
        units = UnitStore.of(staging)
        result = run_sweep(base, grid, progress=progress, pipeline=pipeline, units=units)
        write_sweep(result, staging)
        units.discard()
    return result


# the config class of each pipeline's cells, by pipeline name
SWEEP_CONFIGS: dict[str, type] = {"study": SweepConfig, "backtest": BacktestConfig}

__all__ = [
    "PIPELINES", "SWEEP_CONFIGS", "SweepConfig", "SweepResult", "parse_grid", "run_sweep", "sweep",
]
