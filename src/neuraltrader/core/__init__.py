"""The learning core: windows, policies and their registry, ensembles, objectives, fit.

Imports nothing above it (``errors``, ``_checks`` and ``_random`` only).
"""

from .ensemble import Ensemble, FunctionalEnsemble, TraderEnsemble, make_ensemble
from .objectives import make_objective, mean_return
from .policies import DropoutTrader, LinearTrader, LSTMTrader, NeuralTrader, WindowPolicy
from .train import fit
from .windows import generate_sequences, scaled_windows

__all__ = [
    "DropoutTrader", "Ensemble", "FunctionalEnsemble", "LSTMTrader", "LinearTrader",
    "NeuralTrader", "TraderEnsemble", "WindowPolicy", "fit", "generate_sequences",
    "make_ensemble", "make_objective", "mean_return", "scaled_windows",
]
