"""The one exception family of neuraltrader.

Every error raised on bad input derives from :class:`NeuralTraderError` (itself a
``ValueError``, as scikit-learn does for bad parameters), so callers and the CLI can
catch one type. Messages name the offending value and what was expected.
"""

from __future__ import annotations


class NeuralTraderError(ValueError):
    """Base class of every error neuraltrader raises on bad input or a failed run."""


class ConfigError(NeuralTraderError):
    """A configuration key, value, file or option is invalid."""


class DataError(NeuralTraderError):
    """Input data has the wrong shape, type or values (NaN, too short, ...)."""


class TrainingError(NeuralTraderError):
    """Training diverged (non-finite loss) or was asked to do something impossible."""


__all__ = ["ConfigError", "DataError", "NeuralTraderError", "TrainingError"]
