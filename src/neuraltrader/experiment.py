"""The tutorial's study, wired from a config: data sets × models × seeds → run directory.

:func:`run_study` does the work and returns a :class:`StudyResult` without touching
files; :func:`write_run` writes one into a run directory; :func:`run` does both,
staging the directory so that a failed run leaves nothing that looks complete.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ._checks import POSITION_KINDS, check_choice, check_float, check_int
from ._random import derive_seed, seeded
from .benchmarks import buy_and_hold_position, oracle_position
from .checkpoint import save_policy
from .errors import ConfigError
from .objectives import mean_return
from .policies import DropoutTrader, NeuralTrader
from .report import plot_history, plot_policy
from .rundir import staged_run_dir, write_run_files
from .simulate import AR1, IIDNormal, ReturnProcess
from .train import OPTIMIZERS, fit
from .windows import generate_sequences

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

    def validate(self) -> None:
        if self.epochs is not None:
            check_int("train.epochs", self.epochs, minimum=1)
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
    history
        Per-epoch history of every replica, with ``dataset``, ``model``, ``seed``.
    models
        Trained policies keyed by ``(dataset, model, seed)``.
    policy_curves
        Per data set: position against the last return, one column per model
        (mean over seeds) and ``oracle``.
    """

    config: StudyConfig
    results: list[dict[str, object]]
    history: pd.DataFrame
    models: dict[tuple[str, str, int], nn.Module]
    policy_curves: dict[str, pd.DataFrame]


def make_process(name: str, data: DataConfig) -> ReturnProcess:
    """The return process behind data set ``name``."""
    return IIDNormal() if name == "random" else AR1(rho=data.rho)


def build_policy(name: str, lag: int, model: ModelConfig) -> nn.Module:
    """A fresh policy ``name`` (``mlp`` or ``dropout``), initialised from torch's RNG."""
    if name == "mlp":
        return NeuralTrader(lag, model.hidden, model.position)  # type: ignore[arg-type]
    return DropoutTrader(lag, model.hidden, model.dropout, model.position)  # type: ignore[arg-type]


def _stream(*names: str) -> int:
    return zlib.crc32("/".join(names).encode())


def run_study(config: StudyConfig, *, progress: bool = True) -> StudyResult:
    """Train every (data set, model) pair on its own simulated data, ``train.seeds``
    replicas each (replica s is initialised and shuffled with seed ``config.seed + s``),
    and measure them on the validation series against buy-and-hold and the oracle."""
    config.validate()
    data, train_config = config.data, config.train
    results, histories, models, curves = [], [], {}, {}
    for dataset in data.datasets:
        process = make_process(dataset, data)
        train_returns = process.sample(
            data.n_train, data.length, seed=derive_seed(config.seed, _stream(dataset, "train"))
        )
        valid_returns = process.sample(
            data.n_valid, data.length, seed=derive_seed(config.seed, _stream(dataset, "valid"))
        )
        train = generate_sequences(train_returns, data.lag)
        valid = generate_sequences(valid_returns, data.lag)
        grid = _last_return_grid(float(train_returns.std()), data.lag)
        curves[dataset] = pd.DataFrame(
            {"oracle": oracle_position(process, grid, config.model.position).numpy()},  # type: ignore[arg-type]
            index=pd.Index(grid[:, -1].numpy(), name="last_return"),
        )
        references = {
            "oracle_valid_return": _mean_return(
                oracle_position(process, valid[0], config.model.position), valid[1]  # type: ignore[arg-type]
            ),
            "buy_and_hold_valid_return": _mean_return(buy_and_hold_position(valid[0]), valid[1]),
        }
        epochs = train_config.epochs_for(dataset)
        for model_name in config.model.models:
            per_seed, seconds, grid_positions = [], 0.0, []
            for replica in range(train_config.seeds):
                seed = config.seed + replica
                with seeded(seed):
                    model = build_policy(model_name, data.lag, config.model)
                    started = time.perf_counter()
                    history = fit(
                        model, train, valid,
                        epochs=epochs, lr=train_config.lr, batch_size=train_config.batch_size,
                        shuffle=train_config.shuffle, optimizer=train_config.optimizer,
                        progress=progress, generator=seed,
                        description=f"{dataset}/{model_name} seed {seed}",
                    )
                    seconds += time.perf_counter() - started
                histories.append(history.assign(dataset=dataset, model=model_name, seed=seed))
                per_seed.append(history)
                models[(dataset, model_name, seed)] = model
                with torch.no_grad():
                    grid_positions.append(model.eval()(grid))
            curves[dataset][model_name] = torch.stack(grid_positions).mean(0).numpy()
            results.append(
                {"dataset": dataset, "model": model_name, "seeds": train_config.seeds,
                 "epochs": epochs}
                | summarize_seeds(per_seed, references["oracle_valid_return"])
                | references
                | {"train_seconds": seconds}
            )
    history = pd.concat(histories, ignore_index=True)
    leading = ["dataset", "model", "seed", "epoch"]
    history = history[leading + [c for c in history.columns if c not in leading]]
    return StudyResult(config, results, history, models, curves)


def _last_return_grid(scale: float, lag: int, points: int = 121) -> torch.Tensor:
    """Windows ``(points, lag)`` that are 0 except the last return, from -3 to +3 scale."""
    grid = torch.zeros(points, lag)
    grid[:, -1] = torch.linspace(-3 * scale, 3 * scale, points)
    return grid


def _mean_return(positions: torch.Tensor, targets: torch.Tensor) -> float:
    return float(mean_return(positions, targets))


def summarize_seeds(histories: list[pd.DataFrame], oracle_return: float) -> dict[str, object]:
    """Final-epoch figures averaged over seeds, with ``*_std`` (sample sd; ``None`` for
    one seed). ``best_epoch`` maximises the seed-averaged validation return;
    ``oracle_capture`` is ``valid_return / oracle_valid_return``, ``None`` when the
    oracle earns nothing (iid zero-mean returns, where flat is optimal)."""
    final = pd.DataFrame([history.iloc[-1] for history in histories])
    summary: dict[str, object] = {}
    for column in ("train_return", "train_recom", "valid_return", "valid_recom"):
        summary[column] = float(final[column].mean())
        summary[f"{column}_std"] = _finite_or_none(final[column].std(ddof=1))
    mean_valid = pd.concat(histories).groupby("epoch")["valid_return"].mean()
    summary["best_epoch"] = int(mean_valid.idxmax())
    summary["oracle_capture"] = (
        summary["valid_return"] / oracle_return if oracle_return > 0 else None
    )
    return summary


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def results_table(results: list[dict[str, object]]) -> str:
    """The printed summary: one row per (data set, model)."""
    columns = {
        "dataset": "dataset", "model": "model", "train_return": "train ret",
        "valid_return": "valid ret", "train_recom": "train pos", "valid_recom": "valid pos",
        "buy_and_hold_valid_return": "buy&hold", "oracle_valid_return": "oracle",
        "oracle_capture": "capture",
    }
    frame = pd.DataFrame(results)[list(columns)].rename(columns=columns)
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
    weights = directory / "weights"
    weights.mkdir()
    for (dataset, model_name, seed), model in result.models.items():
        save_policy(model, weights / f"{dataset}_{model_name}_seed{seed}.safetensors")


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
