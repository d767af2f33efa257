"""Resume a killed or interrupted run: rerun its request (kind, config, grid) into the
same run directory, which takes over the finished units the run left behind
(:func:`~neuraltrader.io.rundir.staged_run_dir`), so only the missing units are
computed and the run ends as an uninterrupted one would."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..evaluation.verdicts import verdict_lines
from ..io.config import build, validate
from ..io.rundir import interrupted_request
from .backtest import BacktestConfig, backtest, backtest_table
from .study import StudyConfig, results_table, run
from .sweep import SWEEP_CONFIGS, summary_table, sweep


def resume(out: str | Path, *, progress: bool = True) -> str:
    """Finish the interrupted run into ``out``; return its printed summary."""
    request = interrupted_request(out)
    kind = request.get("kind")
    try:
        if kind == "study":
            config = _config(StudyConfig, request)
            return results_table(run(config, out, progress=progress).results)
        if kind == "backtest":
            config = _config(BacktestConfig, request)
            return backtest_table(backtest(config, out, progress=progress).metrics)
        if kind == "sweep":
            pipeline, grid = request["pipeline"], request["grid"]
            config = _config(SWEEP_CONFIGS[pipeline], request)
            result = sweep(config, grid, out, progress=progress, pipeline=pipeline)
            return "\n".join([summary_table(result.summary, grid),
                              *verdict_lines(result.verdicts)])
    except (KeyError, TypeError) as error:
        raise DataError(f"the interrupted run at {str(out)!r} has a malformed request "
                        f"({error!r})") from None
    raise DataError(f"the interrupted run at {str(out)!r} is of unknown kind {kind!r}")


def _config(config_class: type, request: dict) -> object:
    config = build(config_class, request["config"])
    validate(config)
    config.train.apply_threads()
    return config


__all__ = ["resume"]
