"""The config sections every command shares: a key means the same in each.

``[model]`` and ``[train]`` are one class each; a command subclasses a section only to
change defaults or to add the key that picks its policies (``model.models`` for the
study and sweeps, which compare several; ``model.kind`` for a backtest, which trades
one). Every window-based ``[data]`` section has ``lag``. Sizes are capped where a checkpoint
is (:data:`~neuraltrader.io.checkpoint.MAX_DIMENSION`, ``MAX_SEEDS``), so that every
run that starts can save its weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import PositionKind
from ..core.device import resolve_device
from ..core.objectives import OBJECTIVES
from ..core.train import OPTIMIZERS
from .checkpoint import MAX_DIMENSION, MAX_SEEDS
from .config import setting


@dataclass
class WindowDataSection:
    """What every window-based ``[data]`` section has."""

    lag: int = setting(4, ge=1, le=MAX_DIMENSION)  # L: window length, in periods


@dataclass
class ModelSection:
    """``[model]``: the options registered policies read (see the policy registry)."""

    hidden: int = setting(5, ge=1, le=MAX_DIMENSION)  # hidden units H (every policy but linear)
    dropout: float = setting(0.5, ge=0, lt=1)  # dropout rate (dropout and transformer)
    layers: int = setting(2, ge=1, le=MAX_DIMENSION)  # encoder blocks (transformer only)
    heads: int = setting(1, ge=1, le=MAX_DIMENSION)  # attention heads, divide hidden (transformer)
    position: PositionKind = "long"  # long ([0, 1]) or long_short ([-1, 1])


@dataclass
class OptimizerSection:
    """What every ``[train]`` section has, the demos' included: the optimizer, its
    learning rate and the device."""

    lr: float = setting(0.01, gt=0)  # learning rate
    optimizer: str = setting("rmsprop", choices=tuple(OPTIMIZERS))  # rmsprop, adam, sgd
    device: str = "cpu"  # cpu, cuda, cuda:N or auto

    def check(self) -> None:
        resolve_device(self.device)


@dataclass
class TrainSection(OptimizerSection):
    """``[train]``: how every policy is fitted, in every command."""

    epochs: int | None = setting(None, ge=1)  # passes over the training data
    batch_size: int | None = setting(1000, ge=1)  # windows per step; unset: full batch
    seeds: int = setting(1, ge=1, le=MAX_SEEDS)  # replicas, trained as one ensemble
    shuffle: bool = True  # fresh batch order every epoch
    patience: int | None = setting(None, ge=1)  # early stopping: epochs without a better valid
    objective: str = setting("mean", choices=OBJECTIVES)  # mean, sharpe or utility
    risk_aversion: float = setting(1.0, ge=0)  # lambda of the utility objective
    turnover_penalty: float = setting(0.0, ge=0)  # objective minus this × mean |Δ position|
    memory_limit_gb: float | None = setting(None, gt=0)  # unset: what the device has
    checkpoint_every: int | None = setting(None, ge=1)  # epochs between kept training states


__all__ = ["ModelSection", "OptimizerSection", "TrainSection", "WindowDataSection"]
