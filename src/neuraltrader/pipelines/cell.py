"""One cell of a simulated study: simulate a data set, train one policy's replicas as a
single ensemble, and measure them against buy-and-hold and the oracle.

The study runs one cell per (data set, policy); a sweep runs one per (grid point, data
set, policy). Both call :func:`run_cell`, so a figure means the same in each.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from .._random import derive_seed
from ..core.device import resolve_device
from ..core.ensemble import Ensemble, make_ensemble
from ..core.memory import FLOAT_BYTES, check_memory, training_bytes
from ..core.objectives import Objective, mean_return
from ..core.policies import WindowPolicy, saturated
from ..core.registry import policy_spec
from ..core.train import fit
from ..core.windows import generate_sequences
from ..data.reference import buy_and_hold_position, oracle_position
from ..data.simulate import AR1, IIDNormal, ReturnProcess
from ..evaluation.stats import SIGNIFICANCE, one_sided_p_value, per_series_gains, sharpe_ratio
from ..io.units import TrainingStateFile, Unit, UnitStore

DATASETS = ("random", "momentum")
# The tutorial trains 500 epochs on random data (to show overfitting) and 250 on momentum.
TUTORIAL_EPOCHS = {"random": 500, "momentum": 250}


def check_cell_memory(config: Any) -> None:
    """Refuse a simulated study or sweep cell whose data and ensembles would not fit in
    the memory of ``train.device`` (see :mod:`neuraltrader.core.memory`)."""
    data, train = config.data, config.train
    windows = data.length - data.lag
    largest = max(policy_spec(name, "model.models entry").parameter_count(data.lag, config.model)
                  for name in config.model.models)
    needed = training_bytes(
        replicas=train.seeds, parameters=largest, train_rows=data.n_train * windows,
        valid_rows=data.n_valid * windows, lag=data.lag,
        batch=min(train.batch_size or data.n_train * windows, data.n_train * windows),
        width=config.model.hidden,
        epochs=max(train.epochs_for(dataset) for dataset in data.datasets),
    ) + FLOAT_BYTES * 3 * (data.n_train + data.n_valid) * data.length  # the simulation
    check_memory(needed, resolve_device(train.device), train.memory_limit_gb, "this run")


def make_process(name: str, data: Any) -> ReturnProcess:
    """The return process behind data set ``name`` (``data.rho`` for momentum)."""
    return IIDNormal() if name == "random" else AR1(rho=data.rho)


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


def simulate_dataset(name: str, config: Any) -> SimulatedData:
    """Draw data set ``name``'s training and validation series (seeded by ``config.seed``,
    on the CPU so that every device sees the same numbers), on ``train.device``."""
    data = config.data
    device = resolve_device(config.train.device)
    process = make_process(name, data)
    panels = {
        split: process.sample(
            size, data.length, seed=derive_seed(config.seed, _stream(name, split))
        )
        for split, size in (("train", data.n_train), ("valid", data.n_valid))
    }
    return SimulatedData(
        process,
        tuple(t.to(device) for t in generate_sequences(panels["train"], data.lag)),
        tuple(t.to(device) for t in generate_sequences(panels["valid"], data.lag)),
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


def fit_replicas(
    template: WindowPolicy, config: Any,
    train: tuple[torch.Tensor, torch.Tensor], valid: tuple[torch.Tensor, torch.Tensor], *,
    epochs: int, objective: Objective = mean_return, restore_best: bool | None = None,
    progress: bool = False, description: str | None = None,
    state: TrainingStateFile | None = None,
) -> tuple[Ensemble, pd.DataFrame, float]:
    """Train ``train.seeds`` replicas of ``template``'s architecture (replica s: seed
    ``config.seed + s``) in one vectorised pass on ``train.device``, as ``[train]``
    says (every command trains this way); return the ensemble, its history and the
    seconds it took."""
    settings = config.train
    ensemble = make_ensemble(
        template, [config.seed + s for s in range(settings.seeds)],
        device=resolve_device(settings.device),
    )
    started = time.perf_counter()
    history = fit(
        ensemble, train, valid, epochs=epochs, lr=settings.lr,
        batch_size=settings.batch_size or len(train[1]), shuffle=settings.shuffle,
        optimizer=settings.optimizer, patience=settings.patience, restore_best=restore_best,
        objective=objective, progress=progress, description=description, state=state,
    )
    return ensemble, history, time.perf_counter() - started


def train_replicas(
    name: str, data: SimulatedData, config: Any, *, epochs: int,
    progress: bool = True, description: str | None = None,
    state: TrainingStateFile | None = None,
) -> tuple[Ensemble, pd.DataFrame, float]:
    """:func:`fit_replicas` of registered policy ``name`` on a simulated data set."""
    with torch.random.fork_rng(devices=[]):  # the template's own weights are not used
        template = policy_spec(name, "model.models entry").build(config.data.lag, config.model)
    return fit_replicas(template, config, data.train, data.valid, epochs=epochs,
                        progress=progress, description=description, state=state)


def valid_positions(ensemble: Ensemble, data: SimulatedData) -> torch.Tensor:
    """Every replica's positions on the validation windows, ``(E, n_valid * K)``."""
    with torch.no_grad():
        return ensemble.eval()(data.valid[0])


def seed_figures(
    history: pd.DataFrame, positions: torch.Tensor, data: SimulatedData, seeds: list[int],
    *, early_stopping: bool, position: str = "long",
) -> pd.DataFrame:
    """One row per seed: the figures of the weights training ended with (the best
    validation epoch under early stopping, else the last), the epoch of the best
    validation return, and the one-sided p-value of the validation return, from
    per-series means so that overlapping windows are not counted as independent.

    ``positions`` are the replicas' validation positions (:func:`valid_positions`);
    ``collapsed`` flags a replica whose every validation position is at a bound of the
    ``position`` head (see :func:`~neuraltrader.core.policies.saturated`)."""
    by_seed = history.groupby("seed", sort=False)
    best_rows = history.loc[by_seed["valid_return"].idxmax()].set_index("seed")
    final = best_rows if early_stopping else by_seed.tail(1).set_index("seed")
    gains = per_series_gains(positions, data.valid[1], data.n_valid).cpu()  # (E, M)
    p_values = one_sided_p_value(gains)
    figures = final[["train_return", "train_recom", "valid_return", "valid_recom"]].copy()
    figures["generalization_gap"] = figures["train_return"] - figures["valid_return"]
    figures["best_epoch"] = best_rows["epoch"]
    figures["p_value"] = pd.Series(p_values, index=seeds)
    figures["collapsed"] = pd.Series(saturated(positions, position).cpu().numpy(), index=seeds)
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
    summary["collapsed_share"] = float(figures["collapsed"].mean())
    summary["oracle_capture"] = (
        summary["valid_return"] / oracle_return if oracle_return > 0 else None
    )
    return summary


@dataclass
class CellResult:
    """What one cell produced: the trained ``ensemble``, its ``history``, one row of
    ``figures`` per seed, the ``summary`` over seeds (a ``results`` entry without its
    labels), and ``gains``/``benchmark``, the per-period validation returns of the seeds'
    average position and of buy-and-hold, ``(n_valid * K,)``, for the sweep's verdicts."""

    ensemble: Ensemble
    history: pd.DataFrame
    figures: pd.DataFrame
    summary: dict[str, Any]
    gains: torch.Tensor
    benchmark: torch.Tensor

    def to_unit(self) -> Unit:
        return Unit(tensors={"gains": self.gains, "benchmark": self.benchmark},
                    frames={"history": self.history, "figures": self.figures},
                    payload={"summary": self.summary}, models={"ensemble": self.ensemble})

    @classmethod
    def from_unit(cls, unit: Unit) -> CellResult:
        return cls(unit.models["ensemble"], unit.frames["history"], unit.frames["figures"],
                   unit.payload["summary"], unit.tensors["gains"], unit.tensors["benchmark"])


def run_cell(
    dataset: str, data: SimulatedData, model: str, config: Any, *,
    progress: bool = True, description: str | None = None,
    units: UnitStore | None = None, state: TrainingStateFile | None = None,
) -> CellResult:
    """Train policy ``model``'s replicas on ``data`` and measure them (see module doc).

    With ``units``, the finished cell is kept there as ``dataset-model``, and a cell
    already there is read back instead of trained again (a resumed run); its training
    keeps its state there every ``train.checkpoint_every`` epochs. ``state`` names
    another place for that state (a sweep keeps its cells itself).
    """
    name = f"{dataset}-{model}"
    if units is not None and name in units:
        return CellResult.from_unit(units.load(name, resolve_device(config.train.device)))
    if state is None and units is not None:
        state = units.training_state(name, config.train.checkpoint_every)
    cell = _measured_cell(dataset, data, model, config, progress, description, state)
    if units is not None:
        units.save(name, cell.to_unit())
        if state is not None:  # ours: kept with the unit (a sweep's go with its cells)
            state.finish()
    return cell


def _measured_cell(
    dataset: str, data: SimulatedData, model: str, config: Any, progress: bool,
    description: str | None, state: TrainingStateFile | None = None,
) -> CellResult:
    epochs = config.train.epochs_for(dataset)
    ensemble, history, seconds = train_replicas(
        model, data, config, epochs=epochs, progress=progress, description=description,
        state=state,
    )
    positions = valid_positions(ensemble, data)
    figures = seed_figures(history, positions, data, ensemble.seeds,
                           early_stopping=config.train.patience is not None,
                           position=config.model.position)
    references = reference_returns(data, config.model.position)
    gains = (positions.mean(0) * data.valid[1]).cpu()
    summary = (
        {"seeds": config.train.seeds, "epochs": epochs}
        | summarize_seeds(figures, history, references["oracle_valid_return"])
        | {"sharpe": float(sharpe_ratio(gains.numpy()))}
        | references | {"train_seconds": seconds}
    )
    return CellResult(ensemble, history, figures, summary, gains, data.valid[1].cpu())


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


__all__ = [
    "DATASETS", "TUTORIAL_EPOCHS", "CellResult", "SimulatedData", "make_process",
    "reference_returns", "run_cell", "seed_figures", "simulate_dataset", "summarize_seeds",
    "train_replicas", "valid_positions",
]
