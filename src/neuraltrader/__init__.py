"""neuraltrader: learn trading policies by gradient ascent on realised returns.

Layers, lowest first (a layer imports only those below it; ``tests/test_layers.py``
holds the contract): :mod:`.core` (windows, policies and their registry, ensembles,
objectives, fit) → :mod:`.data` (simulated processes and their oracle, market data,
reference policies) → :mod:`.evaluation` (metrics, statistics, verdicts) and :mod:`.io`
(config, run directories, checkpoints) → :mod:`.report` (plots, pages) →
:mod:`.pipelines` (study, sweep, backtest, demos) → :mod:`.cli`.
"""

from __future__ import annotations

__version__ = "0.2.0"

import importlib
from typing import Any

# the public names and the modules that define them, imported on first use: importing
# the package (the command line does) stays light, so an interrupt while torch loads
# reaches the command's handler and ends in one line
_EXPORTS = {
    "seeded": "._random",
    "mean_return": ".core.objectives",
    "DropoutTrader": ".core.policies", "LinearTrader": ".core.policies",
    "LSTMTrader": ".core.policies", "NeuralTrader": ".core.policies",
    "TransformerTrader": ".core.policies",
    "fit": ".core.train",
    "generate_sequences": ".core.windows",
    "buy_and_hold_position": ".data.reference", "flat_position": ".data.reference",
    "oracle_position": ".data.reference",
    "AR1": ".data.simulate", "IIDNormal": ".data.simulate", "ReturnProcess": ".data.simulate",
    "ConfigError": ".errors", "DataError": ".errors", "NeuralTraderError": ".errors",
    "TrainingError": ".errors",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
