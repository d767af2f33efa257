"""Resume a killed or interrupted run: rerun its request (kind, config, grid) into the
same run directory, which takes over the finished units the run left behind
(:func:`~neuraltrader.io.rundir.staged_run_dir`), so only the missing units are
computed and the run ends as an uninterrupted one would."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..evaluation.verdicts import verdict_lines
from ..io.config import build, validate
from ..io.rundir import interrupted_request
from .backtest import BacktestConfig, backtest, backtest_table
from .study import StudyConfig, results_table, run
from .sweep import SWEEP_CONFIGS, summary_table, sweep


def resume(out: str | Path, *, progress: bool = True, engine: dict[str, Any] | None = None
           ) -> str:
    """Finish the interrupted run into ``out`` on the engine ``engine`` sets
    (``[engine]`` keys, for a sweep or a backtest; default: this process); return its
    printed summary."""
    request = interrupted_request(out)
    kind = request.get("kind")
    if engine and kind not in ("backtest", "sweep"):
        raise ConfigError(f"--engine and --address apply to sweeps and backtests; the run at "
                          f"{str(out)!r} is a {kind}, resumed in this process")
    try:
        if kind == "study":
            config = _config(StudyConfig, request)
            return results_table(run(config, out, progress=progress).results)
        if kind == "backtest":
            config = _config(BacktestConfig, request, engine)
            return backtest_table(backtest(config, out, progress=progress).metrics)
        if kind == "sweep":
            pipeline, grid = request["pipeline"], request["grid"]
            config = _config(SWEEP_CONFIGS[pipeline], request, engine)
            result = sweep(config, grid, out, progress=progress, pipeline=pipeline)
            return "\n".join([summary_table(result.summary, grid),
                              *verdict_lines(result.verdicts)])
    except (KeyError, TypeError) as error:
        raise DataError(f"the interrupted run at {str(out)!r} has a malformed request "
                        f"({error!r})") from None
    raise DataError(f"the interrupted run at {str(out)!r} is of unknown kind {kind!r}")


def _config(config_class: type, request: dict, engine: dict[str, Any] | None = None) -> Any:
    config = build(config_class, request["config"])
    if engine:
        config.engine = dataclasses.replace(config.engine, **engine)
    validate(config)
    config.train.apply_threads()
    return config


__all__ = ["resume"]
