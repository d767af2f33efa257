"""Which config class each command reads: ``neuraltrader config COMMAND`` lists its keys
(:mod:`neuraltrader.io.keys`), and so does the README (``docs/config_tables.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from .backtest import BacktestConfig
from .demos import DEMOS
from .study import StudyConfig
from .sweep import SWEEP_CONFIGS

# the command as typed → its config class; ``sweep`` alone sweeps the study
COMMAND_CONFIGS: dict[str, type] = {
    "run": StudyConfig,
    "sweep": SWEEP_CONFIGS["study"],
    **{f"sweep {pipeline}": config for pipeline, config in SWEEP_CONFIGS.items()},
    "backtest": BacktestConfig,
    **{f"demo {name}": config for name, (config, _) in DEMOS.items()},
}


def command_config(words: Sequence[str]) -> type:
    """The config class of the command ``words`` (``["demo", "linear"]``); an unknown
    command is a one-line ``ConfigError`` listing the known ones."""
    command = " ".join(words)
    if command not in COMMAND_CONFIGS:
        known = ", ".join(COMMAND_CONFIGS)
        raise ConfigError(f"unknown command {command!r}; config lists the keys of: {known}")
    return COMMAND_CONFIGS[command]


__all__ = ["COMMAND_CONFIGS", "command_config"]
