"""The ``neuraltrader`` command. It parses arguments and delegates; nothing more."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import NeuralTraderError

EXIT_BAD_INPUT = 2


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file of config values")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set train.epochs=50",
    )
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<timestamp>)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    _add_run_options(run)
    run.set_defaults(handler=_run_study)
    return parser


def _run_study(args: argparse.Namespace) -> int:
    from .config import load_config
    from .experiment import StudyConfig, results_table, run
    from .rundir import check_run_dir, default_run_dir

    config = load_config(StudyConfig, args.config, args.overrides)
    out = check_run_dir(args.out) if args.out else default_run_dir()
    result = run(config, out, progress=not args.no_progress)
    print(results_table(result.results))
    print(f"run directory: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuraltrader`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except NeuralTraderError as error:
        print(f"neuraltrader: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
