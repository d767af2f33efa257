"""neuraltrader: learn trading policies by gradient ascent on realised returns.

Layers, lowest first (a layer imports only those below it; ``tests/test_layers.py``
holds the contract): :mod:`.core` (windows, policies and their registry, ensembles,
objectives, fit) → :mod:`.data` (simulated processes and their oracle, market data,
reference policies) → :mod:`.evaluation` (metrics, statistics, verdicts) and :mod:`.io`
(config, run directories, checkpoints) → :mod:`.report` (plots, pages) →
:mod:`.pipelines` (study, sweep, backtest, demos) → :mod:`.cli`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._random import seeded
from .core.objectives import mean_return
from .core.policies import DropoutTrader, LinearTrader, LSTMTrader, NeuralTrader, TransformerTrader
from .core.train import fit
from .core.windows import generate_sequences
from .data.reference import buy_and_hold_position, flat_position, oracle_position
from .data.simulate import AR1, IIDNormal, ReturnProcess
from .errors import ConfigError, DataError, NeuralTraderError, TrainingError

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
    "TransformerTrader",
    "__version__",
    "buy_and_hold_position",
    "fit",
    "flat_position",
    "generate_sequences",
    "mean_return",
    "oracle_position",
    "seeded",
]
