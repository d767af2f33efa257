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
from typing import Literal

import torch

from .._checks import PositionKind
from ..core.device import resolve_device
from ..core.objectives import OBJECTIVES
from ..core.optimizers import OPTIMIZERS
from ..errors import ConfigError
from .checkpoint import MAX_DIMENSION, MAX_SEEDS
from .config import setting

MAX_THREADS = 1024
RAY_TASK_THREADS = 1  # a Ray task's CPUs, and threads, when train.threads is unset
MAX_GPUS_PER_TASK = 64


@dataclass
class WindowDataSection:
    """What every window-based ``[data]`` section has."""

    lag: int = setting(4, ge=1, le=MAX_DIMENSION, help="L: window length, in periods")


@dataclass
class ModelSection:
    """``[model]``: the options registered policies read (see the policy registry)."""

    hidden: int = setting(5, ge=1, le=MAX_DIMENSION,
                          help="hidden units H (every policy but linear)")
    dropout: float = setting(0.5, ge=0, lt=1,
                             help="dropout rate (the dropout and transformer policies)")
    layers: int = setting(2, ge=1, le=MAX_DIMENSION, help="encoder blocks (transformer only)")
    heads: int = setting(1, ge=1, le=MAX_DIMENSION,
                         help="attention heads, must divide hidden (transformer only)")
    position: PositionKind = setting("long", help="long ([0, 1]) or long_short ([-1, 1])")


@dataclass
class OptimizerSection:
    """What every ``[train]`` section has, the demos' included: the optimizer, its
    learning rate and the device."""

    lr: float = setting(0.01, gt=0, help="learning rate")
    optimizer: str = setting("rmsprop", choices=tuple(OPTIMIZERS), help="the optimizer")
    device: str = setting("cpu", help="where to train: cpu, cuda, cuda:N or auto (--device)")
    threads: int | None = setting(None, ge=1, le=MAX_THREADS,
                                  help="CPU threads for torch (--threads); unset: torch's "
                                  "default (1 per Ray task); a run records the count used")

    def check(self) -> None:
        resolve_device(self.device)

    def resolve_threads(self, engine: str = "local") -> None:
        """Fill an unset ``threads`` with the count the run will use: torch's in this
        process, 1 for a Ray task (a task's CPUs). A run records it in its config, since
        the CPU kernels split their work by thread and the split moves the last bits of
        results (which training can amplify): a resumed run, or the same config on the
        other engine, then computes what the run did."""
        if self.threads is None:
            self.threads = (RAY_TASK_THREADS if engine == "ray"
                            else min(torch.get_num_threads(), MAX_THREADS))

    def apply_threads(self) -> None:
        """Set torch's CPU thread count to ``threads`` when it is set (the process's
        setting: a command runs one config)."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)


@dataclass
class TrainSection(OptimizerSection):
    """``[train]``: how every policy is fitted, in every command."""

    epochs: int | None = setting(None, ge=1, help="passes over the training data")
    batch_size: int | None = setting(1000, ge=1, help="windows per step; unset: full batch")
    seeds: int = setting(1, ge=1, le=MAX_SEEDS, help="replicas, trained as one ensemble; "
                         "figures are their mean, *_std their spread")
    shuffle: bool = setting(True, help="a fresh batch order every epoch")
    patience: int | None = setting(None, ge=1, help="early stopping: epochs without a better "
                                   "validation figure before a replica stops (best kept)")
    objective: str = setting("mean", choices=OBJECTIVES,
                             help="what training maximises: mean return, Sharpe or utility")
    risk_aversion: float = setting(1.0, ge=0, help="lambda of the utility objective")
    turnover_penalty: float = setting(0.0, ge=0,
                                      help="the objective minus this × mean |Δ position|")
    memory_limit_gb: float | None = setting(None, gt=0, help="refuse a run estimated to need "
                                            "more; unset: what the device has available")
    checkpoint_every: int | None = setting(None, ge=1, help="epochs between kept training "
                                           "states, so a killed run resumes mid-training")


@dataclass
class EngineSection:
    """``[engine]``: where a sweep's cells or a backtest's blocks run (see
    :mod:`neuraltrader.pipelines.engines`). Not part of what a run computes: a run resumes on
    either engine with the same results."""

    kind: Literal["local", "ray"] = setting(
        "local", help="local: in this process; ray: tasks on a Ray cluster (--engine)")
    address: str | None = setting(None, help="the Ray cluster to join, host:port, ray://host:"
                                  "port or auto (--address); unset: start a local one")
    max_retries: int = setting(3, ge=0, le=1000,
                               help="times a unit whose worker died is run again")
    gpus_per_task: float = setting(1.0, gt=0, le=MAX_GPUS_PER_TASK,
                                   help="GPUs a unit asks for when train.device is cuda")

    def check(self) -> None:
        if self.address is not None and self.kind != "ray":
            raise ConfigError(f"engine.address={self.address!r} needs engine.kind='ray'")


__all__ = ["RAY_TASK_THREADS", "EngineSection", "ModelSection", "OptimizerSection", "TrainSection",
           "WindowDataSection"]
