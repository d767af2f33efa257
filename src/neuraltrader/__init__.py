"""neuraltrader: learn trading policies by gradient ascent on realised returns.

The parts follow the data flow: :mod:`simulate` → :mod:`windows` → :mod:`policies` →
:mod:`objectives` → :mod:`train` → :mod:`benchmarks`, wired together by
:mod:`experiment`; real prices go :mod:`data` → :mod:`windows` → ... →
:mod:`metrics` in :mod:`backtest`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._random import seeded
from .benchmarks import buy_and_hold_position, flat_position, oracle_position
from .errors import ConfigError, DataError, NeuralTraderError, TrainingError
from .objectives import mean_return
from .policies import DropoutTrader, LinearTrader, LSTMTrader, NeuralTrader
from .simulate import AR1, IIDNormal, ReturnProcess
from .train import fit
from .windows import generate_sequences

__all__ = [
    "AR1",
    "ConfigError",
    "DataError",
    "DropoutTrader",
    "IIDNormal",
    "LSTMTrader",
    "LinearTrader",
    "NeuralTrader",
    "NeuralTraderError",
    "ReturnProcess",
    "TrainingError",
    "__version__",
    "buy_and_hold_position",
    "fit",
    "flat_position",
    "generate_sequences",
    "mean_return",
    "oracle_position",
    "seeded",
]
