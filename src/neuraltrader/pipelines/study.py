"""The tutorial's study, wired from a config: data sets × policies × seeds → run directory.

:func:`run_study` does the work (one :func:`~neuraltrader.pipelines.cell.run_cell` per
data set and policy) and returns a :class:`StudyResult` without touching files;
:func:`write_run` writes one into a run directory; :func:`run` does both, staging the
directory so that a failed run leaves nothing that looks complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..core.ensemble import Ensemble
from ..core.registry import policy_names
from ..data.reference import oracle_position
from ..errors import ConfigError
from ..io.config import Config, setting
from ..io.rundir import RunRecord, run_request, staged_run_dir, write_record
from ..io.sections import ModelSection, TrainSection, WindowDataSection
from ..io.tables import format_table, labels_first
from ..io.units import UnitStore
from ..report.plots import plot_history, plot_policy
from .cell import DATASETS, TUTORIAL_EPOCHS, check_cell_memory, run_cell, simulate_dataset

MODELS = ("mlp", "dropout")


@dataclass
class DataConfig(WindowDataSection):
    """Simulated data sets: ``[data]``."""

    datasets: list[str] = setting(factory=lambda: list(DATASETS), choices=DATASETS,
                                  help="simulated data sets to study")
    n_train: int = setting(1000, ge=1, help="N: training series per data set")
    n_valid: int = setting(100, ge=1, help="M: validation series per data set")
    length: int = setting(20, ge=1, help="T: periods per series (T > L)")
    rho: float = setting(0.2, gt=-1, lt=1,
                         help="ρ: persistence of the momentum (AR(1)) data set")

    def check(self) -> None:
        if self.length <= self.lag:
            raise ConfigError(
                f"data.length (T={self.length}) must exceed data.lag (L={self.lag})"
            )
        if self.n_valid < 2:  # refused here, not after training, where the t-test fails
            raise ConfigError(
                f"data.n_valid (M={self.n_valid}) must be at least 2: each seed's p-value "
                f"is a t-test over the validation series"
            )


@dataclass
class ModelConfig(ModelSection):
    """Policies: ``[model]``; ``models`` are registered policy names, each trained and
    reported on every data set."""

    models: list[str] = setting(factory=lambda: list(MODELS), choices=policy_names,
                                help="registered policies to train on every data set")


@dataclass
class TrainConfig(TrainSection):
    """Training: ``[train]``; ``epochs`` unset means the tutorial's, random 500 and
    momentum 250."""

    epochs: int | None = setting(None, ge=1, help="passes over the training data; unset: "
                                 "the tutorial's, 500 on random and 250 on momentum")

    def check(self) -> None:
        super().check()
        if self.objective != "mean" or self.turnover_penalty > 0:
            raise ConfigError(
                f"a simulated study trains on the mean return (its figures are mean returns "
                f"against the oracle's): train.objective must be 'mean' and "
                f"train.turnover_penalty 0; got {self.objective!r}, {self.turnover_penalty}"
            )

    def epochs_for(self, dataset: str) -> int:
        return self.epochs if self.epochs is not None else TUTORIAL_EPOCHS[dataset]


@dataclass
class StudyConfig(Config):
    """The whole study; ``seed`` fixes data, initial weights, batch order and dropout."""

    seed: int = setting(0, ge=0, help="fixes data, initial weights, batch order and "
                        "dropout; replica s uses seed + s")
    data: DataConfig = setting(factory=DataConfig)
    model: ModelConfig = setting(factory=ModelConfig)
    train: TrainConfig = setting(factory=TrainConfig)


@dataclass
class StudyResult:
    """What a study produced, before anything is written.

    Attributes
    ----------
    results
        One dict per (data set, model): the ``metrics.json`` ``results`` entries.
    seeds
        One row per (data set, model, seed): final figures and the p-value.
    history
        Per-epoch history of every replica, with ``dataset``, ``model``, ``seed``.
    models
        The trained ensemble of each ``(dataset, model)``.
    policy_curves
        Per data set: position against the last return, one column per model
        (mean over seeds) and ``oracle``.
    """

    config: StudyConfig
    results: list[dict[str, object]]
    seeds: pd.DataFrame
    history: pd.DataFrame
    models: dict[tuple[str, str], Ensemble]
    policy_curves: dict[str, pd.DataFrame]

    def record(self) -> RunRecord:
        """The run directory's contents: ``metrics.json`` (kind ``study``),
        ``history.csv``, ``seeds.csv``, history and policy PNGs, weights."""
        figures = {
            f"history_{dataset}_{model_name}": plot_history(
                history, title=f"{dataset} data, {model_name} model"
            )
            for (dataset, model_name), history in self.history.groupby(
                ["dataset", "model"], sort=False
            )
        } | {
            f"policy_{dataset}": plot_policy(
                curves, title=f"learned policy vs oracle: {dataset} data",
                seeds=self.config.train.seeds,
            )
            for dataset, curves in self.policy_curves.items()
        }
        return RunRecord(
            "study", self.config, {"results": self.results}, self.history, figures,
            tables={"seeds": self.seeds},
            weights={f"{dataset}_{model}": ensemble
                     for (dataset, model), ensemble in self.models.items()},
        )


def run_study(
    config: StudyConfig, *, progress: bool = True, units: UnitStore | None = None
) -> StudyResult:
    """Train every (data set, policy) pair on its own simulated data, ``train.seeds``
    replicas at once, and measure them on the validation series against buy-and-hold
    and the oracle. With ``units``, finished pairs are kept there and read back on a
    resumed run."""
    config.validate()
    check_cell_memory(config)
    position = config.model.position
    results, seed_rows, histories, models, curves = [], [], [], {}, {}
    for dataset in config.data.datasets:
        data = simulate_dataset(dataset, config)
        grid = _last_return_grid(data.scale, config.data.lag).to(data.valid[0].device)
        curves[dataset] = pd.DataFrame(
            {"oracle": oracle_position(data.process, grid, position).cpu().numpy()},  # type: ignore[arg-type]
            index=pd.Index(grid[:, -1].cpu().numpy(), name="last_return"),
        )
        for model_name in config.model.models:
            cell = run_cell(dataset, data, model_name, config, progress=progress,
                            description=f"{dataset}/{model_name} x{config.train.seeds}",
                            units=units)
            with torch.no_grad():
                curves[dataset][model_name] = cell.ensemble(grid).mean(0).cpu().numpy()
            labels = {"dataset": dataset, "model": model_name}
            histories.append(cell.history.assign(**labels))
            seed_rows.append(cell.figures.assign(**labels))
            models[(dataset, model_name)] = cell.ensemble
            results.append(labels | cell.summary)
    return StudyResult(
        config, results, labels_first(pd.concat(seed_rows, ignore_index=True)),
        labels_first(pd.concat(histories, ignore_index=True)), models, curves,
    )


def _last_return_grid(scale: float, lag: int, points: int = 121) -> torch.Tensor:
    """Windows ``(points, lag)`` that are 0 except the last return, from -3 to +3 scale."""
    grid = torch.zeros(points, lag)
    grid[:, -1] = torch.linspace(-3 * scale, 3 * scale, points)
    return grid


def results_table(results: list[dict[str, object]]) -> str:
    """The printed summary: one row per (data set, model)."""
    columns = {
        "dataset": "dataset", "model": "model", "train_return": "train ret",
        "valid_return": "valid ret", "valid_return_std": "(sd)", "valid_recom": "valid pos",
        "buy_and_hold_valid_return": "buy&hold", "oracle_valid_return": "oracle",
        "oracle_capture": "capture", "p_value": "p-value", "share_significant": "signif",
    }
    table = format_table(pd.DataFrame(results)[list(columns)].rename(columns=columns))
    return "\n".join([table, *collapse_warnings(results)])


def collapse_warnings(results: list[dict[str, object]]) -> list[str]:
    """One line per (data set, model) with collapsed replicas: every validation
    position at a bound of the head, so no gradient flows (a learning rate too high)."""
    return [
        f"warning: {r['dataset']}/{r['model']}: {r['collapsed_share']:.0%} of seeds collapsed "
        f"(every validation position at a bound of the head; try a lower train.lr)"
        for r in results if r.get("collapsed_share")
    ]


def write_run(result: StudyResult, directory: Path) -> None:
    """Write ``config.toml``, ``metrics.json``, ``history.csv``, ``seeds.csv``, weights
    and PNGs."""
    write_record(result.record(), directory)


def run(config: StudyConfig, out: str | Path, *, progress: bool = True) -> StudyResult:
    """Run the study and write its run directory at ``out`` (complete, or not at all)."""
    config.validate()
    check_cell_memory(config)
    with staged_run_dir(out, run_request("study", config)) as staging:
        units = UnitStore.of(staging)
        result = run_study(config, progress=progress, units=units)
        write_run(result, staging)
        units.discard()
    return result


__all__ = [
    "DataConfig", "ModelConfig", "StudyConfig", "StudyResult", "TrainConfig",
    "labels_first", "results_table", "run", "run_study", "write_run",
]
