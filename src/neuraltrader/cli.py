"""The ``neuraltrader`` command. It parses arguments and delegates; nothing more."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .errors import (
    ConfigError,
    NeuralTraderError,
    Terminated,
    UnitsFailedError,
    interruption_behind,
)

EXIT_FAILED = 1  # units of the work failed for good; the rest is kept
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's convention
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141


def _add_run_options(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file of config values (a run directory's config.toml "
                        "repeats that run)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help=f"override one config value (repeatable), e.g. --set {example}",
    )
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<timestamp>)")
    parser.add_argument("--device", metavar="DEVICE",
                        help="where to train (train.device): cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (train.threads; default: torch's own)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--no-report", action="store_true",
                        help="do not write report.html into the run directory")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("local", "ray"),
                        help="where units run (engine.kind): local (default, this process) "
                        "or ray (tasks on a Ray cluster; pip install \"neuraltrader[ray]\")")
    parser.add_argument("--address", metavar="HOST:PORT",
                        help="the Ray cluster to join (engine.address): host:port, "
                        "ray://host:port or auto; default: start a local one")


ENGINE_OPTIONS = {"engine": "engine.kind", "address": "engine.address"}


def _add_data_options(source: argparse._MutuallyExclusiveGroup) -> None:
    source.add_argument("--data", metavar="NAME",
                        help="a bundled data set: sp500, nasdaq, wti, daily-universe, crude, "
                        "frenchdata")
    source.add_argument("--csv", metavar="FILE",
                        help="a CSV of prices (wide: date + one column per asset, or long: "
                        "date, asset, value); see data.kind and data.fill")


def _number_or_word(text: str) -> float | str:
    """An option's value read as a number where it is one, else left as text for the
    config to check (``none``, or a one-line error naming the key)."""
    try:
        return float(text)
    except ValueError:
        return text


class _RegisteredPolicies:
    """The policy registry's names as argparse ``choices``, read only when argparse
    checks a value or prints help, so that ``--version`` does not import torch."""

    @staticmethod
    def _names() -> tuple[str, ...]:
        from .core.registry import policy_names

        return policy_names()

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (``--help`` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neuraltrader",
        description="Learn trading policies by gradient ascent on realised returns.",
    )
    parser.add_argument("--version", action="version", version=f"neuraltrader {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="the tutorial's neural-trader study on simulated data",
        description="Train NeuralTrader and DropoutTrader on random and momentum data, "
        "compare them with buy-and-hold and the oracle, and write a run directory.",
    )
    run.add_argument("--seeds", type=int, metavar="S",
                     help="replicas per (data set, model) (train.seeds)")
    _add_run_options(run, "train.epochs=50")
    run.set_defaults(handler=_run_study)

    sweep = commands.add_parser(
        "sweep", help="run a grid of configs of any pipeline and judge them together",
        description="Run every combination of --grid values through PIPELINE (study: "
        "simulated cells, each one vectorised ensemble of --seeds replicas; backtest: one "
        "walk-forward backtest per cell) and report verdicts that account for the number "
        "of cells tried: deflated Sharpe ratio, probability of backtest overfitting, SPA "
        "test against buy-and-hold.",
    )
    sweep.add_argument("pipeline", nargs="?", default="study", choices=("study", "backtest"),
                       help="what each cell runs (default: study)")
    _add_data_options(sweep.add_mutually_exclusive_group())
    sweep.add_argument(
        "--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2,...",
        help="values of one config key to sweep (repeatable), e.g. --grid model.hidden=2,5,20",
    )
    sweep.add_argument("--seeds", type=int, metavar="S", help="replicas per cell (train.seeds)")
    _add_engine_options(sweep)
    _add_run_options(sweep, "train.epochs=50")
    sweep.set_defaults(handler=_run_sweep)

    backtest = commands.add_parser(
        "backtest", help="walk-forward backtest on real prices, with costs",
        description="Train policies on volatility-scaled returns (or momentum features) of "
        "real prices, walk forward year by year (train, pick the epoch on the next year, "
        "trade the year after with frozen weights), and compare the out-of-sample "
        "strategy with buy-and-hold and the TSMOM and MACD rules, every position at the "
        "volatility target, after costs: performance figures, the SPA test against each "
        "benchmark and, with --placebo, a permutation test on random-sign data.",
    )
    _add_data_options(backtest.add_mutually_exclusive_group())
    backtest.add_argument("--model", choices=_RegisteredPolicies(), metavar="POLICY",
                          help="a registered policy: %(choices)s (default mlp)")
    backtest.add_argument("--objective", choices=("mean", "sharpe", "utility"),
                          help="training objective (sharpe)")
    backtest.add_argument("--position", choices=("long", "long_short"),
                          help="position range (long_short)")
    backtest.add_argument("--cost-bps", type=float, metavar="X",
                          help="cost per unit of position change, in basis points (2)")
    backtest.add_argument("--seeds", type=int, metavar="S", help="policies per block (4)")
    backtest.add_argument("--epochs", type=int, metavar="E", help="epochs per block (100)")
    backtest.add_argument("--features", choices=("returns", "momentum"),
                          help="the policy's inputs per day: scaled returns (default) or "
                          "momentum features (normalised returns over 1-252 days, MACD)")
    backtest.add_argument("--vol-target", type=_number_or_word, metavar="X",
                          help="annual volatility every position is scaled to (0.15), or none")
    backtest.add_argument("--baselines", metavar="NAMES",
                          help="classical rules to compare with: tsmom,macd (default) or none")
    backtest.add_argument("--placebo", type=int, metavar="K",
                          help="rerun the walk-forward on K random-sign copies of the data "
                          "for a permutation p-value (0: none)")
    _add_engine_options(backtest)
    _add_run_options(backtest, "backtest.cost_bps=5")
    backtest.set_defaults(handler=_run_backtest)

    predict = commands.add_parser(
        "predict", help="tomorrow's position from a finished backtest's latest policies",
        description="Apply the most recent walk-forward block's policies of the backtest "
        "in RUN_DIR to the latest data and print, per asset, the position for the day "
        "after the data's last date: the seeds' average, their spread, the ex-ante "
        "volatility and the size at the backtest's volatility target.",
    )
    predict.add_argument("run_dir", metavar="RUN_DIR", help="a finished backtest's directory")
    _add_data_options(predict.add_mutually_exclusive_group())
    predict.add_argument("--date", metavar="D",
                         help="use the data up to and including date D (default: all)")
    predict.add_argument("--out", metavar="FILE.csv", help="also write the positions as CSV")
    predict.set_defaults(handler=_run_predict)

    resume = commands.add_parser(
        "resume", help="finish a killed or interrupted run",
        description="Finish the run that was being written into RUN_DIR when it was "
        "killed or interrupted: its finished units (study pairs, sweep cells, backtest "
        "blocks) are kept, only the missing ones are computed, and the run ends as an "
        "uninterrupted one would.",
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the interrupted run's --out")
    _add_engine_options(resume)
    resume.add_argument("--no-progress", action="store_true", help="hide progress bars")
    resume.add_argument("--no-report", action="store_true",
                        help="do not write report.html into the run directory")
    resume.set_defaults(handler=_run_resume)

    report = commands.add_parser(
        "report", help="write RUN_DIR/report.html, one self-contained page",
        description="Write RUN_DIR/report.html: config, results table and plots of a "
        "finished run, sweep, backtest or demo, with images embedded (opens offline).",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    report.set_defaults(handler=_run_report)

    compare = commands.add_parser(
        "compare", help="finished runs of one kind side by side: one table, overlaid plots",
        description="Compare two or more finished runs of the same kind in one table "
        "(config keys that differ first) and overlaid plots: equity curves of backtests, "
        "training histories of studies, every cell of sweeps. Prints the table and writes "
        "one self-contained page.",
    )
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                         help="finished run directories, all of one kind (at least 2)")
    compare.add_argument("--out", metavar="FILE", default="compare.html",
                         help="where to write the page (default: ./compare.html)")
    compare.set_defaults(handler=_run_compare)

    config = commands.add_parser(
        "config", help="every config key of a command: default, allowed values, meaning",
        description="List every key that COMMAND reads (set it in a --config TOML file "
        "or with --set section.key=value): its default, the values it accepts and what "
        "it means.",
    )
    config.add_argument("words", nargs="+", metavar="COMMAND",
                        help="run, sweep [study|backtest], backtest, demo linear or "
                        "demo classifier")
    config.set_defaults(handler=_run_config)

    demo = commands.add_parser("demo", help="the tutorial's warm-up studies")
    demos = demo.add_subparsers(dest="demo", required=True, metavar="DEMO")
    for name, summary, example in (
        ("linear", "linear regression by gradient descent, against OLS", "train.steps=100"),
        ("classifier", "a small neural classifier, against the Bayes classifier",
         "train.epochs=5"),
    ):
        parser_for_demo = demos.add_parser(name, help=summary, description=summary)
        _add_run_options(parser_for_demo, example)
        parser_for_demo.set_defaults(handler=_run_demo)
    return parser


def _execute(args: argparse.Namespace, config_class: type, runner: Callable[..., str]) -> int:
    """Resolve the config and output path (both checked before any work), run, print,
    and write the report unless ``--no-report``."""
    from .io.config import load_config
    from .io.rundir import check_run_dir, default_run_dir

    _append_options(args, {"device": "train.device", "threads": "train.threads"})
    config = load_config(config_class, args.config, args.overrides)
    engine = getattr(config, "engine", None)
    config.train.resolve_threads(engine.kind if engine is not None else "local")
    config.train.apply_threads()
    out = check_run_dir(args.out) if args.out is not None else default_run_dir()
    print(runner(config, out, progress=not args.no_progress))
    _finish(args, out)
    return 0


def _finish(args: argparse.Namespace, out: Path) -> None:
    """Name the finished run directory and write its report unless ``--no-report``."""
    print(f"run directory: {out}")
    if not args.no_report:
        from .report import write_report

        try:
            print(f"report: {write_report(out)}")
        except BaseException as error:
            stop = interruption_behind(error)
            if stop is not None:
                stop.args = (f"{out} is complete but has no report; write it with "
                             f"`neuraltrader report {out}`",)
            raise


def _run_resume(args: argparse.Namespace) -> int:
    from .pipelines.resume import resume

    engine = {key.removeprefix("engine."): getattr(args, option)
              for option, key in ENGINE_OPTIONS.items() if getattr(args, option) is not None}
    print(resume(args.run_dir, progress=not args.no_progress, engine=engine))
    _finish(args, Path(args.run_dir))
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(f"report: {write_report(args.run_dir)}")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from .report.compare import comparison_text, write_comparison

    comparison, out = write_comparison(args.run_dirs, args.out)
    print(comparison_text(comparison))
    print(f"compare: {out}")
    return 0


def _run_config(args: argparse.Namespace) -> int:
    from .io.keys import config_keys, keys_table
    from .pipelines.commands import command_config

    print(keys_table(config_keys(command_config(args.words))))
    return 0


def _run_study(args: argparse.Namespace) -> int:
    from .pipelines.study import StudyConfig, results_table, run

    _append_options(args, {"seeds": "train.seeds"})
    return _execute(
        args, StudyConfig,
        lambda config, out, progress: results_table(run(config, out, progress=progress).results),
    )


def _run_sweep(args: argparse.Namespace) -> int:
    from .evaluation.verdicts import verdict_lines
    from .pipelines.sweep import SWEEP_CONFIGS, parse_grid, summary_table, sweep

    grid = parse_grid(args.grid)
    if args.pipeline != "backtest" and (args.data or args.csv):
        raise ConfigError("--data and --csv choose real prices: use `sweep backtest`")
    _absolute_csv(args)
    _append_options(args, {"data": "data.name", "csv": "data.csv", "seeds": "train.seeds",
                           **ENGINE_OPTIONS})

    def runner(config: object, out: object, progress: bool) -> str:
        result = sweep(config, grid, out, progress=progress, pipeline=args.pipeline)  # type: ignore[arg-type]
        return "\n".join([summary_table(result.summary, grid), *verdict_lines(result.verdicts)])

    return _execute(args, SWEEP_CONFIGS[args.pipeline], runner)


def _append_options(args: argparse.Namespace, options: dict[str, str]) -> None:
    """Turn the command's shortcut options that were given into ``--set`` overrides."""
    for option, key in options.items():
        value = getattr(args, option)
        if value is not None:  # JSON text is valid TOML for strings and finite numbers
            text = repr(value) if isinstance(value, float) and not math.isfinite(value) else (
                json.dumps(value))  # TOML's inf and nan, which the config refuses by name
            args.overrides.append(f"{key}={text}")


def _absolute_csv(args: argparse.Namespace) -> None:
    """``--csv`` as an absolute path, so that the run's config.toml (``--config``,
    ``predict``) finds the file from any directory."""
    if args.csv is not None:
        args.csv = str(Path(args.csv).absolute())


BACKTEST_OPTIONS = {
    "data": "data.name", "csv": "data.csv", "model": "model.kind",
    "objective": "train.objective", "position": "model.position",
    "cost_bps": "backtest.cost_bps", "seeds": "train.seeds", "epochs": "train.epochs",
    "features": "data.features", "vol_target": "backtest.vol_target",
    "baselines": "backtest.baselines", "placebo": "backtest.placebo", **ENGINE_OPTIONS,
}


def _run_backtest(args: argparse.Namespace) -> int:
    from .pipelines.backtest import BacktestConfig, backtest, backtest_table

    _absolute_csv(args)
    _append_options(args, BACKTEST_OPTIONS)
    return _execute(
        args, BacktestConfig,
        lambda config, out, progress: backtest_table(
            backtest(config, out, progress=progress).metrics
        ),
    )


def _run_predict(args: argparse.Namespace) -> int:
    from .pipelines.predict import predict

    print(predict(args.run_dir, name=args.data, csv=args.csv, date=args.date, out=args.out))
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from .pipelines.demos import DEMOS, run_demo

    return _execute(
        args, DEMOS[args.demo][0],
        lambda config, out, progress: run_demo(args.demo, config, out, progress=progress).table,
    )


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _stopped(stop: BaseException) -> int:
    """Say in one line that the command was interrupted or terminated; its status."""
    what = "interrupted" if isinstance(stop, KeyboardInterrupt) else "terminated"
    done = stop.args[0] if stop.args else "nothing written"
    print(f"neuraltrader: {what}; {done}", file=sys.stderr)
    return EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else EXIT_TERMINATED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names; return its exit status (:func:`console_main`
    makes it the process's).

    Bad input: one line on stderr, exit 2. Units of a sweep or backtest that failed for
    good: one line naming them, exit 1. SIGINT (Ctrl-C) and SIGTERM, also when Python
    wrapped the interrupt in another exception: one line, status 130 or 143; a run
    directory being written is removed (it is staged, see :mod:`neuraltrader.io.rundir`),
    so nothing half-written is left, or its finished units are kept for ``resume``.
    """
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        status = args.handler(args)
        sys.stdout.flush()  # here, not at exit: a reader that has gone is caught below
        return status
    except NeuralTraderError as error:
        print(f"neuraltrader: error: {error}", file=sys.stderr)
        return EXIT_FAILED if isinstance(error, UnitsFailedError) else EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader (`| head`) has gone: say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except BaseException as error:  # an interrupt, also one that became another error
        stop = interruption_behind(error)
        if stop is None:
            raise
        return _stopped(stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# the signal an interrupted or terminated command ends by, after its one line
_ENDING_SIGNALS = {EXIT_INTERRUPTED: signal.SIGINT, EXIT_TERMINATED: signal.SIGTERM}


def console_main() -> NoReturn:
    """The ``neuraltrader`` console script (and ``python -m neuraltrader``): :func:`main`,
    its status the process's.

    Interrupted or terminated, the process ends by that signal once :func:`main` has
    printed its line and removed what it was writing: a shell's ``$?`` is 130 or 143,
    and a loop calling the command stops at Ctrl-C (the convention CPython keeps for an
    uncaught ``KeyboardInterrupt``; POSIX only, elsewhere the status is the exit code).
    Exiting with 130 instead left the status to chance under ``python -m neuraltrader``:
    CPython ends the process by SIGINT at exit when the last ``exec`` of a string saw a
    ``KeyboardInterrupt`` pass, as one does when Ctrl-C lands in a dataclass being
    built by a lazy import, although our handler caught it.
    """
    status = main()
    ending = _ENDING_SIGNALS.get(status)
    if ending is not None and os.name == "posix":
        signal.signal(ending, signal.SIG_DFL)  # a second Ctrl-C from here ends it at once
        atexit._run_exitfuncs()  # what exiting would run; the default action skips it
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a reader gone, a closed stream
                stream.flush()
        os.kill(os.getpid(), ending)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    console_main()
