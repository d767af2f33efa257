"""The tutorial's study, wired from a config: data sets × models × seeds → run directory.

:func:`run_study` does the work and returns a :class:`StudyResult` without touching
files; :func:`write_run` writes one into a run directory; :func:`run` does both,
staging the directory so that a failed run leaves nothing that looks complete.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .._checks import POSITION_KINDS, check_choice, check_float, check_int
from .._random import derive_seed
from ..data.reference import buy_and_hold_position, oracle_position
from ..io.checkpoint import save_policy
from ..core.ensemble import TraderEnsemble
from ..errors import ConfigError
from ..core.objectives import mean_return
from ..core.policies import DropoutTrader, NeuralTrader
from ..report import plot_history, plot_policy
from ..io.rundir import staged_run_dir, write_run_files
from ..data.simulate import AR1, IIDNormal, ReturnProcess
from ..evaluation.stats import SIGNIFICANCE, one_sided_p_value, per_series_gains
from ..core.train import OPTIMIZERS, fit
from ..core.windows import generate_sequences

DATASETS = ("random", "momentum")
MODELS = ("mlp", "dropout")
# The tutorial trains 500 epochs on random data (to show overfitting) and 250 on momentum.
TUTORIAL_EPOCHS = {"random": 500, "momentum": 250}


@dataclass
class DataConfig:
    """Simulated data sets: ``[data]``."""

    datasets: list[str] = field(default_factory=lambda: list(DATASETS))  # random, momentum
    n_train: int = 1000  # N: training series per data set
    n_valid: int = 100  # M: validation series per data set
    length: int = 20  # T: periods per series
    lag: int = 4  # L: window length, L < T
    rho: float = 0.2  # persistence of the momentum (AR(1)) data set, |rho| < 1

    def validate(self) -> None:
        for name in self.datasets:
            check_choice("data.datasets entry", name, DATASETS)
        check_int("data.n_train", self.n_train, minimum=1)
        check_int("data.n_valid", self.n_valid, minimum=1)
        check_int("data.lag", self.lag, minimum=1)
        check_int("data.length", self.length, minimum=1)
        if self.length <= self.lag:
            raise ConfigError(
                f"data.length (T={self.length}) must exceed data.lag (L={self.lag})"
            )
        check_float("data.rho", self.rho, lower=-1, upper=1, lower_open=True, upper_open=True)


@dataclass
class ModelConfig:
    """Policies: ``[model]``."""

    models: list[str] = field(default_factory=lambda: list(MODELS))  # mlp, dropout
    hidden: int = 5  # hidden units H
    dropout: float = 0.5  # dropout rate of the "dropout" model, in [0, 1)
    position: str = "long"  # long ([0, 1]) or long_short ([-1, 1])

    def validate(self) -> None:
        for name in self.models:
            check_choice("model.models entry", name, MODELS)
        check_int("model.hidden", self.hidden, minimum=1)
        check_float("model.dropout", self.dropout, lower=0, upper=1, upper_open=True)
        check_choice("model.position", self.position, POSITION_KINDS)


@dataclass
class TrainConfig:
    """Training: ``[train]``."""

    epochs: int | None = None  # unset: the tutorial's, random 500 and momentum 250
    lr: float = 0.01  # learning rate
    batch_size: int = 1000  # windows per step
    seeds: int = 1  # replicas per (data set, model); figures are means over them
    optimizer: str = "rmsprop"  # rmsprop, adam or sgd
    shuffle: bool = True  # fresh batch order every epoch
    patience: int | None = None  # early stopping: epochs without a better valid return

    def validate(self) -> None:
        if self.epochs is not None:
            check_int("train.epochs", self.epochs, minimum=1)
        if self.patience is not None:
            check_int("train.patience", self.patience, minimum=1)
        check_float("train.lr", self.lr, lower=0, lower_open=True)
        check_int("train.batch_size", self.batch_size, minimum=1)
        check_int("train.seeds", self.seeds, minimum=1)
        check_choice("train.optimizer", self.optimizer, tuple(OPTIMIZERS))

    def epochs_for(self, dataset: str) -> int:
        return self.epochs if self.epochs is not None else TUTORIAL_EPOCHS[dataset]


@dataclass
class StudyConfig:
    """The whole study; ``seed`` fixes data, initial weights, batch order and dropout."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        check_int("seed", self.seed, minimum=0)
        self.data.validate()
        self.model.validate()
        self.train.validate()


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
    models: dict[tuple[str, str], TraderEnsemble]
    policy_curves: dict[str, pd.DataFrame]


def make_process(name: str, data: DataConfig) -> ReturnProcess:
    """The return process behind data set ``name``."""
    return IIDNormal() if name == "random" else AR1(rho=data.rho)


def build_policy(name: str, lag: int, model: ModelConfig) -> NeuralTrader:
    """A policy ``name`` (``mlp`` or ``dropout``), initialised from torch's global RNG."""
    if name == "mlp":
        return NeuralTrader(lag, model.hidden, model.position)  # type: ignore[arg-type]
    return DropoutTrader(lag, model.hidden, model.dropout, model.position)  # type: ignore[arg-type]


def _stream(*names: str) -> int:
    return zlib.crc32("/".join(names).encode())


@dataclass
class SimulatedData:
    """One data set's process and its train/valid windows."""

    process: ReturnProcess
    train: tuple[torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor]
    n_valid: int  # validation series: the independent units of the p-values
    scale: float  # standard deviation of the training returns


def simulate_dataset(name: str, config: StudyConfig) -> SimulatedData:
    """Draw data set ``name``'s training and validation series (seeded by ``config.seed``)."""
    data = config.data
    process = make_process(name, data)
    panels = {
        split: process.sample(
            size, data.length, seed=derive_seed(config.seed, _stream(name, split))
        )
        for split, size in (("train", data.n_train), ("valid", data.n_valid))
    }
    return SimulatedData(
        process,
        generate_sequences(panels["train"], data.lag),
        generate_sequences(panels["valid"], data.lag),
        data.n_valid,
        float(panels["train"].std()),
    )


def reference_returns(data: SimulatedData, position: str) -> dict[str, float]:
    """Validation returns of the oracle and of buy-and-hold on ``data``."""
    valid_x, valid_y = data.valid
    oracle = oracle_position(data.process, valid_x, position)  # type: ignore[arg-type]
    return {
        "oracle_valid_return": float(mean_return(oracle, valid_y)),
        "buy_and_hold_valid_return": float(mean_return(buy_and_hold_position(valid_x), valid_y)),
    }


def train_replicas(
    name: str, data: SimulatedData, config: StudyConfig, *, epochs: int,
    progress: bool = True, description: str | None = None,
) -> tuple[TraderEnsemble, pd.DataFrame, float]:
    """Train ``train.seeds`` replicas of model ``name`` (replica s: seed ``config.seed + s``)
    in one vectorised pass; return the ensemble, its history and the seconds it took."""
    with torch.random.fork_rng(devices=[]):  # the template's own weights are not used
        template = build_policy(name, config.data.lag, config.model)
    ensemble = TraderEnsemble(template, [config.seed + s for s in range(config.train.seeds)])
    train = config.train
    started = time.perf_counter()
    history = fit(
        ensemble, data.train, data.valid, epochs=epochs, lr=train.lr,
        batch_size=train.batch_size, shuffle=train.shuffle, optimizer=train.optimizer,
        patience=train.patience, progress=progress, description=description,
    )
    return ensemble, history, time.perf_counter() - started


def valid_positions(ensemble: TraderEnsemble, data: SimulatedData) -> torch.Tensor:
    """Every replica's positions on the validation windows, ``(E, n_valid * K)``."""
    with torch.no_grad():
        return ensemble.eval()(data.valid[0])


def seed_figures(
    history: pd.DataFrame, positions: torch.Tensor, data: SimulatedData, seeds: list[int],
    *, early_stopping: bool,
) -> pd.DataFrame:
    """One row per seed: the figures of the weights training ended with (the best
    validation epoch under early stopping, else the last), the epoch of the best
    validation return, and the one-sided p-value of the validation return, from
    per-series means so that overlapping windows are not counted as independent.

    ``positions`` are the replicas' validation positions (:func:`valid_positions`)."""
    by_seed = history.groupby("seed", sort=False)
    best_rows = history.loc[by_seed["valid_return"].idxmax()].set_index("seed")
    final = best_rows if early_stopping else by_seed.tail(1).set_index("seed")
    gains = per_series_gains(positions, data.valid[1], data.n_valid)  # (E, M)
    p_values = one_sided_p_value(gains)
    figures = final[["train_return", "train_recom", "valid_return", "valid_recom"]].copy()
    figures["generalization_gap"] = figures["train_return"] - figures["valid_return"]
    figures["best_epoch"] = best_rows["epoch"]
    figures["p_value"] = pd.Series(p_values, index=seeds)
    # standard error of the validation return: its spread if the policy had no edge
    figures["valid_return_se"] = pd.Series(
        (gains.std(-1) / math.sqrt(gains.shape[-1])).numpy(), index=seeds
    )
    return figures.reset_index()


def summarize_seeds(
    figures: pd.DataFrame, history: pd.DataFrame, oracle_return: float
) -> dict[str, object]:
    """Figures averaged over seeds, each with ``*_std`` (sample sd; ``None`` for one
    seed); ``best_epoch`` maximises the seed-averaged validation return; ``p_value`` is
    the median over seeds and ``share_significant`` the share of seeds with p < 0.05;
    ``oracle_capture`` is ``valid_return / oracle_valid_return``, ``None`` when the
    oracle earns nothing (iid zero-mean returns, where flat is optimal)."""
    summary: dict[str, object] = {}
    for column in ("train_return", "train_recom", "valid_return", "valid_recom",
                   "generalization_gap"):
        summary[column] = float(figures[column].mean())
        summary[f"{column}_std"] = _finite_or_none(figures[column].std(ddof=1))
    summary["best_epoch"] = int(history.groupby("epoch")["valid_return"].mean().idxmax())
    summary["p_value"] = float(figures["p_value"].median())
    summary["share_significant"] = float((figures["p_value"] < SIGNIFICANCE).mean())
    summary["oracle_capture"] = (
        summary["valid_return"] / oracle_return if oracle_return > 0 else None
    )
    return summary


def run_study(config: StudyConfig, *, progress: bool = True) -> StudyResult:
    """Train every (data set, model) pair on its own simulated data, ``train.seeds``
    replicas at once, and measure them on the validation series against buy-and-hold
    and the oracle."""
    config.validate()
    position = config.model.position
    results, seed_rows, histories, models, curves = [], [], [], {}, {}
    for dataset in config.data.datasets:
        data = simulate_dataset(dataset, config)
        grid = _last_return_grid(data.scale, config.data.lag)
        curves[dataset] = pd.DataFrame(
            {"oracle": oracle_position(data.process, grid, position).numpy()},  # type: ignore[arg-type]
            index=pd.Index(grid[:, -1].numpy(), name="last_return"),
        )
        references = reference_returns(data, position)
        epochs = config.train.epochs_for(dataset)
        for model_name in config.model.models:
            ensemble, history, seconds = train_replicas(
                model_name, data, config, epochs=epochs, progress=progress,
                description=f"{dataset}/{model_name} x{config.train.seeds}",
            )
            figures = seed_figures(history, valid_positions(ensemble, data), data,
                                   ensemble.seeds, early_stopping=config.train.patience is not None)
            with torch.no_grad():
                curves[dataset][model_name] = ensemble(grid).mean(0).numpy()
            labels = {"dataset": dataset, "model": model_name}
            histories.append(history.assign(**labels))
            seed_rows.append(figures.assign(**labels))
            models[(dataset, model_name)] = ensemble
            results.append(
                labels | {"seeds": config.train.seeds, "epochs": epochs}
                | summarize_seeds(figures, history, references["oracle_valid_return"])
                | references | {"train_seconds": seconds}
            )
    return StudyResult(
        config, results, labels_first(pd.concat(seed_rows, ignore_index=True)),
        labels_first(pd.concat(histories, ignore_index=True)), models, curves,
    )


def labels_first(
    frame: pd.DataFrame, labels: Sequence[str] = ("dataset", "model", "seed", "epoch")
) -> pd.DataFrame:
    """``frame`` with its label columns (those of ``labels`` it has) moved to the front."""
    leading = [c for c in labels if c in frame.columns]
    return frame[leading + [c for c in frame.columns if c not in leading]]


def _last_return_grid(scale: float, lag: int, points: int = 121) -> torch.Tensor:
    """Windows ``(points, lag)`` that are 0 except the last return, from -3 to +3 scale."""
    grid = torch.zeros(points, lag)
    grid[:, -1] = torch.linspace(-3 * scale, 3 * scale, points)
    return grid


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def results_table(results: list[dict[str, object]]) -> str:
    """The printed summary: one row per (data set, model)."""
    columns = {
        "dataset": "dataset", "model": "model", "train_return": "train ret",
        "valid_return": "valid ret", "valid_return_std": "(sd)", "valid_recom": "valid pos",
        "buy_and_hold_valid_return": "buy&hold", "oracle_valid_return": "oracle",
        "oracle_capture": "capture", "p_value": "p-value", "share_significant": "signif",
    }
    return format_table(pd.DataFrame(results)[list(columns)].rename(columns=columns))


def format_table(frame: pd.DataFrame) -> str:
    """Text table with 4 decimals; missing figures (``None``, NaN) print as ``n/a``."""
    frame = frame.copy()
    for column in frame.columns:  # a figure column that is all None stays object dtype
        if frame[column].dtype == object and not frame[column].map(type).eq(str).any():
            frame[column] = frame[column].astype(float)
    return frame.to_string(index=False, float_format=lambda value: f"{value:.4f}", na_rep="n/a")


def write_run(result: StudyResult, directory: Path) -> None:
    """Write ``config.toml``, ``metrics.json``, ``history.csv``, weights and PNGs."""
    figures = {
        f"history_{dataset}_{model_name}": plot_history(
            history, title=f"{dataset} data, {model_name} model"
        )
        for (dataset, model_name), history in result.history.groupby(
            ["dataset", "model"], sort=False
        )
    } | {
        f"policy_{dataset}": plot_policy(curves, title=f"learned policy vs oracle: {dataset} data")
        for dataset, curves in result.policy_curves.items()
    }
    write_run_files(directory, result.config, {"results": result.results}, result.history, figures)
    result.seeds.to_csv(directory / "seeds.csv", index=False)
    weights = directory / "weights"
    weights.mkdir()
    for (dataset, model_name), ensemble in result.models.items():
        save_policy(ensemble, weights / f"{dataset}_{model_name}.safetensors")


def run(config: StudyConfig, out: str | Path, *, progress: bool = True) -> StudyResult:
    """Run the study and write its run directory at ``out`` (complete, or not at all)."""
    config.validate()
    with staged_run_dir(out) as staging:
        result = run_study(config, progress=progress)
        write_run(result, staging)
    return result


__all__ = [
    "DataConfig", "ModelConfig", "StudyConfig", "StudyResult", "TrainConfig",
    "build_policy", "make_process", "results_table", "run", "run_study", "write_run",
]
