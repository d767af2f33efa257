"""Pipelines wire the layers below into runs that write a run directory: the study,
sweeps, walk-forward backtests and the demos."""
