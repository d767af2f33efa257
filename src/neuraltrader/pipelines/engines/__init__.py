"""Engines run a pipeline's units of work: in this process (``local``, the default) or
as tasks on a Ray cluster (``ray``, the optional extra ``neuraltrader[ray]``).

A unit is a sweep cell, a backtest's walk-forward block or a calibration batch: a
module-level function and its arguments, seeded from the config alone, so that it
computes the same numbers wherever it runs. :func:`run_units` drives any engine: it
reads finished units back, keeps each new one as it arrives, shows progress, and
names the units that failed for good.
"""

from .base import Engine, LocalEngine, UnitResult, UnitTask
from .choice import make_engine
from .units import run_units

__all__ = ["Engine", "LocalEngine", "UnitResult", "UnitTask", "make_engine", "run_units"]
