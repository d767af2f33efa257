"""Scale-out: a 24-cell sweep and an S&P 500 backtest of 16 seeds on the local engine
and on Ray with 1 and 2 workers, timed in this process.

Each run is the pipeline without its files (``run_sweep``, ``run_backtest``) on the same
config; every Ray run starts its own local instance with that many CPUs and runs one
unit per worker at a time, on one thread each. The instance's start is not timed; its
workers' start (a process each, importing torch and neuraltrader) is timed apart, by a
first round of one empty unit per worker, and left out of the runs' seconds. Per-task
overhead is what Ray with 1 worker adds to the local engine, per task; the speed-up is
the local engine's seconds over Ray's. The local engine runs on ``--threads`` threads
(default 1, as each Ray worker does).

    python benchmarks/bench_scale.py [--seeds 8] [--epochs E] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import torch
from bench_common import host

from neuraltrader.io.rundir import write_json
from neuraltrader.io.sections import EngineSection
from neuraltrader.pipelines.backtest import BacktestConfig, load_market_data, run_backtest
from neuraltrader.pipelines.engines import Engine, LocalEngine, UnitTask, make_engine, run_units
from neuraltrader.pipelines.sweep import SweepConfig, run_sweep

GRID = {"model.hidden": ["2", "5", "20"], "model.dropout": ["0", "0.5"],
        "data.rho": ["0", "0.1", "0.2", "0.3"]}  # 24 cells


def warm_up() -> list[None]:
    """An empty unit that makes its worker import everything a unit needs, and lasts
    long enough that each worker takes one."""
    import neuraltrader.pipelines.backtest
    import neuraltrader.pipelines.sweep  # noqa: F401

    time.sleep(1.0)
    return [None]


def start_workers(engine: Engine, workers: int) -> float:
    """Seconds for ``workers`` workers to start (one empty unit each)."""
    started = time.perf_counter()
    run_units(engine, [UnitTask((f"warm-up-{k}",), warm_up) for k in range(workers)],
              progress=False)
    return time.perf_counter() - started - 1.0


def sweep_seconds(config: SweepConfig, engine: Engine) -> tuple[float, int, str]:
    """Seconds, cells, and the figures of every cell (as text: NaN equals NaN)."""
    started = time.perf_counter()
    result = run_sweep(config, GRID, progress=False, engine=engine)
    seconds = time.perf_counter() - started
    return seconds, len(result.summary), result.summary.drop(columns="train_seconds").to_csv()


def backtest_seconds(config: BacktestConfig, data: Any, engine: Engine) -> tuple[float, int, str]:
    """Seconds, walk-forward blocks, and the daily returns (as text)."""
    started = time.perf_counter()
    result = run_backtest(config, data, progress=False, engine=engine)
    return time.perf_counter() - started, result.metrics["blocks"], result.daily.to_csv()


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="replicas per sweep cell (8)")
    parser.add_argument("--backtest-seeds", type=int, default=16, help="backtest seeds (16)")
    parser.add_argument("--epochs", type=int, help="epochs of every training (default: "
                        "each pipeline's own)")
    parser.add_argument("--quick", action="store_true", help="20 epochs, 4 seeds")
    parser.add_argument("--threads", type=int, default=1, help="the local engine's threads")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds, args.backtest_seeds = 20, 4, 4
    sweep_config = SweepConfig()
    sweep_config.train.seeds = args.seeds
    backtest_config = BacktestConfig()
    backtest_config.data.name = "sp500"
    backtest_config.train.seeds = args.backtest_seeds
    if args.epochs:
        sweep_config.train.epochs = backtest_config.train.epochs = args.epochs
    data = load_market_data(backtest_config.data)

    import ray  # only now: the extra neuraltrader[ray]

    rows, worker_start = [], {}
    for workers in (None, 1, 2):
        if workers is None:
            torch.set_num_threads(args.threads)
            engine: Engine = LocalEngine()
        else:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
            engine = make_engine(EngineSection(kind="ray"))
            worker_start[workers] = start_workers(engine, workers)
        with engine:
            for name, (seconds, tasks, figures) in (
                ("sweep", sweep_seconds(sweep_config, engine)),
                ("backtest", backtest_seconds(backtest_config, data, engine)),
            ):
                rows.append({"run": name, "engine": "local" if workers is None else "ray",
                             "workers": workers or 1, "tasks": tasks, "seconds": seconds,
                             "figures": figures})
        if workers is not None:
            ray.shutdown()
    local = {row["run"]: row for row in rows if row["engine"] == "local"}
    one_worker = {row["run"]: row for row in rows if row["engine"] == "ray"
                  and row["workers"] == 1}
    for row in rows:
        row["speedup"] = local[row["run"]]["seconds"] / row["seconds"]
        row["overhead_per_task"] = None if row["engine"] == "local" else (
            one_worker[row["run"]]["seconds"] - local[row["run"]]["seconds"]) / row["tasks"]
        row["same_figures"] = row["figures"] == local[row["run"]]["figures"]
    for row in rows:
        del row["figures"]
    machine = host("cpu")
    print(f"sweep: {local['sweep']['tasks']} cells x {args.seeds} seeds; backtest: "
          f"sp500, {args.backtest_seeds} seeds; epochs {args.epochs or 'default'}; local "
          f"engine on {args.threads} thread(s), Ray workers on 1 each; "
          f"{torch.__version__}, ray {ray.__version__}")
    print(f"{'run':<10}{'engine':<8}{'workers':>8}{'tasks':>7}{'seconds':>9}"
          f"{'speed-up':>10}{'overhead/task':>15}{'same figures':>14}")
    for row in rows:
        overhead = row["overhead_per_task"]
        print(f"{row['run']:<10}{row['engine']:<8}{row['workers']:>8}{row['tasks']:>7}"
              f"{row['seconds']:>9.1f}{row['speedup']:>10.2f}"
              f"{'-' if overhead is None else f'{overhead:.3f}s':>15}"
              f"{str(row['same_figures']):>14}")
    print("worker start (left out above): " + ", ".join(
        f"{seconds:.1f} s with {workers} worker(s)" for workers, seconds in worker_start.items()))
    figures = {"host": machine, "seeds": args.seeds, "backtest_seeds": args.backtest_seeds,
               "epochs": args.epochs, "threads": args.threads, "ray": ray.__version__,
               "worker_start_seconds": worker_start, "rows": rows}
    if args.json:
        write_json(Path(args.json), figures)
    return figures


if __name__ == "__main__":
    main()
