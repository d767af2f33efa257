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

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.registry import policy_names
from ..data.market import MarketData
from ..errors import ConfigError
from ..evaluation.verdicts import judge
from ..io.config import parse_override, setting, to_dict, with_overrides
from ..io.rundir import RunRecord, run_request, staged_run_dir, write_failure, write_record
from ..io.sections import EngineSection
from ..io.tables import format_table, labels_first
from ..io.units import TrainingStateFile, Unit, UnitStore
from .backtest import (
    BacktestConfig,
    load_market_data,
    run_backtest,
    training_key,
    walk_forward,
)
from .cell import DATASETS, check_cell_memory, run_cell, simulate_dataset
from .engines import Engine, LocalEngine, UnitTask, make_engine, run_units
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
    engine: EngineSection = setting(factory=EngineSection)


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


def study_cells(
    labels: dict, config: Any, dataset: str, models: list[str],
    states: list[TrainingStateFile | None],
) -> list[CellOutcome]:
    """One sweep task: the cells of every policy in ``models`` on data set ``dataset``,
    simulated once (each cell one ensemble, its training state kept in ``states``)."""
    data = simulate_dataset(dataset, config)
    outcomes = []
    for model, state in zip(models, states, strict=True):
        cell = run_cell(dataset, data, model, config, progress=False, state=state)
        outcomes.append(CellOutcome(labels | {"dataset": dataset, "model": model},
                                    cell.summary, cell.figures, cell.history,
                                    cell.gains.cpu().numpy(), cell.benchmark.cpu().numpy()))
    return outcomes


def backtest_cells(cells: list[tuple[dict, Any]], data: MarketData) -> list[CellOutcome]:
    """One sweep task: grid points whose configs differ only in what a backtest's
    evaluation reads (costs, baselines), so they share one trained walk-forward; each
    cell's out-of-sample daily returns against buy-and-hold's."""
    trained = walk_forward(cells[0][1], data, progress=False)
    outcomes = []
    for labels, config in cells:
        result = run_backtest(config, data, trained=trained)
        metrics = result.metrics
        summary = ({"seeds": config.train.seeds, "epochs": config.train.epochs}
                   | metrics["strategy"]
                   | {"buy_and_hold_sharpe": metrics["buy_and_hold"]["sharpe"],
                      "spa_pvalue": metrics["spa_pvalue"],
                      "train_seconds": metrics["train_seconds"]})
        seeds = pd.DataFrame({"seed": [config.seed + s for s in range(config.train.seeds)],
                              "sharpe": metrics["seed_sharpes"]})
        outcomes.append(CellOutcome(
            labels | {"dataset": metrics["data"]["name"], "model": config.model.kind},
            summary, seeds, result.history, result.daily["strategy_return"].to_numpy(),
            result.daily["buy_and_hold_return"].to_numpy(),
        ))
    return outcomes


def study_tasks(
    cells: list[tuple[dict, Any]], engine: Engine, units: UnitStore | None = None
) -> list[UnitTask]:
    """A simulated sweep's tasks, one per (grid point, data set), covering its policies;
    their units are named ``cell-N`` in grid order. A unit's training state is kept in
    ``units`` where the engine's workers see this process's files."""
    tasks: list[UnitTask] = []
    for labels, config in cells:
        for dataset in config.data.datasets:
            models = config.model.models
            first = sum(len(task.names) for task in tasks)
            names = tuple(f"cell-{first + k}" for k in range(len(models)))
            states = [units.training_state(name, config.train.checkpoint_every)
                      if units is not None and engine.in_process else None
                      for name in names]
            tasks.append(UnitTask(names, study_cells,
                                  (labels, config, dataset, models, states)))
    return tasks


def backtest_tasks(cells: list[tuple[dict, Any]], engine: Engine) -> list[UnitTask]:
    """A sweep of backtests' tasks, one per trained walk-forward, covering the grid
    points that share it (units ``cell-N``, N the grid point's index); each data set is
    loaded once and sent to the engine once."""
    groups: dict[str, list[tuple[str, dict, Any]]] = {}
    for index, (labels, config) in enumerate(cells):
        groups.setdefault(training_key(config), []).append((f"cell-{index}", labels, config))
    shared: dict[str, Any] = {}
    tasks = []
    for group in groups.values():
        data = group[0][2].data
        key = repr(to_dict(data))
        if key not in shared:
            shared[key] = engine.share(load_market_data(data))
        tasks.append(UnitTask(tuple(name for name, _, _ in group), backtest_cells,
                              ([(labels, config) for _, labels, config in group], shared[key])))
    return tasks


def run_sweep(
    base: Any, grid: dict[str, list[str]], *, progress: bool = True, reps: int = 1000,
    pipeline: str = "study", units: UnitStore | None = None, engine: Engine | None = None,
) -> SweepResult:
    """Run every cell of ``grid`` through ``pipeline`` (``study``: each (data set,
    policy) one ensemble of ``train.seeds`` replicas; ``backtest``: one walk-forward
    backtest) on ``engine`` (default: this process) and judge the cells together. With
    ``units``, each finished cell is kept there as it arrives and a cell already there
    is read back, not run again."""
    if pipeline not in PIPELINES:
        raise ConfigError(f"sweep pipeline must be one of {', '.join(PIPELINES)}; got {pipeline!r}")
    cells = grid_cells(base, grid)
    engine = engine if engine is not None else LocalEngine()
    outcomes = list(run_units(
        engine, study_tasks(cells, engine, units) if pipeline == "study"
        else backtest_tasks(cells, engine), store=units,
        encode=CellOutcome.to_unit, decode=CellOutcome.from_unit, progress=progress,
        desc=f"sweep {pipeline}",
    ).values())
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
    """Run a sweep on the engine ``base.engine`` names and write its run directory at
    ``out`` (complete, or not at all: failed cells leave it incomplete, their names in
    its ``metrics.json``, the finished cells kept for ``neuraltrader resume``)."""
    cells = grid_cells(base, grid)  # every cell's config is checked before any work
    if pipeline == "study":
        for _, config in cells:
            check_cell_memory(config)
    if pipeline == "backtest":
        load_market_data(base.data)  # a bad file fails here, before any directory exists
    request = run_request("sweep", base, pipeline=pipeline, grid=grid)
    with make_engine(base.engine, base.train) as engine, \
            staged_run_dir(out, request) as staging:
        units = UnitStore.of(staging)
        with write_failure(staging, request):
            result = run_sweep(base, grid, progress=progress, pipeline=pipeline, units=units,
                               engine=engine)
        write_sweep(result, staging)
        units.discard()
    return result


# the config class of each pipeline's cells, by pipeline name
SWEEP_CONFIGS: dict[str, type] = {"study": SweepConfig, "backtest": BacktestConfig}

__all__ = [
    "PIPELINES", "SWEEP_CONFIGS", "SweepConfig", "SweepResult", "parse_grid", "run_sweep", "sweep",
]
