"""The learning core: windows and input features, trading signals, policies and their
registry, dropout mask streams, ensembles, objectives, optimizers, fit.

Imports nothing above it (``errors``, ``_checks`` and ``_random`` only).
"""

from .ensemble import Ensemble, FunctionalEnsemble, LSTMEnsemble, TraderEnsemble, make_ensemble
from .objectives import make_objective, mean_return
from .policies import (
    DropoutTrader,
    LinearTrader,
    LSTMTrader,
    NeuralTrader,
    TransformerTrader,
    WindowPolicy,
)
from .signals import (
    macd_indicators,
    macd_position,
    momentum_features,
    normalised_returns,
    tsmom_position,
    volatility_scale,
)
from .train import fit
from .windows import feature_windows, generate_sequences, scaled_windows

__all__ = [
    "DropoutTrader", "Ensemble", "FunctionalEnsemble", "LSTMEnsemble", "LSTMTrader",
    "LinearTrader", "NeuralTrader", "TraderEnsemble", "TransformerTrader", "WindowPolicy",
    "feature_windows", "fit", "generate_sequences", "macd_indicators", "macd_position",
    "make_ensemble", "make_objective", "mean_return", "momentum_features",
    "normalised_returns", "scaled_windows", "tsmom_position", "volatility_scale",
]
